//! The demo's key material, made with the openssl CLI: the webhook's TLS certificate and the
//! cluster's service-account signing key with one projected token. Nothing here is secret
//! beyond the demo's lifetime; it all lives under `target/xtask/demo`.

use crate::cmd;
use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A self-signed certificate for the webhook's Service name and loopback (the API server
/// would trust it through the configuration's `caBundle`).
pub fn webhook_certificate(work: &Path) -> Result<Tls> {
    let tls = Tls { cert: work.join("webhook.crt"), key: work.join("webhook.key") };
    cmd::run(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=hush-webhook.hush.svc"])
            .args(["-addext", "subjectAltName=DNS:hush-webhook.hush.svc,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&tls.key)
            .arg("-out")
            .arg(&tls.cert)
            .stderr(Stdio::null()),
    )?;
    Ok(tls)
}

/// The cluster's service-account issuer key (RS256, as kube-apiserver's default).
pub struct ServiceAccountKey {
    private_pem: PathBuf,
    pub public_pem: PathBuf,
}

pub fn service_account_key(work: &Path) -> Result<ServiceAccountKey> {
    let key = ServiceAccountKey { private_pem: work.join("sa.key"), public_pem: work.join("sa.pub") };
    cmd::run(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&key.private_pem),
    )?;
    cmd::run(
        Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key.private_pem).arg("-out").arg(&key.public_pem),
    )?;
    Ok(key)
}

impl ServiceAccountKey {
    /// The token the kubelet would project into the Pod for `namespace/name`, audience
    /// `vault`, valid ten minutes; written readable by the app's user only.
    pub fn projected_token(&self, work: &Path, namespace: &str, name: &str) -> Result<PathBuf> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "demo"});
        let claims = serde_json::json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
            "aud": ["vault"], "iat": now, "nbf": now, "exp": now + 600,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}},
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.private_pem)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        openssl.stdin.take().context("openssl's stdin")?.write_all(signing_input.as_bytes())?;
        let signed = openssl.wait_with_output()?;
        ensure!(signed.status.success() && signed.stdout.len() == 256, "openssl could not sign the token");
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signed.stdout));
        let file = work.join("token");
        std::fs::write(&file, token)?;
        std::os::unix::fs::chown(&file, Some(super::APP_UID), Some(super::APP_UID))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400))?;
        Ok(file)
    }
}

pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The containers run as unprivileged users: `dir` and every directory above it must let
/// them pass.
pub fn world_traversable(dir: &Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for ancestor in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)?.permissions().mode();
        ensure!(
            mode & 0o001 != 0,
            "{} is not searchable by other users (mode {:o}); the demo's containers run as non-root users",
            ancestor.display(),
            mode & 0o7777
        );
    }
    Ok(())
}
