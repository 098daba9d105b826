//! Secrets and ConfigMaps that hold Vault references: what Hush says about them. Pure: no I/O.
//!
//! Bank-Vaults mutates such objects: it reads Vault at admission and writes the resolved
//! values into the Secret or ConfigMap, and so into etcd (`bank-vaults/vault-secrets-webhook`
//! `pkg/webhook/secret.go`, `configmap.go`; its chart registers Secrets by default,
//! `secretsMutation: true`, and ConfigMaps on request, `configMapMutation: false`). Hush never
//! will. Registered for Secrets and ConfigMaps (`/objects`, a validating webhook with
//! `failurePolicy: Ignore`), it allows every request unchanged and answers an object whose
//! values hold references with warnings (kubectl prints each as `Warning: …`) that name the
//! object and its keys — never a value — and say how Hush serves the same need: a Pod that
//! takes the values into its environment through `envFrom`/`valueFrom` gets them resolved by
//! the shim at start.
//!
//! Detection follows Bank-Vaults' (`secretNeedsMutation`, `configMapNeedsMutation`): a value
//! that starts with `vault:`/`>>vault:` (or secret-init's `bao:`) or holds a `${vault:…}`
//! template — the contract's [`reference::may_hold_reference`] — in a Secret's `data`
//! (base64) and `stringData`, a ConfigMap's `data` and `binaryData` (base64), and the registry
//! credentials of a `.dockerconfigjson` (its `auths`' base64 `auth`, as Bank-Vaults reads
//! them). An object annotated with Bank-Vaults' `mutate: skip` (either prefix) is left
//! without a word, as Bank-Vaults leaves it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;
use hush_contract::exit;
use hush_contract::reference;
use hush_contract::settings::{CURRENT_PREFIX, LEGACY_PREFIX};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::admission::Request;
use crate::pod::Pod;

/// The kinds this module answers for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// core/v1 Secret.
    Secret,
    /// core/v1 ConfigMap.
    ConfigMap,
}

impl Kind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        }
    }
}

/// Why a review is answered without looking at the object. Every case is still allowed: the
/// objects webhook refuses nothing.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Not a core/v1 Secret or ConfigMap (the registration sends only those).
    #[error("this path answers for core/v1 Secrets and ConfigMaps, not {0}")]
    WrongKind(String),
    /// The object does not decode as a Secret or ConfigMap.
    #[error("the object is not a valid {kind}: {source}")]
    BadObject {
        /// Secret or ConfigMap.
        kind: &'static str,
        /// Where decoding failed (serde_json's message names a position, never a value).
        #[source]
        source: serde_json::Error,
    },
}

/// Which keys of one object hold what. Keys only: no value is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Keys the kubelet can put into a container's environment (a Secret's `data` and
    /// `stringData`, a ConfigMap's `data`) whose values hold references.
    pub env: Vec<String>,
    /// ConfigMap `binaryData` keys holding references: the kubelet passes them only as files.
    pub binary: Vec<String>,
    /// `.dockerconfigjson`/`.dockercfg` keys whose registry credentials hold references.
    pub pull_credentials: Vec<String>,
    /// Keys whose values look like references but do not parse.
    pub malformed: Vec<String>,
}

impl Findings {
    /// Whether no key holds anything that looks like a reference.
    pub fn is_empty(&self) -> bool {
        self.env.is_empty() && self.binary.is_empty() && self.pull_credentials.is_empty() && self.malformed.is_empty()
    }
}

/// One reviewed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reviewed {
    /// Secret or ConfigMap.
    pub kind: Kind,
    /// `namespace/name` as the warning shows it.
    pub object: String,
    /// Annotated `mutate: skip` (Bank-Vaults' opt-out): no warning.
    pub skipped: bool,
    /// What its keys hold.
    pub findings: Findings,
}

