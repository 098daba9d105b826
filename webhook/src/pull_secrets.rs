//! Registry credentials from `imagePullSecrets`, and which one an image gets. Pure: no I/O.
//!
//! A Secret of type `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`: `{"auths": {KEY:
//! {…}}}`) or the legacy `kubernetes.io/dockercfg` (`.dockercfg`: `{KEY: {…}}`) maps registry
//! keys to `username`/`password` or `auth` (base64 `user:password`, which wins, as in the
//! kubelet). Matching follows the kubelet's keyring (`pkg/credentialprovider/keyring.go`),
//! which extends docker's host-only rule: a key is `host[:port][/path]`, any `http(s)://`
//! scheme and a `/v1/` or `/v2/` path prefix are dropped, the host's dot-separated parts may
//! be globs (`*.example.com`), the port must be equal, and the key's path must be a prefix of
//! the image's repository (here by whole segments). Keys are tried most specific first
//! (reverse lexical order); the kubelet tries every match until a pull works, this webhook
//! uses the first (one look-up per admission).
//!
//! Credentials never reach logs, errors or `Debug`; our copies are zeroized on drop.

use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroizing;

/// Docker Hub's names, all meaning one registry.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// A username and password for one registry.
#[derive(Clone)]
pub struct Credential {
    /// The normalized key it was stored under (`host[:port][/path]`), for messages.
    pub key: String,
    /// The Secret it came from, for messages.
    pub secret: String,
    username: Zeroizing<String>,
    password: Zeroizing<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("key", &self.key).field("secret", &self.secret).finish_non_exhaustive()
    }
}

impl Credential {
    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password (to hand to the registry client, nowhere else).
    pub fn password(&self) -> &str {
        &self.password
    }
}

/// Why a pull Secret gives no credentials. Never quotes the Secret's content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PullSecretError {
    /// The type is neither docker config type.
    #[error("Secret `{0}` is of type `{1}`, not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg")]
    WrongType(String, String),
    /// The key the type calls for is missing.
    #[error("Secret `{0}` has no `{1}` key")]
    MissingKey(String, &'static str),
    /// Not base64, not JSON, or JSON of another shape.
    #[error("Secret `{0}`: `{1}` is not a docker config ({2})")]
    Malformed(String, &'static str, &'static str),
}

#[derive(Deserialize)]
struct SecretObject {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    data: std::collections::BTreeMap<String, Zeroizing<String>>,
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    username: Option<Zeroizing<String>>,
    #[serde(default)]
    password: Option<Zeroizing<String>>,
    #[serde(default)]
    auth: Option<Zeroizing<String>>,
}

/// The credentials of one Secret, as the API server returns it (a v1 Secret, JSON).
pub fn parse_secret(name: &str, body: &[u8]) -> Result<Vec<Credential>, PullSecretError> {
    let malformed = |what: &'static str| PullSecretError::Malformed(name.to_owned(), "Secret", what);
    let secret: SecretObject = serde_json::from_slice(body).map_err(|_| malformed("not a JSON Secret"))?;
    let (key, legacy) = match secret.kind.as_str() {
        "kubernetes.io/dockerconfigjson" => (".dockerconfigjson", false),
        "kubernetes.io/dockercfg" => (".dockercfg", true),
        other => return Err(PullSecretError::WrongType(name.to_owned(), other.to_owned())),
    };
    let encoded = secret.data.get(key).ok_or_else(|| PullSecretError::MissingKey(name.to_owned(), key))?;
    let bad = |what| PullSecretError::Malformed(name.to_owned(), key, what);
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes()).map_err(|_| bad("not base64"))?,
    );
    let auths = if legacy {
        serde_json::from_slice(&decoded).map_err(|_| bad("not a JSON object of registries"))?
    } else {
        serde_json::from_slice::<DockerConfigJson>(&decoded).map_err(|_| bad("no JSON `auths` object"))?.auths
    };
    let mut out = Vec::new();
    for (registry, entry) in auths {
        if let Some((username, password)) = entry.credentials() {
            out.push(Credential { key: normalize_key(&registry), secret: name.to_owned(), username, password });
        }
    }
    Ok(out)
}

