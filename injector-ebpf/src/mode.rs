//! Pure: which enforcement mode to run, and the checks that must pass before loading, each
//! failure named with what to do. The facts are gathered by `loader::HostFacts::gather`.

use std::fmt;

/// `--mode` as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Requested {
    /// The strongest that loads: lsm, else fentry, else tracepoint.
    Auto,
    /// BPF LSM hooks deny with EPERM (needs `bpf` in the kernel's `lsm=` list).
    Lsm,
    /// fentry on the same security_* functions SIGKILLs the offender (BPF trampolines; no
    /// syscall slow path).
    Fentry,
    /// Syscall tracepoints SIGKILL the offender before it returns to user space.
    Tracepoint,
    /// Log only.
    Audit,
}

/// A mode the guard actually runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Lsm,
    Fentry,
    Tracepoint,
    Audit,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Lsm => "lsm",
            Mode::Fentry => "fentry",
            Mode::Tracepoint => "tracepoint",
            Mode::Audit => "audit",
        })
    }
}

/// What the host offers, as read from `/sys` and `/proc`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `/sys/kernel/btf/vmlinux` exists.
    pub btf: bool,
    /// A bpffs is mounted at the pin root's parent.
    pub bpffs: bool,
    /// tracefs (or debugfs/tracing) is mounted, so tracepoints can be found.
    pub tracefs: bool,
    /// `CapEff` of this process.
    pub cap_eff: u64,
    /// Contents of `/sys/kernel/security/lsm`, if securityfs is readable.
    pub lsm_list: Option<String>,
    /// `kernel.io_uring_disabled` (absent before 6.6).
    pub io_uring_disabled: Option<u32>,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Each reason the guard cannot start, with the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreflightError {
    #[error(
        "no kernel BTF: /sys/kernel/btf/vmlinux is missing, and the guard's CO-RE programs need it; \
         run a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution's since 2021)"
    )]
    NoBtf,
    #[error("no bpffs at {0}: mount it (`mount -t bpf bpf /sys/fs/bpf`, or a hostPath /sys/fs/bpf in the DaemonSet)")]
    NoBpffs(String),
    #[error(
        "no tracefs: mount it (`mount -t tracefs tracefs /sys/kernel/tracing`, or a hostPath in the DaemonSet); \
         the guard attaches syscall and sched tracepoints"
    )]
    NoTracefs,
    #[error(
        "missing privileges: the guard needs CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (effective set is {0:#x}); \
         run it as root or as a privileged DaemonSet container"
    )]
    MissingPrivileges(u64),
    #[error(
        "BPF LSM is not active (/sys/kernel/security/lsm: {0:?}); add `bpf` to the kernel command line's \
         lsm= list (e.g. lsm=landlock,lockdown,yama,bpf) and reboot, or use --mode tracepoint"
    )]
    LsmNotActive(String),
}

/// Checks what every mode needs.
pub fn preflight(f: &HostFacts, pin_root_parent: &str) -> Result<(), PreflightError> {
    let need = (1 << CAP_SYS_ADMIN) | (1 << CAP_PERFMON) | (1 << CAP_BPF);
    if f.cap_eff & need != need {
        return Err(PreflightError::MissingPrivileges(f.cap_eff));
    }
    if !f.btf {
        return Err(PreflightError::NoBtf);
    }
    if !f.bpffs {
        return Err(PreflightError::NoBpffs(pin_root_parent.to_owned()));
    }
    if !f.tracefs {
        return Err(PreflightError::NoTracefs);
    }
    Ok(())
}

/// Whether `bpf` is in the active LSM list.
pub fn lsm_active(f: &HostFacts) -> bool {
    f.lsm_list.as_deref().is_some_and(|l| l.trim().split(',').any(|m| m == "bpf"))
}

/// Modes to try, strongest first; `auto` falls back when loading the first fails.
pub fn candidates(req: Requested, f: &HostFacts) -> Result<Vec<Mode>, PreflightError> {
    let lsm = lsm_active(f);
    match req {
        Requested::Auto if lsm => Ok(vec![Mode::Lsm, Mode::Fentry, Mode::Tracepoint]),
        Requested::Auto => Ok(vec![Mode::Fentry, Mode::Tracepoint]),
        Requested::Fentry => Ok(vec![Mode::Fentry]),
        Requested::Tracepoint => Ok(vec![Mode::Tracepoint]),
        Requested::Lsm if lsm => Ok(vec![Mode::Lsm]),
        Requested::Lsm => Err(PreflightError::LsmNotActive(f.lsm_list.clone().unwrap_or_else(|| "unreadable".into()))),
        Requested::Audit => Ok(vec![Mode::Audit]),
    }
}

/// The attack classes a mode does not close (SECURITY.md's table, "gap" rows): named in the start
/// line and as `hush_guard_mode_gap{mode,gap}` metrics. `io_uring_refused` is tracepoint mode's
/// SIGKILL of io_uring_setup (off with `--allow-io-uring`).
pub fn gaps(mode: Mode, io_uring_refused: bool) -> Vec<&'static str> {
    // Sampling every task on a CPU (or in a cgroup) needs CAP_PERFMON: node-level privilege.
    let mut g = vec!["perf_cpu_wide_privileged"];
    match mode {
        Mode::Lsm => {}
        Mode::Fentry => g.push("shared_fd_table"),
        Mode::Tracepoint => {
            g.extend([
                "shared_fd_table",
                "proc_fd_link",
                "fork_window_vm_rw_perf",
                "fork_window_clone_parent",
                "sibling_thread_race",
            ]);
            if !io_uring_refused {
                g.push("io_uring");
            }
        }
        Mode::Audit => g = vec!["enforces_nothing"],
    }
    g
}