impl Reviewed {
    /// The warnings for the client, in a fixed order; empty when nothing holds a reference.
    pub fn warnings(&self) -> Vec<String> {
        if self.skipped {
            return Vec::new();
        }
        let (kind, object, f) = (self.kind.as_str(), &self.object, &self.findings);
        let mut out = Vec::new();
        if !f.env.is_empty() {
            let one = f.env.len() == 1;
            out.push(format!(
                "{kind} {object}: {} {}; Hush leaves {} as written (it never writes secrets into Secrets or ConfigMaps)",
                keys(&f.env),
                if one { "holds a Vault reference" } else { "hold Vault references" },
                if one { "it" } else { "them" },
            ));
            out.push(format!(
                "{kind} {object}: a Pod annotated hush.dev/inject: \"true\" that takes {} through envFrom or valueFrom \
                 gets {} resolved by Hush's shim at start; mounted as files they stay as written",
                if one { "it" } else { "them" },
                if one { "it" } else { "them" },
            ));
        }
        if !f.binary.is_empty() {
            out.push(format!(
                "{kind} {object}: binaryData {} {}; the kubelet passes binaryData only as files, which Hush never \
                 resolves",
                keys(&f.binary),
                if f.binary.len() == 1 { "holds a Vault reference" } else { "hold Vault references" },
            ));
        }
        if !f.pull_credentials.is_empty() {
            out.push(format!(
                "{kind} {object}: the registry credentials in {} hold Vault references; the kubelet pulls images with \
                 them as written and Hush cannot resolve them",
                keys(&f.pull_credentials),
            ));
        }
        if !f.malformed.is_empty() {
            let one = f.malformed.len() == 1;
            out.push(format!(
                "{kind} {object}: {} {} but {} not parse; Hush's shim exits {} in a Pod that takes {} into its \
                 environment",
                keys(&f.malformed),
                if one { "looks like a Vault reference" } else { "look like Vault references" },
                if one { "does" } else { "do" },
                exit::DATA,
                if one { "it" } else { "them" },
            ));
        }
        out
    }
}

/// At most this many keys are named in one warning; the rest are counted.
const MAX_KEYS_NAMED: usize = 5;
/// Longest key, namespace or name shown (longer ones are cut with `…`).
const MAX_SHOWN: usize = 63;

/// "key `a`" / "keys `a`, `b` and 3 more".
fn keys(keys: &[String]) -> String {
    let mut out = String::from(if keys.len() == 1 { "key " } else { "keys " });
    for (i, key) in keys.iter().take(MAX_KEYS_NAMED).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('`');
        out.push_str(&shown(key));
        out.push('`');
    }
    if keys.len() > MAX_KEYS_NAMED {
        let _ = write!(out, " and {} more", keys.len() - MAX_KEYS_NAMED);
    }
    out
}

/// A name as a warning shows it: printable ASCII (anything else escaped), cut at
/// [`MAX_SHOWN`] characters. The API server validates keys and names before a validating
/// webhook sees them, so this only matters for requests that did not come from it.
fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        match c {
            // The warning quotes keys in backquotes.
            '`' => out.push_str("\\u{60}"),
            c if c.is_ascii_graphic() => out.push(c),
            c => out.extend(c.escape_default()),
        }
    }
    out
}

/// The annotation Bank-Vaults reads to leave an object alone.
const MUTATE: &str = "mutate";

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    annotations: Option<BTreeMap<String, Option<String>>>,
}

type Map = Option<BTreeMap<String, Option<String>>>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    data: Map,
    #[serde(default)]
    string_data: Map,
    #[serde(default)]
    binary_data: Map,
}

/// Reviews one AdmissionRequest for a Secret or ConfigMap. `Ok(None)`: no object to look at
/// (a DELETE).
pub fn review(request: &Request<'_>) -> Result<Option<Reviewed>, ObjectError> {
    let gvk = &request.kind;
    let kind = match (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str(), request.sub_resource.as_deref()) {
        ("", "v1", "Secret", None) => Kind::Secret,
        ("", "v1", "ConfigMap", None) => Kind::ConfigMap,
        _ => {
            let sub = request.sub_resource.as_deref().map(|s| format!(" (subresource {s})")).unwrap_or_default();
            return Err(ObjectError::WrongKind(format!("{}/{}/{}{sub}", gvk.group, gvk.version, gvk.kind)));
        }
    };
    let Some(raw) = request.object.filter(|o| o.get() != "null") else {
        return Ok(None);
    };
    let object: Object =
        serde_json::from_str(raw.get()).map_err(|source| ObjectError::BadObject { kind: kind.as_str(), source })?;
    Ok(Some(inspect(kind, request.namespace.as_deref(), object)))
}

