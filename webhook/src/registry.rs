//! Image ENTRYPOINT/CMD from the registry (oci-client), cached by reference and platform.
//!
//! References pinned by digest (`image@sha256:…`) never change and stay cached for the life
//! of the process; tags are cached for the TTL. Anonymous pulls only: `imagePullSecrets`
//! would need permission to read Secrets, which this webhook does not ask for.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::ImageIndexEntry;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use crate::annotations::Platform;
use crate::metrics::{Lookup, Metrics};
use crate::mutate::{ImageConfig, ImageKey};

/// A failed look-up, naming the image.
#[derive(Debug, thiserror::Error)]
#[error("looking up the ENTRYPOINT/CMD of image `{image}` ({platform}) in its registry: {problem}")]
pub struct RegistryError {
    /// The image as written in the Pod.
    pub image: String,
    /// The platform looked for.
    pub platform: Platform,
    /// What went wrong.
    pub problem: String,
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

/// Looks up image configs, with a cache.
pub struct Registry {
    config: RegistryConfig,
    clients: Mutex<HashMap<Platform, Arc<Client>>>,
    cache: Mutex<HashMap<ImageKey, (Instant, ImageConfig)>>,
    /// One gate per image being looked up: when a Deployment scales out, its Pods wait for
    /// the first look-up instead of each asking the registry (rate limits).
    in_flight: Mutex<HashMap<ImageKey, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Arc<Metrics>,
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
        // reqwest (under oci-client, built without a provider so that aws-lc stays out) takes
        // rustls' process-wide provider and panics without one: make sure it is ring. An
        // error here means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Registry {
            config,
            clients: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn client(&self, platform: &Platform) -> Arc<Client> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(platform.clone())
            .or_insert_with(|| {
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
                Arc::new(Client::new(ClientConfig {
                    protocol: ClientProtocol::HttpsExcept(self.config.insecure.clone()),
                    platform_resolver: Some(Box::new(resolver)),
                    connect_timeout: Some(self.config.timeout),
                    read_timeout: Some(self.config.timeout),
                    ..ClientConfig::default()
                }))
            })
            .clone()
    }

    fn cached(&self, key: &ImageKey) -> Option<ImageConfig> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (at, config) = cache.get(key)?;
        (key.image.contains('@') || at.elapsed() < self.config.ttl).then(|| config.clone())
    }

    /// The config of every key, from the cache or the registry.
    pub async fn resolve(&self, keys: &BTreeSet<ImageKey>) -> Result<BTreeMap<ImageKey, ImageConfig>, RegistryError> {
        let mut out = BTreeMap::new();
        for key in keys {
            let config = match self.cached(key) {
                Some(config) => {
                    self.metrics.cache_hit();
                    config
                }
                None => self.look_up(key).await?,
            };
            out.insert(key.clone(), config);
        }
        Ok(out)
    }

    /// Fetches `key` unless a look-up of it already running fills the cache first.
    async fn look_up(&self, key: &ImageKey) -> Result<ImageConfig, RegistryError> {
        let gate = self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone();
        let result = {
            let _turn = gate.lock().await;
            match self.cached(key) {
                Some(config) => {
                    self.metrics.cache_hit();
                    Ok(config)
                }
                None => {
                    let result = self.fetch(key).await;
                    self.metrics.lookup(if result.is_ok() { Lookup::Ok } else { Lookup::Error });
                    result
                        .inspect(|config| {
                            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                            cache.insert(key.clone(), (Instant::now(), config.clone()));
                        })
                        .map_err(|problem| RegistryError {
                            image: key.image.clone(),
                            platform: key.platform.clone(),
                            problem,
                        })
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

    async fn fetch(&self, key: &ImageKey) -> Result<ImageConfig, String> {
        let reference: Reference = key.image.parse().map_err(|e| format!("invalid image reference: {e}"))?;
        let client = self.client(&key.platform);
        let pull = client.pull_manifest_and_config(&reference, &RegistryAuth::Anonymous);
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
