//! The webhook's own settings for the mutation, built from its flags (and the namespace
//! defaults file, which is reloaded when it changes). Pure data, and the swap of a whole new
//! value ([`Current`]).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::annotations::{AnnotationError, Annotations, Platform, PullPolicy, Source};

/// Name of the init container that installs the shim.
pub const INIT_CONTAINER_NAME: &str = "hush-injector-install";
/// Preferred name of the in-memory volume holding the shim; `-1`, `-2`, … are tried when taken.
pub const VOLUME_NAME: &str = "hush-injector";
/// Name of the volume holding the Vault CA Secret (`hush.dev/tls-secret`).
pub const TLS_VOLUME_NAME: &str = "hush-vault-tls";
/// Name of the empty in-memory volume mounted over the service-account token directory in
/// the init container: the ServiceAccount admission plugin, which runs again after this
/// webhook's patch, mounts the API token into every container that has nothing mounted there,
/// and the init container needs no API access.
pub const NO_TOKEN_VOLUME_NAME: &str = "hush-injector-no-token";
/// Where the kubelet mounts the service-account token (the plugin's `DefaultAPITokenMountPath`).
pub const SA_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Key of the CA certificate in the TLS Secret (as in Bank-Vaults).
pub const TLS_CA_KEY: &str = "ca.crt";
/// The shim's file name inside its directory (`injector install DIR` writes `DIR/injector`).
pub const SHIM_FILE: &str = hush_contract::exit::SHIM_FILE;

/// What the mutation needs besides the Pod. Defaults are the production defaults.
#[derive(Clone, Debug)]
pub struct MutationConfig {
    /// Image of the init container (overridable by `hush.dev/injector-image`).
    pub injector_image: String,
    /// Pull policy of the init container; `None` leaves Kubernetes' default.
    pub injector_image_pull_policy: Option<PullPolicy>,
    /// Path of the `injector` binary inside its image.
    pub injector_binary: String,
    /// Where the shim's volume is mounted, in the init container and in injected containers.
    pub dir: String,
    /// Where the Vault CA Secret is mounted when `hush.dev/tls-secret` is set.
    pub tls_dir: String,
    /// UID and GID the init container runs as (non-root).
    pub run_as_user: i64,
    /// Init container CPU request and limit.
    pub init_cpu: (String, String),
    /// Init container memory request and limit.
    pub init_memory: (String, String),
    /// `sizeLimit` of the in-memory volume.
    pub volume_size_limit: String,
    /// Lowest layer of settings: the webhook's `--default` flags.
    pub defaults: Annotations,
    /// Namespace defaults, by namespace.
    pub namespace_defaults: BTreeMap<String, Annotations>,
    /// If not empty, `VAULT_ADDR` must start with one of these.
    pub allowed_vault_addrs: Vec<String>,
    /// Platform for registry look-ups when no annotation names one.
    pub default_platform: Platform,
    /// The init container as JSON text for the default image, pull policy and volume name,
    /// made on first use (the config does not change once built).
    pub default_init_container: OnceLock<Vec<u8>>,
    /// The shim's volume under its default name and the token-directory volume, as JSON
    /// text, made on first use.
    pub fixed_volumes: OnceLock<(Vec<u8>, Vec<u8>)>,
}

impl Default for MutationConfig {
    fn default() -> Self {
        MutationConfig {
            injector_image: "ghcr.io/hush/injector:latest".into(),
            injector_image_pull_policy: None,
            injector_binary: "/injector".into(),
            dir: "/hush".into(),
            tls_dir: "/hush-tls".into(),
            run_as_user: 65532,
            init_cpu: ("10m".into(), "100m".into()),
            init_memory: ("16Mi".into(), "32Mi".into()),
            volume_size_limit: "32Mi".into(),
            defaults: Annotations::default(),
            namespace_defaults: BTreeMap::new(),
            allowed_vault_addrs: Vec::new(),
            default_platform: Platform::linux_amd64(),
            default_init_container: OnceLock::new(),
            fixed_volumes: OnceLock::new(),
        }
    }
}

impl MutationConfig {
    /// Path of the shim in injected containers.
    pub fn shim_path(&self) -> String {
        format!("{}/{SHIM_FILE}", self.dir.trim_end_matches('/'))
    }
}

/// A value swapped whole while the server runs: a request takes the current one and keeps it
/// to the end, so it never sees half of an update.
#[derive(Debug)]
pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    /// The value now.
    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the value for requests that start from now on.
    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

impl<T> From<T> for Current<T> {
    fn from(value: T) -> Self {
        Current(RwLock::new(Arc::new(value)))
    }
}

/// Why a namespace defaults file is rejected; names the namespace, never more of the file.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceDefaultsError {
    /// Not `{"namespace": {"hush.dev/…": "…"}}`.
    #[error("expected {{\"namespace\": {{\"hush.dev/…\": \"…\"}}}}: {0}")]
    Shape(#[source] serde_json::Error),
    /// A namespace's annotations are unknown or malformed.
    #[error("namespace {namespace}: {source}")]
    Annotation {
        /// The namespace.
        namespace: String,
        /// What is wrong.
        #[source]
        source: AnnotationError,
    },
}

/// Parses a namespace defaults file: `{"namespace": {"hush.dev/role": "…", …}}`.
pub fn parse_namespace_defaults(text: &[u8]) -> Result<BTreeMap<String, Annotations>, NamespaceDefaultsError> {
    let raw: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_slice(text).map_err(NamespaceDefaultsError::Shape)?;
    raw.into_iter()
        .map(|(namespace, annotations)| match Annotations::parse(&annotations, Source::Defaults) {
            Ok(parsed) => Ok((namespace, parsed)),
            Err(source) => Err(NamespaceDefaultsError::Annotation { namespace, source }),
        })
        .collect()
}