fn inspect(kind: Kind, namespace: Option<&str>, object: Object) -> Reviewed {
    let metadata = object.metadata.unwrap_or_default();
    let namespace = namespace.or(metadata.namespace.as_deref()).unwrap_or("default");
    let name = metadata.name.as_deref().or(metadata.generate_name.as_deref()).unwrap_or_default();
    let skipped = metadata.annotations.iter().flatten().any(|(key, value)| {
        value.as_deref() == Some("skip")
            && [LEGACY_PREFIX, CURRENT_PREFIX].iter().any(|p| key.strip_prefix(p) == Some(MUTATE))
    });
    let mut findings = Findings::default();
    let entries = |map: Map| map.into_iter().flatten().filter_map(|(k, v)| Some((k, v?)));
    match kind {
        Kind::Secret => {
            for (key, value) in entries(object.data) {
                // The API server sends valid base64; anything else cannot be a value the kubelet passes.
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value.as_bytes()) {
                    secret_value(&mut findings, key, &bytes);
                }
            }
            // Merged into `data` by the API server before admission; read in case a client sends it.
            for (key, value) in entries(object.string_data) {
                secret_value(&mut findings, key, value.as_bytes());
            }
        }
        Kind::ConfigMap => {
            for (key, value) in entries(object.data) {
                env_value(&mut findings, key, value.as_bytes());
            }
            for (key, value) in entries(object.binary_data) {
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value.as_bytes())
                    && reference::may_hold_reference(&bytes)
                {
                    findings.binary.push(key);
                }
            }
        }
    }
    for list in [&mut findings.env, &mut findings.binary, &mut findings.pull_credentials, &mut findings.malformed] {
        list.sort();
        list.dedup();
    }
    Reviewed { kind, object: format!("{}/{}", shown(namespace), shown(name)), skipped, findings }
}

fn secret_value(findings: &mut Findings, key: String, bytes: &[u8]) {
    if matches!(key.as_str(), ".dockerconfigjson" | ".dockercfg") {
        if pull_credentials_hold_reference(bytes) {
            findings.pull_credentials.push(key);
        }
        return;
    }
    env_value(findings, key, bytes);
}

fn env_value(findings: &mut Findings, key: String, bytes: &[u8]) {
    if reference::is_login(key.as_bytes(), bytes) {
        findings.env.push(key);
        return;
    }
    if !reference::may_hold_reference(bytes) {
        return;
    }
    match reference::parse(bytes) {
        Ok(Some(_)) => findings.env.push(key),
        Ok(None) => {}
        Err(_) => findings.malformed.push(key),
    }
}

/// Whether a docker config (`{"auths": {host: {...}}}` or the legacy `{host: {...}}`) holds a
/// reference in any string, or in a base64 `auth` once decoded (Bank-Vaults'
/// `auth: base64("vault:PATH#USER:vault:PATH#PASSWORD")`).
fn pull_credentials_hold_reference(bytes: &[u8]) -> bool {
    if reference::may_hold_reference(bytes) {
        return true;
    }
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    fn walk(value: &serde_json::Value, key: Option<&str>, depth: usize) -> bool {
        match value {
            serde_json::Value::String(s) => {
                reference::may_hold_reference(s.as_bytes())
                    || (key == Some("auth")
                        && base64::engine::general_purpose::STANDARD
                            .decode(s.as_bytes())
                            .is_ok_and(|d| reference::may_hold_reference(&d)))
            }
            // Docker configs are three levels deep; a deeper document is not one.
            serde_json::Value::Object(map) if depth < 4 => map.iter().any(|(k, v)| walk(v, Some(k), depth + 1)),
            _ => false,
        }
    }
    walk(&config, None, 0)
}

/// A ConfigMap or Secret a container takes into its environment: every key (`envFrom`) or
/// one (`valueFrom`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvSource {
    /// Secret or ConfigMap.
    pub kind: Kind,
    /// Its name, in the Pod's namespace.
    pub name: String,
    /// `None`: every key (`envFrom`); `Some`: this key (`valueFrom`).
    pub key: Option<String>,
}

