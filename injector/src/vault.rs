//! Talking to Vault: log in, read every distinct request once (concurrently, bounded), and
//! revoke the token.
//!
//! Logins and token revocation go through `vaultrs`. Secret reads use the same HTTP client
//! directly, because their bodies must land in a zeroizing buffer and be parsed from there
//! (see [`crate::secret`]), and because a missing secret (404), a denial (403) and a
//! transient failure (429, 5xx, connection refused) must be told apart.

use crate::config::{Auth, JwtMethod, SecretIdSource, Tls};
use crate::render::Answer;
use crate::retry::{Transient, retry};
use crate::secret::{self, Lease, MalformedResponse};
use hush_contract::reference::{Operation, Request};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;
use vaultrs::api::EndpointMiddleware;
use vaultrs::client::{VaultClient, VaultClientSettings};
use zeroize::{Zeroize, Zeroizing};

/// Largest response body accepted.
const MAX_BODY: usize = 32 << 20;

/// A failure talking to Vault. Messages name the operation and path, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No HTTP answer (connection refused, DNS, TLS, timeout).
    #[error("{what}: cannot reach Vault: {reason}")]
    Unreachable {
        /// The operation.
        what: String,
        /// Why, from the HTTP stack.
        reason: String,
    },
    /// An HTTP error status other than the ones below.
    #[error("{what}: Vault answered HTTP {status}{}", list(errors))]
    Status {
        /// The operation.
        what: String,
        /// The status code.
        status: u16,
        /// Vault's error messages.
        errors: Vec<String>,
    },
    /// 403: the token may not do this.
    #[error("{what}: permission denied{}", list(errors))]
    Denied {
        /// The operation.
        what: String,
        /// Vault's error messages.
        errors: Vec<String>,
    },
    /// Login refused (400 or 403 on the login endpoint).
    #[error("{what}: login refused{}", list(errors))]
    LoginRefused {
        /// The operation.
        what: String,
        /// Vault's error messages.
        errors: Vec<String>,
    },
    /// A body that is not what Vault sends.
    #[error("{what}: {source}")]
    Malformed {
        /// The operation.
        what: String,
        /// What is wrong.
        #[source]
        source: MalformedResponse,
    },
    /// A credential file (JWT, secret ID) could not be read.
    #[error("reading {}: {source}", path.display())]
    CredentialFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA bundle could not be used.
    #[error("VAULT_CACERT {}: {reason}", path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
}

