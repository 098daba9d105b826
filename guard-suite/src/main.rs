//! `guard-suite`: the guard's attack suite, run for real by `cargo xtask test` on the host
//! kernel (tracepoint mode) and inside a qemu VM (lsm mode, and `auto` without BPF LSM).
//!
//! `guard-suite run ...` starts the guard, starts an app through a binary named `injector`
//! (protected) and the same app through one named `launcher` (unprotected control), then runs
//! each attack as its own process and checks: against the protected app the attack fails
//! (SIGKILL in tracepoint mode, an error in lsm mode), its output lacks the secret, and the
//! guard wrote exactly one audit line for it; against the control the same attack prints the
//! secret and yields no line. It ends with `suite: success` or `suite: failure` and its exit code.
//!
//! `guard-suite attack KIND PID` performs one attack and writes what it read to stdout.
//! `guard-suite exec-env -- CMD...` stands in for the shim when the real one is not given: it
//! execs CMD with the environment it was started with (copied as `injector`, it registers).
//!
//! Its own crate, so that the guard's binary and library carry none of the attacks; every
//! `unsafe` is in `sys`.
#![deny(unsafe_code)]

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod classes;
mod load;
mod metrics;
#[allow(unsafe_code, reason = "the one module with unsafe: typed wrappers over the attacks' system calls")]
mod sys;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole suite.
    Run(RunArgs),
    /// Only the capacity check (`--max-protected`; fail-closed registration), e.g. on a host
    /// where another guard attached host-wide spoils the attack checks' one-line counts.
    Capacity(RunArgs),
    /// Only the x32 checks (x32 on, its attacks on the protected app and the control), with the
    /// guard as asked and then with `--allow-32bit`: the tracepoint pass of a VM whose whole
    /// suite ran in another mode.
    X32(RunArgs),
    /// One attack on PID; prints what it read.
    Attack { kind: SelfAttack, pid: i32 },
    /// Nanoseconds per open()+close() and per getpid with the guard off and in each mode, side by side.
    Bench(BenchArgs),
    /// N opens of PID's environ in a loop; prints `opened= denied= other=` counts.
    FloodOpen { pid: i32, n: u64 },
    /// Exec the command after `--` from a second thread (the kernel hands that thread the
    /// leader's pid and frees its own; the churn checks no entry for the freed one is left).
    ThreadExec {
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Race the creation of pids (from ns_last_pid): read each new process's environ (or attach
    /// and peek it) and print the first that holds HUSH_SUITE_SECRET.
    ForkRace {
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long)]
        ptrace: bool,
    },
    /// Fork a child that calls PTRACE_TRACEME and execs the command after `--`; print its
    /// environment at every stop.
    TracedExec {
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Fork a child, attach a perf stack sampler to it, then let it exec the command after `--`.
    PerfExec {
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Run the command after `--` as pid 1 of a new pid namespace (`unshare -p -f`) and wait.
    PidnsExec {
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Exec the command after `--` (a stand-in shim).
    ExecEnv {
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// The guard binary.
    #[arg(long)]
    guard: PathBuf,
    /// `--mode` passed to the guard.
    #[arg(long, default_value = "tracepoint")]
    mode: String,
    /// The mode the guard must report it runs (lsm or tracepoint).
    #[arg(long, default_value = "tracepoint")]
    expect: String,
    /// The real shim; without it a copy of this binary (`exec-env`) is the `injector`.
    #[arg(long)]
    injector: Option<PathBuf>,
    /// Scratch directory (created).
    #[arg(long, default_value = "/tmp/hush-guard-suite")]
    workdir: PathBuf,
    /// Pin root for this run (removed before and after).
    #[arg(long, default_value = "/sys/fs/bpf/hush-suite")]
    pin_root: PathBuf,
    /// Also check that a restarted guard (and no guard) keeps the app protected.
    #[arg(long)]
    restart: bool,
    /// Also attack through io_uring (lsm: denied; fentry: killed; tracepoint: io_uring_setup
    /// is killed).
    #[arg(long)]
    io_uring: bool,
    /// Seconds each fork-window race runs against the protected forker.
    #[arg(long, default_value_t = 8)]
    race_secs: u64,
    /// Allowlisted reader cgroup passed to the guard (set by the suite itself).
    #[arg(skip)]
    allow_cgroup: Option<PathBuf>,
    /// `--max-lines-per-sec` passed to the guard (set by the suite itself).
    #[arg(skip)]
    max_lines: Option<u32>,
    /// More guard flags (`--allow-32bit`, `--max-protected N`; set by the suite itself).
    #[arg(skip)]
    guard_args: Vec<String>,
    /// Seconds to wait for the guard to start and for audit lines (qemu TCG is slow).
    #[arg(long, default_value_t = 30)]
    patience: u64,
    /// Short-lived protected processes in the churn check.
    #[arg(long, default_value_t = 3000)]
    churn: usize,
    /// How many of them run at a time.
    #[arg(long, default_value_t = 16)]
    churn_parallel: usize,
    /// Opens in each single-process flood (lsm mode's refused flood; the allowlisted reader's).
    #[arg(long, default_value_t = 10_000)]
    flood: u64,
    /// Forked attackers in tracepoint mode's refused flood (each is killed at its one open).
    #[arg(long, default_value_t = 2000)]
    flood_procs: u64,
    /// Lower kernel.pid_max for the churn so pids are recycled (only on a machine of our own).
    #[arg(long)]
    pid_max: Option<u32>,
    /// Nothing else on this kernel registers or attacks: lifecycle counts and map sizes must be
    /// exact, not lower bounds.
    #[arg(long)]
    isolated: bool,
    /// This kernel must have x32 on (booted with `syscall.x32=y`): an x32 call failing with ENOSYS
    /// fails the run instead of closing the class, so the x32 attacks cannot be skipped unseen.
    #[arg(long)]
    expect_x32: bool,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The guard binary.
    #[arg(long)]
    guard: PathBuf,
    /// Modes to compare with the guard off (lsm only where BPF LSM is active, fentry where BPF
    /// trampolines load). `mode+flag` also passes `--flag` to the guard (`tracepoint+allow-32bit`).
    #[arg(long, value_delimiter = ',', default_value = "audit,tracepoint")]
    modes: Vec<String>,
    /// open()+close() pairs per measurement.
    #[arg(long, default_value_t = 200_000)]
    iters: u32,
    /// Interleaved rounds (off, off-again, mode1, mode2, ..., each round starting one later);
    /// medians over rounds are reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Modes also measured with their guard's daemon stopped (SIGSTOP) in the same slot: what the
    /// daemon's own wake-ups cost, apart from the attached programs.
    #[arg(long, value_delimiter = ',')]
    paused: Vec<String>,
    /// Also print each round's ratios.
    #[arg(long)]
    per_round: bool,
    #[arg(long, default_value = "/sys/fs/bpf/hush-bench")]
    pin_root: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SelfAttack {
    /// openat(open("/proc/PID"), "environ")
    OpenatDirfd,
    /// openat2(AT_FDCWD, "/proc/PID/environ")
    Openat2,
    /// creat("/proc/PID/environ") (O_CREAT|O_WRONLY|O_TRUNC), then a read of the fd
    Creat,
    /// name_to_handle_at + open_by_handle_at of /proc/PID/environ
    OpenByHandle,
    /// From inside PID's pid namespace (setns, then a forked child): environ through that
    /// namespace's procfs, by PID's inner pid
    PidnsInner,
    /// environ through a second procfs mounted in a private mount namespace
    ProcfsMount,
    /// pread of /proc/PID/mem at the environment
    Mem,
    /// PTRACE_ATTACH + PEEKDATA of the environment
    Ptrace,
    /// process_vm_readv of the environment
    VmReadv,
    /// pidfd_getfd of the app's fd 3 (its own environ, which it opened) and read it
    PidfdGetfd,
    /// IORING_OP_OPENAT of /proc/PID/environ, then read(2) the fd
    IoUring,
    /// i386 open (int $0x80) of /proc/PID/environ
    Int80Environ,
    /// i386 open (int $0x80) of /proc/PID/mem, then pread at the environment
    Int80Mem,
    /// i386 PTRACE_ATTACH (int $0x80), then PEEKDATA of the environment
    Int80Ptrace,
    /// i386 pidfd_getfd (int $0x80) of the app's fd 3
    Int80PidfdGetfd,
    /// x32 open (nr | __X32_SYSCALL_BIT) of /proc/PID/environ
    X32Environ,
    /// x32 PTRACE_ATTACH (x32's ptrace, 521), then PEEKDATA of the environment
    X32Ptrace,
    /// open of /proc/PID/environ while a CLONE_FILES sibling waits to read the fd
    CloneFiles,
    /// perf_event_open of a PERF_SAMPLE_STACK_USER sampler on PID
    Perf,
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run(a) => run(&a),
        Cmd::Capacity(a) => capacity_only(&a),
        Cmd::X32(a) => x32_only(&a),
        Cmd::Attack { kind, pid } => attack(kind, pid),
        Cmd::Bench(b) => bench(&b),
        Cmd::FloodOpen { pid, n } => load::flood_open(pid, n),
        Cmd::ThreadExec { cmd } => load::thread_exec(cmd),
        Cmd::ForkRace { secs, ptrace } => classes::fork_race(secs, ptrace),
        Cmd::TracedExec { cmd } => classes::traced_exec(cmd),
        Cmd::PerfExec { cmd } => classes::perf_exec(cmd),
        Cmd::PidnsExec { cmd } => classes::pidns_exec(cmd),
        Cmd::ExecEnv { cmd } => Err(anyhow!(Command::new(&cmd[0]).args(&cmd[1..]).exec())),
    };
    if let Err(e) = r {
        eprintln!("guard-suite: {e:#}");
        std::process::exit(1);
    }
}

// ---- attacks performed by this binary ------------------------------------------------------

fn env_range(pid: i32) -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).context("parsing stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 50 and 51 (1-based) of proc(5); `rest` starts at field 3.
    let start: u64 = f.get(47).context("env_start")?.parse()?;
    let end: u64 = f.get(48).context("env_end")?.parse()?;
    ensure!(start > 0 && end > start, "no environment range in /proc/{pid}/stat");
    Ok((start, end.min(start + 4096)))
}

fn attack(kind: SelfAttack, pid: i32) -> Result<()> {
    let out: Vec<u8> = match kind {
        SelfAttack::OpenatDirfd => {
            let dir = std::fs::File::open(format!("/proc/{pid}"))?;
            let fd = sys::openat(dir.as_fd(), "environ")?;
            read_all(std::fs::File::from(fd))?
        }
        SelfAttack::Openat2 => read_all(std::fs::File::from(sys::openat2(&format!("/proc/{pid}/environ"))?))?,
        SelfAttack::Creat => {
            // Write-only: the read fails (EBADF) even where the open succeeds; what counts is
            // that the open is judged.
            let mut f = std::fs::File::from(sys::creat(&format!("/proc/{pid}/environ"))?);
            let mut v = Vec::new();
            let _ = f.read_to_end(&mut v);
            v
        }
        SelfAttack::OpenByHandle => {
            let proc = std::fs::File::open("/proc")?;
            read_all(std::fs::File::from(sys::open_by_handle(&format!("/proc/{pid}/environ"), proc.as_fd())?))?
        }
        SelfAttack::PidnsInner => return classes::pidns_inner(pid),
        SelfAttack::ProcfsMount => {
            let dir = std::env::temp_dir().join(format!("hush-procfs-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            sys::mount_private_procfs(&dir)?;
            std::fs::read(dir.join(format!("{pid}/environ")))?
        }
        SelfAttack::Mem => read_env_through_mem(std::fs::File::open(format!("/proc/{pid}/mem"))?, pid)?,
        SelfAttack::Ptrace => peek_env_after(sys::ptrace_attach, pid)?,
        SelfAttack::VmReadv => {
            let (start, end) = env_range(pid)?;
            let mut buf = vec![0; (end - start) as usize];
            let n = sys::process_vm_read(pid, start, &mut buf)?;
            buf.truncate(n);
            buf
        }
        SelfAttack::PidfdGetfd => {
            let pidfd = sys::pidfd_open(pid)?;
            let fd = sys::pidfd_getfd(pidfd.as_fd(), 3)?;
            let f = std::fs::File::from(fd);
            let mut buf = vec![0; 8192];
            let n = f.read_at(&mut buf, 0)?;
            buf.truncate(n);
            buf
        }
        SelfAttack::IoUring => {
            let fd = sys::io_uring_openat(&format!("/proc/{pid}/environ"))?.context("io_uring openat")?;
            read_all(std::fs::File::from(fd))?
        }
        k => classes::int80_attack(k, pid)?,
    };
    use std::io::Write;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// `pid`'s environment strings read through its opened `/proc/P/mem` file.
fn read_env_through_mem(mem: std::fs::File, pid: i32) -> Result<Vec<u8>> {
    let (start, end) = env_range(pid)?;
    let mut buf = vec![0; (end - start) as usize];
    let n = mem.read_at(&mut buf, start)?;
    buf.truncate(n);
    Ok(buf)
}

/// `pid`'s environment strings read word by word with PTRACE_PEEKDATA after `attach` (native,
/// int $0x80 or x32 attach), then detached.
fn peek_env_after(attach: fn(i32) -> Result<(), sys::SyscallError>, pid: i32) -> Result<Vec<u8>> {
    let (start, end) = env_range(pid)?;
    attach(pid)?;
    let mut buf = Vec::new();
    let mut a = start;
    while a < end {
        buf.extend_from_slice(&sys::ptrace_peek(pid, a)?.to_ne_bytes());
        a += 8;
    }
    sys::ptrace_detach(pid)?;
    Ok(buf)
}

fn read_all(mut f: std::fs::File) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

// ---- the benchmark -------------------------------------------------------------------------

/// Nanoseconds per open()+close() of `path`: the fastest of `BATCHES` batches of
/// `iters / BATCHES` pairs (interference only adds time; see [`ns_per_getpid`]).
fn ns_per_open(path: &Path, iters: u32) -> Result<f64> {
    let n = (iters / BATCHES).max(1);
    let mut best = f64::INFINITY;
    for _ in 0..BATCHES {
        let t = Instant::now();
        for _ in 0..n {
            drop(std::fs::File::open(path)?);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(n));
    }
    Ok(best)
}

/// Nanoseconds per getpid system call: what every syscall pays once any syscall tracepoint is
/// attached (the slow path), the guard's own code aside. The fastest of `BATCHES` batches of
/// `iters / BATCHES` calls: interference (other vCPU work, the guard's own wake-ups, the host's
/// load under TCG) only ever adds time, so the lower envelope is the syscall's cost.
fn ns_per_getpid(iters: u32) -> f64 {
    let n = (iters / BATCHES).max(1);
    (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(sys::getpid_syscall());
            }
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Batches per measurement (see [`ns_per_getpid`]).
const BATCHES: u32 = 8;

/// A child killed and reaped when dropped, also on early return.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One column of the benchmark: the guard off (the baseline, and the same again as an A/A
/// control), a mode, or a mode's guard with its daemon stopped (SIGSTOP: programs attached, the
/// daemon's own wake-ups gone), measured in the same guard's lifetime as the mode.
struct BenchVariant {
    label: String,
    mode: Option<String>,
    paused: bool,
}

/// Per-round figures of one variant: open+close of a file, of /proc/P/status, getpid (ns).
#[derive(Clone, Copy, Default)]
struct RoundFigures {
    file: f64,
    proc: f64,
    getpid: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(b: &BenchArgs) -> Result<()> {
    // An ordinary file, and a /proc file of another (unprotected) process: the path every
    // monitoring agent takes, through the guard's whole classification.
    let file = std::env::temp_dir().join(format!("hush-bench-{}", std::process::id()));
    std::fs::write(&file, b"x")?;
    let other = Reaped(Command::new("sleep").arg("1000").stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
    let proc_file = PathBuf::from(format!("/proc/{}/status", other.0.id()));
    let runs = |variant: &str| RunArgs {
        guard: b.guard.clone(),
        mode: variant.split('+').next().unwrap_or(variant).to_owned(),
        expect: variant.split('+').next().unwrap_or(variant).to_owned(),
        injector: None,
        workdir: PathBuf::new(),
        pin_root: b.pin_root.clone(),
        restart: false,
        io_uring: false,
        race_secs: 0,
        allow_cgroup: None,
        max_lines: None,
        guard_args: variant.split('+').skip(1).map(|f| format!("--{f}")).collect(),
        patience: 30,
        churn: 0,
        churn_parallel: 1,
        flood: 0,
        flood_procs: 0,
        pid_max: None,
        isolated: false,
        expect_x32: false,
    };
    // A mode this kernel cannot run (e.g. lsm where BPF LSM refuses programs) is reported, not timed.
    let mut variants = vec![
        BenchVariant { label: "off".into(), mode: None, paused: false },
        BenchVariant { label: "off-again".into(), mode: None, paused: false },
    ];
    for m in &b.modes {
        let _ = std::fs::remove_dir_all(&b.pin_root);
        match GuardProc::start(&runs(m)) {
            Ok(g) => {
                g.stop()?;
                variants.push(BenchVariant { label: m.clone(), mode: Some(m.clone()), paused: false });
                if b.paused.contains(m) {
                    variants.push(BenchVariant { label: format!("{m}-paused"), mode: Some(m.clone()), paused: true });
                }
            }
            Err(e) => println!("{m}: not measured, the guard cannot run it here ({e:#})"),
        }
    }
    let _ = std::fs::remove_dir_all(&b.pin_root);
    let measure = || -> Result<RoundFigures> {
        Ok(RoundFigures {
            file: ns_per_open(&file, b.iters)?,
            proc: ns_per_open(&proc_file, b.iters / 4)?,
            getpid: ns_per_getpid(b.iters * 4),
        })
    };
    // Slots of a round: the guard off, its A/A twin, and one per mode (a paused variant is
    // measured in its mode's slot, under the same guard, before or after it by turns).
    let slots: Vec<usize> = (0..variants.len()).filter(|&i| !variants[i].paused).collect();
    let mut rounds: Vec<Vec<RoundFigures>> = Vec::with_capacity(b.rounds);
    measure()?; // warm up caches
    for round in 0..b.rounds {
        let mut figures = vec![RoundFigures::default(); variants.len()];
        // Each round starts one slot later, so no mode always follows the same one.
        for k in 0..slots.len() {
            let i = slots[(k + round) % slots.len()];
            let Some(mode) = &variants[i].mode else {
                figures[i] = measure()?;
                continue;
            };
            let paused = variants.iter().position(|v| v.paused && v.mode.as_ref() == Some(mode));
            let _ = std::fs::remove_dir_all(&b.pin_root);
            let g = GuardProc::start(&runs(mode))?;
            let pause_first = round % 2 == 1;
            for pause in [pause_first, !pause_first] {
                match (pause, paused) {
                    (false, _) => figures[i] = measure()?,
                    (true, Some(p)) => {
                        sys::kill(g.pid(), libc::SIGSTOP)?;
                        let f = measure();
                        sys::kill(g.pid(), libc::SIGCONT)?;
                        figures[p] = f?;
                    }
                    (true, None) => {}
                }
            }
            g.stop()?;
            let _ = std::fs::remove_dir_all(&b.pin_root);
        }
        rounds.push(figures);
    }
    drop(other);
    let _ = std::fs::remove_file(&file);
    // Per variant and figure: the median over rounds of the ns, and of the ratio to the guard
    // off *in the same round* (pairs share the round's conditions: host load drifts between
    // rounds more than within one), with the lowest and highest of those per-round ratios.
    let fig = |f: &RoundFigures, k: usize| [f.file, f.proc, f.getpid][k];
    let stats = |i: usize, k: usize| {
        let ns: Vec<f64> = rounds.iter().map(|r| fig(&r[i], k)).collect();
        let ratios: Vec<f64> = rounds.iter().map(|r| fig(&r[i], k) / fig(&r[0], k)).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        (median(&ns), median(&ratios), lo, hi)
    };
    println!(
        "guard overhead over {} interleaved rounds; per round and figure the fastest of {BATCHES} batches \
         ({} open+close pairs of a file, {} of /proc/P/status, {} getpid calls per batch); ns: median over rounds; \
         ratio: median over rounds of this ÷ guard off in the same round [lowest-highest round]; off-again is \
         the guard off measured twice (A/A: the resolution); MODE-paused is MODE's guard with its daemon \
         stopped (its own wake-ups gone):",
        b.rounds,
        b.iters / BATCHES,
        b.iters / 4 / BATCHES,
        b.iters * 4 / BATCHES
    );
    println!(
        "{:<28} {:>10} {:>22} {:>10} {:>22} {:>10} {:>22}",
        "guard", "file ns", "ratio", "/proc ns", "ratio", "getpid ns", "ratio"
    );
    let mut json_modes = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let cols: Vec<(f64, f64, f64, f64)> = (0..3).map(|k| stats(i, k)).collect();
        let mut line = format!("{:<28}", v.label);
        for (ns, r, lo, hi) in &cols {
            line.push_str(&format!(" {ns:>10.1} {:>22}", format!("{r:.3} [{lo:.3}-{hi:.3}]")));
        }
        println!("{line}");
        for (r, round) in rounds.iter().enumerate() {
            if i > 0 && b.per_round {
                println!(
                    "  round {r}: {:.3} {:.3} {:.3}",
                    round[i].file / round[0].file,
                    round[i].proc / round[0].proc,
                    round[i].getpid / round[0].getpid
                );
            }
        }
        let [file, proc, getpid] = [cols[0], cols[1], cols[2]];
        json_modes.push(json!({
            "mode": v.label,
            "file_ns": file.0, "proc_ns": proc.0, "getpid_ns": getpid.0,
            "file_ratio": file.1, "proc_ratio": proc.1, "getpid_ratio": getpid.1,
            "file_range": [file.2, file.3], "proc_range": [proc.2, proc.3], "getpid_range": [getpid.2, getpid.3],
        }));
    }
    // One machine-readable line for `cargo xtask bench`'s table (it reads the VM's console too).
    println!("bench-json: {}", json!({"rounds": b.rounds, "iters": b.iters, "modes": json_modes}));
    Ok(())
}

// ---- the suite ------------------------------------------------------------------------------

struct GuardProc {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    /// Where it serves `/metrics` (`--metrics 127.0.0.1:0`, from its stderr line).
    metrics: Arc<Mutex<Option<String>>>,
    /// Tracepoint mode without `--allow-32bit`: every 32-bit syscall is SIGKILLed at entry.
    compat_refused: bool,
}

impl GuardProc {
    fn start(a: &RunArgs) -> Result<GuardProc> {
        let mut child = Command::new(&a.guard)
            .args(["--mode", &a.mode, "--pin-root"])
            .arg(&a.pin_root)
            .args(["--node", "suite"])
            .args(a.allow_cgroup.iter().flat_map(|c| [std::ffi::OsStr::new("--allow-cgroup"), c.as_os_str()]))
            .args(a.max_lines.iter().flat_map(|n| ["--max-lines-per-sec".to_owned(), n.to_string()]))
            .args(&a.guard_args)
            .args(if metrics::loopback_up() { &["--metrics", "127.0.0.1:0"][..] } else { &[] })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", a.guard.display()))?;
        // Its stderr is passed on as it comes; the line naming the metrics address is kept.
        let metrics = Arc::new(Mutex::new(None));
        let stderr = child.stderr.take().context("guard stderr")?;
        let at = metrics.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) =
                    line.strip_prefix("guard: metrics on http://").and_then(|r| r.strip_suffix("/metrics"))
                {
                    *at.lock().expect("metrics lock") = Some(addr.to_owned());
                }
                eprintln!("{line}");
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().context("guard stdout")?;
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => sink.lock().expect("lines lock").push(v),
                    Err(_) => eprintln!("guard-suite: guard wrote a non-JSON line: {line}"),
                }
            }
        });
        let mut g = GuardProc { child, lines, metrics, compat_refused: false };
        let start = g
            .wait_for(Duration::from_secs(a.patience), |v| v["event"] == "start")
            .context("the guard did not start (no start line)")?;
        ensure!(start["mode"] == a.expect.as_str(), "guard runs {} mode, expected {}", start["mode"], a.expect);
        g.compat_refused = start["compat_refused"] == true;
        Ok(g)
    }

    fn wait_for(&self, patience: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let until = Instant::now() + patience;
        loop {
            if let Some(v) = self.lines.lock().expect("lines lock").iter().find(|v| pred(v)) {
                return Some(v.clone());
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address its metrics are served on, once it said so.
    fn metrics_addr(&self, patience: Duration) -> Option<String> {
        let until = Instant::now() + patience;
        loop {
            if let Some(addr) = self.metrics.lock().expect("metrics lock").clone() {
                return Some(addr);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.lines.lock().expect("lines lock").iter().filter(|v| pred(v)).count()
    }

    fn stop(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

struct App {
    child: Child,
    /// The shell (exec'd by the launcher) and its forked `sleep`.
    pid: i32,
    kid: i32,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.kid.to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launcher_cmd(bin: &Path, real_shim: bool, secret: &str, argv: &[&str]) -> Command {
    let mut c = Command::new(bin);
    if !real_shim {
        c.arg("exec-env");
    }
    c.arg("--").args(argv).env("HUSH_SUITE_SECRET", secret).stdin(Stdio::null());
    c
}

fn children_of(pid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return vec![] };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<i32>().ok()))
                == Some(pid)
        })
        .collect()
}

fn start_app(bin: &Path, real_shim: bool, secret: &str) -> Result<App> {
    // The app keeps fd 3 on its own environ (a self-read, allowed) for the pidfd_getfd attack,
    // and forks a child that inherits both the environment and the protection.
    // fd 4: a pipe holding the secret (a here-document), for the /proc/<pid>/fd/N attack.
    let script = "exec 3</proc/$$/environ; exec 4<<EOF\n$HUSH_SUITE_SECRET\nEOF\nsleep 1000 & wait";
    let child = launcher_cmd(bin, real_shim, secret, &["/bin/sh", "-c", script])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id() as i32;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if let Some(&kid) = children_of(pid).first()
            && comm.trim() == "sh"
            && std::fs::read_to_string(format!("/proc/{kid}/comm")).unwrap_or_default().trim() == "sleep"
        {
            return Ok(App { child, pid, kid });
        }
        ensure!(Instant::now() < until, "{} did not come up as sh + sleep", bin.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Attack {
    name: &'static str,
    /// argv, with `{pid}` replaced by the target pid and `{self}` by this binary.
    argv: &'static [&'static str],
    /// The audit line's `attempt`.
    attempt: &'static str,
    /// Modes where this class is a stated gap (SECURITY.md), with the name in the start line.
    gap_in: &'static [(&'static str, &'static str)],
    /// Kill modes: the reader dies but a process sharing its fd table reads; the line must say
    /// `exposed`, never `killed`.
    exposed_in_kill_modes: bool,
    /// The control's output shows the secret (else: the attack just succeeds, e.g. perf).
    control_reads: bool,
    /// Made of 32-bit syscalls: where the guard refuses those (tracepoint mode without
    /// `--allow-32bit`), the attacker dies at its first one, on the control too, with one
    /// `32-bit syscall` line.
    compat: bool,
}

/// The audit line's `attempt` for a refused 32-bit syscall.
const COMPAT_ATTEMPT: &str = "32-bit syscall";

impl Attack {
    const fn new(name: &'static str, argv: &'static [&'static str], attempt: &'static str) -> Attack {
        Attack { name, argv, attempt, gap_in: &[], exposed_in_kill_modes: false, control_reads: true, compat: false }
    }

    const fn compat(name: &'static str, argv: &'static [&'static str], attempt: &'static str) -> Attack {
        Attack { compat: true, ..Attack::new(name, argv, attempt) }
    }
}

const ATTACKS: &[Attack] = &[
    Attack::new("cat environ", &["cat", "/proc/{pid}/environ"], "open environ"),
    Attack::new("dd environ", &["dd", "if=/proc/{pid}/environ", "bs=4096", "count=1"], "open environ"),
    Attack::new(
        "python open",
        &["python3", "-c", "import sys; sys.stdout.buffer.write(open('/proc/{pid}/environ', 'rb').read())"],
        "open environ",
    ),
    Attack::new("task/ path", &["cat", "/proc/{pid}/task/{pid}/environ"], "open environ"),
    Attack::new("/proc/self/.. path", &["cat", "/proc/self/../{pid}/environ"], "open environ"),
    Attack::new("openat dirfd", &["{self}", "attack", "openat-dirfd", "{pid}"], "open environ"),
    Attack::new("second procfs mount", &["{self}", "attack", "procfs-mount", "{pid}"], "open environ"),
    Attack::new("/proc/pid/mem", &["{self}", "attack", "mem", "{pid}"], "open mem"),
    Attack::new("ptrace attach", &["{self}", "attack", "ptrace", "{pid}"], "ptrace attach"),
    Attack::new("process_vm_readv", &["{self}", "attack", "vm-readv", "{pid}"], "process_vm_readv"),
    Attack::new("pidfd_getfd", &["{self}", "attack", "pidfd-getfd", "{pid}"], "pidfd_getfd"),
    Attack::compat("i386 open environ", &["{self}", "attack", "int80-environ", "{pid}"], "open environ"),
    Attack::compat("i386 open mem + pread", &["{self}", "attack", "int80-mem", "{pid}"], "open mem"),
    Attack::compat("i386 ptrace attach", &["{self}", "attack", "int80-ptrace", "{pid}"], "ptrace attach"),
    Attack::compat("i386 pidfd_getfd", &["{self}", "attack", "int80-pidfd-getfd", "{pid}"], "pidfd_getfd"),
    Attack {
        gap_in: &[("tracepoint", "proc_fd_link")],
        ..Attack::new("/proc/pid/fd/4 (the app's pipe)", &["cat", "/proc/{pid}/fd/4"], "open fd link")
    },
    Attack {
        exposed_in_kill_modes: true,
        ..Attack::new("CLONE_FILES sibling", &["{self}", "attack", "clone-files", "{pid}"], "open environ")
    },
    Attack {
        control_reads: false,
        ..Attack::new(
            "perf_event_open PERF_SAMPLE_STACK_USER",
            &["{self}", "attack", "perf", "{pid}"],
            "perf_event_open",
        )
    },
    // Last, so the indices above (ATTACKS[0], [8], [9], [10]) stay.
    Attack::new("openat2", &["{self}", "attack", "openat2", "{pid}"], "open environ"),
    // creat opens write-only: the control's open succeeds but reads nothing.
    Attack { control_reads: false, ..Attack::new("creat", &["{self}", "attack", "creat", "{pid}"], "open environ") },
];

/// The attack from inside a nested pid namespace (`classes::pidns_inner`).
const PIDNS_INNER: Attack =
    Attack::new("environ from inside its pid namespace", &["{self}", "attack", "pidns-inner", "{pid}"], "open environ");

fn have(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

struct Outcome {
    status: ExitStatus,
    stdout: Vec<u8>,
    pid: u32,
}

fn spawn_attack(argv: &[&str], pid: i32) -> Result<Outcome> {
    let me = std::env::current_exe()?;
    let argv: Vec<String> =
        argv.iter().map(|a| a.replace("{pid}", &pid.to_string()).replace("{self}", &me.to_string_lossy())).collect();
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {argv:?}"))?;
    let cpid = child.id();
    let out = child.wait_with_output()?;
    // An attack that reads from a forked child (pidns-inner) names it: the audit line's reader.
    let reader = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix(classes::READER_PREFIX)?.trim().parse::<u32>().ok());
    Ok(Outcome { status: out.status, stdout: out.stdout, pid: reader.unwrap_or(cpid) })
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

struct Suite<'a> {
    a: &'a RunArgs,
    secret: String,
    failures: Vec<String>,
    passes: usize,
}

impl Suite<'_> {
    fn check(&mut self, ok: bool, what: String) {
        if ok {
            self.passes += 1;
            println!("ok: {what}");
        } else {
            println!("FAIL: {what}");
            self.failures.push(what);
        }
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(self.a.patience)
    }

    /// An attack on a protected target: blocked, secret absent, exactly one audit line.
    fn blocked(&mut self, g: &GuardProc, att: &Attack, target: i32, label: &str) -> Result<()> {
        if let Some(&(_, gap)) = att.gap_in.iter().find(|(m, _)| *m == self.a.expect) {
            let o = spawn_attack(att.argv, target)?;
            let read = contains(&o.stdout, &self.secret);
            println!(
                "gap: {} on {label} {target}: {} ({})",
                att.name,
                if read { "read" } else { "not read" },
                o.status
            );
            self.gap_named(g, gap, att.name);
            return Ok(());
        }
        if att.compat && g.compat_refused {
            return self.compat_killed(g, att, target, label);
        }
        let o = spawn_attack(att.argv, target)?;
        let name = format!("{} on {label} {target}", att.name);
        let leaked = contains(&o.stdout, &self.secret);
        let exposed = att.exposed_in_kill_modes && classes::kill_mode(&self.a.expect);
        let (want_action, failed) = match self.a.expect.as_str() {
            "lsm" => ("denied", !o.status.success() && o.status.signal().is_none()),
            _ if exposed => ("exposed", o.status.signal() == Some(libc::SIGKILL)),
            _ => ("killed", o.status.signal() == Some(libc::SIGKILL)),
        };
        if exposed {
            // The sibling sharing the fd table survives the kill and may read: what the line
            // must admit (SECURITY.md, shared fd table).
            println!("gap: {name}: the sibling {} the secret", if leaked { "read" } else { "did not read" });
            self.check(failed, format!("{name}: the opener is killed ({})", o.status));
            self.gap_named(g, "shared_fd_table", att.name);
        } else {
            self.check(failed && !leaked, format!("{name}: fails ({}), secret not in output", o.status));
        }
        let reader = o.pid;
        let is_mine = move |v: &Value| v["event"] == "attempt" && v["reader"]["tgid"] == reader;
        let line = g.wait_for(self.patience(), is_mine);
        std::thread::sleep(Duration::from_millis(300));
        let n = g.count(is_mine);
        if n != 1 {
            // For the record: what the guard did write around this attempt.
            let lines = g.lines.lock().expect("lines lock");
            for l in lines.iter().rev().take(5) {
                println!("  recent line: {l}");
            }
        }
        let ok = line.as_ref().is_some_and(|l| {
            l["action"] == want_action
                && l["target"]["tgid"] == target
                && l["mode"] == self.a.expect.as_str()
                && l["attempt"] == att.attempt
                && names_reader(l)
        });
        self.check(
            ok && n == 1,
            format!(
                "{name}: exactly one audit line, action {want_action}, attempt {}, naming the reader \
                 (got {n}: {line:?})",
                att.attempt
            ),
        );
        Ok(())
    }

    /// A 32-bit attack where the guard refuses 32-bit syscalls: killed at its first one, whatever
    /// the target, secret absent, exactly one `32-bit syscall` line naming the attacker.
    fn compat_killed(&mut self, g: &GuardProc, att: &Attack, target: i32, label: &str) -> Result<()> {
        let o = spawn_attack(att.argv, target)?;
        let name = format!("{} on {label} {target}", att.name);
        self.check(
            o.status.signal() == Some(libc::SIGKILL) && !contains(&o.stdout, &self.secret),
            format!("{name}: killed at its first 32-bit syscall ({}), secret not in output", o.status),
        );
        let reader = o.pid;
        let is_mine = move |v: &Value| v["event"] == "attempt" && v["reader"]["tgid"] == reader;
        let line = g.wait_for(self.patience(), is_mine);
        std::thread::sleep(Duration::from_millis(300));
        let n = g.count(is_mine);
        let ok = line.as_ref().is_some_and(|l| {
            l["action"] == "killed"
                && l["attempt"] == COMPAT_ATTEMPT
                && l["hook"] == "raw_tp/sys_enter"
                && names_reader(l)
        });
        self.check(
            ok && n == 1,
            format!("{name}: exactly one audit line, action killed, attempt {COMPAT_ATTEMPT} (got {n}: {line:?})"),
        );
        Ok(())
    }

    /// The same attack on the unprotected control: succeeds, prints the secret, no audit line.
    fn allowed(&mut self, g: &GuardProc, att: &Attack, target: i32, label: &str) -> Result<()> {
        if att.compat && g.compat_refused {
            return self.compat_killed(g, att, target, label);
        }
        let o = spawn_attack(att.argv, target)?;
        let name = format!("{} on {label} {target}", att.name);
        if att.control_reads {
            self.check(
                o.status.success() && contains(&o.stdout, &self.secret),
                format!("{name}: reads the secret ({})", o.status),
            );
        } else {
            self.check(o.status.success(), format!("{name}: succeeds ({})", o.status));
        }
        std::thread::sleep(Duration::from_millis(100));
        let reader = o.pid;
        let n = g.count(move |v: &Value| v["event"] == "attempt" && v["reader"]["tgid"] == reader);
        self.check(n == 0, format!("{name}: no audit line (got {n})"));
        Ok(())
    }
}

/// An attempt line names its reader (issue 13, identity): pid, comm, uid and cgroup path (the
/// Pod UID and container id are parsed from that path; none here, outside Kubernetes).
fn names_reader(l: &Value) -> bool {
    let r = &l["reader"];
    r["pid"].as_u64().is_some_and(|p| p > 0)
        && r["comm"].as_str().is_some_and(|c| !c.is_empty())
        && r["uid"].is_u64()
        && r["cgroup"].as_str().is_some_and(|c| c.starts_with('/'))
}

fn random_secret() -> Result<String> {
    let mut b = [0u8; 12];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!("hush-suite-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
}

fn alive_not_stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        .is_some_and(|state| !matches!(state, 'T' | 't' | 'Z' | 'X'))
}

fn run(a: &RunArgs) -> Result<()> {
    // An allowlisted reader cgroup (a node agent's, in production) under the cgroup2 mount.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let cg2 = injector_ebpf::cgroup::cgroup2_mount(&mountinfo).context("no cgroup2 mount")?;
    let allow_dir = Path::new(cg2).join("hush-suite-allowed");
    let _ = std::fs::remove_dir(&allow_dir);
    std::fs::create_dir(&allow_dir).with_context(|| format!("creating {}", allow_dir.display()))?;
    let a = &RunArgs { allow_cgroup: Some(allow_dir.clone()), ..a.clone() };
    let r = run_suite(a);
    let _ = std::fs::remove_dir(&allow_dir);
    r
}

fn capacity_only(a: &RunArgs) -> Result<()> {
    let _ = std::fs::remove_dir_all(&a.pin_root);
    let _ = std::fs::remove_dir_all(&a.workdir);
    std::fs::create_dir_all(&a.workdir)?;
    let (src, real_shim) = match &a.injector {
        Some(p) => (p.clone(), true),
        None => (std::env::current_exe()?, false),
    };
    let injector = a.workdir.join("injector");
    std::fs::copy(&src, &injector)?;
    let mut s = Suite { a, secret: random_secret()?, failures: vec![], passes: 0 };
    // A first guard creates the pinned maps the check sizes itself from.
    GuardProc::start(a)?.stop()?;
    let g = s.capacity(&injector, real_shim)?;
    g.stop()?;
    let status = Command::new(&a.guard).arg("unload").arg("--pin-root").arg(&a.pin_root).status()?;
    s.check(status.success() && !a.pin_root.exists(), "guard unload removed the pin root".into());
    ensure!(s.failures.is_empty(), "{} of {} checks failed", s.failures.len(), s.failures.len() + s.passes);
    println!("suite: success ({} checks)", s.passes);
    Ok(())
}

fn x32_only(a: &RunArgs) -> Result<()> {
    let _ = std::fs::remove_dir_all(&a.pin_root);
    let _ = std::fs::remove_dir_all(&a.workdir);
    std::fs::create_dir_all(&a.workdir)?;
    let (src, real_shim) = match &a.injector {
        Some(p) => (p.clone(), true),
        None => (std::env::current_exe()?, false),
    };
    let injector = a.workdir.join("injector");
    let launcher = a.workdir.join("launcher");
    std::fs::copy(&src, &injector)?;
    std::fs::copy(&src, &launcher)?;
    println!("suite: x32 only, mode {} (expect {})", a.mode, a.expect);
    let mut s = Suite { a, secret: random_secret()?, failures: vec![], passes: 0 };
    let on = s.x32_kernel()?;
    ensure!(on, "x32 is off on this kernel: nothing to attack with");
    let mut g = GuardProc::start(a)?;
    let prot = start_app(&injector, real_shim, &s.secret)?;
    let ctrl = start_app(&launcher, real_shim, &s.secret)?;
    let registered = g.wait_for(s.patience(), |v| v["event"] == "protect" && v["target"]["tgid"] == prot.pid);
    s.check(registered.is_some(), format!("exec of injector registered pid {} (protect line)", prot.pid));
    println!("suite: x32 attacks, guard --mode {}", a.mode);
    s.x32_attacks(&g, prot.pid, ctrl.pid)?;
    if g.compat_refused {
        // Tracepoint mode refused them at entry (above); --allow-32bit judges them in full, as
        // native calls (the restarted guard takes over the pinned map: the app stays protected).
        g.stop()?;
        g = GuardProc::start(&RunArgs { guard_args: vec!["--allow-32bit".to_owned()], ..a.clone() })?;
        s.check(!g.compat_refused, "guard --allow-32bit does not refuse 32-bit syscalls (start line)".into());
        println!("suite: x32 attacks, guard --mode {} --allow-32bit", a.mode);
        s.x32_attacks(&g, prot.pid, ctrl.pid)?;
    }
    g.stop()?;
    drop((prot, ctrl));
    let status = Command::new(&a.guard).arg("unload").arg("--pin-root").arg(&a.pin_root).status()?;
    s.check(status.success() && !a.pin_root.exists(), "guard unload removed the pin root".into());
    ensure!(s.failures.is_empty(), "{} of {} checks failed", s.failures.len(), s.failures.len() + s.passes);
    println!("suite: success ({} checks)", s.passes);
    Ok(())
}

fn run_suite(a: &RunArgs) -> Result<()> {
    let _ = std::fs::remove_dir_all(&a.pin_root);
    let _ = std::fs::remove_dir_all(&a.workdir);
    std::fs::create_dir_all(&a.workdir)?;
    let real_shim = a.injector.is_some();
    let src = match &a.injector {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let injector = a.workdir.join("injector");
    let launcher = a.workdir.join("launcher");
    std::fs::copy(&src, &injector)?;
    std::fs::copy(&src, &launcher)?;
    println!(
        "suite: mode {} (expect {}), shim {} ({})",
        a.mode,
        a.expect,
        src.display(),
        if real_shim { "the real injector" } else { "stand-in exec-env" }
    );

    let mut s = Suite { a, secret: random_secret()?, failures: vec![], passes: 0 };
    // The perf attack runs as root without CAP_PERFMON (a container's root): Debian kernels'
    // perf_event_paranoid=3 refuses that before any ptrace check, so on a machine of our own
    // use the upstream default 2 (unprivileged user-space sampling of one's own uid).
    let paranoid = "/proc/sys/kernel/perf_event_paranoid";
    if a.isolated && std::fs::read_to_string(paranoid).is_ok_and(|v| v.trim().parse::<i32>().is_ok_and(|v| v > 2)) {
        std::fs::write(paranoid, "2")?;
    }

    // Clear errors, from the real binary.
    let o = Command::new(&a.guard).arg("--pin-root").arg(a.workdir.join("not-bpffs/hush")).output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    s.check(
        !o.status.success() && err.contains("no bpffs at") && err.contains("mount -t bpf"),
        format!("a pin root off bpffs is refused, naming the fix: {}", err.trim()),
    );
    let lsm_active =
        std::fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"));
    if !lsm_active {
        let o = Command::new(&a.guard).args(["--mode", "lsm", "--pin-root"]).arg(&a.pin_root).output()?;
        let err = String::from_utf8_lossy(&o.stderr);
        s.check(
            !o.status.success() && err.contains("BPF LSM is not active") && err.contains("lsm="),
            format!("--mode lsm without BPF LSM is refused, naming the fix: {}", err.trim()),
        );
    }
    // Before any guard runs: is x32 on (else the kernel closes the class with ENOSYS)?
    let x32 = s.x32_kernel()?;
    let g = GuardProc::start(a)?;
    let prot = start_app(&injector, real_shim, &s.secret)?;
    let ctrl = start_app(&launcher, real_shim, &s.secret)?;
    let registered = g.wait_for(s.patience(), |v| v["event"] == "protect" && v["target"]["tgid"] == prot.pid);
    s.check(registered.is_some(), format!("exec of injector registered pid {} (protect line)", prot.pid));
    s.check(
        g.count(|v| v["event"] == "protect" && v["target"]["tgid"] == ctrl.pid) == 0,
        format!("exec of launcher did not register pid {}", ctrl.pid),
    );

    for att in ATTACKS {
        let prog = att.argv[0];
        if prog != "{self}" && !have(prog) {
            println!("skip: {} ({prog} is not installed here)", att.name);
            continue;
        }
        s.blocked(&g, att, prot.pid, "protected app")?;
        s.allowed(&g, att, ctrl.pid, "control app")?;
    }
    // Tracepoint mode refuses 32-bit syscalls at entry (above); with --allow-32bit it judges them
    // in full, as native ones: the i386 attacks on the protected app end as native attacks do and
    // the control reads.
    let g = if g.compat_refused {
        g.stop()?;
        let full = RunArgs { guard_args: vec!["--allow-32bit".to_owned()], ..a.clone() };
        let g32 = GuardProc::start(&full)?;
        s.check(!g32.compat_refused, "guard --allow-32bit does not refuse 32-bit syscalls (start line)".into());
        for att in ATTACKS.iter().filter(|att| att.compat) {
            s.blocked(&g32, att, prot.pid, "protected app (--allow-32bit)")?;
            s.allowed(&g32, att, ctrl.pid, "control app (--allow-32bit)")?;
        }
        g32.stop()?;
        GuardProc::start(a)?
    } else {
        g
    };
    if a.io_uring {
        s.io_uring(&g, prot.pid, ctrl.pid)?;
    }
    if x32 {
        s.x32_attacks(&g, prot.pid, ctrl.pid)?;
    }
    s.open_by_handle_closed(prot.pid, ctrl.pid)?;
    s.nested_pidns(&g, &injector, &launcher, real_shim)?;
    s.traced_exec(&g, &injector, &launcher, real_shim)?;
    for ptrace in [false, true] {
        s.fork_window(&g, &injector, &launcher, real_shim, ptrace)?;
    }
    for att in [&ATTACKS[0], &ATTACKS[8], &ATTACKS[9], &ATTACKS[10]] {
        s.blocked(&g, att, prot.kid, "protected app's forked child")?;
        s.allowed(&g, att, ctrl.kid, "control app's forked child")?;
    }

    // An allowlisted reader (node agent) reads, and is logged as allowed.
    let allow = a.allow_cgroup.as_ref().context("allow cgroup")?;
    let script = format!("echo $$ > {}/cgroup.procs && exec cat /proc/{}/environ", allow.display(), prot.pid);
    let o = Command::new("/bin/sh").args(["-c", &script]).stderr(Stdio::null()).output()?;
    s.check(
        o.status.success() && contains(&o.stdout, &s.secret),
        format!("a reader in the allowlisted cgroup reads the protected app ({})", o.status),
    );
    let agent = g.wait_for(s.patience(), |v| {
        v["event"] == "attempt" && v["action"] == "allowed" && v["reader"]["cgroup"] == "/hush-suite-allowed"
    });
    s.check(agent.is_some(), "the allowlisted read yields an `allowed` audit line naming its cgroup".into());

    // What monitoring and kubectl exec need keeps working.
    for file in ["status", "stat", "cmdline", "fd", "ns/pid"] {
        let path = format!("/proc/{}/{file}", prot.pid);
        let ok = std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) && std::fs::read_dir(&path).is_ok()
            || std::fs::read(&path).is_ok()
            || std::fs::read_link(&path).is_ok();
        s.check(ok, format!("{path} of the protected app stays readable"));
    }
    let o = launcher_cmd(&injector, real_shim, &s.secret, &["cat", "/proc/self/environ"]).output()?;
    s.check(
        o.status.success() && contains(&o.stdout, &s.secret),
        format!("a process started through injector reads its own environ ({})", o.status),
    );
    let until = Instant::now() + s.patience();
    while !(alive_not_stopped(prot.pid) && alive_not_stopped(prot.kid)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    s.check(
        alive_not_stopped(prot.pid) && alive_not_stopped(prot.kid),
        "the protected app and its child survived every attack, not stopped".into(),
    );
    s.metrics(&g)?;

    let mut g = g;
    if a.restart {
        g.stop()?;
        let o = spawn_attack(ATTACKS[0].argv, prot.pid)?;
        let failed = if a.expect == "lsm" { !o.status.success() } else { o.status.signal() == Some(libc::SIGKILL) };
        s.check(
            failed && !contains(&o.stdout, &s.secret),
            format!("with no guard running (pinned links), cat still fails ({})", o.status),
        );
        g = GuardProc::start(a)?;
        s.blocked(&g, &ATTACKS[0], prot.pid, "protected app after a guard restart")?;
        s.blocked(&g, &ATTACKS[9], prot.kid, "protected child after a guard restart")?;
    }

    // Floods: the log stays bounded, and every attempt is a line, a suppressed line or a lost
    // record (counted on the attacker's side and summed from the guard's lines).
    g.stop()?;
    g = s.flood_refused(prot.pid)?;
    g.stop()?;
    g = s.flood_lost(prot.pid)?;
    g.stop()?;
    s.fork_window_audit(&injector, real_shim)?;
    g = s.capacity(&injector, real_shim)?;
    g.stop()?;
    g = GuardProc::start(a)?;

    // Exit releases protection: no stale entries for a reused pid to inherit.
    let (pid, kid) = (prot.pid, prot.kid);
    drop(prot);
    let released = g.wait_for(s.patience(), |v| v["event"] == "release" && v["target"]["tgid"] == pid);
    s.check(released.is_some(), format!("exit of {pid} released its protection (release line)"));
    let protected_map = aya::maps::MapData::from_pin(a.pin_root.join("hush_protected"))
        .map_err(|e| anyhow!("opening the pinned hush_protected map: {e}"))?;
    let map: aya::maps::HashMap<_, u32, injector_ebpf::maps::Protected> =
        aya::maps::HashMap::try_from(aya::maps::Map::HashMap(protected_map))?;
    let until = Instant::now() + s.patience();
    let stale = loop {
        let keys: Vec<u32> = map.keys().filter_map(Result::ok).collect();
        let stale: Vec<u32> = keys.into_iter().filter(|k| *k == pid as u32 || *k == kid as u32).collect();
        if stale.is_empty() || Instant::now() > until {
            break stale;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    s.check(stale.is_empty(), format!("no entries left for the exited app and child (stale: {stale:?})"));
    drop(ctrl);
    s.churn(&g, &injector, real_shim)?;
    s.lifecycle_lines_name_cgroups(&g);

    g.stop()?;
    let status = Command::new(&a.guard).arg("unload").arg("--pin-root").arg(&a.pin_root).status()?;
    s.check(status.success() && !a.pin_root.exists(), "guard unload removed the pin root".into());
    let _ = std::io::stdout().as_raw_fd();

    if s.failures.is_empty() {
        println!("suite: success ({} checks)", s.passes);
        Ok(())
    } else {
        println!("suite: failure ({} of {} checks failed)", s.failures.len(), s.failures.len() + s.passes);
        bail!("{} checks failed", s.failures.len())
    }
}
