//! The Landlock policy (language in `hush_contract::landlock`, `HUSH_LANDLOCK`, annotation
//! `hush.dev/landlock`) compiled into path grants. Pure: the file system is seen only
//! through a [`FsView`].
//!
//! Landlock can only grant. A denied subtree inside a granted one is carved out by granting
//! every sibling along the path down to it, and the directories on the path only
//! directory-entry rights (so names stay listable, contents do not). Files created later
//! directly in those directories are not readable; that is the price of the technique.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use hush_contract::landlock::{Policy, PolicyError, parse};

/// The rights one grant gives below its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Read files, list directories, execute.
    ReadOnly,
    /// Everything.
    ReadWrite,
    /// On a directory above a denied subtree: list (and, under `ReadWrite`, create and
    /// remove entries), but not read or execute what is inside.
    DirEntries {
        /// Whether entries may be created and removed.
        write: bool,
    },
}

/// One Landlock rule to add.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// A canonical path.
    pub path: PathBuf,
    /// What it allows below `path`.
    pub access: Access,
}

/// How compilation sees the file system.
pub trait FsView {
    /// The canonical form of `path` (symlinks resolved), if it exists.
    fn canonical(&self, path: &Path) -> Option<PathBuf>;
    /// The names in directory `path`, if it is one.
    fn list(&self, path: &Path) -> Vec<OsString>;
}

/// What compilation decided, beyond the grants.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// File-system rules; empty with `restrict_fs == false`.
    pub grants: Vec<Grant>,
    /// Whether file-system access is restricted at all.
    pub restrict_fs: bool,
    /// Paths of the policy that do not exist (not enforceable).
    pub missing: Vec<PathBuf>,
}

/// Compiles `policy` (with the service-account token directory `sa_dir`) into grants.
pub fn compile(policy: &Policy, sa_dir: Option<&Path>, fs: &impl FsView) -> Compiled {
    let mut compiled = Compiled::default();
    if policy.off {
        return compiled;
    }
    let mut canonical = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths
            .iter()
            .filter_map(|p| {
                let c = fs.canonical(p);
                if c.is_none() {
                    compiled.missing.push(p.clone());
                }
                c
            })
            .collect()
    };
    let mut deny = canonical(&policy.deny);
    let read_only = canonical(&policy.read_only);
    let read_write = canonical(&policy.read_write);
    if !policy.sa_token {
        // A missing token directory needs no protection: not a policy error.
        deny.extend(sa_dir.and_then(|d| fs.canonical(d)));
    }
    let roots: Vec<(PathBuf, Access)> = if read_only.is_empty() && read_write.is_empty() {
        if deny.is_empty() {
            return compiled;
        }
        vec![(PathBuf::from("/"), Access::ReadWrite)]
    } else {
        read_only
            .into_iter()
            .map(|p| (p, Access::ReadOnly))
            .chain(read_write.into_iter().map(|p| (p, Access::ReadWrite)))
            .collect()
    };
    compiled.restrict_fs = true;
    for (root, access) in roots {
        if deny.iter().any(|d| root.starts_with(d)) {
            continue; // the whole root is denied
        }
        carve(fs, &root, access, &deny, &mut compiled.grants);
    }
    compiled.grants.sort();
    compiled.grants.dedup();
    compiled
}

