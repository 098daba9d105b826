//! Network edge of `--kube-pod-names`: a watch of this node's Pods (field selector
//! `spec.nodeName=<node>`) through the API server with the `kube` crate, in-cluster (the
//! ServiceAccount token kube re-reads from its file as the kubelet rotates it), feeding the pure
//! [`PodIndex`] that audit lines ask for names.
//!
//! The watch runs on a thread of its own with a current-thread Tokio runtime, so the guard's
//! event loop stays synchronous: it only takes the index's lock for one look-up per line side,
//! and the watch holds that lock only to apply one update (never across an await). Whatever
//! the API server does — down at start, refusing the token, gone later — the guard protects
//! as before; lines then carry the cgroup-derived ids only. Failures are retried with kube's
//! backoff (0.8 s doubling to 30 s, jittered), and logged once per change (stderr), not per retry.

use crate::cgroup::Identity;
use crate::pods::{Names, PodIndex, PodRecord, WatchHealth};
use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use std::sync::{Arc, Mutex, PoisonError};

/// Why the watch could not even be set up (then the guard runs without names).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no node name (set --node or $NODE_NAME)")]
    NoNode,
    #[error("in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's ca.crt and namespace)")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("starting the watch thread")]
    Thread(#[source] std::io::Error),
}

/// The index shared between the watch thread and the event loop.
#[derive(Clone, Debug, Default)]
pub struct SharedPods(Arc<Mutex<PodIndex>>);

impl SharedPods {
    /// The names of the Pod and container `id` identifies (all `None` when unknown).
    pub fn names(&self, id: &Identity) -> Names {
        self.lock().names(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PodIndex> {
        // A panic elsewhere while holding the lock leaves a usable index: names are best effort.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts watching the Pods of `node` on a new thread; returns at once (before the API server
/// has answered). Errors only when there is no in-cluster configuration or no thread.
pub fn spawn(node: &str) -> Result<SharedPods, SetupError> {
    if node.is_empty() {
        return Err(SetupError::NoNode);
    }
    let config = kube::Config::incluster().map_err(SetupError::InCluster)?;
    let pods = SharedPods::default();
    let index = pods.clone();
    let node = node.to_owned();
    std::thread::Builder::new()
        .name("pod-watch".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("guard: warning: --kube-pod-names: no Tokio runtime ({e}); audit lines name no Pods");
                    return;
                }
            };
            runtime.block_on(watch(config, &node, &index));
        })
        .map_err(SetupError::Thread)?;
    Ok(pods)
}

async fn watch(config: kube::Config, node: &str, pods: &SharedPods) {
    // kube's TLS (rustls) takes the process-wide provider: ring, the one linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = config.cluster_url.to_string();
    let client = match kube::Client::try_from(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "guard: warning: --kube-pod-names: building the API client for {server}: {e}; audit lines name no Pods"
            );
            return;
        }
    };
    let api: Api<Pod> = Api::all(client);
    let selector = format!("spec.nodeName={node}");
    let config = watcher::Config::default().fields(&selector);
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut health = WatchHealth::default();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => pods.lock().begin_relist(),
            Ok(Event::InitApply(pod)) => {
                if let Some(r) = PodRecord::from_pod(&pod) {
                    pods.lock().relisted(r);
                }
            }
            Ok(Event::InitDone) => {
                let known = pods.lock().end_relist();
                if health.listed() {
                    eprintln!(
                        "guard: watching the Pods of node {node} at {server}: {known} Pods; audit lines name them"
                    );
                }
            }
            Ok(Event::Apply(pod)) => {
                if let Some(r) = PodRecord::from_pod(&pod) {
                    pods.lock().apply(r);
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    pods.lock().delete(uid);
                }
            }
            Err(e) => {
                if health.failed() {
                    eprintln!(
                        "guard: warning: watching the Pods of node {node} at {server}: {e}; retrying with backoff, \
                         audit lines carry the cgroup-derived ids only (and names from the last list) until it answers"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside a Pod (the host suite, a VM) the watch is not started and says why; the guard
    /// then runs on without names (main.rs warns once).
    #[test]
    fn outside_a_cluster_the_watch_is_refused_at_setup_naming_what_is_missing() {
        assert!(matches!(spawn(""), Err(SetupError::NoNode)));
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            eprintln!("skip: running in a Pod");
            return;
        }
        let e = spawn("node-a").unwrap_err();
        assert!(matches!(e, SetupError::InCluster(_)), "{e:?}");
        assert!(crate::error_chain(&e).contains("KUBERNETES_SERVICE_HOST"), "{}", crate::error_chain(&e));
    }

    #[test]
    fn an_empty_index_names_nothing() {
        let pods = SharedPods::default();
        let id = Identity { pod_uid: Some("0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into()), container_id: None };
        assert_eq!(pods.names(&id), Names::default());
    }
}
