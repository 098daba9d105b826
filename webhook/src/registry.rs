//! Image ENTRYPOINT/CMD from the registry (oci-client), cached by reference, platform and
//! credential.
//!
//! The cache is bounded ([`cache`]: entries and bytes, least recently used out first).
//! References pinned by digest (`image@sha256:…`) never change and stay cached for
//! [`CacheLimits::digest_ttl`] (a day); tags for the TTL (`--registry-cache-ttl`).
//!
//! Credentials: anonymous unless the webhook runs with `--read-image-pull-secrets` and the
//! Pod lists `imagePullSecrets`. The Pod's own list is all there is to read: the API server's
//! ServiceAccount admission plugin copies the ServiceAccount's `imagePullSecrets` into a Pod
//! that has none ("If the spec of the incoming Pod doesn't already contain any
//! imagePullSecrets, then the admission controller adds imagePullSecrets, copying them from
//! the ServiceAccount", kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/),
//! and it runs before any mutating webhook (`ServiceAccount` precedes
//! `MutatingAdmissionWebhook` in kube-apiserver's `AllOrderedPlugins`,
//! pkg/kubeapiserver/options/plugins.go; admission-controllers docs: webhooks run in the
//! mutating phase after the compiled-in plugins).
//!
//! Tenancy: a cached config is keyed by the credential that fetched it (an HMAC of username
//! and password under a key made at start, so the cache holds nothing password-equivalent).
//! An anonymous entry proves the image public and serves every Pod; an entry fetched with
//! tenant A's Secret serves only Pods presenting the same credential, so tenant B without
//! one goes to the registry anonymously and is refused as the kubelet would be. Each
//! credentialed look-up uses a fresh oci-client: its client keeps the first credential it
//! sees per registry for later calls, which would lend A's login to B.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::ImageIndexEntry;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use crate::annotations::Platform;
use crate::kube::ApiClient;
use crate::metrics::{Lookup, Metrics};
use crate::mutate::{ImageConfig, ImageKey};
use crate::pull_secrets::{self, Credential};

pub mod cache;

use cache::Cache;

/// A failed look-up, naming the image and the credentials used.
#[derive(Debug, thiserror::Error)]
#[error("looking up the ENTRYPOINT/CMD of image `{image}` ({platform}) in its registry {how}: {problem}")]
pub struct RegistryError {
    /// The image as written in the Pod.
    pub image: String,
    /// The platform looked for.
    pub platform: Platform,
    /// Which credentials, and why those (never the credentials themselves).
    pub how: String,
    /// What went wrong.
    pub problem: String,
}

/// What a Pod offers for pulling its images.
#[derive(Clone, Copy, Debug, Default)]
pub struct PullSecrets<'a> {
    /// The Pod's namespace (Secrets are read there only).
    pub namespace: &'a str,
    /// Names in the Pod's `imagePullSecrets`.
    pub names: &'a [String],
}

/// A cache entry's identity: the image, and who fetched it (`None`: anonymously).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    image: ImageKey,
    credential: Option<[u8; 32]>,
}

/// The credentials of one admission's pull Secrets, read once, and what went wrong reading them.
#[derive(Default)]
struct Loaded {
    credentials: Vec<Credential>,
    notes: Vec<String>,
}

/// Registry client settings.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Registries (`host:port`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// How long a tag's config stays cached.
    pub ttl: Duration,
    /// Deadline of one look-up.
    pub timeout: Duration,
}

/// Bounds of the image cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    /// Most images (per credential) held.
    pub max_entries: usize,
    /// Most bytes held, as weighed by [`cost`].
    pub max_bytes: usize,
    /// How long an image pinned by digest stays (its config never changes; the bound only
    /// lets a digest no Pod uses any more make room).
    pub digest_ttl: Duration,
}

impl Default for CacheLimits {
    fn default() -> Self {
        // A cluster runs a few thousand distinct images at most; 16 MiB is a small share of
        // the webhook's memory limit (charts/: 128 Mi) and holds 10,000 typical entries.
        CacheLimits { max_entries: 10_000, max_bytes: 16 * 1024 * 1024, digest_ttl: Duration::from_secs(24 * 3600) }
    }
}

