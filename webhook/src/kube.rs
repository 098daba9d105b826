//! The webhook's API-server calls, through the `kube` crate (kube-rs), in-cluster: `GET` a
//! pull Secret of the Pod's namespace (`--read-image-pull-secrets`, needs `get` on
//! `secrets`), `GET` the ConfigMaps and Secrets a Pod takes into its environment
//! (`--read-referenced-objects`, needs `get` on `configmaps` and `secrets`), and the watch of the namespace defaults ConfigMap
//! (`--namespace-defaults-configmap`, needs `get`/`list`/`watch` on that one ConfigMap).
//!
//! In-cluster configuration as client-go's `rest.InClusterConfig`:
//! `KUBERNETES_SERVICE_HOST`/`_PORT`, the ServiceAccount's CA and token from
//! `--service-account-dir`. The token is kube's `token_file`: kube re-reads it when its copy is
//! older than 50 s, so a bound token the kubelet rotates in place (at 80% of a lifetime of at
//! least 10 minutes) is picked up while the old one is still valid.
//!
//! Secrets: the Secret is fetched with [`kube::Client::send`] and its body kept in a
//! [`Zeroizing`] buffer, not decoded into k8s-openapi's `Secret` (whose `Debug` prints `data`)
//! and not through `Client::request` (which logs a body it cannot decode). Errors name the
//! Secret and the HTTP status, never a body. kube's own copy of the token is a plain `String`
//! (freed, not zeroed), as the response buffers are.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::params::GetParams;
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt as _, watcher::Event};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

use crate::annotations::{AnnotationError, Annotations};
use crate::config::{NamespaceDefaultsError, parse_namespace_defaults};
use crate::pull_secrets::valid_name;

/// Where the kubelet mounts the ServiceAccount's token and the cluster CA.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The key of the namespace defaults ConfigMap that holds them (the same JSON as the file of
/// `--namespace-defaults`).
pub const NAMESPACE_DEFAULTS_KEY: &str = "namespace-defaults.json";

/// The in-cluster client could not be set up (reported at start, exit 78).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not running in a cluster.
    #[error("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in a Pod?")]
    NotInCluster,
    /// The CA file.
    #[error("reading the cluster CA {path}: {problem}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The client (kube's message: an unreadable token file is named, its content never).
    #[error("building the API client: {0}")]
    Client(String),
}

