//! Talking to Vault: log in, read every distinct request once (concurrently, bounded), and
//! revoke the token.
//!
//! Logins and token revocation go through `vaultrs`. Secret reads use the same HTTP client
//! directly, because their bodies must land in a zeroizing buffer and be parsed from there
//! (see [`crate::secret`]), and because a missing secret (404), a denial (403) and a
//! transient failure (429, 5xx, connection refused) must be told apart.

use crate::config::{Auth, JwtMethod, SecretIdSource, Tls};
use crate::retry::{Transient, retry};
pub use crate::secret::Fetched;
use crate::secret::{self, Layout, Lease, MalformedResponse};
use crate::secret::{Answer, Plaintext};
use hush_contract::reference::{Operation, Request};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    /// A TLS file (CA bundle, CA directory, client certificate or key) could not be used.
    #[error("{setting} {}: {reason}", path.display())]
    CaCert {
        /// The variable that names it.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
    /// A version pin on a path that is not a KV v2 `data/` path (known from its mount).
    #[error("{what}: a version pin needs a KV v2 secret, and mount `{mount}` is {kind}")]
    NotKv2 {
        /// The operation.
        what: String,
        /// The mount the path is under.
        mount: String,
        /// What the mount is, e.g. `kv version 1`.
        kind: String,
    },
}

impl VaultError {
    /// The exit code (see `hush_contract::exit`): 69 unreachable or failing, 76 an
    /// unexpected answer, 77 refused, 66 missing input, 78 configuration.
    pub fn exit_code(&self) -> u8 {
        use hush_contract::exit as code;
        match self {
            VaultError::Unreachable { .. } => code::UNAVAILABLE,
            VaultError::Status { status, .. } if *status == 429 || *status >= 500 => code::UNAVAILABLE,
            VaultError::Status { .. } | VaultError::Malformed { .. } => code::PROTOCOL,
            VaultError::Denied { .. } | VaultError::LoginRefused { .. } => code::NO_PERM,
            VaultError::CredentialFile { .. } | VaultError::NotKv2 { .. } => code::NO_INPUT,
            VaultError::CaCert { .. } | VaultError::Client(_) => code::CONFIG,
        }
    }
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
    /// `VAULT_MAX_RETRIES`, when set.
    max_retries: Option<u32>,
    /// Mounts looked up so far, shared by clones: each is asked about once.
    mounts: Arc<Mutex<Vec<Mount>>>,
}

/// A secrets-engine mount, as `sys/internal/ui/mounts/PATH` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount path with its trailing `/`, e.g. `secret/`.
    pub path: String,
    /// `kv`, `pki`, ...
    pub kind: String,
    /// `options.version` (`"2"` for KV v2).
    pub version: Option<String>,
}

impl Mount {
    /// How a read of `path` (under this mount) lays out its fields: KV v2 keeps them under
    /// `data.data` for `MOUNT/data/...` reads only (the Vault CLI's `kv get` reads there too).
    pub fn layout(&self, path: &str) -> Layout {
        let relative = path.strip_prefix(self.path.as_str()).unwrap_or(path);
        if self.is_kv2() && relative.starts_with("data/") { Layout::Kv2 } else { Layout::Flat }
    }

    fn is_kv2(&self) -> bool {
        matches!(self.kind.as_str(), "kv" | "generic") && self.version.as_deref() == Some("2")
    }