/// What one cached image costs, in bytes: the strings held (key and config) plus the
/// containers' fixed sizes and the cache's own bookkeeping per entry.
pub fn cost(image: &ImageKey, config: &ImageConfig) -> usize {
    const PER_ENTRY: usize = 256;
    const PER_STRING: usize = std::mem::size_of::<String>();
    let strings = [&image.image, &image.platform.os, &image.platform.arch]
        .into_iter()
        .chain(image.platform.variant.as_ref())
        .chain(config.entrypoint.iter())
        .chain(config.cmd.iter());
    PER_ENTRY + strings.map(|s| s.len() + PER_STRING).sum::<usize>()
}

/// Looks up image configs, with a cache.
pub struct Registry {
    config: RegistryConfig,
    cache_limits: CacheLimits,
    clients: Mutex<HashMap<Platform, Arc<Client>>>,
    cache: Mutex<Cache<CacheKey, ImageConfig>>,
    /// One gate per image being looked up: when a Deployment scales out, its Pods wait for
    /// the first look-up instead of each asking the registry (rate limits).
    in_flight: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Arc<Metrics>,
    /// Reads pull Secrets; `None` without `--read-image-pull-secrets`.
    api: Option<ApiClient>,
    /// Key of the credential identities in cache keys.
    identity_key: ring::hmac::Key,
}

#[derive(Deserialize)]
struct ConfigFile {
    config: Option<ContainerConfig>,
}

#[derive(Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Entrypoint")]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd")]
    cmd: Option<Vec<String>>,
}

impl Registry {
    /// A registry client; nothing is contacted until a look-up.
    pub fn new(config: RegistryConfig, metrics: Arc<Metrics>) -> Self {
        Registry::with_pull_secrets(config, metrics, None)
    }

    /// A registry client that reads the Pods' pull Secrets through `api`.
    pub fn with_pull_secrets(config: RegistryConfig, metrics: Arc<Metrics>, api: Option<ApiClient>) -> Self {
        // reqwest (under oci-client, built without a provider so that aws-lc stays out) takes
        // rustls' process-wide provider and panics without one: make sure it is ring. An
        // error here means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cache_limits = CacheLimits::default();
        Registry {
            config,
            cache_limits,
            clients: Mutex::new(HashMap::new()),
            cache: Mutex::new(Cache::new(cache::Limits {
                max_entries: cache_limits.max_entries,
                max_bytes: cache_limits.max_bytes,
            })),
            in_flight: Mutex::new(HashMap::new()),
            metrics,
            api,
            // Invariant: the system's random source works (rustls needs it for every handshake too).
            identity_key: ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .expect("the system random source works"),
        }
    }

    /// The same registry with other cache bounds (the cache starts empty).
    #[must_use]
    pub fn with_cache_limits(mut self, limits: CacheLimits) -> Self {
        self.cache_limits = limits;
        self.cache =
            Mutex::new(Cache::new(cache::Limits { max_entries: limits.max_entries, max_bytes: limits.max_bytes }));
        self
    }

