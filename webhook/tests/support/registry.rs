//! A real `docker-registry` (Debian's package, path in `HUSH_TEST_DOCKER_REGISTRY`) on a
//! loopback port, optionally with htpasswd logins, and hand-made OCI images pushed to it with
//! oci-client.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciImageIndex, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
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

/// A `kubernetes.io/dockerconfigjson` Secret with one login for `registry`.
pub fn pull_secret(registry: &str, user: &str, password: &str) -> Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {registry: {"username": user, "password": password, "auth": b64(&format!("{user}:{password}"))}}});
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
           "data": {".dockerconfigjson": b64(&config.to_string())}})
}
