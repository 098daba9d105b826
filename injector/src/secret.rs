//! Vault responses, parsed straight from a zeroizing buffer into [`SecretString`]s.
//!
//! Field values never pass through `serde_json::Value` (whose strings are freed without
//! being wiped): each is taken as raw JSON text, turned into a `SecretString`, and the raw
//! copy is zeroized. Numbers, booleans, objects and arrays become their JSON text.

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use zeroize::Zeroize;

/// The fields of one response: field name to secret value.
#[derive(Default)]
pub struct Fields(HashMap<String, SecretString>);

impl Fields {
    /// Field names and secrets, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The secret in field `key`.
    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.0.get(key)
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Fields").field("names", &names).finish_non_exhaustive()
    }
}

/// What Vault answered for one request.
#[derive(Debug)]
pub enum Answer {
    /// The response's fields.
    Found(Fields),
    /// Nothing at that path (404, or a deleted KV v2 version).
    Missing,
}

/// What one request returned.
#[derive(Debug)]
pub struct Fetched {
    /// The fields, or that there is nothing.
    pub answer: Answer,
    /// The lease that came with it.
    pub lease: Lease,
    /// The KV v2 version read, for watching changes.
    pub kv_version: Option<u64>,
}

/// What transit made of one ciphertext.
pub enum Plaintext {
    /// The plaintext, in a buffer wiped on drop.
    Found(zeroize::Zeroizing<Vec<u8>>),
    /// Vault's reason (never secret: it is about the ciphertext or the key).
    Failed(String),
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plaintext::Found(_) => f.write_str("Found(..)"),
            Plaintext::Failed(reason) => f.debug_tuple("Failed").field(reason).finish(),
        }
    }
}

/// The lease that came with a response (dynamic secrets); for renewal in daemon mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    /// Empty for secrets without a lease (KV).
    pub id: String,
    /// Seconds the lease is valid for.
    pub duration_secs: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    /// `None` when the response holds no data (a deleted KV v2 version, say).
    pub fields: Option<Fields>,
    /// The lease, if any.
    pub lease: Lease,
    /// Vault's warnings (never secret).
    pub warnings: Vec<String>,
    /// The version read, for KV v2.
    pub kv_version: Option<u64>,
}

/// A response body that is not what Vault sends.
#[derive(Debug, thiserror::Error)]
#[error("Vault's response is not a secret response: {0}")]
pub struct MalformedResponse(String);

impl MalformedResponse {
    /// A response that failed to parse, for the reason given (never the body).
    pub fn new(reason: String) -> Self {
        MalformedResponse(reason)
    }
}

type RawFields = HashMap<String, Box<RawValue>>;

#[derive(Deserialize)]
struct Envelope<D> {
    data: Option<D>,
    #[serde(default)]
    lease_id: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Kv2 {
    data: Option<RawFields>,
    #[serde(default)]
    metadata: Option<Kv2Metadata>,
}

#[derive(Deserialize)]
struct Kv2Metadata {
    #[serde(default)]
    version: Option<u64>,
}

/// Where a response keeps its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// KV v2 `data/` read: under `data.data`, with `data.metadata`.
    Kv2,
    /// Under `data` (KV v1, dynamic secrets, writes, KV v2 `metadata/` reads).
    Flat,
    /// Unknown mount (its type could not be looked up): KV v2 when `data` holds exactly the
    /// `data` and `metadata` of a KV v2 read, as Bank-Vaults decides (vault-sdk
    /// `injector/vault/injector.go` `readVaultPath`: `secret.Data["data"]` + `metadata`).
    Detect,
}

/// Parses a response body laid out as `layout` says.
pub fn parse_response(body: &[u8], layout: Layout) -> Result<Response, MalformedResponse> {
    // serde_json's messages give line and column, never the offending text.
    let malformed = |e: serde_json::Error| MalformedResponse(e.to_string());
    let kv2 = match layout {
        Layout::Kv2 => true,
        Layout::Flat => false,
        Layout::Detect => {
            // Borrowed raw values: only the names are looked at, nothing is copied.
            #[derive(Deserialize)]
            struct Peek<'a> {
                #[serde(borrow)]
                data: Option<HashMap<&'a str, &'a RawValue>>,
            }
            let peek: Peek<'_> = serde_json::from_slice(body).map_err(malformed)?;
            peek.data.is_some_and(|d| {
                d.contains_key("data")
                    && d.get("metadata").is_some_and(|m| m.get().starts_with('{'))
                    && d.get("data").is_some_and(|v| v.get().starts_with('{') || v.get() == "null")
            })
        }
    };
    let (raw, lease, warnings, kv_version) = if kv2 {
        let envelope: Envelope<Kv2> = serde_json::from_slice(body).map_err(malformed)?;
        let lease = lease_of(&envelope);
        let (raw, version) = match envelope.data {
            Some(Kv2 { data, metadata }) => (data, metadata.and_then(|m| m.version)),
            None => (None, None),
        };
        (raw, lease, envelope.warnings, version)
    } else {
        let envelope: Envelope<RawFields> = serde_json::from_slice(body).map_err(malformed)?;
        let lease = lease_of(&envelope);
        (envelope.data, lease, envelope.warnings, None)
    };
    let fields = raw.map(into_fields).transpose()?;
    Ok(Response { fields, lease, warnings: warnings.unwrap_or_default(), kv_version })
}