fn carve(fs: &impl FsView, dir: &Path, access: Access, deny: &[PathBuf], grants: &mut Vec<Grant>) {
    if !deny.iter().any(|d| d.starts_with(dir)) {
        grants.push(Grant { path: dir.to_path_buf(), access });
        return;
    }
    grants.push(Grant { path: dir.to_path_buf(), access: Access::DirEntries { write: access == Access::ReadWrite } });
    for name in fs.list(dir) {
        let child = dir.join(&name);
        let Some(real) = fs.canonical(&child) else { continue };
        if real != child {
            // A symlink: granting it would grant its target. Targets that reach a denied
            // subtree (like /var/run -> /run) are covered where they really are.
            if deny.iter().any(|d| d.starts_with(&real) || real.starts_with(d)) {
                continue;
            }
            grants.push(Grant { path: real, access });
            continue;
        }
        if deny.iter().any(|d| child.starts_with(d)) {
            continue;
        }
        carve(fs, &child, access, deny, grants);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A file system as a map: directory -> names; links as `name -> target` pairs.
    struct FakeFs {
        dirs: BTreeMap<PathBuf, Vec<&'static str>>,
        links: BTreeMap<PathBuf, PathBuf>,
    }

    impl FakeFs {
        fn new() -> Self {
            let mut dirs = BTreeMap::new();
            dirs.insert("/".into(), vec!["bin", "etc", "run", "tmp", "var", "usr"]);
            dirs.insert("/run".into(), vec!["secrets", "lock"]);
            dirs.insert("/run/secrets".into(), vec!["kubernetes.io", "other"]);
            dirs.insert("/run/secrets/kubernetes.io".into(), vec!["serviceaccount"]);
            dirs.insert("/run/secrets/kubernetes.io/serviceaccount".into(), vec!["token", "ca.crt"]);
            dirs.insert("/var".into(), vec!["run", "lib"]);
            dirs.insert("/usr".into(), vec!["bin"]);
            let links = BTreeMap::from([("/var/run".into(), "/run".into()), ("/bin".into(), "/usr/bin".into())]);
            FakeFs { dirs, links }
        }

        fn exists(&self, p: &Path) -> bool {
            self.dirs.contains_key(p)
                || p.parent().and_then(|d| self.dirs.get(d)).is_some_and(|names| names.iter().any(|n| p.ends_with(n)))
        }
    }

    impl FsView for FakeFs {
        fn canonical(&self, path: &Path) -> Option<PathBuf> {
            let mut out = PathBuf::from("/");
            for part in path.components().skip(1) {
                out.push(part);
                if let Some(target) = self.links.get(&out) {
                    out = target.clone();
                }
                if !self.exists(&out) {
                    return None;
                }
            }
            Some(out)
        }
        fn list(&self, path: &Path) -> Vec<OsString> {
            self.dirs.get(path).map(|v| v.iter().map(OsString::from).collect()).unwrap_or_default()
        }
    }

    fn grants(compiled: &Compiled) -> Vec<(String, Access)> {
        compiled.grants.iter().map(|g| (g.path.display().to_string(), g.access)).collect()
    }

    const SA: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

    #[test]
    fn the_default_denies_only_the_token_directory() {
        let compiled = compile(&Policy::default(), Some(Path::new(SA)), &FakeFs::new());
        assert!(compiled.restrict_fs);
        let rw = Access::ReadWrite;
        let dir = Access::DirEntries { write: true };
        assert_eq!(
            grants(&compiled),
            [
                ("/".into(), dir),
                ("/etc".into(), rw),
                ("/run".into(), dir),
                ("/run/lock".into(), rw),
                ("/run/secrets".into(), dir),
                ("/run/secrets/kubernetes.io".into(), dir),
                ("/run/secrets/other".into(), rw),
                ("/tmp".into(), rw),
                ("/usr".into(), rw),
                ("/usr/bin".into(), rw),
                // Safe: Landlock follows the resolved path, and /var/run resolves under /run.
                ("/var".into(), rw),
            ]
        );
        assert!(!compiled.grants.iter().any(|g| g.path.starts_with("/run/secrets/kubernetes.io/serviceaccount")));
    }

    #[test]
    fn sa_token_or_a_missing_directory_means_no_restriction() {
        let open = Policy { sa_token: true, ..Policy::default() };
        assert_eq!(compile(&open, Some(Path::new(SA)), &FakeFs::new()), Compiled::default());
        assert_eq!(
            compile(&Policy::default(), Some(Path::new("/nonexistent/sa")), &FakeFs::new()),
            Compiled::default()
        );
        assert_eq!(compile(&parse("off").unwrap(), Some(Path::new(SA)), &FakeFs::new()), Compiled::default());
    }

    #[test]
    fn allow_lists_restrict_to_their_roots_and_report_missing_paths() {
        let policy = parse("ro:/usr,/nope;rw:/tmp").unwrap();
        let compiled = compile(&policy, Some(Path::new(SA)), &FakeFs::new());
        assert_eq!(grants(&compiled), [("/tmp".into(), Access::ReadWrite), ("/usr".into(), Access::ReadOnly)]);
        assert_eq!(compiled.missing, [PathBuf::from("/nope")]);
    }

    #[test]
    fn a_denied_subtree_inside_a_read_only_root_is_carved_out() {
        let policy = parse("ro:/run;deny:/run/secrets/other;sa-token").unwrap();
        let compiled = compile(&policy, Some(Path::new(SA)), &FakeFs::new());
        assert_eq!(
            grants(&compiled),
            [
                ("/run".into(), Access::DirEntries { write: false }),
                ("/run/lock".into(), Access::ReadOnly),
                ("/run/secrets".into(), Access::DirEntries { write: false }),
                ("/run/secrets/kubernetes.io".into(), Access::ReadOnly),
            ]
        );
    }
}