/// Why a Secret (or ConfigMap) could not be read: the kind, namespace and name first. Never
/// quotes a response body.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// The name is not a valid object name (it would have reached the URL).
    #[error("`{1}` is not a valid {0} name")]
    BadName(&'static str, String),
    /// No such object.
    #[error("{0} {1}/{2} does not exist")]
    NotFound(&'static str, String, String),
    /// RBAC.
    #[error("the webhook may not read {0} {1}/{2} (HTTP {3}): give its ServiceAccount `get` on `{4}`")]
    Forbidden(&'static str, String, String, u16, &'static str),
    /// Anything else.
    #[error("reading {0} {1}/{2}: {3}")]
    Other(&'static str, String, String, String),
}

/// The API client: [`kube::Client`] and the deadline of one Secret read.
#[derive(Clone)]
pub struct ApiClient {
    client: kube::Client,
    timeout: Duration,
}

impl ApiClient {
    /// From the Pod's environment and ServiceAccount files in `dir` (normally
    /// [`SERVICE_ACCOUNT_DIR`]). `timeout` bounds connecting and each Secret read (a watch
    /// stays open). Needs a Tokio runtime (kube's client spawns its buffer task).
    pub fn in_cluster(dir: &Path, timeout: Duration) -> Result<ApiClient, ConfigError> {
        let (Ok(host), Ok(port)) = (std::env::var("KUBERNETES_SERVICE_HOST"), std::env::var("KUBERNETES_SERVICE_PORT"))
        else {
            return Err(ConfigError::NotInCluster);
        };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let url: http::Uri =
            format!("https://{host}:{port}").parse().map_err(|e| ConfigError::Client(format!("{e}")))?;
        let ca_path = dir.join("ca.crt");
        let ca_error = |problem: String| ConfigError::Ca { path: ca_path.clone(), problem };
        let mut roots = Vec::new();
        for cert in CertificateDer::pem_file_iter(&ca_path).map_err(|e| ca_error(e.to_string()))? {
            roots.push(cert.map_err(|e| ca_error(e.to_string()))?.to_vec());
        }
        if roots.is_empty() {
            return Err(ca_error("no CERTIFICATE block".into()));
        }
        let mut config = kube::Config::new(url);
        config.root_cert = Some(roots);
        config.connect_timeout = Some(timeout);
        config.auth_info.token_file = Some(dir.join("token").to_string_lossy().into_owned());
        if let Ok(namespace) = std::fs::read_to_string(dir.join("namespace")) {
            config.default_namespace = namespace.trim().to_owned();
        }
        let client = kube::Client::try_from(config).map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(ApiClient { client, timeout })
    }

    /// The Secret as the API server returns it (JSON), or why not.
    pub async fn secret(&self, namespace: &str, name: &str) -> Result<Zeroizing<Vec<u8>>, GetError> {
        self.get_raw::<Secret>(("Secret", "secrets"), namespace, name).await
    }

    /// The ConfigMap as the API server returns it (JSON), or why not
    /// (`--read-referenced-objects`, which reads Secrets with [`ApiClient::secret`]).
    pub async fn config_map(&self, namespace: &str, name: &str) -> Result<Zeroizing<Vec<u8>>, GetError> {
        self.get_raw::<ConfigMap>(("ConfigMap", "configmaps"), namespace, name).await
    }

    /// One object of `K` as raw JSON in a zeroized buffer; `kind` names it in errors.
    async fn get_raw<K: kube::Resource<DynamicType = ()>>(
        &self,
        (kind, resource): (&'static str, &'static str),
        namespace: &str,
        name: &str,
    ) -> Result<Zeroizing<Vec<u8>>, GetError> {
        for part in [namespace, name] {
            if !valid_name(part) {
                return Err(GetError::BadName(kind, part.to_owned()));
            }
        }
        let other = |problem: String| GetError::Other(kind, namespace.to_owned(), name.to_owned(), problem);
        let url = K::url_path(&(), Some(namespace));
        let request = kube::core::Request::new(url)
            .get(name, &GetParams::default())
            .map_err(|e| other(e.to_string()))?
            .map(kube::client::Body::from);
        let read = async {
            let response = self.client.send(request).await.map_err(|e| other(e.to_string()))?;
            match response.status().as_u16() {
                200 => {
                    let body = response.into_body().collect().await.map_err(|e| other(e.to_string()))?;
                    Ok(Zeroizing::new(body.to_bytes().to_vec()))
                }
                404 => Err(GetError::NotFound(kind, namespace.to_owned(), name.to_owned())),
                code @ (401 | 403) => {
                    Err(GetError::Forbidden(kind, namespace.to_owned(), name.to_owned(), code, resource))
                }
                code => Err(other(format!("HTTP {code}"))),
            }
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .unwrap_or_else(|_| Err(other(format!("no answer within {:?}", self.timeout))))
    }

    /// Reads the namespace defaults ConfigMap `namespace/name` once (at start).
    pub async fn namespace_defaults(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, Annotations>, DefaultsError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let what = || format!("{namespace}/{name}");
        let map = tokio::time::timeout(self.timeout.max(Duration::from_secs(10)), api.get(name))
            .await
            .map_err(|_| DefaultsError::Read(what(), "no answer from the API server".into()))?
            .map_err(|e| DefaultsError::Read(what(), api_problem(&e)))?;
        defaults_of(&map).map_err(|problem| DefaultsError::Bad(what(), problem))
    }

    /// Watches the ConfigMap `namespace/name` (a field selector on its name, so that RBAC may
    /// name it in `resourceNames`) and calls `update` with each new valid version. A version
    /// that does not parse, lacks the key, or a deleted ConfigMap is logged naming the
    /// ConfigMap and the problem, and the defaults in use stay. Runs until the process ends;
    /// failed watches are retried with kube's default backoff.
    pub fn watch_namespace_defaults(
        &self,
        namespace: &str,
        name: &str,
        update: impl Fn(BTreeMap<String, Annotations>) + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let configmap = format!("{namespace}/{name}");
        async move {
            let mut last: Option<String> = None;
            let mut seen_in_list = false;
            let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
            while let Some(event) = stream.next().await {
                let map = match event {
                    Ok(Event::Apply(map) | Event::InitApply(map)) => {
                        seen_in_list = true;
                        map
                    }
                    Ok(Event::Init) => {
                        seen_in_list = false;
                        continue;
                    }
                    Ok(Event::InitDone) if !seen_in_list => {
                        tracing::error!(
                            configmap,
                            "the namespace defaults ConfigMap does not exist; keeping the old namespace defaults"
                        );
                        continue;
                    }
                    Ok(Event::InitDone) => continue,
                    Ok(Event::Delete(_)) => {
                        tracing::error!(
                            configmap,
                            "the namespace defaults ConfigMap was deleted; keeping the old namespace defaults"
                        );
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(configmap, error = %e, "watching the namespace defaults ConfigMap");
                        continue;
                    }
                };
                let text = map.data.as_ref().and_then(|d| d.get(NAMESPACE_DEFAULTS_KEY)).cloned();
                if text.is_some() && text == last {
                    continue;
                }
                match defaults_of(&map) {
                    Ok(defaults) => {
                        let namespaces = defaults.len();
                        update(defaults);
                        tracing::info!(configmap, namespaces, "reloaded the namespace defaults");
                    }
                    Err(problem) => {
                        tracing::error!(configmap, error = problem, "keeping the old namespace defaults");
                    }
                }
                last = text;
            }
        }
    }
}

/// The namespace defaults ConfigMap could not be read or parsed (at start: exit 78).
#[derive(Debug, thiserror::Error)]
pub enum DefaultsError {
    /// The API server's answer.
    #[error("reading the namespace defaults ConfigMap {0}: {1}")]
    Read(String, String),
    /// Its content.
    #[error("the namespace defaults ConfigMap {0}: {1}")]
    Bad(String, String),
}

/// The defaults of a ConfigMap's [`NAMESPACE_DEFAULTS_KEY`], or what is wrong with them:
/// where, and which namespace and annotation, never a value (the parser's own messages quote
/// the value; the same value in a Pod's annotation is denied with the full reason).
fn defaults_of(map: &ConfigMap) -> Result<BTreeMap<String, Annotations>, String> {
    let text = map
        .data
        .as_ref()
        .and_then(|d| d.get(NAMESPACE_DEFAULTS_KEY))
        .ok_or_else(|| format!("no key `{NAMESPACE_DEFAULTS_KEY}` in data"))?;
    parse_namespace_defaults(text.as_bytes()).map_err(|e| {
        let problem = match &e {
            NamespaceDefaultsError::Shape(json) => {
                let kind = match json.classify() {
                    serde_json::error::Category::Syntax => "JSON syntax error",
                    serde_json::error::Category::Eof => "unexpected end",
                    serde_json::error::Category::Data | serde_json::error::Category::Io => "value of the wrong type",
                };
                format!(
                    "expected {{\"namespace\": {{\"hush.dev/…\": \"…\"}}}}: {kind} at line {} column {}",
                    json.line(),
                    json.column()
                )
            }
            NamespaceDefaultsError::Annotation { namespace, source } => match source {
                AnnotationError::Invalid { key, .. } => {
                    format!("namespace {namespace}: annotation `{key}` has an invalid value")
                }
                other => format!("namespace {namespace}: {other}"),
            },
        };
        format!("`{NAMESPACE_DEFAULTS_KEY}`: {problem}")
    })
}

/// An API error as the status and the API server's reason (its message names the object and
/// the verb, e.g. `configmaps "x" is forbidden: … cannot get …`).
fn api_problem(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("HTTP {}: {}", status.code, status.message),
        other => other.to_string(),
    }
}

/// `NAMESPACE/NAME` of `--namespace-defaults-configmap`, both valid object names.
pub fn parse_configmap_ref(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name)) if valid_name(namespace) && valid_name(name) => {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("`{text}`: expected NAMESPACE/NAME of a ConfigMap")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_refs_are_namespace_slash_name() {
        assert_eq!(
            parse_configmap_ref("hush-system/hush-webhook").unwrap(),
            ("hush-system".into(), "hush-webhook".into())
        );
        for bad in ["hush-webhook", "/x", "x/", "a/b/c", "A/b", "a/../b"] {
            assert!(parse_configmap_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_configmap_without_the_key_or_with_bad_json_is_refused_naming_the_key() {
        let mut map = ConfigMap::default();
        assert!(defaults_of(&map).unwrap_err().contains(NAMESPACE_DEFAULTS_KEY));
        map.data = Some([(NAMESPACE_DEFAULTS_KEY.to_owned(), "{".to_owned())].into());
        assert!(defaults_of(&map).unwrap_err().contains(NAMESPACE_DEFAULTS_KEY));
        map.data = Some([(NAMESPACE_DEFAULTS_KEY.to_owned(), r#"{"shop": {"hush.dev/role": "a"}}"#.to_owned())].into());
        assert_eq!(defaults_of(&map).unwrap().len(), 1);
    }

    #[test]
    fn problems_with_the_configmap_never_quote_a_value() {
        let mut map = ConfigMap::default();
        for (text, expected) in [
            (r#"{"shop": "value-1-do-not-log"}"#, "value of the wrong type at line 1"),
            (
                r#"{"shop": {"hush.dev/client-timeout": "value-2-do-not-log"}}"#,
                "namespace shop: annotation `hush.dev/client-timeout` has an invalid value",
            ),
            (
                r#"{"shop": {"hush.dev/rol": "value-3-do-not-log"}}"#,
                "namespace shop: unknown annotation `hush.dev/rol`",
            ),
            (r#"{"shop": {"hush.dev/role": "value-4-do-not-log""#, "unexpected end"),
        ] {
            map.data = Some([(NAMESPACE_DEFAULTS_KEY.to_owned(), text.to_owned())].into());
            let problem = defaults_of(&map).unwrap_err();
            assert!(problem.contains(expected), "{problem}");
            assert!(!problem.contains("do-not-log"), "{problem}");
        }
    }
}