impl Entry {
    fn credentials(self) -> Option<(Zeroizing<String>, Zeroizing<String>)> {
        if let Some(auth) = self.auth.filter(|a| !a.is_empty()) {
            let decoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(auth.as_bytes()).ok()?);
            let text = std::str::from_utf8(&decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            return Some((Zeroizing::new(user.to_owned()), Zeroizing::new(password.to_owned())));
        }
        Some((self.username?, self.password.unwrap_or_default()))
    }
}

/// `host[:port][/path]` without scheme, `/v1/`/`/v2/` prefix or trailing `/`; Docker Hub as `docker.io`.
fn normalize_key(key: &str) -> String {
    let key = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let (host, path) = key.split_once('/').unwrap_or((key, ""));
    let path = path.strip_prefix("v1/").or_else(|| path.strip_prefix("v2/")).unwrap_or(path);
    let path = path.trim_matches('/');
    let host = if DOCKER_HUB.contains(&host) { DOCKER_HUB[0] } else { host };
    if path.is_empty() || path == "v1" || path == "v2" { host.to_owned() } else { format!("{host}/{path}") }
}

/// The credential for an image in `registry` (host[:port], as in the reference) and
/// `repository`, from every pull Secret's credentials: the most specific key first.
pub fn select<'a>(credentials: &'a [Credential], registry: &str, repository: &str) -> Option<&'a Credential> {
    let registry = if DOCKER_HUB.contains(&registry) { DOCKER_HUB[0] } else { registry };
    let mut matching: Vec<&Credential> =
        credentials.iter().filter(|c| key_matches(&c.key, registry, repository)).collect();
    // Stable: among equal keys the first Secret of the Pod's list wins.
    matching.sort_by(|a, b| b.key.cmp(&a.key));
    matching.into_iter().next()
}

fn key_matches(key: &str, registry: &str, repository: &str) -> bool {
    let (key_host, key_path) = key.split_once('/').unwrap_or((key, ""));
    let split_port = |h: &'_ str| -> (String, String) {
        match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host.to_owned(), port.to_owned()),
            _ => (h.to_owned(), String::new()),
        }
    };
    let ((glob_host, glob_port), (host, port)) = (split_port(key_host), split_port(registry));
    if glob_port != port {
        return false;
    }
    let (glob_parts, parts): (Vec<_>, Vec<_>) = (glob_host.split('.').collect(), host.split('.').collect());
    if glob_parts.len() != parts.len() || !glob_parts.iter().zip(&parts).all(|(g, p)| glob(g, p)) {
        return false;
    }
    key_path.is_empty()
        || repository == key_path
        || repository.strip_prefix(key_path).is_some_and(|rest| rest.starts_with('/'))
}