/// Warnings to print at start for a mode (gaps the operator can close).
pub fn warnings(mode: Mode, f: &HostFacts, io_uring_refused: bool) -> Vec<String> {
    let mut w = Vec::new();
    if mode == Mode::Tracepoint && io_uring_refused {
        w.push(
            "tracepoint mode: io_uring_setup by processes outside --allow-cgroup is SIGKILLed (io_uring's opens \
             run no syscall tracepoint); --allow-io-uring turns this off and leaves the gap open"
                .to_owned(),
        );
    }
    if (mode == Mode::Audit || (mode == Mode::Tracepoint && !io_uring_refused)) && f.io_uring_disabled.unwrap_or(0) == 0
    {
        w.push(
            "kernel.io_uring_disabled is 0: in tracepoint/audit mode an io_uring IORING_OP_OPENAT of \
             /proc/<pid>/environ is not seen; set `sysctl kernel.io_uring_disabled=2` (Linux 6.6+), run pods \
             with seccomp RuntimeDefault, or use lsm mode (see SECURITY.md)"
                .to_owned(),
        );
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> HostFacts {
        HostFacts {
            btf: true,
            bpffs: true,
            tracefs: true,
            cap_eff: u64::MAX >> 23,
            lsm_list: Some("lockdown,capability,landlock,bpf\n".into()),
            io_uring_disabled: Some(2),
        }
    }

    #[test]
    fn preflight_names_each_missing_piece() {
        assert_eq!(preflight(&good(), "/sys/fs/bpf"), Ok(()));
        let f = HostFacts { cap_eff: (1 << 21) | (1 << 38), ..good() };
        assert_eq!(preflight(&f, "/x"), Err(PreflightError::MissingPrivileges(f.cap_eff)));
        assert_eq!(preflight(&HostFacts { btf: false, ..good() }, "/x"), Err(PreflightError::NoBtf));
        assert_eq!(preflight(&HostFacts { bpffs: false, ..good() }, "/x"), Err(PreflightError::NoBpffs("/x".into())));
        assert_eq!(preflight(&HostFacts { tracefs: false, ..good() }, "/x"), Err(PreflightError::NoTracefs));
        for e in [
            PreflightError::NoBtf,
            PreflightError::NoBpffs("/x".into()),
            PreflightError::NoTracefs,
            PreflightError::MissingPrivileges(0),
            PreflightError::LsmNotActive("yama".into()),
        ] {
            let s = e.to_string();
            assert!(s.contains("mount") || s.contains("run") || s.contains("add"), "no fix in: {s}");
        }
    }

    #[test]
    fn auto_prefers_lsm_and_falls_back() {
        assert_eq!(candidates(Requested::Auto, &good()), Ok(vec![Mode::Lsm, Mode::Fentry, Mode::Tracepoint]));
        let no_bpf = HostFacts { lsm_list: Some("lockdown,capability,landlock,yama".into()), ..good() };
        assert_eq!(candidates(Requested::Auto, &no_bpf), Ok(vec![Mode::Fentry, Mode::Tracepoint]));
        let unreadable = HostFacts { lsm_list: None, ..good() };
        assert_eq!(candidates(Requested::Auto, &unreadable), Ok(vec![Mode::Fentry, Mode::Tracepoint]));
        assert_eq!(candidates(Requested::Fentry, &no_bpf), Ok(vec![Mode::Fentry]));
    }

    #[test]
    fn explicit_modes() {
        assert_eq!(candidates(Requested::Lsm, &good()), Ok(vec![Mode::Lsm]));
        let no_bpf = HostFacts { lsm_list: Some("bpfx,yama".into()), ..good() };
        assert!(matches!(candidates(Requested::Lsm, &no_bpf), Err(PreflightError::LsmNotActive(_))));
        assert_eq!(candidates(Requested::Tracepoint, &good()), Ok(vec![Mode::Tracepoint]));
        assert_eq!(candidates(Requested::Audit, &no_bpf), Ok(vec![Mode::Audit]));
    }

    #[test]
    fn io_uring_warning_only_where_it_is_a_gap() {
        let open = HostFacts { io_uring_disabled: Some(0), ..good() };
        let w = warnings(Mode::Tracepoint, &open, false);
        assert!(w.len() == 1 && w[0].contains("io_uring_disabled is 0"), "{w:?}");
        let w = warnings(Mode::Tracepoint, &open, true);
        assert!(w.len() == 1 && w[0].contains("SIGKILLed"), "{w:?}");
        assert_eq!(warnings(Mode::Audit, &HostFacts { io_uring_disabled: None, ..good() }, true).len(), 1);
        assert!(warnings(Mode::Lsm, &open, true).is_empty());
        assert!(warnings(Mode::Fentry, &open, true).is_empty());
        assert!(warnings(Mode::Tracepoint, &good(), false).is_empty());
        assert_eq!(Mode::Tracepoint.to_string(), "tracepoint");
        assert_eq!(Mode::Fentry.to_string(), "fentry");
    }

    #[test]
    fn gaps_per_mode() {
        assert_eq!(gaps(Mode::Lsm, true), ["perf_cpu_wide_privileged"]);
        assert_eq!(gaps(Mode::Fentry, true), ["perf_cpu_wide_privileged", "shared_fd_table"]);
        let tp = gaps(Mode::Tracepoint, true);
        assert!(tp.contains(&"proc_fd_link") && tp.contains(&"shared_fd_table") && !tp.contains(&"io_uring"));
        assert!(gaps(Mode::Tracepoint, false).contains(&"io_uring"));
        assert_eq!(gaps(Mode::Audit, true), ["enforces_nothing"]);
    }
}
