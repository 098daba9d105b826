//! The aya edge: gathers host facts, loads the embedded BPF object for one mode, attaches and
//! pins its programs, and hands out the event ring buffer and the pinned maps.
//!
//! Persistence: maps are pinned by name under the pin root (`hush_protected`, `hush_count`,
//! `hush_vpids`, `hush_tids`, `hush_newborn`, `hush_allowed`, `hush_events`, `hush_stats`), so a restarted or upgraded guard reuses the
//! protected set. Links are pinned under `<root>/links_<boot ns>` (bpffs refuses dots in names), so the programs stay attached
//! while no guard runs; a new guard attaches its own links first and then removes older ones
//! (protection overlaps, never gaps). `guard unload` removes the whole pin root.

use crate::mode::{self, HostFacts, Mode, PreflightError, Requested};
use crate::sys;
use aya::maps::{Array, HashMap, MapData, RingBuf};
use aya::programs::links::FdLink;
use aya::programs::{FEntry, Lsm, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use std::path::{Path, PathBuf};

/// The BPF object built by build.rs (empty when clang was missing).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard.bpf.o"));

/// Default pin root on bpffs.
pub const PIN_ROOT: &str = "/sys/fs/bpf/hush";

/// Default `--max-protected`: protected thread groups at once.
pub const MAX_PROTECTED: u32 = 65536;
/// Entries `hush_protected` holds beyond `--max-protected` (`HUSH_HEADROOM` in guard.bpf.c): forks
/// that passed the capacity check concurrently, and doomed children, are still protected.
pub const HEADROOM: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(
        "this guard was built without its BPF programs (clang was missing at build time); install clang and \
         libbpf-dev and rebuild with HUSH_REQUIRE_BPF=1"
    )]
    NotBuilt,
    #[error("creating the pin directory {0}")]
    PinDir(PathBuf, #[source] std::io::Error),
    #[error("loading the BPF object for {mode} mode (verifier or CO-RE relocation against this kernel's BTF)")]
    Load {
        mode: Mode,
        #[source]
        source: aya::EbpfError,
    },
    #[error("program `{name}` is missing or of an unexpected type in the BPF object")]
    MissingProgram { name: &'static str },
    #[error("loading program `{name}`")]
    LoadProgram {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching program `{name}` to {hook}")]
    Attach {
        name: &'static str,
        hook: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reading kernel BTF from /sys/kernel/btf/vmlinux")]
    Btf(#[source] aya::BtfError),
    #[error("map `{0}` is missing or of an unexpected type")]
    Map(&'static str, #[source] Option<aya::maps::MapError>),
    #[error("all modes failed; last error: {0}")]
    AllFailed(Box<LoadError>),
}

/// A loaded, attached guard.
pub struct Guard {
    pub mode: Mode,
    /// The `--max-protected` in force (lower than asked when the pinned set is smaller).
    pub max_protected: u32,
    pub events: RingBuf<MapData>,
    pub stats: Array<MapData, u64>,
    /// Held so the programs stay loaded while this process runs (links are pinned anyway).
    _ebpf: Ebpf,
}

/// Options for [`start`].
#[derive(Clone, Debug)]
pub struct Options {
    pub requested: Requested,
    pub pin_root: PathBuf,
    /// cgroup v2 ids whose processes may read protected processes (node agents).
    pub allowed_cgroups: Vec<u64>,
    /// Tracepoint mode: let io_uring_setup through (`--allow-io-uring`; leaves io_uring's
    /// opens unseen).
    pub allow_io_uring: bool,
    /// Registrations beyond this many protected thread groups fail closed (`--max-protected`).
    pub max_protected: u32,
    /// Tracepoint mode: judge 32-bit and x32 syscalls in full (raw `sys_enter` and `sys_exit` on
    /// every syscall) instead of SIGKILLing them at entry (`--allow-32bit`).
    pub allow_32bit: bool,
}

impl HostFacts {
    /// Reads the facts [`mode::preflight`] decides on.
    pub fn gather(pin_root: &Path) -> HostFacts {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let cap_eff = read("/proc/self/status")
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0);
        let mounts = read("/proc/self/mounts").unwrap_or_default();
        let parent = pin_root.parent().unwrap_or(Path::new("/")).to_string_lossy().into_owned();
        let mounted = |fstype: &str, at: &dyn Fn(&str) -> bool| {
            mounts.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 2 && f[2] == fstype && at(f[1])
            })
        };
        HostFacts {
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            bpffs: mounted("bpf", &|p| parent == p || parent.starts_with(&format!("{p}/"))),
            tracefs: mounted("tracefs", &|_| true) || Path::new("/sys/kernel/debug/tracing/events").exists(),
            cap_eff,
            lsm_list: read("/sys/kernel/security/lsm"),
            io_uring_disabled: read("/proc/sys/kernel/io_uring_disabled").and_then(|s| s.trim().parse().ok()),
        }
    }
}

/// Checks the host, picks the mode and loads it (falling back under `auto`).
pub fn start(opts: &Options) -> Result<(Guard, HostFacts), LoadError> {
    if OBJECT.is_empty() {
        return Err(LoadError::NotBuilt);
    }
    let facts = HostFacts::gather(&opts.pin_root);
    mode::preflight(&facts, &opts.pin_root.parent().unwrap_or(Path::new("/")).to_string_lossy())?;
    let candidates = mode::candidates(opts.requested, &facts)?;
    let mut last = None;
    for m in candidates {
        match load(m, opts) {
            Ok(g) => return Ok((g, facts)),
            Err(e) => {
                eprintln!("guard: {m} mode failed: {}", crate::error_chain(&e));
                last = Some(e);
            }
        }
    }
    Err(LoadError::AllFailed(Box::new(last.unwrap_or(LoadError::NotBuilt))))
}

fn kallsyms_addr(syms: &std::collections::BTreeMap<u64, String>, name: &str) -> u64 {
    syms.iter().find(|(a, n)| n.as_str() == name && **a != 0).map_or(0, |(a, _)| *a)
}

const TRACEPOINTS: &[(&str, &str, &str)] =
    &[("hush_sched_exec", "sched", "sched_process_exec"), ("hush_sched_exit", "sched", "sched_process_exit")];
const SYSCALL_TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("hush_exit_open", "syscalls", "sys_exit_open"),
    ("hush_exit_openat", "syscalls", "sys_exit_openat"),
    ("hush_exit_openat2", "syscalls", "sys_exit_openat2"),
    ("hush_exit_creat", "syscalls", "sys_exit_creat"),
    ("hush_exit_open_by_handle_at", "syscalls", "sys_exit_open_by_handle_at"),
    ("hush_enter_ptrace", "syscalls", "sys_enter_ptrace"),
    ("hush_exit_ptrace", "syscalls", "sys_exit_ptrace"),
    ("hush_enter_vm_readv", "syscalls", "sys_enter_process_vm_readv"),
    ("hush_enter_vm_writev", "syscalls", "sys_enter_process_vm_writev"),
    ("hush_enter_pidfd_getfd", "syscalls", "sys_enter_pidfd_getfd"),
    ("hush_enter_perf", "syscalls", "sys_enter_perf_event_open"),
    ("hush_enter_io_uring_setup", "syscalls", "sys_enter_io_uring_setup"),
    // A child registered past --max-protected dies on its return from fork.
    ("hush_exit_clone", "syscalls", "sys_exit_clone"),
    ("hush_exit_clone3", "syscalls", "sys_exit_clone3"),
    ("hush_exit_fork", "syscalls", "sys_exit_fork"),
    ("hush_exit_vfork", "syscalls", "sys_exit_vfork"),
];
/// Syscall tracepoints a kernel may lack (the syscall is configured out: CONFIG_FHANDLE,
/// CONFIG_IO_URING, CONFIG_PERF_EVENTS; fork, vfork and clone3 on some architectures): without
/// the syscall there is nothing to guard.
const OPTIONAL_TRACEPOINTS: &[&str] = &[
    "sys_exit_open_by_handle_at",
    "sys_enter_io_uring_setup",
    "sys_enter_perf_event_open",
    "sys_enter_pidfd_getfd",
    "sys_exit_clone3",
    "sys_exit_fork",
    "sys_exit_vfork",
];
/// Raw tracepoints of tracepoint mode: the 32-bit and x32 syscalls the syscalls:* ones skip.
/// `sys_exit` only judges them in full (`--allow-32bit`, audit mode); by default `sys_enter`
/// refuses them.
const RAW_SYS_ENTER: (&str, &str) = ("hush_raw_sys_enter", "sys_enter");
const RAW_SYS_EXIT: (&str, &str) = ("hush_raw_sys_exit", "sys_exit");
const LSM_HOOKS: &[(&str, &str)] = &[
    ("hush_file_open", "file_open"),
    ("hush_ptrace_access", "ptrace_access_check"),
    ("hush_follow_link", "inode_follow_link"),
    ("hush_task_alloc", "task_alloc"),
    ("hush_bprm_check", "bprm_check_security"),
];
const FENTRY_HOOKS: &[(&str, &str)] = &[
    ("hush_fe_file_open", "security_file_open"),
    ("hush_fe_ptrace_access", "security_ptrace_access_check"),
    ("hush_fe_follow_link", "security_inode_follow_link"),
    ("hush_fe_task_alloc", "security_task_alloc"),
];

fn load(mode: Mode, opts: &Options) -> Result<Guard, LoadError> {
    std::fs::create_dir_all(&opts.pin_root).map_err(|e| LoadError::PinDir(opts.pin_root.clone(), e))?;
    let syms = aya::util::kernel_symbols().unwrap_or_default();
    let environ_read = kallsyms_addr(&syms, "environ_read");
    let mem_read = kallsyms_addr(&syms, "mem_read");
    let enforce: u32 = if mode == Mode::Audit { 0 } else { 1 };
    let refuse_io_uring: u32 = u32::from(!opts.allow_io_uring);
    let syscall_hooks: u32 = u32::from(matches!(mode, Mode::Tracepoint | Mode::Audit));
    let refuse_compat = refuses_compat(mode, opts.allow_32bit);
    let hard = opts.max_protected.saturating_add(HEADROOM);
    // A pinned protected set is reused as it is, its size included: a larger one only gives more
    // headroom; a smaller one is the limit until `guard unload`.
    let max_protected = match aya::maps::MapInfo::from_pin(opts.pin_root.join("hush_protected")) {
        Ok(info) if info.max_entries().saturating_sub(HEADROOM) < opts.max_protected => {
            let held = info.max_entries().saturating_sub(HEADROOM);
            eprintln!(
                "guard: warning: the pinned protected set holds {} entries ({held} + {HEADROOM} headroom): \
                 --max-protected is {held}, not {}, until `guard unload`",
                info.max_entries(),
                opts.max_protected
            );
            held
        }
        _ => opts.max_protected,
    };
    let mut ebpf = EbpfLoader::new()
        .override_global("mode", &enforce, true)
        .override_global("refuse_io_uring", &refuse_io_uring, true)
        .override_global("max_protected", &max_protected, true)
        .override_global("syscall_hooks", &syscall_hooks, true)
        .override_global("refuse_compat", &u32::from(refuse_compat), true)
        .map_max_entries("hush_protected", hard)
        .map_max_entries("hush_vpids", hard.saturating_mul(2))
        .map_max_entries("hush_tids", hard.saturating_mul(2))
        .override_global("environ_read_addr", &environ_read, true)
        .override_global("mem_read_addr", &mem_read, true)
        .default_map_pin_directory(&opts.pin_root)
        .load(OBJECT)
        .map_err(|source| LoadError::Load { mode, source })?;

    // Unique per start, not per pid: a containerised guard is pid 1 on every restart, and reusing
    // a name would remove the old links before the new ones are attached.
    let generation = sys::boottime_ns().map_err(|e| LoadError::PinDir(opts.pin_root.clone(), e.io_error))?;
    let links_dir = opts.pin_root.join(format!("links_{generation}"));
    let _ = std::fs::remove_dir_all(&links_dir);
    std::fs::create_dir_all(&links_dir).map_err(|e| LoadError::PinDir(links_dir.clone(), e))?;
    let result = attach_all(&mut ebpf, mode, refuse_compat, &links_dir);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&links_dir);
        return Err(e);
    }
    // Our links are in place: retire those of earlier guards (the overlap is harmless).
    if let Ok(rd) = std::fs::read_dir(&opts.pin_root) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("links_") && e.path() != links_dir {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    let mut allowed: HashMap<_, u64, u8> = ebpf
        .map_mut("hush_allowed")
        .ok_or(LoadError::Map("hush_allowed", None))
        .and_then(|m| HashMap::try_from(m).map_err(|e| LoadError::Map("hush_allowed", Some(e))))?;
    let old: Vec<u64> = allowed.keys().filter_map(Result::ok).collect();
    for k in old {
        let _ = allowed.remove(&k);
    }
    for id in &opts.allowed_cgroups {
        allowed.insert(id, 1, 0).map_err(|e| LoadError::Map("hush_allowed", Some(e)))?;
    }
    // A protected set pinned by a guard that kept no count (or none yet): count it once. The
    // programs keep it from here on.
    let protected_now = ebpf
        .map("hush_protected")
        .ok_or(LoadError::Map("hush_protected", None))
        .and_then(|m| {
            HashMap::<_, u32, crate::maps::Protected>::try_from(m)
                .map_err(|e| LoadError::Map("hush_protected", Some(e)))
        })?
        .keys()
        .filter(Result::is_ok)
        .count() as i64;
    let mut count: Array<_, i64> = ebpf
        .map_mut("hush_count")
        .ok_or(LoadError::Map("hush_count", None))
        .and_then(|m| Array::try_from(m).map_err(|e| LoadError::Map("hush_count", Some(e))))?;
    if count.get(&0, 0).unwrap_or(0) == 0 && protected_now > 0 {
        count.set(0, protected_now, 0).map_err(|e| LoadError::Map("hush_count", Some(e)))?;
    }
    let events = ebpf
        .take_map("hush_events")
        .ok_or(LoadError::Map("hush_events", None))
        .and_then(|m| RingBuf::try_from(m).map_err(|e| LoadError::Map("hush_events", Some(e))))?;
    let stats = ebpf
        .take_map("hush_stats")
        .ok_or(LoadError::Map("hush_stats", None))
        .and_then(|m| Array::try_from(m).map_err(|e| LoadError::Map("hush_stats", Some(e))))?;
    Ok(Guard { mode, max_protected, events, stats, _ebpf: ebpf })
}