/// The ConfigMaps and Secrets each container takes into its environment, by container name
/// (init containers and containers). Only named objects:
/// the API allows an empty name, which names nothing.
pub fn env_sources(pod: &Pod) -> BTreeMap<String, Vec<EnvSource>> {
    let mut out = BTreeMap::new();
    let Some(spec) = &pod.spec else { return out };
    let containers = spec.init_containers.iter().flatten().chain(spec.containers.iter().flatten());
    for container in containers {
        let mut sources = Vec::new();
        for from in container.env_from.iter().flatten() {
            for (kind, r) in [(Kind::ConfigMap, &from.config_map_ref), (Kind::Secret, &from.secret_ref)] {
                if let Some(r) = r.as_ref().filter(|r| !r.name.is_empty()) {
                    sources.push(EnvSource { kind, name: r.name.clone(), key: None });
                }
            }
        }
        for var in container.env.iter().flatten() {
            let Some(from) = &var.value_from else { continue };
            for (kind, r) in [(Kind::ConfigMap, &from.config_map_key_ref), (Kind::Secret, &from.secret_key_ref)] {
                if let Some(r) = r.as_ref().filter(|r| !r.name.is_empty()) {
                    sources.push(EnvSource { kind, name: r.name.clone(), key: Some(r.key.clone()) });
                }
            }
        }
        if !sources.is_empty() {
            out.insert(container.name.clone(), sources);
        }
    }
    out
}

/// The keys of a ConfigMap's `data` or a Secret's `data` (base64) whose values may hold a
/// reference, from the object as the API server returns it (JSON). What the kubelet puts into
/// an environment: `binaryData` is not. Secret values are decoded into zeroized buffers and
/// dropped here; only key names leave.
pub fn keys_with_references(kind: Kind, body: &[u8]) -> Result<BTreeSet<String>, ObjectError> {
    #[derive(Deserialize)]
    struct Data {
        #[serde(default)]
        data: Option<BTreeMap<String, Zeroizing<String>>>,
    }
    let object: Data =
        serde_json::from_slice(body).map_err(|source| ObjectError::BadObject { kind: kind.as_str(), source })?;
    let mut keys = BTreeSet::new();
    for (key, value) in object.data.into_iter().flatten() {
        let holds = match kind {
            Kind::ConfigMap => reference::may_hold_reference(value.as_bytes()),
            Kind::Secret => {
                base64::engine::general_purpose::STANDARD.decode(value.as_bytes()).map(Zeroizing::new).is_ok_and(
                    |bytes| reference::may_hold_reference(&bytes) || reference::is_login(key.as_bytes(), &bytes),
                )
            }
        };
        if holds {
            keys.insert(key);
        }
    }
    Ok(keys)
}

