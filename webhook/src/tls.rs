//! The server certificate, read from PEM files and reloaded when they change.
//!
//! Handshakes take the current certificate; connections already open keep theirs, so a
//! reload never drops an in-flight request. A bad new file is logged and the old
//! certificate stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate or key could not be loaded; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("reading certificates from {path}: {problem}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key file is unreadable, holds no PEM key, or a key rustls cannot use.
    #[error("reading the private key from {path}: {problem}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key does not match the certificate.
    #[error("the key in {key} does not match the certificate in {cert}: {problem}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls says.
        problem: String,
    },
}

/// The ring provider: the only one this binary links.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert { path: cert.into(), problem: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Cert { path: cert.into(), problem: "no CERTIFICATE block".into() });
    }
    let der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key { path: key.into(), problem: e.to_string() })?;
    let certified = CertifiedKey::from_der(certs, der, &provider()).map_err(|e| TlsError::Mismatch {
        cert: cert.into(),
        key: key.into(),
        problem: e.to_string(),
    })?;
    Ok(certified)
}

/// A file's modification time and length: a change in either means reload.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A certificate resolver that [`ReloadingCert::reload_if_changed`] keeps up to date.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, [Stamp; 2])>,
}

impl ReloadingCert {
    /// Loads the pair; fails if either file is bad.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let stamps = [stamp(cert_path), stamp(key_path)];
        let key = load(cert_path, key_path)?;
        Ok(ReloadingCert {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            current: RwLock::new((Arc::new(key), stamps)),
        })
    }

    /// Reloads when either file changed. `Ok(true)`: a new certificate is in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamps = [stamp(&self.cert_path), stamp(&self.key_path)];
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == stamps {
            return Ok(false);
        }
        let loaded = load(&self.cert_path, &self.key_path);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        // Remember the stamps even on failure: a bad file is reported once, not every tick.
        current.1 = stamps;
        current.0 = Arc::new(loaded?);
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).0.clone())
    }
}

/// The server's rustls configuration: TLS 1.2 and 1.3, ring, HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