    fn describe(&self) -> String {
        match &self.version {
            Some(v) => format!("{} version {v}", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// The mount `path` is under, among `mounts`.
fn mount_of<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    let with_slash = format!("{path}/");
    mounts.iter().filter(|m| with_slash.starts_with(m.path.as_str())).max_by_key(|m| m.path.len())
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
        let mut roots = Vec::new();
        if let Some(path) = &tls.ca_cert {
            roots.extend(ca_bundle("VAULT_CACERT", path)?);
        }
        if let Some(dir) = &tls.ca_path {
            // vault/api `ConfigureTLS` → go-rootcerts `LoadCAPath`: every file in the
            // directory is a PEM bundle; one that is not fails.
            let failed = |reason: String| VaultError::CaCert { setting: "VAULT_CAPATH", path: dir.clone(), reason };
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| failed(e.to_string()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(failed("holds no file".into()));
            }
            for file in files {
                roots.extend(ca_bundle("VAULT_CAPATH", &file)?);
            }
        }
        if tls.ca_cert.is_some() || tls.ca_path.is_some() {
            builder = builder.tls_certs_only(roots);
        } else if addr.scheme() == "http" {
            // No certificate to verify: do not require a system CA store either.
            builder = builder.tls_certs_only(Vec::new());
        }
        match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => builder = builder.identity(client_identity(cert, key)?),
            (None, None) => {}
            (Some(path), None) | (None, Some(path)) => {
                return Err(VaultError::CaCert {
                    setting: if tls.client_cert.is_some() { "VAULT_CLIENT_CERT" } else { "VAULT_CLIENT_KEY" },
                    path: path.clone(),
                    reason: "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together".into(),
                });
            }
        }
        let mut addr = addr.clone();
        if let Some(name) = &tls.server_name {
            // Vault's client sets tls.Config.ServerName: the certificate is checked against
            // this name (and it is sent as SNI) while the connection goes to VAULT_ADDR's
            // host. Here: VAULT_ADDR's host is resolved once, the URL carries the name, and
            // the name resolves to those addresses.
            let host = addr.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
            let port = addr.port_or_known_default().unwrap_or(443);
            let sockets: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                .map_err(|e| VaultError::Unreachable {
                    what: format!("resolving {host} (VAULT_TLS_SERVER_NAME is set)"),
                    reason: e.to_string(),
                })?
                .collect();
            addr.set_host(Some(name))
                .map_err(|e| VaultError::Client(format!("VAULT_TLS_SERVER_NAME `{name}` is not a host name: {e}")))?;
            builder = builder.resolve_to_addrs(name, &sockets);
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
            addr,
            namespace,
            deadline: Instant::now() + timeout,
            token: None,
            token_ttl: (Duration::ZERO, false),
            max_retries: None,
            mounts: Arc::default(),
        })
    }

    /// Caps retries of transient failures (`VAULT_MAX_RETRIES`); `None`: until the deadline.
    pub fn set_max_retries(&mut self, max_retries: Option<u32>) {
        self.max_retries = max_retries;
    }