fn attach_err<E: std::error::Error + Send + Sync + 'static>(
    name: &'static str,
    hook: &str,
) -> impl FnOnce(E) -> LoadError {
    let hook = hook.to_owned();
    move |e| LoadError::Attach { name, hook, source: Box::new(e) }
}

/// Pins `link` as `<links_dir>/<name>` (aya's `FdLink::pin`, `BPF_OBJ_PIN`). The pin holds the
/// link; our fd to it may close.
fn pin(link: FdLink, links_dir: &Path, name: &'static str, hook: &str) -> Result<(), LoadError> {
    let pinned = link.pin(links_dir.join(name)).map_err(attach_err(name, hook))?;
    drop(pinned);
    Ok(())
}

/// Tracepoint mode SIGKILLs 32-bit and x32 syscalls at entry unless `--allow-32bit`; audit mode
/// judges them in full (it kills nothing).
pub fn refuses_compat(mode: Mode, allow_32bit: bool) -> bool {
    mode == Mode::Tracepoint && !allow_32bit
}

fn attach_all(ebpf: &mut Ebpf, mode: Mode, refuse_compat: bool, links_dir: &Path) -> Result<(), LoadError> {
    let syscall_tracepoints = matches!(mode, Mode::Tracepoint | Mode::Audit);
    let mut tps: Vec<(&'static str, &'static str, &'static str)> = TRACEPOINTS.to_vec();
    if syscall_tracepoints {
        tps.extend_from_slice(SYSCALL_TRACEPOINTS);
    }
    for &(name, cat, tp) in &tps {
        if OPTIONAL_TRACEPOINTS.contains(&tp)
            && !Path::new("/sys/kernel/tracing/events").join(cat).join(tp).exists()
            && !Path::new("/sys/kernel/debug/tracing/events").join(cat).join(tp).exists()
        {
            eprintln!("guard: this kernel has no tracepoint {cat}/{tp} (the syscall is configured out); skipped");
            continue;
        }
        let prog: &mut TracePoint =
            ebpf.program_mut(name).and_then(|p| p.try_into().ok()).ok_or(LoadError::MissingProgram { name })?;
        prog.load().map_err(|source| LoadError::LoadProgram { name, source })?;
        let hook = format!("tracepoint {cat}/{tp}");
        let id = prog.attach(cat, tp).map_err(attach_err(name, &hook))?;
        let link = prog.take_link(id).map_err(attach_err(name, &hook))?;
        let fd: FdLink = link.try_into().map_err(attach_err(name, &hook))?;
        pin(fd, links_dir, name, &hook)?;
    }

    let mut raws = vec![("hush_sched_fork", "sched_process_fork")];
    if syscall_tracepoints {
        raws.push(RAW_SYS_ENTER);
        if !refuse_compat {
            raws.push(RAW_SYS_EXIT);
        }
    }
    for (name, tp) in raws {
        let prog: &mut RawTracePoint =
            ebpf.program_mut(name).and_then(|p| p.try_into().ok()).ok_or(LoadError::MissingProgram { name })?;
        prog.load().map_err(|source| LoadError::LoadProgram { name, source })?;
        let what = format!("raw_tp {tp}");
        let id = prog.attach(tp).map_err(attach_err(name, &what))?;
        let link = prog.take_link(id).map_err(attach_err(name, &what))?;
        pin(FdLink::from(link), links_dir, name, &what)?;
    }

    if mode == Mode::Fentry {
        let btf = Btf::from_sys_fs().map_err(LoadError::Btf)?;
        for &(name, func) in FENTRY_HOOKS {
            let prog: &mut FEntry =
                ebpf.program_mut(name).and_then(|p| p.try_into().ok()).ok_or(LoadError::MissingProgram { name })?;
            prog.load(func, &btf).map_err(|source| LoadError::LoadProgram { name, source })?;
            let what = format!("fentry/{func}");
            let id = prog.attach().map_err(attach_err(name, &what))?;
            let link = prog.take_link(id).map_err(attach_err(name, &what))?;
            pin(FdLink::from(link), links_dir, name, &what)?;
        }
    }

    if mode == Mode::Lsm {
        let btf = Btf::from_sys_fs().map_err(LoadError::Btf)?;
        for &(name, hook) in LSM_HOOKS {
            let prog: &mut Lsm =
                ebpf.program_mut(name).and_then(|p| p.try_into().ok()).ok_or(LoadError::MissingProgram { name })?;
            prog.load(hook, &btf).map_err(|source| LoadError::LoadProgram { name, source })?;
            let what = format!("lsm/{hook}");
            let id = prog.attach().map_err(attach_err(name, &what))?;
            let link = prog.take_link(id).map_err(attach_err(name, &what))?;
            pin(FdLink::from(link), links_dir, name, &what)?;
        }
    }
    Ok(())
}

/// Detaches everything: removes the pin root (links and maps). Protected processes lose
/// protection; the next guard starts with an empty protected set.
pub fn unload(pin_root: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(pin_root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