/// The containers whose environment takes a value that may hold a reference, given for each
/// object read the keys [`keys_with_references`] found (an object that could not be read is
/// absent: it contributes nothing).
pub fn containers_with_references(
    sources: &BTreeMap<String, Vec<EnvSource>>,
    found: &BTreeMap<(Kind, String), BTreeSet<String>>,
) -> BTreeSet<String> {
    sources
        .iter()
        .filter(|(_, list)| {
            list.iter().any(|s| {
                found.get(&(s.kind, s.name.clone())).is_some_and(|keys| match &s.key {
                    None => !keys.is_empty(),
                    Some(key) => keys.contains(key),
                })
            })
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn request(kind: &str, operation: &str, object: &Value) -> String {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": kind}, "namespace": "shop",
            "operation": operation, "object": object}})
        .to_string()
    }

    fn reviewed(kind: &str, object: &Value) -> Reviewed {
        let body = request(kind, "CREATE", object);
        let request = crate::admission::decode(body.as_bytes()).unwrap();
        review(&request).unwrap().unwrap()
    }

    #[test]
    fn a_secret_with_references_is_named_with_its_keys_never_its_values() {
        let secret = json!({"metadata": {"name": "db"}, "data": {
            "password": b64("vault:secret/data/shop/db#password"),
            "url": b64("postgres://app:${vault:secret/data/shop/db#password}@db/app"),
            "plain": b64("hunter2"),
            "VAULT_TOKEN": b64("vault:login"),
            "typo": b64("vault:secret/data/shop/db"),
        }});
        let r = reviewed("Secret", &secret);
        assert_eq!(r.object, "shop/db");
        assert_eq!(r.findings.env, ["VAULT_TOKEN", "password", "url"]);
        assert_eq!(r.findings.malformed, ["typo"]);
        let w = r.warnings();
        assert_eq!(w.len(), 3, "{w:#?}");
        assert_eq!(
            w[0],
            "Secret shop/db: keys `VAULT_TOKEN`, `password`, `url` hold Vault references; Hush leaves them as written (it \
             never writes secrets into Secrets or ConfigMaps)"
        );
        assert!(w[1].contains("envFrom or valueFrom") && w[1].contains("hush.dev/inject: \"true\""), "{}", w[1]);
        assert_eq!(
            w[2],
            "Secret shop/db: key `typo` looks like a Vault reference but does not parse; Hush's shim exits 65 in a Pod \
             that takes it into its environment"
        );
        for text in &w {
            for value in ["secret/data", "hunter2", "postgres", "login"] {
                assert!(!text.contains(value), "a warning quotes a value: {text}");
            }
        }
    }

    #[test]
    fn string_data_bao_and_inline_templates_count_as_bank_vaults_counts_them() {
        let secret = json!({"metadata": {"name": "s"}, "stringData": {
            "a": "bao:secret/data/x#y", "b": ">>vault:pki/issue/web#certificate", "c": "x ${bao:kv/x#y} z", "d": "vault"}});
        assert_eq!(reviewed("Secret", &secret).findings.env, ["a", "b", "c"]);
    }

    #[test]
    fn a_configmap_names_data_and_binary_data_apart() {
        let cm = json!({"metadata": {"name": "cfg", "namespace": "other"}, "data": {"DB": "vault:secret/data/a#b", "x": "1"},
                        "binaryData": {"blob": b64("vault:secret/data/a#b"), "raw": b64("\u{0}\u{1}")}});
        let r = reviewed("ConfigMap", &cm);
        // The request's namespace wins over the object's.
        assert_eq!(r.object, "shop/cfg");
        assert_eq!(r.findings, Findings { env: vec!["DB".into()], binary: vec!["blob".into()], ..Findings::default() });
        let w = r.warnings();
        assert_eq!(w.len(), 3);
        assert!(w[0].starts_with("ConfigMap shop/cfg: key `DB` holds a Vault reference; Hush leaves it"), "{}", w[0]);
        assert_eq!(
            w[2],
            "ConfigMap shop/cfg: binaryData key `blob` holds a Vault reference; the kubelet passes binaryData only as \
             files, which Hush never resolves"
        );
    }

    #[test]
    fn registry_credentials_with_references_get_their_own_warning() {
        // Bank-Vaults' form: `auth` is base64("vault:PATH#USER:vault:PATH#PASSWORD").
        let auth = b64("vault:secret/data/reg#user:vault:secret/data/reg#password");
        let config = json!({"auths": {"registry.example.com": {"auth": auth}}}).to_string();
        let secret = json!({"metadata": {"name": "pull"}, "type": "kubernetes.io/dockerconfigjson",
                            "data": {".dockerconfigjson": b64(&config)}});
        let r = reviewed("Secret", &secret);
        assert_eq!(r.findings, Findings { pull_credentials: vec![".dockerconfigjson".into()], ..Findings::default() });
        let w = r.warnings();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("registry credentials in key `.dockerconfigjson`"), "{}", w[0]);
        assert!(!w[0].contains("registry.example.com") && !w[0].contains("secret/data"), "{}", w[0]);

        let plain = json!({"auths": {"r": {"auth": b64("user:hunter2")}}}).to_string();
        let secret = json!({"metadata": {"name": "pull"}, "data": {".dockerconfigjson": b64(&plain)}});
        assert!(reviewed("Secret", &secret).warnings().is_empty());
    }

    #[test]
    fn nothing_to_say_about_clean_objects_skipped_ones_and_deletes() {
        let clean = json!({"metadata": {"name": "c"}, "data": {"a": b64("plain"), "b": "not base64!"}});
        assert!(reviewed("Secret", &clean).warnings().is_empty());
        assert!(reviewed("ConfigMap", &json!({"metadata": {"name": "c"}})).warnings().is_empty());
        for prefix in [LEGACY_PREFIX, CURRENT_PREFIX] {
            let skipped = json!({"metadata": {"name": "s", "annotations": {format!("{prefix}mutate"): "skip"}},
                                 "stringData": {"a": "vault:secret/data/a#b"}});
            let r = reviewed("Secret", &skipped);
            assert!(r.skipped && !r.findings.is_empty() && r.warnings().is_empty());
        }
        let body = request("Secret", "DELETE", &Value::Null);
        assert_eq!(review(&crate::admission::decode(body.as_bytes()).unwrap()).unwrap(), None);
    }

    #[test]
    fn other_kinds_and_bad_objects_are_errors_not_panics() {
        let body = request("Pod", "CREATE", &json!({}));
        let err = review(&crate::admission::decode(body.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(err.to_string(), "this path answers for core/v1 Secrets and ConfigMaps, not /v1/Pod");
        let body = request("Secret", "CREATE", &json!({"data": {"a": 1}}));
        let err = review(&crate::admission::decode(body.as_bytes()).unwrap()).unwrap_err();
        assert!(err.to_string().starts_with("the object is not a valid Secret: "), "{err}");
    }

    #[test]
    fn many_keys_are_counted_and_odd_names_escaped() {
        let data: serde_json::Map<String, Value> =
            (0..8).map(|i| (format!("k{i}"), json!("vault:secret/data/a#b"))).collect();
        let name = format!("a`b\n{}", "x".repeat(100));
        let r = reviewed("ConfigMap", &json!({"metadata": {"name": name}, "data": data}));
        let w = r.warnings();
        assert!(w[0].contains("keys `k0`, `k1`, `k2`, `k3`, `k4` and 3 more hold"), "{}", w[0]);
        assert!(w[0].starts_with("ConfigMap shop/a\\u{60}b\\n"), "{}", w[0]);
        assert!(w[0].contains("x…:"), "{}", w[0]);
        assert!(w.iter().all(|w| !w.contains('\n')));
    }

    #[test]
    fn a_pods_env_sources_are_read_off_env_from_and_value_from() {
        let pod: Pod = serde_json::from_value(json!({"spec": {
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "s1"}}]}],
            "containers": [
                {"name": "app", "envFrom": [{"configMapRef": {"name": "c1", "optional": true}, "prefix": "P_"},
                                            {"secretRef": {"name": ""}}],
                 "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "pw"}}},
                         {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "C", "value": "x"}]},
                {"name": "plain", "env": [{"name": "C", "value": "x"}]}]}}))
        .unwrap();
        let sources = env_sources(&pod);
        let source =
            |kind, name: &str, key: Option<&str>| EnvSource { kind, name: name.into(), key: key.map(Into::into) };
        assert_eq!(
            sources,
            BTreeMap::from([
                ("app".to_owned(), vec![source(Kind::ConfigMap, "c1", None), source(Kind::Secret, "s2", Some("pw"))]),
                ("init".to_owned(), vec![source(Kind::Secret, "s1", None)]),
            ])
        );

        let found = BTreeMap::from([
            ((Kind::Secret, "s2".to_owned()), BTreeSet::from(["other".to_owned()])),
            ((Kind::ConfigMap, "c1".to_owned()), BTreeSet::new()),
        ]);
        // valueFrom takes one key: another key with a reference does not count; an object
        // without any, or one that could not be read (s1), contributes nothing.
        assert!(containers_with_references(&sources, &found).is_empty());
        let found = BTreeMap::from([
            ((Kind::Secret, "s2".to_owned()), BTreeSet::from(["pw".to_owned()])),
            ((Kind::Secret, "s1".to_owned()), BTreeSet::from(["any".to_owned()])),
        ]);
        assert_eq!(containers_with_references(&sources, &found), BTreeSet::from(["app".to_owned(), "init".to_owned()]));
    }

    #[test]
    fn keys_with_references_read_data_only_and_secrets_decoded() {
        let secret = json!({"kind": "Secret", "data": {"pw": b64(REFERENCE), "plain": b64("hunter2"),
            "VAULT_TOKEN": b64("vault:login"), "bad": "%%%"}});
        assert_eq!(
            keys_with_references(Kind::Secret, secret.to_string().as_bytes()).unwrap(),
            BTreeSet::from(["VAULT_TOKEN".to_owned(), "pw".to_owned()])
        );
        let cm = json!({"kind": "ConfigMap", "data": {"url": "x ${vault:kv/a#b} y", "plain": "1"},
            "binaryData": {"blob": b64(REFERENCE)}});
        assert_eq!(
            keys_with_references(Kind::ConfigMap, cm.to_string().as_bytes()).unwrap(),
            BTreeSet::from(["url".to_owned()])
        );
        assert!(keys_with_references(Kind::ConfigMap, b"{}").unwrap().is_empty());
        assert!(keys_with_references(Kind::Secret, b"[").is_err());
    }

    const REFERENCE: &str = "vault:secret/data/shop/db#password";

    /// A Secret or ConfigMap with random keys and random values, some of them references
    /// around a random token that appears nowhere else.
    fn object() -> impl Strategy<Value = (bool, Vec<(String, String)>, String)> {
        let value = prop_oneof![
            "[a-z0-9 ]{0,12}",
            "[a-z]{12}".prop_map(|t| format!("vault:secret/data/{t}#password")),
            "[a-z]{12}".prop_map(|t| format!("url://${{vault:kv/{t}#x}}/")),
            "[a-z]{12}".prop_map(|t| format!("bao:{t}")),
            "[a-z]{12}".prop_map(|t| format!(">>vault:pki/{t}#c#{{}}")),
            any::<String>(),
        ];
        (any::<bool>(), proptest::collection::vec(("[A-Z_.-]{1,8}", value), 0..8), "[A-Z]{1,8}")
    }

    proptest! {
        #[test]
        fn warnings_never_echo_values((secret, entries, name) in object(), base64_data in any::<bool>()) {
            let (kind, field) = match (secret, base64_data) {
                (true, true) => ("Secret", "data"),
                (true, false) => ("Secret", "stringData"),
                (false, true) => ("ConfigMap", "binaryData"),
                (false, false) => ("ConfigMap", "data"),
            };
            let map: serde_json::Map<String, Value> = entries
                .iter()
                .map(|(k, v)| (k.clone(), json!(if base64_data { b64(v) } else { v.clone() })))
                .collect();
            let r = reviewed(kind, &json!({"metadata": {"name": name}, field: map}));
            let warnings = r.warnings();
            prop_assert_eq!(warnings.is_empty(), r.findings.is_empty());
            for (_, value) in &entries {
                // Values are lower case, keys and names upper case: a lower-case run of 12 in a
                // warning can only come from a value.
                if let Some(token) = value.split(|c: char| !c.is_ascii_lowercase()).find(|t| t.len() == 12) {
                    for w in &warnings {
                        prop_assert!(!w.contains(token), "warning {w:?} echoes value {value:?}");
                    }
                }
            }
        }

        #[test]
        fn any_body_is_reviewed_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(request) = crate::admission::decode(&body)
                && let Ok(Some(r)) = review(&request)
            {
                let _ = r.warnings();
            }
        }

        #[test]
        fn any_json_object_is_reviewed_without_panicking(
            data in proptest::collection::btree_map(any::<String>(), proptest::option::of(any::<String>()), 0..6),
            odd in prop_oneof![Just(json!(null)), Just(json!(7)), Just(json!([1])), Just(json!({"auths": {"r": {"auth": 5}}}))],
        ) {
            for kind in ["Secret", "ConfigMap"] {
                for field in ["data", "stringData", "binaryData"] {
                    let object = json!({"metadata": {"name": "n", "annotations": odd}, field: data, "extra": odd});
                    let body = request(kind, "CREATE", &object);
                    let request = crate::admission::decode(body.as_bytes()).unwrap();
                    if let Ok(Some(r)) = review(&request) {
                        let _ = r.warnings();
                    }
                }
            }
        }
    }
}
