//! The last steps before exec: capabilities, core dumps, no-new-privs, Landlock.
//!
//! Order matters: capabilities are dropped first (dropping the bounding set needs
//! `CAP_SETPCAP`), then `PR_SET_NO_NEW_PRIVS`, then Landlock (which needs no-new-privs or
//! `CAP_SYS_ADMIN`), then exec. All of it applies to the calling thread, which is the one
//! that execs.

use crate::config::{Capabilities, Hardening};
use crate::policy::{self, Access, Compiled, FsView, Policy};
use crate::sys;
use caps::{CapSet, Capability, CapsHashSet};
use landlock::{
    ABI, Access as _, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};
use std::ffi::OsString;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

/// The Landlock ABI whose rights Hush asks for; newer kernels enforce it fully, older ones
/// as much as they can (unless the policy says `required`).
const TARGET_ABI: ABI = ABI::V6;

/// A step that failed.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    /// A capability operation.
    #[error("capabilities: {step}: {message}")]
    Capabilities {
        /// Which operation.
        step: &'static str,
        /// Why.
        message: String,
    },
    /// A process setting.
    #[error("{step}: {source}")]
    Process {
        /// Which setting.
        step: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Landlock refused the ruleset.
    #[error("Landlock: {0}")]
    Landlock(String),
    /// The policy says `required` and the kernel cannot enforce all of it.
    #[error("Landlock policy is `required` but {0}")]
    Unenforceable(String),
}

/// Everything decided and built before the point of no return: the capability sets to
/// set and the Landlock ruleset (an fd with its rules). [`Prepared::enforce`] then makes
/// only system calls and allocates nothing on success, so that it can run in a child
/// between `fork` and `execve`.
pub struct Prepared {
    drop_from_bounding: Vec<Capability>,
    keep: Option<CapsHashSet>,
    ruleset: Option<landlock::RulesetCreated>,
    required: bool,
    rules: usize,
}

/// What was applied, for the log.
#[derive(Debug)]
pub struct Applied {
    landlock: Option<(RulesetStatus, usize)>,
    /// The kernel's Landlock ABI, as far as the crate knows it.
    kernel_abi: Option<ABI>,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hush asks for TARGET_ABI's rights; the kernel enforces those of the lower ABI.
        let enforced = self.kernel_abi.map(|abi| abi.min(TARGET_ABI) as i32).unwrap_or(0);
        match self.landlock {
            None => write!(f, "not used"),
            Some((RulesetStatus::FullyEnforced, rules)) => write!(f, "fully enforced at ABI {enforced}, {rules} rules"),
            Some((RulesetStatus::PartiallyEnforced, rules)) => {
                write!(f, "partially enforced at ABI {enforced} (the kernel's), {rules} rules")
            }
            Some((RulesetStatus::NotEnforced, _)) => write!(f, "not enforced (the kernel cannot enforce these rules)"),
        }
    }
}

/// Prepares and enforces at once (the exec path).
pub fn apply(hardening: &Hardening) -> Result<Applied, HardenError> {
    prepare(hardening)?.enforce()
}

/// Reads the current capabilities, compiles the policy and builds the ruleset.
pub fn prepare(hardening: &Hardening) -> Result<Prepared, HardenError> {
    let permitted = caps::read(None, CapSet::Permitted).map_err(caps_error("reading the permitted set"))?;
    let keep: CapsHashSet = match &hardening.capabilities {
        Capabilities::Keep => permitted.clone(),
        Capabilities::Only(set) => set.intersection(&permitted).copied().collect(),
    };
    // Root regains its whole bounding set at exec: dropping capabilities of a uid-0 app
    // means nothing unless the bounding set goes too.
    let only = matches!(hardening.capabilities, Capabilities::Only(_));
    let drop_from_bounding = if hardening.clear_bounding_set || (only && sys::effective_uid() == 0) {
        let bounding = caps::read(None, CapSet::Bounding).map_err(caps_error("reading the bounding set"))?;
        bounding.difference(&keep).copied().collect()
    } else {
        Vec::new()
    };
    let compiled = policy::compile(&hardening.policy, hardening.sa_dir.as_deref(), &RealFs);
    let (ruleset, rules) = build_ruleset(&hardening.policy, &compiled)?;
    Ok(Prepared { drop_from_bounding, keep: only.then_some(keep), ruleset, required: hardening.policy.required, rules })
}

