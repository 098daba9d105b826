//! Pure parsing of cgroup v2 paths into Kubernetes identities, and of `/proc/self/mountinfo`
//! into the cgroup2 mount point. No I/O: `resolve.rs` walks the file system.

/// What a cgroup path says about the container it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// 64-hex-digit container id (containerd, CRI-O, docker), if the path names one.
    pub container_id: Option<String>,
    /// Pod UID with dashes (`0b6e...-...`), if the path is under a kubepods hierarchy.
    pub pod_uid: Option<String>,
}

/// Parses a cgroup path such as
/// - systemd driver: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope`
/// - cgroupfs driver: `/kubepods/burstable/pod<uid>/<id>`
/// - docker/CRI-O scopes: `docker-<id>.scope`, `crio-<id>.scope`, `crio-conmon-<id>.scope`
pub fn identity(path: &str) -> Identity {
    let mut id = Identity::default();
    let in_kubepods = path.split('/').any(|c| c == "kubepods" || c.starts_with("kubepods"));
    for comp in path.split('/') {
        if in_kubepods && let Some(uid) = pod_uid(comp) {
            id.pod_uid = Some(uid);
        }
        if let Some(cid) = container_id(comp) {
            id.container_id = Some(cid);
        }
    }
    id
}

fn pod_uid(comp: &str) -> Option<String> {
    // systemd: "kubepods-besteffort-pod1234_5678.slice"; cgroupfs: "pod1234-5678"
    let comp = comp.strip_suffix(".slice").unwrap_or(comp);
    let at = comp.rfind("pod")?;
    if at != 0 && !comp[..at].ends_with('-') {
        return None;
    }
    let uid = comp[at + 3..].replace('_', "-");
    is_uid(&uid).then_some(uid)
}

fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn container_id(comp: &str) -> Option<String> {
    let comp = comp.strip_suffix(".scope").unwrap_or(comp);
    let hex = match comp.rfind('-') {
        Some(i) => &comp[i + 1..],
        None => comp,
    };
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_ascii_lowercase())
}

/// The mount point of the cgroup v2 hierarchy in a `/proc/self/mountinfo` text, if any.
pub fn cgroup2_mount(mountinfo: &str) -> Option<&str> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| left.split_whitespace().nth(4)).flatten()
    })
}

/// The cgroup v2 path in a `/proc/<pid>/cgroup` text (its `0::` line).
pub fn v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "3f9b2a1c0d4e5f60718293a4b5c6d7e8f9011223344556677889aabbccddeeff";
    const UID: &str = "0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn systemd_driver_containerd() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope",
            UID.replace('-', "_")
        );
        assert_eq!(identity(&p), Identity { container_id: Some(CID.into()), pod_uid: Some(UID.into()) });
    }

    #[test]
    fn systemd_driver_guaranteed_pod_and_crio() {
        let p = format!("/kubepods.slice/kubepods-pod{}.slice/crio-{CID}.scope", UID.replace('-', "_"));
        assert_eq!(identity(&p), Identity { container_id: Some(CID.into()), pod_uid: Some(UID.into()) });
    }

    #[test]
    fn cgroupfs_driver() {
        let p = format!("/kubepods/besteffort/pod{UID}/{CID}");
        assert_eq!(identity(&p), Identity { container_id: Some(CID.into()), pod_uid: Some(UID.into()) });
        let p = format!("/kubepods/pod{UID}/{CID}");
        assert_eq!(identity(&p).pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn pod_level_cgroup_has_no_container() {
        let p = format!("/kubepods/burstable/pod{UID}");
        assert_eq!(identity(&p), Identity { container_id: None, pod_uid: Some(UID.into()) });
    }

    #[test]
    fn docker_outside_kubernetes_has_container_but_no_pod() {
        let p = format!("/system.slice/docker-{CID}.scope");
        assert_eq!(identity(&p), Identity { container_id: Some(CID.into()), pod_uid: None });
    }

    #[test]
    fn host_paths_have_neither() {
        for p in ["/", "", "/user.slice/user-0.slice/session-1.scope", "/system.slice/sshd.service", "/init.scope"] {
            assert_eq!(identity(p), Identity::default(), "{p}");
        }
    }

    #[test]
    fn lookalikes_are_rejected() {
        // "pod" outside kubepods, short ids, non-hex, uid with wrong grouping
        assert_eq!(identity(&format!("/user.slice/pod{UID}")).pod_uid, None);
        assert_eq!(identity("/system.slice/docker-abc.scope").container_id, None);
        assert_eq!(identity(&format!("/kubepods/pod{}", "z".repeat(36))).pod_uid, None);
        assert_eq!(identity("/kubepods/pod0b6e2f7a1c2d4e5f8a9b0c1d2e3f4a5b").pod_uid, None);
        assert_eq!(identity(&format!("/kubepods/xpod{UID}")).pod_uid, None);
        assert_eq!(identity(&format!("/x/{}", "g".repeat(64))).container_id, None);
    }

    #[test]
    fn uppercase_container_id_is_normalised() {
        let p = format!("/kubepods/pod{UID}/{}", CID.to_uppercase());
        assert_eq!(identity(&p).container_id.as_deref(), Some(CID));
    }

    #[test]
    fn finds_cgroup2_mount() {
        let mi = "\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
30 22 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw
40 30 0:35 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
41 30 0:36 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu";
        assert_eq!(cgroup2_mount(mi), Some("/sys/fs/cgroup/unified"));
        assert_eq!(cgroup2_mount("41 30 0:36 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu"), None);
        assert_eq!(cgroup2_mount(""), None);
    }

    #[test]
    fn v2_path_from_proc_cgroup() {
        assert_eq!(v2_path("0::/kubepods/pod1/c1\n"), Some("/kubepods/pod1/c1"));
        assert_eq!(v2_path("12:cpu:/x\n0::/\n"), Some("/"));
        assert_eq!(v2_path("12:cpu:/x\n"), None);
    }
}
