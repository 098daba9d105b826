//! AdmissionReview (admission.k8s.io/v1) in and out. No decision is taken here.

use k8s_openapi::api::core::v1::Pod;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

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

/// Encodes a response as the review the API server expects.
pub fn encode(response: AdmissionResponse) -> Vec<u8> {
    // Invariant: an AdmissionReview of plain strings, maps and bytes always serializes.
    serde_json::to_vec(&response.into_review()).expect("an AdmissionReview serializes")
}