impl Prepared {
    /// Capabilities, `RLIMIT_CORE`, no-new-privs, Landlock: system calls only.
    pub fn enforce(self) -> Result<Applied, HardenError> {
        for cap in &self.drop_from_bounding {
            caps::drop(None, CapSet::Bounding, *cap).map_err(caps_error("dropping from the bounding set"))?;
        }
        caps::clear(None, CapSet::Ambient).map_err(caps_error("clearing the ambient set"))?;
        caps::clear(None, CapSet::Inheritable).map_err(caps_error("clearing the inheritable set"))?;
        if let Some(keep) = &self.keep {
            caps::set(None, CapSet::Effective, keep).map_err(caps_error("setting the effective set"))?;
            caps::set(None, CapSet::Permitted, keep).map_err(caps_error("setting the permitted set"))?;
        }
        sys::set_core_limit(1).map_err(|source| HardenError::Process { step: "setting RLIMIT_CORE to 1", source })?;
        // Best effort: /proc may be absent (a bare chroot), and the rlimit already stops
        // core files; a write error here is not worth failing for.
        let _ = sys::clear_coredump_filter();
        sys::set_no_new_privs().map_err(|source| HardenError::Process { step: "setting no-new-privs", source })?;
        let Some(ruleset) = self.ruleset else { return Ok(Applied { landlock: None, kernel_abi: None }) };
        let status = ruleset
            .restrict_self()
            .map_err(|e| if self.required { HardenError::Unenforceable(e.to_string()) } else { landlock_error(e) })?;
        if self.required && status.ruleset != RulesetStatus::FullyEnforced {
            return Err(HardenError::Unenforceable("the kernel cannot enforce all of it".into()));
        }
        let kernel_abi = match status.landlock {
            LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
            _ => None,
        };
        Ok(Applied { landlock: Some((status.ruleset, self.rules)), kernel_abi })
    }
}

fn caps_error(step: &'static str) -> impl Fn(caps::errors::CapsError) -> HardenError {
    move |e| HardenError::Capabilities { step, message: e.to_string() }
}

struct RealFs;

impl FsView for RealFs {
    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }
    fn list(&self, path: &Path) -> Vec<OsString> {
        std::fs::read_dir(path).map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect()).unwrap_or_default()
    }
}

fn fs_access(access: Access) -> landlock::BitFlags<AccessFs> {
    match access {
        Access::ReadOnly => AccessFs::from_read(TARGET_ABI),
        Access::ReadWrite => AccessFs::from_all(TARGET_ABI),
        Access::DirEntries { write: false } => AccessFs::ReadDir.into(),
        Access::DirEntries { write: true } => {
            (AccessFs::from_write(TARGET_ABI) | AccessFs::ReadDir) & !(AccessFs::WriteFile | AccessFs::Truncate)
        }
    }
}

/// Whether what `fd` opened is a directory: asked of the open file (fstat), never of the path
/// again, so a path swapped after the open (a file for a directory or the reverse) cannot
/// get the other kind's rights; rust-landlock's `path_beneath_rules` does the same. The
/// `O_PATH` descriptor is duplicated into a `File` only to call `fstat` without `unsafe`.
fn opened_is_dir(fd: &PathFd) -> std::io::Result<bool> {
    let file = std::fs::File::from(fd.as_fd().try_clone_to_owned()?);
    Ok(file.metadata()?.is_dir())
}

/// The rights a grant gets on what was opened: directory rights mean nothing on a file, and
/// asking for them would mark the ruleset only partially enforced.
fn rights_on(access: landlock::BitFlags<AccessFs>, is_dir: bool) -> landlock::BitFlags<AccessFs> {
    if is_dir { access } else { access & AccessFs::from_file(TARGET_ABI) }
}