fn lease_of<D>(envelope: &Envelope<D>) -> Lease {
    Lease { id: envelope.lease_id.clone(), duration_secs: envelope.lease_duration, renewable: envelope.renewable }
}

fn into_fields(raw: RawFields) -> Result<Fields, MalformedResponse> {
    let mut fields = HashMap::with_capacity(raw.len());
    let mut failure = None;
    for (name, value) in raw {
        let mut text: Box<str> = value.into();
        if failure.is_none() {
            match secret_of(&text) {
                Ok(secret) => {
                    fields.insert(name, secret);
                }
                Err(e) => failure = Some(MalformedResponse(format!("field `{name}`: {e}"))),
            }
        }
        text.zeroize();
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Fields(fields)),
    }
}

fn secret_of(raw: &str) -> Result<SecretString, serde_json::Error> {
    if raw.starts_with('"') {
        let text: String = serde_json::from_str(raw)?;
        Ok(SecretString::from(text))
    } else {
        Ok(SecretString::from(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn field(r: &Response, key: &str) -> String {
        r.fields.as_ref().unwrap().get(key).unwrap().expose_secret().to_owned()
    }

    #[test]
    fn kv1_and_dynamic_secrets() {
        let body = br#"{"request_id":"x","lease_id":"database/creds/app/abc","lease_duration":3600,"renewable":true,
            "data":{"username":"v-app-1","password":"p\"w\u00e9","port":5432,"on":true,"obj":{"a":[1]},"nil":null},"warnings":["w1"]}"#;
        let r = parse_response(body, Layout::Flat).unwrap();
        assert_eq!(field(&r, "username"), "v-app-1");
        assert_eq!(field(&r, "password"), "p\"wé");
        assert_eq!(field(&r, "port"), "5432");
        assert_eq!(field(&r, "on"), "true");
        assert_eq!(field(&r, "obj"), r#"{"a":[1]}"#);
        assert_eq!(field(&r, "nil"), "null");
        assert_eq!(r.lease, Lease { id: "database/creds/app/abc".into(), duration_secs: 3600, renewable: true });
        assert_eq!(r.warnings, ["w1"]);
    }

    #[test]
    fn kv2_fields_are_under_data_data() {
        let body = br#"{"data":{"data":{"password":"s3cr3t"},"metadata":{"version":3,"destroyed":false}}}"#;
        let parsed = parse_response(body, Layout::Kv2).unwrap();
        assert_eq!(field(&parsed, "password"), "s3cr3t");
        assert_eq!(parsed.kv_version, Some(3));
        let deleted = br#"{"data":{"data":null,"metadata":{"deletion_time":"2026-01-01T00:00:00Z"}}}"#;
        assert!(parse_response(deleted, Layout::Kv2).unwrap().fields.is_none());
        // Bank-Vaults' shape test, for mounts whose type could not be looked up.
        assert_eq!(field(&parse_response(body, Layout::Detect).unwrap(), "password"), "s3cr3t");
        let kv1_with_data_field = br#"{"data":{"data":"x","other":"y"}}"#;
        assert_eq!(field(&parse_response(kv1_with_data_field, Layout::Detect).unwrap(), "data"), "x");
    }

    #[test]
    fn malformed_bodies_are_errors_without_their_content() {
        for body in [&b"not json s3cr3t"[..], br#"{"data":["s3cr3t"]}"#, br#"{"data":{"k":"s3cr3t"#] {
            let err = parse_response(body, Layout::Flat).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn debug_shows_names_not_values() {
        let r = parse_response(br#"{"data":{"password":"s3cr3t"}}"#, Layout::Flat).unwrap();
        let debug = format!("{r:?}");
        assert!(debug.contains("password") && !debug.contains("s3cr3t"), "{debug}");
    }
}
