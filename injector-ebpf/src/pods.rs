//! Pure: this node's Pods by UID, so that an audit line's cgroup-derived ids (Pod UID,
//! container id) gain the Pod's namespace and name and the container's name. No I/O: the watch
//! of the API server that feeds it is `podwatch.rs`.
//!
//! The index follows a Kubernetes watch: single updates ([`PodIndex::apply`],
//! [`PodIndex::delete`]) and full re-lists (`begin_relist`, `relisted`..., `end_relist`), after
//! which the Pods the list did not name are dropped (deleted while the watch was down). A Pod's
//! containers are named from `status.containerStatuses`, `initContainerStatuses` and
//! `ephemeralContainerStatuses` (debug containers): each status's current `containerID` and the
//! one of its last terminated run, so a line about a restarted container's previous process
//! still names it.

use crate::cgroup::Identity;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use std::collections::{HashMap, HashSet};

/// What the index knows of one Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Container id as the cgroup path spells it (lowercase hex, no `containerd://`) -> the
    /// container's name.
    pub containers: HashMap<String, String>,
}

impl PodRecord {
    /// The record of `pod`, if it has a UID, a namespace and a name (every Pod the API server
    /// returns has them).
    pub fn from_pod(pod: &Pod) -> Option<PodRecord> {
        let meta = &pod.metadata;
        let (uid, namespace, name) = (meta.uid.clone()?, meta.namespace.clone()?, meta.name.clone()?);
        let mut containers = HashMap::new();
        if let Some(status) = &pod.status {
            let lists =
                [&status.init_container_statuses, &status.container_statuses, &status.ephemeral_container_statuses];
            for s in lists.into_iter().flatten().flatten() {
                for id in status_ids(s) {
                    containers.insert(id, s.name.clone());
                }
            }
        }
        Some(PodRecord { uid, namespace, name, containers })
    }
}

/// The container ids one status names: the running (or last) one, and that of the run before a
/// restart (`lastState.terminated.containerID`).
fn status_ids(s: &ContainerStatus) -> impl Iterator<Item = String> + '_ {
    let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref()).and_then(|t| t.container_id.as_deref());
    last.into_iter().chain(s.container_id.as_deref()).filter_map(container_id)
}