fn landlock_error(e: impl std::fmt::Display) -> HardenError {
    HardenError::Landlock(e.to_string())
}

fn build_ruleset(
    policy: &Policy,
    compiled: &Compiled,
) -> Result<(Option<landlock::RulesetCreated>, usize), HardenError> {
    if policy.required && !compiled.missing.is_empty() {
        let missing: Vec<String> = compiled.missing.iter().map(|p| p.display().to_string()).collect();
        return Err(HardenError::Unenforceable(format!("these paths do not exist: {}", missing.join(", "))));
    }
    for path in &compiled.missing {
        tracing::warn!("Landlock policy path {} does not exist; its rule is skipped", path.display());
    }
    let restrict_net = policy.connect.is_some() || policy.bind.is_some();
    if !compiled.restrict_fs && !restrict_net {
        return Ok((None, 0));
    }
    let level = if policy.required { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let unenforceable = |e: landlock::RulesetError| {
        if policy.required { HardenError::Unenforceable(e.to_string()) } else { landlock_error(e) }
    };
    let mut ruleset = Ruleset::default().set_compatibility(level);
    if compiled.restrict_fs {
        ruleset = ruleset.handle_access(AccessFs::from_all(TARGET_ABI)).map_err(unenforceable)?;
    }
    if policy.connect.is_some() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp).map_err(unenforceable)?;
    }
    if policy.bind.is_some() {
        ruleset = ruleset.handle_access(AccessNet::BindTcp).map_err(unenforceable)?;
    }
    let mut created = ruleset.create().map_err(unenforceable)?;
    for grant in &compiled.grants {
        let fd = PathFd::new(&grant.path).map_err(landlock_error)?;
        let is_dir = opened_is_dir(&fd)
            .map_err(|e| landlock_error(format!("stat of the opened {}: {e}", grant.path.display())))?;
        let access = rights_on(fs_access(grant.access), is_dir);
        created = created.add_rule(PathBeneath::new(fd, access)).map_err(unenforceable)?;
    }
    for port in policy.connect.iter().flatten() {
        created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(unenforceable)?;
    }
    for port in policy.bind.iter().flatten() {
        created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp)).map_err(unenforceable)?;
    }
    let rules = compiled.grants.len() + policy.connect.iter().flatten().count() + policy.bind.iter().flatten().count();
    Ok((Some(created), rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race itself (a path swapped between the open and the stat) cannot be timed in a
    /// test; this swaps it deterministically between the two steps instead: what was opened
    /// decides, not what the path names afterwards.
    #[test]
    fn a_path_swapped_after_the_open_keeps_the_rights_of_what_was_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swapped");
        let all = fs_access(Access::ReadWrite);

        std::fs::write(&path, b"a file").unwrap();
        let opened_file = PathFd::new(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        // The old way, a stat of the path after the open, says directory here.
        assert!(std::fs::metadata(&path).unwrap().is_dir());
        assert!(!opened_is_dir(&opened_file).unwrap(), "the opened file is a file, whatever the path is now");
        assert_eq!(rights_on(all, opened_is_dir(&opened_file).unwrap()), all & AccessFs::from_file(TARGET_ABI));

        let opened_dir = PathFd::new(&path).unwrap();
        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, b"now a file").unwrap();
        assert!(!std::fs::metadata(&path).unwrap().is_dir());
        assert!(opened_is_dir(&opened_dir).unwrap(), "the opened directory is a directory, whatever the path is now");
        assert_eq!(rights_on(all, opened_is_dir(&opened_dir).unwrap()), all);
    }

    #[test]
    fn a_file_gets_only_file_rights_and_a_directory_all_it_asked_for() {
        for access in [Access::ReadOnly, Access::ReadWrite] {
            let asked = fs_access(access);
            assert_eq!(rights_on(asked, true), asked);
            let on_file = rights_on(asked, false);
            assert!(
                on_file.contains(AccessFs::ReadFile) && !on_file.contains(AccessFs::ReadDir),
                "{access:?}: {on_file:?}"
            );
        }
    }
}
