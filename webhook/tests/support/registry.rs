//! A real `docker-registry` (Debian's package, path in `HUSH_TEST_DOCKER_REGISTRY`) on a
//! loopback port, optionally with htpasswd logins, and hand-made OCI images pushed to it with
//! oci-client; and a stand-in for the API server's `GET` of a Secret.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageIndex, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

pub struct LocalRegistry {
    child: Child,
    pub host: String,
    _dir: tempfile::TempDir,
    /// What pushes use: anonymous, or the one login of a registry with authentication.
    auth: RegistryAuth,
}

impl LocalRegistry {
    pub fn start() -> LocalRegistry {
        LocalRegistry::start_inner(None)
    }

    /// A registry that answers only this user (htpasswd, bcrypt as distribution requires;
    /// plain HTTP on loopback, which distribution 2.8 accepts with htpasswd).
    pub fn start_with_login(user: &str, password: &str) -> LocalRegistry {
        LocalRegistry::start_inner(Some((user, password)))
    }

    fn start_inner(login: Option<(&str, &str)>) -> LocalRegistry {
        let binary = super::tool("HUSH_TEST_DOCKER_REGISTRY");
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        let auth = match login {
            None => RegistryAuth::Anonymous,
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                let hash = bcrypt::hash_with_result(password, 4).unwrap().format_for_version(bcrypt::Version::TwoY);
                std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
                text.push_str(&format!("auth:\n  htpasswd:\n    realm: hush-test\n    path: {}\n", htpasswd.display()));
                RegistryAuth::Basic(user.to_owned(), password.to_owned())
            }
        };
        std::fs::write(&config, text).unwrap();
        let child = Command::new(&binary)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let registry = LocalRegistry { child, host, _dir: dir, auth };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen on {}", registry.host);
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// Stops the registry (to show that a second look-up comes from the cache).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn client() -> Client {
        super::install_crypto();
        Client::new(ClientConfig { protocol: ClientProtocol::Http, ..ClientConfig::default() })
    }

    /// Pushes a one-layer image for `arch` with this ENTRYPOINT and CMD; returns (manifest digest, size).
    pub async fn push_image(&self, name: &str, arch: &str, entrypoint: &[&str], cmd: &[&str]) -> (String, usize) {
        let reference: Reference = format!("{}/{name}", self.host).parse().unwrap();
        let layer = ImageLayer::oci_v1_gzip(format!("layer of {name}").into_bytes(), None);
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.sha256_digest()]}
        });
        let config = Config::oci_v1(serde_json::to_vec(&config).unwrap(), None);
        let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
        let client = Self::client();
        client.push(&reference, &[layer], config, &self.auth, Some(manifest)).await.unwrap();
        let (bytes, digest) = client.pull_manifest_raw(&reference, &self.auth, &[OCI_IMAGE_MEDIA_TYPE]).await.unwrap();
        (digest, bytes.len())
    }

    /// Pushes a multi-platform index `name` over images already pushed: (arch, digest, size).
    pub async fn push_index(&self, name: &str, entries: &[(&str, String, usize)]) {
        let reference: Reference = format!("{}/{name}", self.host).parse().unwrap();
        let manifests: Vec<_> = entries
            .iter()
            .map(|(arch, digest, size)| {
                json!({"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": digest, "size": size,
                       "platform": {"architecture": arch, "os": "linux"}})
            })
            .collect();
        let index: OciImageIndex = serde_json::from_value(json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests
        }))
        .unwrap();
        Self::client().push_manifest_list(&reference, &self.auth, index).await.unwrap();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stands in for the API server's one call the webhook makes with `--read-image-pull-secrets`:
/// `GET /api/v1/namespaces/{ns}/secrets/{name}` over HTTPS with the ServiceAccount's bearer
/// token. No kube-apiserver can run here; this answers that one call on loopback, checks the
/// token and counts the calls. `dir` holds `token` and `ca.crt` as the kubelet mounts them.
pub struct SecretsApi {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Every request line seen, with whether its token was right: ("GET /api/…", true).
    pub requests: Arc<Mutex<Vec<(String, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SecretsApi {
    /// Serves `secrets`: ((namespace, name), Secret JSON); an object of `"kind": "ConfigMap"`
    /// is served as a ConfigMap (`--read-referenced-objects` reads both).
    pub async fn start(secrets: Vec<((&str, &str), Value)>) -> SecretsApi {
        super::install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert_pem, key_pem) = super::Certs::generate("kubernetes.default.svc");
        let token = "test-service-account-token";
        std::fs::write(dir.path().join("ca.crt"), ca_pem).unwrap();
        // As the kubelet writes a projected token: no trailing newline (kube sends the file's
        // content as it is, and a newline is not valid in a header).
        std::fs::write(dir.path().join("token"), token).unwrap();
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let table: Arc<BTreeMap<String, Vec<u8>>> = Arc::new(
            secrets
                .into_iter()
                .map(|((ns, name), v)| {
                    let resource = if v["kind"] == "ConfigMap" { "configmaps" } else { "secrets" };
                    (format!("/api/v1/namespaces/{ns}/{resource}/{name}"), v.to_string().into_bytes())
                })
                .collect(),
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, table, seen) = (acceptor.clone(), table.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let authorized = request.headers().get("authorization").and_then(|v| v.to_str().ok())
                            == Some(&format!("Bearer {token}"));
                        let path = request.uri().path().to_owned();
                        seen.lock().unwrap().push((format!("{} {path}", request.method()), authorized));
                        let (status, body) = match (authorized, table.get(&path)) {
                            (false, _) => (403, br#"{"kind":"Status","code":403}"#.to_vec()),
                            (true, Some(body)) if request.method() == hyper::Method::GET => (200, body.clone()),
                            (true, _) => (404, br#"{"kind":"Status","code":404}"#.to_vec()),
                        };
                        let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        SecretsApi { port, dir, requests, task }
    }

    /// The environment the webhook finds in a Pod: where the API server is.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [("KUBERNETES_SERVICE_HOST", "127.0.0.1".to_owned()), ("KUBERNETES_SERVICE_PORT", self.port.to_string())]
    }

    pub fn requests(&self) -> Vec<(String, bool)> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for SecretsApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A `kubernetes.io/dockerconfigjson` Secret with one login for `registry`.
pub fn pull_secret(registry: &str, user: &str, password: &str) -> Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {registry: {"username": user, "password": password, "auth": b64(&format!("{user}:{password}"))}}});
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
           "data": {".dockerconfigjson": b64(&config.to_string())}})
}