/// `containerd://<id>`, `cri-o://<id>`, `docker://<id>` -> `<id>` in lowercase, as
/// [`crate::cgroup::identity`] reads it from a cgroup path; `None` for anything else.
pub fn container_id(runtime_id: &str) -> Option<String> {
    let (_, id) = runtime_id.split_once("://")?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// The names an audit line's side gains: each `None` when the index does not know it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

/// This node's Pods by UID.
#[derive(Debug, Default)]
pub struct PodIndex {
    pods: HashMap<String, PodRecord>,
    /// The UIDs a re-list in progress has named so far.
    relisting: Option<HashSet<String>>,
}

impl PodIndex {
    /// A Pod was added or changed: its record replaces the old one (a restarted container's
    /// new id, a debug container added, a container id no longer in the status dropped).
    pub fn apply(&mut self, record: PodRecord) {
        if let Some(seen) = &mut self.relisting {
            seen.insert(record.uid.clone());
        }
        self.pods.insert(record.uid.clone(), record);
    }

    /// A Pod was deleted.
    pub fn delete(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// A full list begins (the watch started or restarted). Lines keep being named from what
    /// the index holds until [`PodIndex::end_relist`].
    pub fn begin_relist(&mut self) {
        self.relisting = Some(HashSet::new());
    }

    /// One Pod of the list.
    pub fn relisted(&mut self, record: PodRecord) {
        self.relisting.get_or_insert_with(HashSet::new);
        self.apply(record);
    }

    /// The list is complete: Pods it did not name are gone. Returns how many Pods are known.
    pub fn end_relist(&mut self) -> usize {
        if let Some(seen) = self.relisting.take() {
            self.pods.retain(|uid, _| seen.contains(uid));
        }
        self.pods.len()
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The names of the Pod and container a cgroup path identifies; all `None` for a Pod the
    /// index does not know (the API unreachable, a Pod of another node, not a Pod at all). A
    /// known Pod whose status does not list the container id yet (it just started) still
    /// gets its namespace and name.
    pub fn names(&self, id: &Identity) -> Names {
        let Some(pod) = id.pod_uid.as_deref().and_then(|uid| self.pods.get(uid)) else {
            return Names::default();
        };
        Names {
            namespace: Some(pod.namespace.clone()),
            pod: Some(pod.name.clone()),
            container: id.container_id.as_deref().and_then(|c| pod.containers.get(c)).cloned(),
        }
    }
}

/// When the watch's health is worth a line on stderr: the first failure after a success (or
/// at start) and the first success after a failure, nothing in between (the watch retries with
/// backoff; each retry's error would be noise).
///
/// At start it is neither failing nor synced: the first error is worth a warning, and so is
/// the first complete list.
#[derive(Debug, Default)]
pub struct WatchHealth {
    failing: bool,
    synced: bool,
}

impl WatchHealth {
    /// An error from the watch: `true` when it should be logged.
    pub fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.failing, true)
    }

    /// A list completed: `true` when it should be logged (the first one, or the first after a
    /// failure).
    pub fn listed(&mut self) -> bool {
        let log = self.failing || !self.synced;
        self.failing = false;
        self.synced = true;
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UID: &str = "0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    const UID2: &str = "1c7f3a8b-2d3e-4f50-9b0c-1d2e3f4a5b6c";

    fn cid(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn pod(uid: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"uid": uid, "namespace": "shop", "name": "shop-7d9c", "labels": {"app": "shop"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn running(name: &str, id: &str) -> serde_json::Value {
        json!({"name": name, "containerID": format!("containerd://{id}"), "image": "i", "imageID": "",
               "ready": true, "restartCount": 0, "state": {"running": {}}})
    }

    fn ident(uid: &str, container: Option<&str>) -> Identity {
        Identity { pod_uid: Some(uid.to_owned()), container_id: container.map(str::to_owned) }
    }

    fn named(container: Option<&str>) -> Names {
        Names { namespace: Some("shop".into()), pod: Some("shop-7d9c".into()), container: container.map(str::to_owned) }
    }

    #[test]
    fn runtime_ids_become_the_cgroup_spelling() {
        let id = cid(0xab);
        assert_eq!(container_id(&format!("containerd://{id}")), Some(id.clone()));
        assert_eq!(container_id(&format!("cri-o://{}", id.to_uppercase())), Some(id.clone()));
        assert_eq!(container_id(&format!("docker://{id}")), Some(id.clone()));
        for bad in [id.as_str(), "containerd://", "containerd://abc", &format!("containerd://{}", "g".repeat(64))] {
            assert_eq!(container_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_kind_of_container_status_is_named() {
        let p = pod(
            UID,
            json!({
                "initContainerStatuses": [running("hush-injector-install", &cid(1))],
                "containerStatuses": [running("app", &cid(2)), running("sidecar", &cid(3))],
                "ephemeralContainerStatuses": [running("debugger-x7k2p", &cid(4))],
            }),
        );
        let r = PodRecord::from_pod(&p).unwrap();
        assert_eq!((r.uid.as_str(), r.namespace.as_str(), r.name.as_str()), (UID, "shop", "shop-7d9c"));
        let mut index = PodIndex::default();
        index.apply(r);
        for (n, name) in [(1, "hush-injector-install"), (2, "app"), (3, "sidecar"), (4, "debugger-x7k2p")] {
            assert_eq!(index.names(&ident(UID, Some(&cid(n)))), named(Some(name)), "{name}");
        }
    }

    #[test]
    fn a_pod_without_status_or_ids_is_named_without_containers() {
        // Pending: no status yet; then a container waiting, without a containerID.
        let mut index = PodIndex::default();
        index.apply(PodRecord::from_pod(&pod(UID, json!(null))).unwrap());
        assert_eq!(index.names(&ident(UID, Some(&cid(2)))), named(None));
        let waiting = json!({"containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": false,
                             "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]});
        index.apply(PodRecord::from_pod(&pod(UID, waiting)).unwrap());
        assert_eq!(index.names(&ident(UID, Some(&cid(2)))), named(None));
        // The pod-level cgroup (no container id).
        assert_eq!(index.names(&ident(UID, None)), named(None));
    }

    #[test]
    fn unknown_uids_and_lines_without_a_pod_get_no_names() {
        let mut index = PodIndex::default();
        assert_eq!(index.names(&ident(UID, Some(&cid(2)))), Names::default());
        index.apply(PodRecord::from_pod(&pod(UID, json!({"containerStatuses": [running("app", &cid(2))]}))).unwrap());
        assert_eq!(index.names(&ident(UID2, Some(&cid(2)))), Names::default(), "another Pod's uid");
        assert_eq!(index.names(&Identity::default()), Names::default(), "a host process");
        let no_pod = Identity { pod_uid: None, container_id: Some(cid(2)) };
        assert_eq!(index.names(&no_pod), Names::default(), "a container outside Kubernetes");
        // A Pod object without a uid is not indexed at all.
        let mut p = pod(UID, json!(null));
        p.metadata.uid = None;
        assert_eq!(PodRecord::from_pod(&p), None);
    }

    #[test]
    fn a_restarted_container_is_named_by_its_new_and_its_previous_id() {
        let mut index = PodIndex::default();
        index.apply(PodRecord::from_pod(&pod(UID, json!({"containerStatuses": [running("app", &cid(2))]}))).unwrap());
        let mut restarted = running("app", &cid(5));
        restarted["restartCount"] = json!(1);
        restarted["lastState"] =
            json!({"terminated": {"exitCode": 66, "containerID": format!("containerd://{}", cid(2))}});
        index.apply(PodRecord::from_pod(&pod(UID, json!({"containerStatuses": [restarted]}))).unwrap());
        assert_eq!(index.names(&ident(UID, Some(&cid(5)))), named(Some("app")));
        assert_eq!(index.names(&ident(UID, Some(&cid(2)))), named(Some("app")), "the previous run's id");
        // A second restart: the first id is in no status any more and is forgotten.
        let mut again = running("app", &cid(6));
        again["lastState"] = json!({"terminated": {"exitCode": 66, "containerID": format!("containerd://{}", cid(5))}});
        index.apply(PodRecord::from_pod(&pod(UID, json!({"containerStatuses": [again]}))).unwrap());
        assert_eq!(index.names(&ident(UID, Some(&cid(6)))), named(Some("app")));
        assert_eq!(index.names(&ident(UID, Some(&cid(5)))), named(Some("app")));
        assert_eq!(index.names(&ident(UID, Some(&cid(2)))), named(None));
    }

    #[test]
    fn an_ephemeral_debug_container_added_later_is_named() {
        let mut index = PodIndex::default();
        let before = json!({"containerStatuses": [running("app", &cid(2))]});
        index.apply(PodRecord::from_pod(&pod(UID, before)).unwrap());
        assert_eq!(index.names(&ident(UID, Some(&cid(7)))), named(None));
        let after = json!({"containerStatuses": [running("app", &cid(2))],
                           "ephemeralContainerStatuses": [running("debugger-abcde", &cid(7))]});
        index.apply(PodRecord::from_pod(&pod(UID, after)).unwrap());
        assert_eq!(index.names(&ident(UID, Some(&cid(7)))), named(Some("debugger-abcde")));
        assert_eq!(index.names(&ident(UID, Some(&cid(2)))), named(Some("app")));
    }

    #[test]
    fn update_and_delete() {
        let mut index = PodIndex::default();
        index.apply(PodRecord::from_pod(&pod(UID, json!({"containerStatuses": [running("app", &cid(2))]}))).unwrap());
        index.apply(PodRecord::from_pod(&pod(UID2, json!({"containerStatuses": [running("db", &cid(3))]}))).unwrap());
        assert_eq!(index.len(), 2);
        // Same uid, changed: replaced, not merged.
        let mut renamed = pod(UID2, json!({"containerStatuses": [running("db2", &cid(8))]}));
        renamed.metadata.namespace = Some("data".into());
        index.apply(PodRecord::from_pod(&renamed).unwrap());
        let n = index.names(&ident(UID2, Some(&cid(8))));
        assert_eq!((n.namespace.as_deref(), n.container.as_deref()), (Some("data"), Some("db2")));
        assert_eq!(index.names(&ident(UID2, Some(&cid(3)))).container, None);
        index.delete(UID2);
        assert_eq!(index.names(&ident(UID2, Some(&cid(8)))), Names::default());
        assert_eq!(index.names(&ident(UID, Some(&cid(2)))), named(Some("app")), "the other Pod stays");
        index.delete(UID2);
        index.delete("not-a-uid");
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_relist_drops_the_pods_deleted_while_the_watch_was_down() {
        let mut index = PodIndex::default();
        index.begin_relist();
        index
            .relisted(PodRecord::from_pod(&pod(UID, json!({"containerStatuses": [running("app", &cid(2))]}))).unwrap());
        index
            .relisted(PodRecord::from_pod(&pod(UID2, json!({"containerStatuses": [running("db", &cid(3))]}))).unwrap());
        assert_eq!(index.end_relist(), 2);
        // The watch breaks; UID2 is deleted meanwhile; the re-list names only UID.
        index.begin_relist();
        // Until the list is complete, lines are still named from what the index holds.
        assert_eq!(index.names(&ident(UID2, Some(&cid(3)))).container.as_deref(), Some("db"));
        index
            .relisted(PodRecord::from_pod(&pod(UID, json!({"containerStatuses": [running("app", &cid(9))]}))).unwrap());
        assert_eq!(index.names(&ident(UID, Some(&cid(9)))), named(Some("app")), "updated at once");
        assert_eq!(index.end_relist(), 1);
        assert_eq!(index.names(&ident(UID2, Some(&cid(3)))), Names::default());
        // A Pod applied during a re-list (a watch event) counts as seen.
        index.begin_relist();
        index.apply(PodRecord::from_pod(&pod(UID2, json!(null))).unwrap());
        assert_eq!(index.end_relist(), 1);
        assert!(!index.is_empty());
        // An empty list empties the index; end_relist without a begin changes nothing.
        index.begin_relist();
        assert_eq!(index.end_relist(), 0);
        index.apply(PodRecord::from_pod(&pod(UID, json!(null))).unwrap());
        assert_eq!(index.end_relist(), 1);
    }

    #[test]
    fn health_lines_once_per_change() {
        let mut h = WatchHealth::default();
        // API server down at start: one warning, then silence while retrying.
        assert!(h.failed());
        assert!(!h.failed());
        assert!(!h.failed());
        // It answers: one line; further lists are silent.
        assert!(h.listed());
        assert!(!h.listed());
        // Down again: one warning; back: one line.
        assert!(h.failed());
        assert!(!h.failed());
        assert!(h.listed());
        // Up at start: the first list is logged.
        let mut h = WatchHealth::default();
        assert!(h.listed());
        assert!(!h.listed());
    }
}