/// `*` (any run) and `?` (one character) within one host part, case-insensitive like DNS.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) =
        (pattern.to_ascii_lowercase().chars().collect(), text.to_ascii_lowercase().chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            (pi, ti) = (pi + 1, ti + 1);
        } else if pi < p.len() && p[pi] == '*' {
            (star, mark, pi) = (Some(pi), ti, pi + 1);
        } else if let Some(s) = star {
            (pi, mark, ti) = (s + 1, mark + 1, mark + 1);
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `name` is a valid Secret name (RFC 1123 subdomain). Names come from the Pod, which
/// the API server validates only after mutating webhooks: one must never reach a URL unchecked.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(kind: &str, key: &str, config: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Secret", "type": kind,
            "data": {key: b64(&config.to_string())}}))
        .unwrap()
    }

    #[test]
    fn both_secret_types_parse_and_auth_wins_over_the_fields() {
        let modern = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({"auths": {"https://reg.example:5000/v2/": {"username": "u", "password": "p"},
                             "index.docker.io": {"auth": b64("hub:pw:with:colons"), "username": "ignored"}}}),
        );
        let creds = parse_secret("pull", &modern).unwrap();
        let by_key = |k: &str| creds.iter().find(|c| c.key == k).unwrap();
        assert_eq!((by_key("reg.example:5000").username(), by_key("reg.example:5000").password()), ("u", "p"));
        assert_eq!((by_key("docker.io").username(), by_key("docker.io").password()), ("hub", "pw:with:colons"));

        let legacy = secret("kubernetes.io/dockercfg", ".dockercfg", json!({"reg.example/team": {"auth": b64("a:b")}}));
        let creds = parse_secret("old", &legacy).unwrap();
        assert_eq!((creds[0].key.as_str(), creds[0].username(), creds[0].password()), ("reg.example/team", "a", "b"));
    }

    #[test]
    fn bad_secrets_are_named_without_their_content() {
        let opaque = serde_json::to_vec(&json!({"type": "Opaque", "data": {"x": b64("hunter2")}})).unwrap();
        assert_eq!(parse_secret("s", &opaque).err(), Some(PullSecretError::WrongType("s".into(), "Opaque".into())));
        let missing = serde_json::to_vec(&json!({"type": "kubernetes.io/dockercfg", "data": {}})).unwrap();
        assert!(matches!(parse_secret("s", &missing), Err(PullSecretError::MissingKey(_, ".dockercfg"))));
        let garbage = serde_json::to_vec(
            &json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64("hunter2")}}),
        )
        .unwrap();
        let error = parse_secret("s", &garbage).err().unwrap().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn debug_output_holds_no_credential() {
        let body =
            secret("kubernetes.io/dockercfg", ".dockercfg", json!({"r": {"username": "ux", "password": "s3cr3t"}}));
        let creds = parse_secret("s", &body).unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("s3cr3t") && !debug.contains("ux"), "{debug}");
    }

    fn cred(key: &str, secret: &str) -> Credential {
        Credential {
            key: normalize_key(key),
            secret: secret.into(),
            username: Zeroizing::new("u".into()),
            password: Zeroizing::new("p".into()),
        }
    }

    #[test]
    fn matching_follows_the_kubelet_keyring() {
        let creds = [
            cred("reg.example", "host"),
            cred("reg.example/team", "team"),
            cred("*.corp.example", "glob"),
            cred("reg.example:5000", "port"),
            cred("https://index.docker.io/v1/", "hub"),
        ];
        let pick = |registry: &str, repo: &str| select(&creds, registry, repo).map(|c| c.secret.as_str());
        assert_eq!(pick("reg.example", "team/app"), Some("team"));
        assert_eq!(pick("reg.example", "teamster/app"), Some("host"));
        assert_eq!(pick("reg.example", "other/app"), Some("host"));
        assert_eq!(pick("reg.example:5000", "x"), Some("port"));
        assert_eq!(pick("reg.example:5001", "x"), None);
        assert_eq!(pick("a.corp.example", "x"), Some("glob"));
        assert_eq!(pick("a.b.corp.example", "x"), None);
        assert_eq!(pick("docker.io", "library/nginx"), Some("hub"));
        assert_eq!(pick("evil-reg.example", "x"), None);
        assert_eq!(pick("reg.example.evil", "x"), None);
    }

    #[test]
    fn equal_keys_keep_the_pods_order() {
        let creds = [cred("reg.example", "first"), cred("reg.example", "second")];
        assert_eq!(select(&creds, "reg.example", "a").unwrap().secret, "first");
    }

    #[test]
    fn only_rfc_1123_names_reach_a_url() {
        for good in ["pull", "a.b-c", "x1"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "../x", "a/b", "A", "-a", "a-", "a?b", "a%2f", &"a".repeat(254)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("REG", "reg"));
        assert!(!glob("a*d", "abc"));
    }
}
