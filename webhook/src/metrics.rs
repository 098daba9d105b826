//! Prometheus metrics: admissions by result, latency, registry look-ups and cache hits,
//! Secret/ConfigMap reviews by result.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How an admission ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Outcome {
    /// Allowed with a patch.
    Mutated,
    /// Allowed without a patch (nothing to inject, already injected, not a CREATE).
    Unchanged,
    /// Allowed unmutated with a warning because the registry failed (`--on-registry-error admit`).
    AdmittedOnRegistryError,
    /// Denied: bad annotations or references, registry failure, wrong kind.
    Denied,
    /// The body was not an AdmissionReview (HTTP 4xx).
    Invalid,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    result: Outcome,
}

/// How a review of a Secret or ConfigMap (`/objects`) ended. Every one is allowed.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ObjectReview {
    /// Values hold Vault references: answered with warnings.
    Warned,
    /// Nothing to say (no reference, `mutate: skip`, a DELETE).
    Clean,
    /// A review of something else, or an object that does not decode: allowed without a look.
    Unreadable,
    /// The body was not an AdmissionReview (HTTP 4xx).
    Invalid,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectReviewLabel {
    result: ObjectReview,
}

/// How a registry look-up ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Lookup {
    /// Answered by the registry.
    Ok,
    /// Failed.
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabel {
    result: Lookup,
}

/// The webhook's metrics.
pub struct Metrics {
    registry: Registry,
    admissions: Family<OutcomeLabel, Counter>,
    latency: Histogram,
    lookups: Family<LookupLabel, Counter>,
    cache_hits: Counter,
    object_reviews: Family<ObjectReviewLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hush_webhook");
        let admissions = Family::<OutcomeLabel, Counter>::default();
        registry.register("admissions", "Admission requests by result", admissions.clone());
        let latency = Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]);
        registry.register("admission_duration_seconds", "Time to answer an admission request", latency.clone());
        let lookups = Family::<LookupLabel, Counter>::default();
        registry.register("registry_lookups", "Registry look-ups of image configs by result", lookups.clone());
        let cache_hits = Counter::default();
        registry.register("registry_cache_hits", "Image configs answered from the cache", cache_hits.clone());
        let object_reviews = Family::<ObjectReviewLabel, Counter>::default();
        registry.register("object_reviews", "Reviews of Secrets and ConfigMaps by result", object_reviews.clone());
        Metrics { registry, admissions, latency, lookups, cache_hits, object_reviews }
    }
}

impl Metrics {
    /// Counts one admission and its duration.
    pub fn admission(&self, result: Outcome, seconds: f64) {
        self.admissions.get_or_create(&OutcomeLabel { result }).inc();
        self.latency.observe(seconds);
    }

    /// Counts one registry look-up.
    pub fn lookup(&self, result: Lookup) {
        self.lookups.get_or_create(&LookupLabel { result }).inc();
    }

    /// Counts one review of a Secret or ConfigMap.
    pub fn object_review(&self, result: ObjectReview) {
        self.object_reviews.get_or_create(&ObjectReviewLabel { result }).inc();
    }

    /// Counts one cache hit.
    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Invariant: writing to a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encoding to a String");
        out
    }
}
