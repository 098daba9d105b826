//! File-system edge for audit lines: cgroup v2 id -> cgroup path (a cached walk of the cgroup2
//! mount; a cgroup's id is its directory's inode number), and the fields of a target the BPF
//! side could not read (pid-addressed hooks) from `/proc/<tgid>`.

use crate::cgroup;
use crate::maps::{COMM_LEN, Proc};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct CgroupPaths {
    root: Option<PathBuf>,
    cache: HashMap<u64, String>,
    last_walk: Option<Instant>,
}

impl CgroupPaths {
    pub fn new() -> Self {
        let root = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|mi| cgroup::cgroup2_mount(&mi).map(PathBuf::from));
        CgroupPaths { root, cache: HashMap::new(), last_walk: None }
    }

    /// The path of cgroup `id`, which process `tgid` was in when the event was recorded. Read
    /// from `/proc/<tgid>/cgroup` at once (checked against `id`: the process may have moved or
    /// its pid been reused), so a new Pod's first lines name it; the rate-limited walk of
    /// [`CgroupPaths::path`] only when that fails (the process is gone).
    pub fn path_of(&mut self, id: u64, tgid: u32) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.cache.get(&id) {
            return Some(p.clone());
        }
        if let Some(p) = self.read_proc(id, tgid) {
            self.cache.insert(id, p.clone());
            return Some(p);
        }
        self.path(id)
    }

    fn read_proc(&self, id: u64, tgid: u32) -> Option<String> {
        let text = std::fs::read_to_string(format!("/proc/{tgid}/cgroup")).ok()?;
        let path = cgroup::v2_path(&text)?;
        let md = std::fs::metadata(self.root.as_ref()?.join(path.trim_start_matches('/'))).ok()?;
        (md.ino() == id).then(|| path.to_owned())
    }

    /// The path of cgroup `id` relative to the cgroup2 root (`/kubepods/...`), if found.
    pub fn path(&mut self, id: u64) -> Option<String> {
        if id == 0 {
            return None;
        }
        if let Some(p) = self.cache.get(&id) {
            return Some(p.clone());
        }
        // A miss means a new cgroup: rewalk, at most once a second (floods of unknown ids).
        if self.last_walk.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        self.last_walk = Some(Instant::now());
        let root = self.root.clone()?;
        self.cache.clear();
        walk(&root, &root, 0, &mut self.cache);
        self.cache.get(&id).cloned()
    }
}

impl Default for CgroupPaths {
    fn default() -> Self {
        Self::new()
    }
}

fn walk(root: &Path, dir: &Path, depth: u32, out: &mut HashMap<u64, String>) {
    if depth > 16 {
        return;
    }
    if let Ok(md) = std::fs::metadata(dir) {
        let rel = dir.strip_prefix(root).map(|p| format!("/{}", p.display())).unwrap_or_else(|_| "/".into());
        out.insert(md.ino(), rel);
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &e.path(), depth + 1, out);
        }
    }
}

impl CgroupPaths {
    /// Completes a target the BPF side knew only by tgid: comm, uid, cgroup id and path from
    /// `/proc/<tgid>`; returns the cgroup path.
    pub fn fill_from_proc(&mut self, p: &mut Proc) -> Option<String> {
        let base = format!("/proc/{}", p.tgid);
        if let Ok(comm) = std::fs::read_to_string(format!("{base}/comm")) {
            let b = comm.trim_end().as_bytes();
            let n = b.len().min(COMM_LEN - 1);
            p.comm = [0; COMM_LEN];
            p.comm[..n].copy_from_slice(&b[..n]);
        }
        if let Ok(status) = std::fs::read_to_string(format!("{base}/status"))
            && let Some(uid) = status.lines().find_map(|l| l.strip_prefix("Uid:"))
            && let Some(real) = uid.split_whitespace().next().and_then(|u| u.parse().ok())
        {
            p.uid = real;
        }
        let cg = std::fs::read_to_string(format!("{base}/cgroup")).ok()?;
        let path = cgroup::v2_path(&cg)?.to_owned();
        if let Some(root) = &self.root
            && let Ok(md) = std::fs::metadata(root.join(path.trim_start_matches('/')))
        {
            p.cgroup_id = md.ino();
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup created after the last walk (a new Pod) is named at once, not after the next
    /// walk a second later: the line is written from /proc/<tgid>/cgroup.
    #[test]
    fn a_cgroup_unknown_to_the_cache_is_resolved_at_event_time() {
        let mut paths = CgroupPaths::new();
        let Some(root) = paths.root.clone() else {
            eprintln!("skip: no cgroup2 mount");
            return;
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = cgroup::v2_path(&own).unwrap().to_owned();
        let id = std::fs::metadata(root.join(own.trim_start_matches('/'))).unwrap().ino();
        // As right after a walk that predates the cgroup: empty cache, walk rate-limited.
        paths.cache.clear();
        paths.last_walk = Some(Instant::now());
        assert_eq!(paths.path_of(id, std::process::id()), Some(own.clone()));
        // The id is checked: another id with our pid is not given our path.
        paths.cache.clear();
        assert_eq!(paths.read_proc(id + 1, std::process::id()), None);
        assert_eq!(paths.path_of(0, std::process::id()), None);
    }
}
