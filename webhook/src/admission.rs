//! AdmissionReview (admission.k8s.io/v1) in and out. No decision is taken here.

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionReview, Operation};
use serde_json::{Value, json};

/// Why a request body is not an AdmissionReview this webhook can answer.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("the body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    NotAReview(#[source] serde_json::Error),
    /// A review without a `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Decodes a request body.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, DecodeError> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).map_err(DecodeError::NotAReview)?;
    review.try_into().map_err(|_| DecodeError::NoRequest)
}

/// What the request asks of this webhook.
#[derive(Debug)]
pub enum Subject {
    /// A Pod being created: to mutate.
    CreatePod(Box<Pod>),
    /// Anything this webhook leaves alone (another operation), with the reason for the log.
    Ignore(&'static str),
}

/// Why a well-formed review cannot be answered with a mutation.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// The webhook only handles core/v1 Pods.
    #[error("this webhook mutates core/v1 Pods, not {0}")]
    WrongKind(String),
    /// A CREATE without an object.
    #[error("the request has no object")]
    NoObject,
    /// The object is not a valid Pod.
    #[error("the object is not a valid Pod: {0}")]
    BadPod(String),
}

/// The Pod a request is about.
pub fn subject(request: &AdmissionRequest<DynamicObject>) -> Result<Subject, SubjectError> {
    let kind = &request.kind;
    if !(kind.group.is_empty() && kind.version == "v1" && kind.kind == "Pod") || request.sub_resource.is_some() {
        let sub = request.sub_resource.as_deref().map(|s| format!(" (subresource {s})")).unwrap_or_default();
        return Err(SubjectError::WrongKind(format!("{}/{}/{}{sub}", kind.group, kind.version, kind.kind)));
    }
    if !matches!(request.operation, Operation::Create) {
        return Ok(Subject::Ignore("not a CREATE"));
    }
    let object = request.object.clone().ok_or(SubjectError::NoObject)?;
    let pod = object.try_parse::<Pod>().map_err(|e| SubjectError::BadPod(e.to_string()))?;
    Ok(Subject::CreatePod(Box::new(pod)))
}

/// The answer to one review. Encoded by hand rather than with kube-core's `AdmissionResponse`,
/// which writes `patch` as an array of numbers: the API documents a base64 string.
#[derive(Clone, Debug)]
pub struct Answer {
    uid: String,
    allowed: bool,
    status: Option<(u16, String)>,
    patch: Option<json_patch::Patch>,
    warnings: Vec<String>,
}

impl Answer {
    /// Allowed, unchanged.
    pub fn allow(uid: &str) -> Answer {
        Answer { uid: uid.to_owned(), allowed: true, status: None, patch: None, warnings: Vec::new() }
    }

    /// Denied with HTTP-style `code` (403 policy, 400 malformed object) and a message.
    pub fn deny(uid: &str, code: u16, message: impl Into<String>) -> Answer {
        Answer { allowed: false, status: Some((code, message.into())), ..Answer::allow(uid) }
    }

    /// Allowed with this patch (none if it is empty).
    pub fn with_patch(mut self, patch: json_patch::Patch) -> Answer {
        self.patch = (!patch.0.is_empty()).then_some(patch);
        self
    }

    /// Adds a warning for the client that created the Pod.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Answer {
        self.warnings.push(warning.into());
        self
    }

    /// The AdmissionReview the API server expects.
    pub fn encode(&self) -> Vec<u8> {
        let mut response = json!({"uid": self.uid, "allowed": self.allowed});
        if let Some((code, message)) = &self.status {
            response["status"] = json!({"code": code, "message": message});
        }
        if let Some(patch) = &self.patch {
            // Invariant: a Patch of JSON values always serializes.
            let bytes = serde_json::to_vec(patch).expect("a JSON Patch serializes");
            response["patchType"] = Value::from("JSONPatch");
            response["patch"] = Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        if !self.warnings.is_empty() {
            response["warnings"] = json!(self.warnings);
        }
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
        // Invariant: a serde_json::Value always serializes.
        serde_json::to_vec(&review).expect("a JSON value serializes")
    }
}
