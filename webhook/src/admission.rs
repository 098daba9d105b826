//! AdmissionReview (admission.k8s.io/v1) in and out. No decision is taken here.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::patch::JsonPatch;
use crate::pod::Pod;

/// Why a request body is not an AdmissionReview this webhook can answer.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("the body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    NotAReview(#[source] serde_json::Error),
    /// Not UTF-8 (JSON is).
    #[error("the body is not UTF-8 text: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    /// Another apiVersion or kind.
    #[error("the body is a {0}, not an admission.k8s.io/v1 AdmissionReview")]
    WrongType(String),
    /// A review without a `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    api_version: String,
    kind: String,
    #[serde(borrow)]
    request: Option<Request<'a>>,
}

/// The parts of an AdmissionRequest this webhook reads; `object` is decoded later, so a bad
/// Pod is answered with the request's uid.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    /// The request's uid, copied into the answer.
    pub uid: String,
    /// The object's kind.
    pub kind: GroupVersionKind,
    /// The subresource, if any (e.g. `ephemeralcontainers`).
    pub sub_resource: Option<String>,
    /// The namespace.
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// The object, undecoded.
    #[serde(borrow)]
    pub object: Option<&'a RawValue>,
}

/// `group`, `version`, `kind`.
#[derive(Debug, Deserialize)]
pub struct GroupVersionKind {
    /// Empty for the core group.
    #[serde(default)]
    pub group: String,
    /// e.g. `v1`.
    pub version: String,
    /// e.g. `Pod`.
    pub kind: String,
}

/// A review whose object decodes as a [`Pod`]: the common case, decoded in one pass. The
/// fields only compared are borrowed from the body (unless they hold escapes).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodReview<'a> {
    #[serde(borrow)]
    api_version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    request: PodRequest<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodRequest<'a> {
    uid: String,
    #[serde(borrow)]
    kind: BorrowedKind<'a>,
    sub_resource: Option<String>,
    namespace: Option<String>,
    #[serde(borrow)]
    operation: Cow<'a, str>,
    object: Pod,
}

/// [`GroupVersionKind`], borrowed.
#[derive(Deserialize)]
struct BorrowedKind<'a> {
    #[serde(default, borrow)]
    group: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

/// A decoded request: its uid and namespace, and what it asks.
#[derive(Debug)]
pub struct Decoded {
    /// The request's uid, copied into the answer.
    pub uid: String,
    /// The request's namespace.
    pub namespace: Option<String>,
    /// The Pod to mutate, or why not.
    pub subject: Result<Subject, SubjectError>,
}

/// Decodes a request body: one pass when it is a Pod CREATE with a valid Pod, a second,
/// lenient pass otherwise, so that a bad object is answered with the request's uid.
pub fn decode_pod(body: &[u8]) -> Result<Decoded, DecodeError> {
    // One check of the whole body is cheaper than serde_json's check of every string in it.
    let text = std::str::from_utf8(body).map_err(DecodeError::NotUtf8)?;
    if let Ok(review) = serde_json::from_str::<PodReview>(text)
        && review.api_version == "admission.k8s.io/v1"
        && review.kind == "AdmissionReview"
        && review.request.operation == "CREATE"
        && review.request.sub_resource.is_none()
        && is_core_v1_pod(&review.request.kind.group, &review.request.kind.version, &review.request.kind.kind)
    {
        let r = review.request;
        return Ok(Decoded { uid: r.uid, namespace: r.namespace, subject: Ok(Subject::CreatePod(Box::new(r.object))) });
    }
    let request = decode(text.as_bytes())?;
    let subject = subject(&request);
    Ok(Decoded { uid: request.uid, namespace: request.namespace, subject })
}

fn is_pod(kind: &GroupVersionKind, sub_resource: Option<&str>) -> bool {
    is_core_v1_pod(&kind.group, &kind.version, &kind.kind) && sub_resource.is_none()
}

fn is_core_v1_pod(group: &str, version: &str, kind: &str) -> bool {
    group.is_empty() && version == "v1" && kind == "Pod"
}

/// Decodes a request body, leaving the object undecoded.
pub fn decode(body: &[u8]) -> Result<Request<'_>, DecodeError> {
    let review: Review<'_> = serde_json::from_slice(body).map_err(DecodeError::NotAReview)?;
    if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
        return Err(DecodeError::WrongType(format!("{}/{}", review.api_version, review.kind)));
    }
    review.request.ok_or(DecodeError::NoRequest)
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
    BadPod(#[source] serde_json::Error),
}

/// The Pod a request is about.
pub fn subject(request: &Request<'_>) -> Result<Subject, SubjectError> {
    let kind = &request.kind;
    if !is_pod(kind, request.sub_resource.as_deref()) {
        let sub = request.sub_resource.as_deref().map(|s| format!(" (subresource {s})")).unwrap_or_default();
        return Err(SubjectError::WrongKind(format!("{}/{}/{}{sub}", kind.group, kind.version, kind.kind)));
    }
    if request.operation != "CREATE" {
        return Ok(Subject::Ignore("not a CREATE"));
    }
    let object = request.object.ok_or(SubjectError::NoObject)?;
    let pod: Pod = serde_json::from_str(object.get()).map_err(SubjectError::BadPod)?;
    Ok(Subject::CreatePod(Box::new(pod)))
}

