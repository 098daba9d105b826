//! Test support: a running `webhook` over TLS, a client, AdmissionReviews, tools from xtask.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A path from an environment variable set by `cargo xtask test`; panics when missing.
pub fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) => PathBuf::from(path),
        None => panic!("{var} is not set: run this test through `cargo xtask test`, which installs the tool"),
    }
}

/// A CA and a server certificate for localhost / 127.0.0.1, as PEM files in `dir`.
pub struct Certs {
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn new(dir: &Path) -> Certs {
        let (ca_pem, cert_pem, key_pem) = Certs::generate("localhost");
        let certs = Certs { ca_pem, cert: dir.join("tls.crt"), key: dir.join("tls.key") };
        std::fs::write(&certs.cert, cert_pem).unwrap();
        std::fs::write(&certs.key, key_pem).unwrap();
        certs
    }

    /// (CA PEM, server certificate PEM, server key PEM) for `name` and 127.0.0.1.
    pub fn generate(name: &str) -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("hush test CA for {name}"));
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }
}

/// A `webhook` process listening on a loopback port.
pub struct Webhook {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub certs: Certs,
    pub dir: tempfile::TempDir,
}

impl Webhook {
    pub fn start(extra: &[&str]) -> Webhook {
        Webhook::start_with(extra, |_| {})
    }

    /// Starts the binary; `prepare` may write files into the scratch directory first.
    pub fn start_with(extra: &[&str], prepare: impl FnOnce(&Path)) -> Webhook {
        Webhook::start_with_env(extra, &[], prepare)
    }

    /// As [`Webhook::start_with`], with these environment variables set for the binary.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)], prepare: impl FnOnce(&Path)) -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::new(dir.path());
        prepare(dir.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_webhook"))
            .args(["--listen", "127.0.0.1:0", "--injector-image", "registry.test/hush/injector:1"])
            .arg("--tls-cert")
            .arg(&certs.cert)
            .arg("--tls-key")
            .arg(&certs.key)
            .args(["--cert-reload-interval", "0.1", "--default", "vault-addr=https://vault.vault.svc:8200"])
            .args(extra)
            .env("HUSH_LOG", "debug")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "listening"
                {
                    let _ = tx.send(v["fields"]["address"].as_str().unwrap().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("webhook did not start; logs: {:?}", logs.lock().unwrap())
            }
        };
        Webhook { child, addr, logs, certs, dir }
    }

    /// Whether a log line containing `needle` arrives within 5 s: lines are read from the
    /// child's stdout by another thread, so one written as an answer is sent may still be in
    /// flight when the test looks.
    pub async fn await_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.logs.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn client(&self) -> reqwest::Client {
        client(&self.certs.ca_pem, self.addr)
    }

    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "webhook did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a review; returns (HTTP status, body as JSON or as a string).
    pub async fn post(&self, client: &reqwest::Client, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = client.post(self.url("/mutate")).body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn metrics(&self, client: &reqwest::Client) -> String {
        client.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client trusting only `ca_pem`, resolving `localhost` to `addr`.
pub fn client(ca_pem: &str, addr: SocketAddr) -> reqwest::Client {
    client_for(ca_pem.as_bytes(), "localhost", addr)
}

/// An HTTPS client trusting only `ca_pem`, resolving `host` to `addr` (as the API server
/// reaches a Service by its DNS name).
pub fn client_for(ca_pem: &[u8], host: &str, addr: SocketAddr) -> reqwest::Client {
    install_crypto();
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve(host, addr)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An admission.k8s.io/v1 AdmissionReview for creating `pod` in `namespace`, as the API server sends it.
pub fn review(uid: &str, namespace: &str, pod: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": pod["metadata"]["name"].as_str().unwrap_or_default(),
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The response of a review answer, checked for the uid.
pub fn response<'a>(answer: &'a Value, uid: &str) -> &'a Value {
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{answer}");
    assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
    let response = &answer["response"];
    assert_eq!(response["uid"], uid, "{answer}");
    response
}

/// The JSON Patch of a response (empty when there is none).
pub fn patch_of(response: &Value) -> json_patch::Patch {
    use base64::Engine as _;
    match response.get("patch") {
        None => json_patch::Patch(Vec::new()),
        Some(b64) => {
            let b64 = b64.as_str().unwrap_or_else(|| panic!("patch is not a base64 string: {response}"));
            assert_eq!(response["patchType"], "JSONPatch");
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        }
    }
}

/// Applies the response's patch to the raw review's object, as the API server does.
pub fn apply(review: &Value, response: &Value) -> Value {
    let mut object = review["request"]["object"].clone();
    let patch = patch_of(response);
    json_patch::patch(&mut object, &patch).unwrap_or_else(|e| panic!("the patch does not apply: {e}: {patch:?}"));
    object
}

pub mod kubelet;
pub mod registry;
pub mod restricted;