    fn new_client(&self, platform: &Platform) -> Client {
        let wanted = platform.clone();
        let resolver = move |entries: &[ImageIndexEntry]| {
            entries
                .iter()
                .find(|e| {
                    e.platform.as_ref().is_some_and(|p| {
                        p.os.to_string() == wanted.os
                            && p.architecture.to_string() == wanted.arch
                            && (wanted.variant.is_none() || p.variant == wanted.variant)
                    })
                })
                .map(|e| e.digest.clone())
        };
        Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.config.insecure.clone()),
            platform_resolver: Some(Box::new(resolver)),
            connect_timeout: Some(self.config.timeout),
            read_timeout: Some(self.config.timeout),
            ..ClientConfig::default()
        })
    }

    /// The shared client for anonymous look-ups (it never sees a credential).
    fn anonymous_client(&self, platform: &Platform) -> Arc<Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.entry(platform.clone()).or_insert_with(|| Arc::new(self.new_client(platform))).clone()
    }

    fn identity(&self, credential: &Credential) -> [u8; 32] {
        let mut context = ring::hmac::Context::with_key(&self.identity_key);
        context.update(credential.username().as_bytes());
        context.update(&[0]);
        context.update(credential.password().as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }

    fn cached(&self, key: &CacheKey) -> Option<ImageConfig> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(key, Instant::now())
    }

    /// Caches `config` as an image anyone may use, as if looked up anonymously (tests and the
    /// bench's answer harness, which have no registry).
    pub fn preload(&self, image: ImageKey, config: &ImageConfig) {
        self.remember(&CacheKey { image, credential: None }, config);
    }

    /// Caches `config` for `key`: a day for a digest, the TTL for a tag.
    fn remember(&self, key: &CacheKey, config: &ImageConfig) {
        let ttl = if key.image.image.contains('@') { self.cache_limits.digest_ttl } else { self.config.ttl };
        let bytes = cost(&key.image, config) + key.credential.map_or(0, |c| c.len());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key.clone(), config.clone(), bytes, ttl, Instant::now());
    }

    /// The config of every key, from the cache or the registry, with the Pod's pull Secrets
    /// read only when an image is not known to be public.
    pub async fn resolve(
        &self,
        keys: &BTreeSet<ImageKey>,
        pull: PullSecrets<'_>,
    ) -> Result<BTreeMap<ImageKey, ImageConfig>, RegistryError> {
        let mut out = BTreeMap::new();
        let mut loaded: Option<Loaded> = None;
        for key in keys {
            let anonymous = CacheKey { image: key.clone(), credential: None };
            if let Some(config) = self.cached(&anonymous) {
                self.metrics.cache_hit();
                out.insert(key.clone(), config);
                continue;
            }
            let loaded = match &mut loaded {
                Some(loaded) => loaded,
                None => loaded.insert(self.load(pull).await),
            };
            let credential = select_for(&loaded.credentials, &key.image);
            let cache_key = CacheKey { image: key.clone(), credential: credential.map(|c| self.identity(c)) };
            let config = match self.cached(&cache_key) {
                Some(config) => {
                    self.metrics.cache_hit();
                    config
                }
                None => self.look_up(&cache_key, credential).await.map_err(|problem| RegistryError {
                    image: key.image.clone(),
                    platform: key.platform.clone(),
                    how: self.how(pull, loaded, credential, &key.image),
                    problem,
                })?,
            };
            out.insert(key.clone(), config);
        }
        Ok(out)
    }

    /// Reads and parses the Pod's pull Secrets (none without `--read-image-pull-secrets`).
    async fn load(&self, pull: PullSecrets<'_>) -> Loaded {
        let mut loaded = Loaded::default();
        let Some(api) = &self.api else { return loaded };
        for name in pull.names {
            let parsed = match api.secret(pull.namespace, name).await {
                Ok(body) => pull_secrets::parse_secret(name, &body).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match parsed {
                Ok(credentials) => loaded.credentials.extend(credentials),
                Err(note) => loaded.notes.push(note),
            }
        }
        loaded
    }

    /// How a look-up was made, for its error message.
    fn how(&self, pull: PullSecrets<'_>, loaded: &Loaded, credential: Option<&Credential>, image: &str) -> String {
        if let Some(c) = credential {
            return format!("with the credentials for `{}` from Secret `{}`", c.key, c.secret);
        }
        let why = if pull.names.is_empty() {
            "the Pod has no imagePullSecrets".to_owned()
        } else if self.api.is_none() {
            "the webhook does not read imagePullSecrets; start it with --read-image-pull-secrets".to_owned()
        } else {
            let host = image.parse::<Reference>().map(|r| r.registry().to_owned()).unwrap_or_default();
            let mut why = format!("no credentials for `{host}` in imagePullSecrets {}", pull.names.join(", "));
            for note in &loaded.notes {
                why.push_str("; ");
                why.push_str(note);
            }
            why
        };
        format!("anonymously ({why})")
    }

    /// Fetches `key` unless a look-up of it already running fills the cache first.
    async fn look_up(&self, key: &CacheKey, credential: Option<&Credential>) -> Result<ImageConfig, String> {
        let gate = self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        let result = {
            let _turn = gate.lock().await;
            match self.cached(key) {
                Some(config) => {
                    self.metrics.cache_hit();
                    Ok(config)
                }
                None => {
                    let result = self.fetch(&key.image, credential).await;
                    self.metrics.lookup(if result.is_ok() { Lookup::Ok } else { Lookup::Error });
                    result.inspect(|config| self.remember(key, config))
                }
            }
        };
        // Drop the gate when no one else holds it (the map's reference and ours remain).
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&gate) <= 2 {
            in_flight.remove(key);
        }
        result
    }

    async fn fetch(&self, key: &ImageKey, credential: Option<&Credential>) -> Result<ImageConfig, String> {
        let reference: Reference = key.image.parse().map_err(|e| format!("invalid image reference: {e}"))?;
        let (client, auth) = match credential {
            None => (self.anonymous_client(&key.platform), RegistryAuth::Anonymous),
            Some(c) => (
                Arc::new(self.new_client(&key.platform)),
                RegistryAuth::Basic(c.username().to_owned(), c.password().to_owned()),
            ),
        };
        let pull = client.pull_manifest_and_config(&reference, &auth);
        let (_, _, config) = tokio::time::timeout(self.config.timeout, pull)
            .await
            .map_err(|_| format!("no answer within {:?}", self.config.timeout))?
            .map_err(|e| e.to_string())?;
        let file: ConfigFile =
            serde_json::from_str(&config).map_err(|e| format!("the image config is not valid JSON: {e}"))?;
        let inner = file.config.unwrap_or(ContainerConfig { entrypoint: None, cmd: None });
        Ok(ImageConfig { entrypoint: inner.entrypoint.unwrap_or_default(), cmd: inner.cmd.unwrap_or_default() })
    }
}