impl Transient for VaultError {
    fn is_transient(&self) -> bool {
        match self {
            VaultError::Unreachable { .. } => true,
            VaultError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

fn list(errors: &[String]) -> String {
    if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) }
}

/// Vault's `errors` array from an error body, shortened. Never from a success body.
fn error_messages(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| {
            e.errors
                .into_iter()
                .take(3)
                .map(|m| {
                    let m = m.replace('\n', " ");
                    if m.chars().count() > 200 { m.chars().take(200).chain(['…']).collect() } else { m }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The error chain of an HTTP failure in one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// A connection to one Vault, with the token once there is one. Clones share the
/// connection pool.
#[derive(Clone)]
pub struct Vault {
    http: reqwest::Client,
    addr: Url,
    namespace: Option<String>,
    deadline: Instant,
    token: Option<SecretString>,
    token_ttl: (Duration, bool),
}

impl Vault {
    /// Prepares the HTTP client; nothing is sent yet. `timeout` bounds all traffic from now.
    pub fn new(addr: &Url, tls: &Tls, namespace: Option<String>, timeout: Duration) -> Result<Self, VaultError> {
        // Installing twice is harmless: the second attempt reports the first provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout);
        if let Some(path) = &tls.ca_cert {
            let pem =
                std::fs::read(path).map_err(|e| VaultError::CaCert { path: path.clone(), reason: e.to_string() })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| VaultError::CaCert { path: path.clone(), reason: chain(&e) })?;
            if certs.is_empty() {
                return Err(VaultError::CaCert { path: path.clone(), reason: "holds no PEM certificate".into() });
            }
            builder = builder.tls_certs_only(certs);
        } else if addr.scheme() == "http" {
            // No certificate to verify: do not require a system CA store either.
            builder = builder.tls_certs_only(Vec::new());
        }
        if tls.skip_verify {
            tracing::warn!("VAULT_SKIP_VERIFY is set: Vault's certificate is not verified");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| {
            let hint = if tls.ca_cert.is_none() {
                "; set VAULT_CACERT to the CA bundle that signs Vault's certificate"
            } else {
                ""
            };
            VaultError::Client(format!("{}{hint}", chain(&e)))
        })?;
        Ok(Vault {
            http,
            addr: addr.clone(),
            namespace,
            deadline: Instant::now() + timeout,
            token: None,
            token_ttl: (Duration::ZERO, false),
        })
    }

    /// Uses `token` as is.
    pub fn use_token(&mut self, token: SecretString) {
        self.token = Some(token);
    }

    /// Logs in with a JWT or AppRole method and keeps the token.
    pub async fn login(&mut self, auth: &Auth) -> Result<(), VaultError> {
        let token = match auth {
            Auth::Token(token) => token.clone(),
            Auth::Jwt { method, mount, role, jwt_path } => {
                let jwt = read_credential(jwt_path)?;
                let what = format!("{} login at auth/{mount} as role {role}", auth.method_name());
                let client = self.vaultrs_client(None);
                let info = retry(self.deadline, || async {
                    match method {
                        JwtMethod::Kubernetes => vaultrs::auth::kubernetes::login(&client, mount, role, &jwt).await,
                        JwtMethod::Jwt => vaultrs::auth::oidc::login(&client, mount, &jwt, Some(role.clone())).await,
                    }
                    .map_err(|e| login_error(&what, e))
                })
                .await?;
                self.token_ttl = (Duration::from_secs(info.lease_duration), info.renewable);
                SecretString::from(info.client_token)
            }
            Auth::AppRole { mount, role_id, secret_id } => {
                let secret_id = match secret_id {
                    SecretIdSource::Value(value) => Zeroizing::new(value.expose_secret().to_owned()),
                    SecretIdSource::File(path) => read_credential(path)?,
                };
                let what = format!("approle login at auth/{mount}");
                let client = self.vaultrs_client(None);
                let info = retry(self.deadline, || async {
                    vaultrs::auth::approle::login(&client, mount, role_id, &secret_id)
                        .await
                        .map_err(|e| login_error(&what, e))
                })
                .await?;
                self.token_ttl = (Duration::from_secs(info.lease_duration), info.renewable);
                SecretString::from(info.client_token)
            }
        };
        self.token = Some(token);
        Ok(())
    }

    /// Revokes the token (`auth/token/revoke-self`) and forgets it.
    pub async fn revoke_self(&mut self) -> Result<(), VaultError> {
        let Some(token) = self.token.take() else { return Ok(()) };
        let what = "revoking the token";
        let mut client = self.vaultrs_client(Some(&token));
        let result = retry(self.deadline, || async {
            vaultrs::token::revoke_self(&client).await.map_err(|e| api_error(what, e))
        })
        .await;
        client.settings.token.zeroize();
        client.middle.token.zeroize();
        result
    }

    /// Forgets the token without revoking it.
    pub fn forget_token(&mut self) {
        self.token = None;
    }

    /// A `vaultrs` client sharing this connection pool. Its copies of the token are plain
    /// `String`s: callers wipe them when done.
    fn vaultrs_client(&self, token: Option<&SecretString>) -> VaultClient {
        let token = token.map(|t| t.expose_secret().to_owned()).unwrap_or_default();
        VaultClient {
            http: rustify::clients::reqwest::Client::new(self.addr.as_str(), self.http.clone()),
            middle: EndpointMiddleware {
                token: token.clone(),
                version: "v1".into(),
                wrap: None,
                namespace: self.namespace.clone(),
            },
            settings: VaultClientSettings {
                address: self.addr.clone(),
                ca_certs: Vec::new(),
                identity: None,
                timeout: None,
                token,
                verify: true,
                version: 1,
                wrapping: false,
                namespace: self.namespace.clone(),
                proxy: None,
            },
        }
    }

    /// Sends one request (with retries) and parses the answer.
    pub async fn fetch(&self, request: &Request) -> Result<Fetched, VaultError> {
        let what = match &request.operation {
            Operation::Read { version: None } => format!("reading {}", request.path),
            Operation::Read { version: Some(v) } => format!("reading {} version {v}", request.path),
            Operation::Write { .. } => format!("writing {}", request.path),
        };
        retry(self.deadline, || self.fetch_once(request, &what)).await
    }

    async fn fetch_once(&self, request: &Request, what: &str) -> Result<Fetched, VaultError> {
        let (method, query, body) = match &request.operation {
            Operation::Read { version } => (reqwest::Method::GET, version.map(|v| ("version", v.to_string())), None),
            Operation::Write { body } => (reqwest::Method::POST, None, Some(body.clone())),
        };
        let (status, body) = self.send(method, &request.path, query, body, what).await?;
        match status {
            200 => {
                let parsed = secret::parse_response(&body, request.is_kv2())
                    .map_err(|source| VaultError::Malformed { what: what.to_owned(), source })?;
                for warning in &parsed.warnings {
                    tracing::warn!("{what}: Vault warns: {warning}");
                }
                Ok(Fetched {
                    answer: parsed.fields.map_or(Answer::Missing, Answer::Found),
                    lease: parsed.lease,
                    kv_version: parsed.kv_version,
                })
            }
            204 | 404 => Ok(Fetched { answer: Answer::Missing, lease: Lease::default(), kv_version: None }),
            _ => Err(status_error(status, &body, what)),
        }
    }

    /// One HTTP request to `/v1/{path}` with the token; the status and the body, in a
    /// zeroizing buffer. Only transport failures are errors here.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: Option<(&str, String)>,
        body: Option<String>,
        what: &str,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), VaultError> {
        let mut url = self.addr.clone();
        url.path_segments_mut()
            .map_err(|()| VaultError::Client("VAULT_ADDR cannot be a base URL".into()))?
            .pop_if_empty()
            .push("v1")
            .extend(path.split('/'));
        if let Some((name, value)) = query {
            url.query_pairs_mut().append_pair(name, &value);
        }
        let mut builder = self
            .http
            .request(method, url)
            .header("X-Vault-Request", "true")
            .timeout(self.deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
        if let Some(body) = body {
            builder = builder.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        if let Some(token) = &self.token {
            let mut value = reqwest::header::HeaderValue::from_str(token.expose_secret())
                .map_err(|_| VaultError::Client("the token is not a valid HTTP header value".into()))?;
            value.set_sensitive(true);
            builder = builder.header("X-Vault-Token", value);
        }
        if let Some(namespace) = &self.namespace {
            builder = builder.header("X-Vault-Namespace", namespace);
        }
        let response = builder.send().await.map_err(|e| unreachable(what, &e))?;
        let status = response.status().as_u16();
        let body = read_body(response).await.map_err(|e| unreachable(what, &e))?;
        Ok((status, body))
    }

    /// Starts a new deadline for the next batch of requests (daemon mode).
    pub fn refresh_deadline(&mut self, timeout: Duration) {
        self.deadline = Instant::now() + timeout;
    }

    /// The token's TTL after login (zero: no expiry, or unknown).
    pub fn token_lifetime(&self) -> (Duration, bool) {
        self.token_ttl
    }

    /// `auth/token/renew-self`: the new TTL and whether it is still renewable.
    pub async fn renew_token(&self, increment: Duration) -> Result<(Duration, bool), VaultError> {
        let what = "renewing the token";
        let body = serde_json::json!({ "increment": format!("{}s", increment.as_secs()) }).to_string();
        retry(self.deadline, || async {
            let (status, body) =
                self.send(reqwest::Method::POST, "auth/token/renew-self", None, Some(body.clone()), what).await?;
            if status != 200 {
                return Err(status_error(status, &body, what));
            }
            #[derive(serde::Deserialize)]
            struct Auth {
                lease_duration: u64,
                renewable: bool,
            }
            #[derive(serde::Deserialize)]
            struct Renewal {
                auth: Auth,
            }
            // Only the two numbers are parsed; the token in the body stays in the wiped buffer.
            let renewal: Renewal = serde_json::from_slice(&body).map_err(|e| VaultError::Malformed {
                what: what.to_owned(),
                source: MalformedResponse::new(e.to_string()),
            })?;
            Ok((Duration::from_secs(renewal.auth.lease_duration), renewal.auth.renewable))
        })
        .await
    }

    /// `sys/leases/renew`: the new TTL and whether it is still renewable.
    pub async fn renew_lease(&self, lease_id: &str, increment: Duration) -> Result<(Duration, bool), VaultError> {
        let what = format!("renewing lease {lease_id}");
        let body = serde_json::json!({ "lease_id": lease_id, "increment": increment.as_secs() }).to_string();
        retry(self.deadline, || async {
            let (status, body) =
                self.send(reqwest::Method::PUT, "sys/leases/renew", None, Some(body.clone()), &what).await?;
            if status != 200 {
                return Err(status_error(status, &body, &what));
            }
            #[derive(serde::Deserialize)]
            struct Renewal {
                lease_duration: u64,
                renewable: bool,
            }
            let renewal: Renewal = serde_json::from_slice(&body).map_err(|e| VaultError::Malformed {
                what: what.clone(),
                source: MalformedResponse::new(e.to_string()),
            })?;
            Ok((Duration::from_secs(renewal.lease_duration), renewal.renewable))
        })
        .await
    }

    /// `sys/leases/revoke`.
    pub async fn revoke_lease(&self, lease_id: &str) -> Result<(), VaultError> {
        let what = format!("revoking lease {lease_id}");
        let body = serde_json::json!({ "lease_id": lease_id }).to_string();
        retry(self.deadline, || async {
            let (status, body) =
                self.send(reqwest::Method::PUT, "sys/leases/revoke", None, Some(body.clone()), &what).await?;
            if status == 200 || status == 204 { Ok(()) } else { Err(status_error(status, &body, &what)) }
        })
        .await
    }
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

fn status_error(status: u16, body: &[u8], what: &str) -> VaultError {
    if status == 403 {
        VaultError::Denied { what: what.to_owned(), errors: error_messages(body) }
    } else {
        VaultError::Status { what: what.to_owned(), status, errors: error_messages(body) }
    }
}

/// Reads every request once, at most `concurrency` at a time; the first failure ends all.
pub async fn fetch_all(
    vault: Arc<Vault>,
    requests: &BTreeSet<Request>,
    concurrency: usize,
) -> Result<HashMap<Request, Fetched>, VaultError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for request in requests {
        let (vault, permits, request) = (Arc::clone(&vault), Arc::clone(&permits), request.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            let answer = vault.fetch(&request).await;
            (request, answer)
        });
    }
    let mut answers = HashMap::with_capacity(requests.len());
    while let Some(joined) = tasks.join_next().await {
        let (request, answer) = joined.expect("fetch tasks do not panic");
        answers.insert(request, answer?);
    }
    Ok(answers)
}

async fn read_body(mut response: reqwest::Response) -> Result<Zeroizing<Vec<u8>>, reqwest::Error> {
    let expected = usize::try_from(response.content_length().unwrap_or(0)).unwrap_or(MAX_BODY).min(MAX_BODY);
    let mut body = Zeroizing::new(Vec::with_capacity(expected.max(4096)));
    while let Some(chunk) = response.chunk().await? {
        let needed = body.len() + chunk.len();
        if needed > MAX_BODY {
            break;
        }
        if needed > body.capacity() {
            // Grow by hand: Vec's own growth would free the old buffer without wiping it.
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(body.capacity() * 2)));
            bigger.extend_from_slice(&body);
            body = bigger;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn read_credential(path: &Path) -> Result<Zeroizing<String>, VaultError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| VaultError::CredentialFile { path: path.to_owned(), source })?;
    let text = Zeroizing::new(text);
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn unreachable(what: &str, err: &reqwest::Error) -> VaultError {
    VaultError::Unreachable { what: what.to_owned(), reason: chain(err) }
}

fn api_error(what: &str, err: vaultrs::error::ClientError) -> VaultError {
    use vaultrs::error::ClientError as E;
    match err {
        E::APIError { code: 403, errors } => VaultError::Denied { what: what.to_owned(), errors: shorten(errors) },
        E::APIError { code, errors } => {
            VaultError::Status { what: what.to_owned(), status: code, errors: shorten(errors) }
        }
        E::RestClientError { source: rustify::errors::ClientError::ServerResponseError { code, .. } } => {
            VaultError::Status { what: what.to_owned(), status: code, errors: Vec::new() }
        }
        E::RestClientError { source: rustify::errors::ClientError::RequestError { source, .. } } => {
            VaultError::Unreachable { what: what.to_owned(), reason: chain(source.as_ref()) }
        }
        // Other failures carry response bodies in their fields: only their kind is shown.
        other => VaultError::Status { what: format!("{what}: {other}"), status: 0, errors: Vec::new() },
    }
}

fn login_error(what: &str, err: vaultrs::error::ClientError) -> VaultError {
    match api_error(what, err) {
        VaultError::Status { what, status: 400, errors } | VaultError::Denied { what, errors } => {
            VaultError::LoginRefused { what, errors }
        }
        other => other,
    }
}

fn shorten(errors: Vec<String>) -> Vec<String> {
    let body = serde_json::json!({ "errors": errors }).to_string();
    error_messages(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_the_ones_worth_retrying() {
        let status = |s| VaultError::Status { what: "x".into(), status: s, errors: vec![] };
        assert!(status(503).is_transient() && status(500).is_transient() && status(429).is_transient());
        assert!(!status(400).is_transient() && !status(405).is_transient());
        assert!(VaultError::Unreachable { what: "x".into(), reason: "refused".into() }.is_transient());
        assert!(!VaultError::Denied { what: "x".into(), errors: vec![] }.is_transient());
    }

    #[test]
    fn error_messages_are_short_and_only_from_error_bodies() {
        let long = "e".repeat(500);
        let body = serde_json::json!({ "errors": ["a\nb", long, "c", "d"] }).to_string();
        let messages = error_messages(body.as_bytes());
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0], "a b");
        assert_eq!(messages[1].chars().count(), 201);
        assert!(error_messages(b"<html>").is_empty());
        let err = VaultError::Denied { what: "reading secret/data/x".into(), errors: vec!["permission denied".into()] };
        assert_eq!(err.to_string(), "reading secret/data/x: permission denied: permission denied");
    }
}