    /// Uses the token in `path` (`VAULT_TOKEN_FILE`; vault-env reads it as is, Hush trims
    /// the trailing newline files usually have).
    pub fn use_token_file(&mut self, path: &Path) -> Result<(), VaultError> {
        let token = read_credential(path)?;
        self.token = Some(SecretString::from(token.as_str()));
        Ok(())
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
                let info = retry(self.deadline, self.max_retries, || async {
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
            Auth::Cert { mount, role } => {
                // The TLS client certificate is the credential (VAULT_CLIENT_CERT/KEY).
                let what = format!("cert login at auth/{mount}");
                let client = self.vaultrs_client(None);
                let name = role.clone().unwrap_or_default();
                let info = retry(self.deadline, self.max_retries, || async {
                    vaultrs::auth::cert::login(&client, mount, &name).await.map_err(|e| login_error(&what, e))
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
                let info = retry(self.deadline, self.max_retries, || async {
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
        let result = retry(self.deadline, self.max_retries, || async {
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

    /// The token, for `VAULT_TOKEN=vault:login`.
    pub fn token(&self) -> Option<&SecretString> {
        self.token.as_ref()
    }

    /// Looks up the mount of every read request not yet covered by a known mount, as the
    /// Vault CLI does before a `kv` command (`kvPreflightVersionRequest`:
    /// `GET sys/internal/ui/mounts/PATH`). A lookup that fails (an old server, a policy
    /// without access) leaves the path unknown: its response is then read as Bank-Vaults
    /// reads it (see [`Layout::Detect`]); a Vault that cannot be reached (after retries)
    /// is an error, as the reads would be.
    pub async fn discover_mounts(&self, requests: &BTreeSet<Request>) -> Result<(), VaultError> {
        for request in requests {
            if !matches!(request.operation, Operation::Read { .. }) {
                continue;
            }
            if mount_of(&self.mounts.lock().expect("not poisoned"), &request.path).is_some() {
                continue;
            }
            match self.lookup_mount(&request.path).await {
                Ok(Some(mount)) => {
                    tracing::debug!(mount = mount.path.as_str(), kind = %mount.describe(), "mount");
                    self.mounts.lock().expect("not poisoned").push(mount);
                }
                Ok(None) => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tracing::debug!("{e}; reading {} as Bank-Vaults does", request.path),
            }
        }
        Ok(())
    }

    async fn lookup_mount(&self, path: &str) -> Result<Option<Mount>, VaultError> {
        let what = format!("reading {path} (looking up its mount)");
        let (status, body) = retry(self.deadline, self.max_retries, || async {
            let (status, body) =
                self.send(reqwest::Method::GET, &format!("sys/internal/ui/mounts/{path}"), None, None, &what).await?;
            if status == 429 || status >= 500 { Err(status_error(status, &body, &what)) } else { Ok((status, body)) }
        })
        .await?;
        if status != 200 {
            return Err(status_error(status, &body, &what));
        }
        #[derive(serde::Deserialize)]
        struct Options {
            version: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            path: String,
            #[serde(rename = "type")]
            kind: String,
            options: Option<Options>,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            data: Option<Data>,
        }
        let body: Body = serde_json::from_slice(&body)
            .map_err(|e| VaultError::Malformed { what: what.clone(), source: MalformedResponse::new(e.to_string()) })?;
        Ok(body.data.filter(|d| !d.path.is_empty()).map(|d| Mount {
            path: if d.path.ends_with('/') { d.path } else { format!("{}/", d.path) },
            kind: d.kind,
            version: d.options.and_then(|o| o.version),
        }))
    }

    fn layout(&self, request: &Request, what: &str) -> Result<Layout, VaultError> {
        let mounts = self.mounts.lock().expect("not poisoned");
        let Some(mount) = mount_of(&mounts, &request.path) else {
            return Ok(if matches!(request.operation, Operation::Write { .. }) {
                Layout::Flat
            } else {
                Layout::Detect
            });
        };
        let layout = if matches!(request.operation, Operation::Write { .. }) {
            Layout::Flat
        } else {
            mount.layout(&request.path)
        };
        if let Operation::Read { version: Some(_) } = request.operation
            && layout != Layout::Kv2
        {
            let kind = if mount.is_kv2() {
                "KV version 2 but the path is not under its data/".into()
            } else {
                mount.describe()
            };
            return Err(VaultError::NotKv2 { what: what.to_owned(), mount: mount.path.clone(), kind });
        }
        Ok(layout)
    }

    /// Decrypts `ciphertexts` with transit key `key` at mount `mount`, in one batch
    /// request (`POST MOUNT/decrypt/KEY` with `batch_input`, as vault-sdk's
    /// `DecryptBatchWithContext`). Each ciphertext gets its plaintext, or Vault's reason.
    pub async fn decrypt(&self, mount: &str, key: &str, ciphertexts: &[&str]) -> Result<Vec<Plaintext>, VaultError> {
        let path = format!("{}/decrypt/{key}", mount.trim_matches('/'));
        let what = format!("decrypting {} value(s) with {path}", ciphertexts.len());
        let input: Vec<serde_json::Value> =
            ciphertexts.iter().map(|c| serde_json::json!({ "ciphertext": c })).collect();
        let request_body = serde_json::json!({ "batch_input": input }).to_string();
        let (status, body) = retry(self.deadline, self.max_retries, || async {
            let (status, body) =
                self.send(reqwest::Method::POST, &path, None, Some(request_body.clone()), &what).await?;
            if status == 429 || status >= 500 { Err(status_error(status, &body, &what)) } else { Ok((status, body)) }
        })
        .await?;
        // Plaintexts are base64 without escapes: borrowed from the wiped body, decoded into
        // wiped buffers, never copied into a plain `String`.
        #[derive(serde::Deserialize)]
        struct Item<'a> {
            #[serde(borrow, default)]
            plaintext: Option<&'a str>,
            #[serde(default)]
            error: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Data<'a> {
            #[serde(borrow)]
            batch_results: Vec<Item<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct Body<'a> {
            #[serde(borrow)]
            data: Data<'a>,
        }
        let malformed =
            |reason: String| VaultError::Malformed { what: what.clone(), source: MalformedResponse::new(reason) };
        // Vault answers 400 when any item fails, with each item's error in batch_results;
        // other refusals (no such key, 403) fail every item. Either way the variables can
        // be skipped with VAULT_IGNORE_MISSING_SECRETS, as vault-sdk skips them.
        let parsed: Body<'_> = match serde_json::from_slice(&body) {
            Ok(parsed) if status == 200 || status == 400 => parsed,
            Err(e) if status == 200 => return Err(malformed(e.to_string())),
            _ => {
                let reason = match status_error(status, &body, &what) {
                    VaultError::Denied { errors, .. } | VaultError::Status { errors, .. } if !errors.is_empty() => {
                        errors.join("; ")
                    }
                    _ => format!("Vault answered HTTP {status}"),
                };
                return Ok(ciphertexts.iter().map(|_| Plaintext::Failed(reason.clone())).collect());
            }
        };
        if parsed.data.batch_results.len() != ciphertexts.len() {
            return Err(malformed(format!(
                "{} results for {} ciphertexts",
                parsed.data.batch_results.len(),
                ciphertexts.len()
            )));
        }
        use base64::Engine as _;
        Ok(parsed
            .data
            .batch_results
            .into_iter()
            .map(|item| match (item.plaintext, item.error) {
                (_, Some(error)) if !error.is_empty() => Plaintext::Failed(error),
                (Some(b64), _) => {
                    let mut out = Zeroizing::new(vec![0; b64.len() / 4 * 3 + 3]);
                    match base64::engine::general_purpose::STANDARD.decode_slice(b64, &mut out) {
                        Ok(n) => {
                            out.truncate(n);
                            Plaintext::Found(out)
                        }
                        Err(_) => Plaintext::Failed("the plaintext Vault sent is not base64".into()),
                    }
                }
                (None, _) => Plaintext::Failed("Vault sent no plaintext".into()),
            })
            .collect())
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
        retry(self.deadline, self.max_retries, || self.fetch_once(request, &what)).await
    }

    async fn fetch_once(&self, request: &Request, what: &str) -> Result<Fetched, VaultError> {
        let (method, query, body) = match &request.operation {
            Operation::Read { version } => (reqwest::Method::GET, version.map(|v| ("version", v.to_string())), None),
            Operation::Write { body } => (reqwest::Method::POST, None, Some(body.clone())),
        };
        let layout = self.layout(request, what)?;
        let (status, body) = self.send(method, &request.path, query, body, what).await?;
        match status {
            200 => {
                let parsed = secret::parse_response(&body, layout)
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
        retry(self.deadline, self.max_retries, || async {
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
        retry(self.deadline, self.max_retries, || async {
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
        retry(self.deadline, self.max_retries, || async {
            let (status, body) =
                self.send(reqwest::Method::PUT, "sys/leases/revoke", None, Some(body.clone()), &what).await?;
            if status == 200 || status == 204 { Ok(()) } else { Err(status_error(status, &body, &what)) }
        })
        .await
    }
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

/// Transit settings (vault-env: `VAULT_TRANSIT_KEY_ID`, `VAULT_TRANSIT_PATH`,
/// `VAULT_TRANSIT_BATCH_SIZE`).
#[derive(Debug, Clone)]
pub struct TransitSettings {
    /// The mount, default `transit` (vault-sdk `vault/transit.go`).
    pub mount: String,
    /// The key; ciphertext without it is a configuration error.
    pub key: Option<String>,
    /// Ciphertexts per request (>= 1).
    pub batch: usize,
}

/// Everything one plan needs from Vault: each request once (after looking up the mounts
/// they are under), each ciphertext once in batches, and the token if a variable asks.
pub async fn resolve(
    vault: Arc<Vault>,
    plan: &crate::plan::Plan,
    concurrency: usize,
    transit: &TransitSettings,
) -> Result<crate::render::Resolved, VaultError> {
    vault.discover_mounts(&plan.requests).await?;
    let fetched = fetch_all(Arc::clone(&vault), &plan.requests, concurrency).await?;
    let mut resolved = crate::render::Resolved { fetched, ..Default::default() };
    if !plan.ciphertexts.is_empty() {
        // Checked before anything is sent (run::check_transit); kept here for other callers.
        let key = transit.key.as_deref().unwrap_or_default();
        let all: Vec<&str> = plan.ciphertexts.iter().map(String::as_str).collect();
        for batch in all.chunks(transit.batch.max(1)) {
            let plaintexts = vault.decrypt(&transit.mount, key, batch).await?;
            resolved.transit.extend(batch.iter().map(|c| (*c).to_owned()).zip(plaintexts));
        }
    }
    if plan.login {
        resolved.token = vault.token().cloned();
    }
    Ok(resolved)
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

/// The certificates of one PEM bundle.
fn ca_bundle(setting: &'static str, path: &Path) -> Result<Vec<reqwest::Certificate>, VaultError> {
    let failed = |reason: String| VaultError::CaCert { setting, path: path.to_owned(), reason };
    let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(chain(&e)))?;
    if certs.is_empty() {
        return Err(failed("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The client certificate and key for mTLS (`VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY`). The
/// key is read into a wiped buffer; errors never show file contents.
fn client_identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, VaultError> {
    let cert_pem = std::fs::read(cert).map_err(|e| VaultError::CaCert {
        setting: "VAULT_CLIENT_CERT",
        path: cert.to_owned(),
        reason: e.to_string(),
    })?;
    let key_pem = Zeroizing::new(std::fs::read(key).map_err(|e| VaultError::CaCert {
        setting: "VAULT_CLIENT_KEY",
        path: key.to_owned(),
        reason: e.to_string(),
    })?);
    let mut both = Zeroizing::new(Vec::with_capacity(cert_pem.len() + key_pem.len() + 1));
    both.extend_from_slice(&cert_pem);
    both.push(b'\n');
    both.extend_from_slice(&key_pem);
    reqwest::Identity::from_pem(&both).map_err(|_| VaultError::CaCert {
        setting: "VAULT_CLIENT_KEY",
        path: key.to_owned(),
        reason: format!("with {}: not a PEM certificate and private key", cert.display()),
    })
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
