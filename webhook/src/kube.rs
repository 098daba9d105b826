//! The one API-server call the webhook may make: `GET` a pull Secret of the Pod's namespace
//! (only with `--read-image-pull-secrets`; it needs `get` on `secrets`).
//!
//! A plain HTTPS GET with reqwest, which oci-client already links, rather than `kube`: one
//! read of one object type does not justify kube's client stack (tower, a second HTTP
//! client configuration, its own TLS feature matrix) in the admission path. In-cluster
//! configuration as client-go's `rest.InClusterConfig`: `KUBERNETES_SERVICE_HOST`/`_PORT`,
//! the ServiceAccount's CA, and its token, read again on every call because the kubelet
//! rotates bound tokens in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

use crate::pull_secrets::valid_name;

/// Where the kubelet mounts the ServiceAccount's token and the cluster CA.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

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
    /// The HTTP client.
    #[error("building the API client: {0}")]
    Client(String),
}

/// Why a Secret could not be read. Never quotes a response body.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// The name is not a valid Secret name (it would have reached the URL).
    #[error("`{0}` is not a valid Secret name")]
    BadName(String),
    /// The token file.
    #[error("reading the ServiceAccount token {0}: {1}")]
    Token(PathBuf, String),
    /// No such Secret.
    #[error("Secret {0}/{1} does not exist")]
    NotFound(String, String),
    /// RBAC.
    #[error("the webhook may not read Secret {0}/{1} (HTTP {2}): give its ServiceAccount `get` on `secrets`")]
    Forbidden(String, String, u16),
    /// Anything else.
    #[error("reading Secret {0}/{1}: {2}")]
    Other(String, String, String),
}

/// A client for `GET /api/v1/namespaces/{ns}/secrets/{name}`.
pub struct ApiClient {
    base: String,
    token_file: PathBuf,
    http: reqwest::Client,
}

impl ApiClient {
    /// From the Pod's environment and ServiceAccount files in `dir` (normally [`SERVICE_ACCOUNT_DIR`]).
    pub fn in_cluster(dir: &Path, timeout: Duration) -> Result<ApiClient, ConfigError> {
        let (Ok(host), Ok(port)) = (std::env::var("KUBERNETES_SERVICE_HOST"), std::env::var("KUBERNETES_SERVICE_PORT"))
        else {
            return Err(ConfigError::NotInCluster);
        };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let ca_path = dir.join("ca.crt");
        let ca_error = |problem: String| ConfigError::Ca { path: ca_path.clone(), problem };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&ca_path).map_err(|e| ca_error(e.to_string()))? {
            roots.add(cert.map_err(|e| ca_error(e.to_string()))?).map_err(|e| ca_error(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ca_error("no CERTIFICATE block".into()));
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(ApiClient { base: format!("https://{host}:{port}"), token_file: dir.join("token"), http })
    }

    /// The Secret as the API server returns it (JSON), or why not.
    pub async fn secret(&self, namespace: &str, name: &str) -> Result<Zeroizing<Vec<u8>>, GetError> {
        for part in [namespace, name] {
            if !valid_name(part) {
                return Err(GetError::BadName(part.to_owned()));
            }
        }
        let token = std::fs::read_to_string(&self.token_file)
            .map(Zeroizing::new)
            .map_err(|e| GetError::Token(self.token_file.clone(), e.to_string()))?;
        let url = format!("{}/api/v1/namespaces/{namespace}/secrets/{name}", self.base);
        let other = |problem: String| GetError::Other(namespace.to_owned(), name.to_owned(), problem);
        let response = self
            .http
            .get(url)
            .bearer_auth(token.trim())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            // Without the URL: it holds nothing secret, but the message names the Secret already.
            .map_err(|e| other(e.without_url().to_string()))?;
        match response.status().as_u16() {
            200 => {
                let body = response.bytes().await.map_err(|e| other(e.without_url().to_string()))?;
                Ok(Zeroizing::new(body.to_vec()))
            }
            404 => Err(GetError::NotFound(namespace.to_owned(), name.to_owned())),
            code @ (401 | 403) => Err(GetError::Forbidden(namespace.to_owned(), name.to_owned(), code)),
            code => Err(other(format!("HTTP {code}"))),
        }
    }
}