/// The credential the Pod's Secrets hold for `image`'s registry, if any.
fn select_for<'a>(credentials: &'a [Credential], image: &str) -> Option<&'a Credential> {
    if credentials.is_empty() {
        return None;
    }
    let reference: Reference = image.parse().ok()?;
    pull_secrets::select(credentials, reference.registry(), reference.repository())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok()).unwrap()
    }

    fn registry() -> Registry {
        let config =
            RegistryConfig { insecure: Vec::new(), ttl: Duration::from_secs(300), timeout: Duration::from_secs(3) };
        Registry::new(config, Arc::new(Metrics::default()))
    }

    fn key(image: String) -> CacheKey {
        CacheKey { image: ImageKey { image, platform: Platform::parse("linux/amd64").unwrap() }, credential: None }
    }

    /// A stream of distinct images (a new tag per Pod, or an attacker) once grew the cache
    /// for the life of the process: 100,000 of them, in the way look-ups fill it.
    #[test]
    fn a_hundred_thousand_distinct_images_keep_the_cache_and_memory_flat() {
        let registry = registry();
        let config = ImageConfig {
            entrypoint: vec!["/usr/local/bin/app-entrypoint".into(), "--config=/etc/app/config.yaml".into()],
            cmd: vec!["serve".into(), "--listen=:8080".into()],
        };
        let limits = CacheLimits::default();
        let mut warm = 0;
        for i in 0..100_000 {
            let k = key(format!("registry.example/team-{}/service-{i}:v1.{i}", i % 97));
            registry.remember(&k, &config);
            if i == 20_000 {
                warm = rss_kib();
            }
        }
        let end = rss_kib();
        let cache = registry.cache.lock().unwrap();
        println!(
            "100,000 images: {} cached, {} bytes; RSS {warm} KiB after 20,000, {end} KiB after 100,000",
            cache.len(),
            cache.bytes()
        );
        assert!(cache.len() <= limits.max_entries, "{} entries", cache.len());
        assert!(cache.bytes() <= limits.max_bytes, "{} bytes", cache.bytes());
        // Bounded, RSS moves by a step or two of the allocator's (3.4 MiB seen once); unbounded,
        // the 80,000 images after warm-up held about 60 MiB more.
        assert!(end <= warm + 8 * 1024, "RSS grew from {warm} KiB to {end} KiB");
        drop(cache);
        assert_eq!(
            registry.cached(&key(format!("registry.example/team-{}/service-99999:v1.99999", 99_999 % 97))),
            Some(config)
        );
    }

    #[test]
    fn a_tag_expires_after_the_ttl_and_a_digest_stays_a_day() {
        let registry = registry();
        let config = ImageConfig { entrypoint: vec!["/app".into()], cmd: Vec::new() };
        let tag = key("registry.example/app:1".into());
        let digest = key(format!("registry.example/app@sha256:{}", "a".repeat(64)));
        registry.remember(&tag, &config);
        registry.remember(&digest, &config);
        let mut cache = registry.cache.lock().unwrap();
        let later = Instant::now() + Duration::from_secs(301);
        assert_eq!(cache.get(&tag, later), None);
        assert_eq!(cache.get(&digest, later), Some(config.clone()));
        assert_eq!(cache.get(&digest, later + Duration::from_secs(24 * 3600)), None);
    }
}