/// The answer to one review. Encoded by hand rather than with kube-core's `AdmissionResponse`,
/// which writes `patch` as an array of numbers: the API documents a base64 string.
#[derive(Clone, Debug)]
pub struct Answer {
    uid: String,
    allowed: bool,
    status: Option<(u16, String)>,
    patch: Option<JsonPatch>,
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
    pub fn with_patch(mut self, patch: JsonPatch) -> Answer {
        self.patch = (!patch.is_empty()).then_some(patch);
        self
    }

    /// Adds a warning for the client that created the Pod.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Answer {
        self.warnings.push(warning.into());
        self
    }

    /// Adds warnings for the client that created the Pod (kubectl prints each as `Warning: …`).
    pub fn with_warnings(mut self, warnings: &[String]) -> Answer {
        self.warnings.extend(warnings.iter().cloned());
        self
    }

    /// The AdmissionReview the API server expects. Written directly rather than through a
    /// `Value` tree: the base64 patch needs no escaping and is the bulk of the answer.
    pub fn encode(&self) -> Vec<u8> {
        // Invariant: strings and a Patch of JSON values always serialize into a Vec.
        let string = |out: &mut Vec<u8>, s: &str| serde_json::to_writer(out, s).expect("a string serializes");
        // Sized up front: the base64 patch is most of the answer, and regrowing copies it.
        let patch_len = self.patch.as_ref().map_or(0, |p| p.as_json().len().div_ceil(3) * 4);
        let mut out = Vec::with_capacity(256 + self.uid.len() + patch_len);
        out.extend_from_slice(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#);
        string(&mut out, &self.uid);
        out.extend_from_slice(if self.allowed { br#","allowed":true"# } else { br#","allowed":false"# });
        if let Some((code, message)) = &self.status {
            // A metav1.Status: kubectl prints the reason, e.g. `(Forbidden)`, after the message.
            out.extend_from_slice(
                format!(
                    r#","status":{{"status":"Failure","code":{code},"reason":"{}","message":"#,
                    status_reason(*code)
                )
                .as_bytes(),
            );
            string(&mut out, message);
            out.push(b'}');
        }
        if let Some(patch) = &self.patch {
            out.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
            base64_into(&mut out, patch.as_json());
            out.push(b'"');
        }
        if !self.warnings.is_empty() {
            out.extend_from_slice(br#","warnings":"#);
            serde_json::to_writer(&mut out, &self.warnings).expect("strings serialize");
        }
        out.extend_from_slice(b"}}");
        out
    }
}

/// The standard base64 alphabet (RFC 4648 section 4).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Each 12-bit value as its two base64 letters, first letter in the low byte.
static PAIRS: [u16; 4096] = {
    let mut table = [0u16; 4096];
    let mut i = 0;
    while i < 4096 {
        table[i] = ALPHABET[i >> 6] as u16 | (ALPHABET[i & 63] as u16) << 8;
        i += 1;
    }
    table
};

/// Four letters for the 24 bits in the low bits of `group`, first letter in the low byte.
fn quad(group: u64) -> u64 {
    u64::from(PAIRS[(group >> 12) as usize & 0xfff]) | u64::from(PAIRS[group as usize & 0xfff]) << 16
}

/// `input` in standard base64 with padding, appended to `out`: the same text as the `base64`
/// crate's `STANDARD` engine (a unit test compares them). Forty-eight bytes become 64 letters
/// on the stack, two letters per table look-up, then one copy into `out` (the patch is most
/// of an answer, and the crate's chunked encoder was a tenth of an admission).
fn base64_into(out: &mut Vec<u8>, input: &[u8]) {
    out.reserve(input.len().div_ceil(3) * 4);
    let mut blocks = input.chunks_exact(48);
    for block in blocks.by_ref() {
        let mut letters = [0u8; 64];
        for (chunk, slot) in block.chunks_exact(12).zip(letters.chunks_exact_mut(16)) {
            encode_12(chunk.try_into().expect("chunks of 12"), slot.try_into().expect("slots of 16"));
        }
        out.extend_from_slice(&letters);
    }
    let mut chunks = blocks.remainder().chunks_exact(12);
    for chunk in chunks.by_ref() {
        let mut letters = [0u8; 16];
        encode_12(chunk.try_into().expect("chunks of 12"), &mut letters);
        out.extend_from_slice(&letters);
    }
    let mut triples = chunks.remainder().chunks_exact(3);
    for triple in triples.by_ref() {
        let group = u64::from(triple[0]) << 16 | u64::from(triple[1]) << 8 | u64::from(triple[2]);
        out.extend_from_slice(&(quad(group) as u32).to_le_bytes());
    }
    match *triples.remainder() {
        [x] => out.extend_from_slice(&[ALPHABET[usize::from(x >> 2)], ALPHABET[usize::from(x & 3) << 4], b'=', b'=']),
        [x, y] => out.extend_from_slice(&[
            ALPHABET[usize::from(x >> 2)],
            ALPHABET[usize::from(x & 3) << 4 | usize::from(y >> 4)],
            ALPHABET[usize::from(y & 15) << 2],
            b'=',
        ]),
        _ => {}
    }
}

/// Twelve bytes as sixteen letters.
fn encode_12(chunk: &[u8; 12], slot: &mut [u8; 16]) {
    let a = u64::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
    let b = u64::from(u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]));
    let low = quad(a >> 40) | quad(a >> 16) << 32;
    let high = quad(a << 8 | b >> 24) | quad(b) << 32;
    slot[..8].copy_from_slice(&low.to_le_bytes());
    slot[8..].copy_from_slice(&high.to_le_bytes());
}

/// The `metav1.StatusReason` for an HTTP-style code (k8s.io/apimachinery
/// `pkg/apis/meta/v1/types.go`: `StatusReasonForbidden`, `StatusReasonBadRequest`, ...).
fn status_reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::{Value, json};

    fn parse(answer: &Answer) -> Value {
        serde_json::from_slice(&answer.encode()).expect("the answer is JSON")
    }

    #[test]
    fn answers_are_admission_reviews_with_a_base64_patch() {
        let mut builder = crate::patch::Builder::default();
        builder.append_volumes(false, &["\"quoted\""]);
        let patch = builder.finish();
        let v = parse(&Answer::allow("u\"1").with_patch(patch.clone()).with_warning("w \"1\""));
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["uid"], "u\"1");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD.decode(v["response"]["patch"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<json_patch::Patch>(&bytes).unwrap(), patch.to_patch());
        assert_eq!(v["response"]["warnings"], json!(["w \"1\""]));

        let v = parse(&Answer::deny("u2", 403, "no \"way\"\n"));
        assert_eq!(
            v["response"],
            json!({"uid": "u2", "allowed": false,
                   "status": {"status": "Failure", "code": 403, "reason": "Forbidden", "message": "no \"way\"\n"}})
        );
        // kubectl prints `(Forbidden)` / `(BadRequest)` from the reason.
        assert_eq!(parse(&Answer::deny("u4", 400, "bad"))["response"]["status"]["reason"], "BadRequest");
        let v = parse(&Answer::allow("u5").with_warnings(&["a".to_owned(), "b".to_owned()]));
        assert_eq!(v["response"]["warnings"], json!(["a", "b"]));
        let v = parse(&Answer::allow("u3").with_patch(JsonPatch::empty()));
        assert_eq!(v["response"], json!({"uid": "u3", "allowed": true}));
    }

    #[test]
    fn base64_is_the_crates_standard_encoding() {
        let mut input: Vec<u8> = Vec::new();
        for len in 0..200 {
            let mut out = b"x".to_vec();
            base64_into(&mut out, &input);
            assert_eq!(out[1..], *base64::engine::general_purpose::STANDARD.encode(&input).as_bytes(), "{len}");
            input.push((len as u8).wrapping_mul(151).wrapping_add(len as u8 >> 3));
        }
        let all: Vec<u8> = (0..=255).cycle().take(4099).collect();
        let mut out = Vec::new();
        base64_into(&mut out, &all);
        assert_eq!(out, base64::engine::general_purpose::STANDARD.encode(&all).into_bytes());
    }

    #[test]
    fn the_one_pass_and_the_lenient_decoders_agree() {
        let review = |operation: &str, kind: &str, object: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"","version":"v1","kind":"{kind}"}},"namespace":"ns","operation":"{operation}","object":{object}}}}}"#
            )
        };
        let good = r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","futureField":1}]}}"#;
        let d = decode_pod(review("CREATE", "Pod", good).as_bytes()).unwrap();
        assert_eq!((d.uid.as_str(), d.namespace.as_deref()), ("u", Some("ns")));
        assert!(matches!(d.subject, Ok(Subject::CreatePod(p)) if p.metadata.name.as_deref() == Some("p")));
        let d = decode_pod(review("UPDATE", "Pod", good).as_bytes()).unwrap();
        assert!(matches!(d.subject, Ok(Subject::Ignore(_))));
        let d = decode_pod(review("CREATE", "Pod", r#"{"spec":{"containers":7}}"#).as_bytes()).unwrap();
        assert_eq!(d.uid, "u");
        assert!(matches!(d.subject, Err(SubjectError::BadPod(_))));
        let d = decode_pod(review("CREATE", "Secret", good).as_bytes()).unwrap();
        assert!(matches!(d.subject, Err(SubjectError::WrongKind(k)) if k == "/v1/Secret"));
        assert!(decode_pod(b"[]").is_err());
    }

    #[test]
    fn decoding_names_what_is_wrong() {
        assert!(matches!(decode(b"nope"), Err(DecodeError::NotAReview(_))));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#),
            Err(DecodeError::WrongType(t)) if t == "admission.k8s.io/v1beta1/AdmissionReview"
        ));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(DecodeError::NoRequest)
        ));
    }
}
