//! `guard`: Hush's per-node daemon. Loads the BPF programs, then writes one JSON audit line per
//! attempt on a protected process to stdout until killed. Programs and maps stay pinned under
//! the pin root after it exits; `guard unload` removes them.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use injector_ebpf::audit::{self, LineCtx, Side};
use injector_ebpf::cgroup;
use injector_ebpf::loader::{self, Options, PIN_ROOT};
use injector_ebpf::maps::{Action, Event, STAT_MAP_FULL, STAT_RINGBUF_FULL, STAT_RINGBUF_FULL_LIFECYCLE, What};
use injector_ebpf::metrics::{self, Metrics};
use injector_ebpf::mode::{self, Requested};
use injector_ebpf::podwatch::{self, SharedPods};
use injector_ebpf::ratelimit::{Losses, RateLimiter, Verdict};
use injector_ebpf::resolve::CgroupPaths;
use injector_ebpf::{error_chain, sys};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Hush guard: no other process reads a protected process's environment or memory")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// auto picks the strongest mode that loads (lsm, else tracepoint).
    #[arg(long, value_enum, default_value = "auto")]
    mode: Requested,
    /// Where maps and links are pinned (on bpffs).
    #[arg(long, global = true, default_value = PIN_ROOT)]
    pin_root: PathBuf,
    /// Node name in audit lines (default: $NODE_NAME, else the host name).
    #[arg(long)]
    node: Option<String>,
    /// A cgroup v2 directory whose processes may read protected processes (node agents). Repeatable.
    #[arg(long = "allow-cgroup")]
    allow_cgroups: Vec<PathBuf>,
    /// Serve Prometheus counters on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics: Option<String>,
    /// Tracepoint mode: do not SIGKILL io_uring_setup by processes outside --allow-cgroup
    /// (io_uring's opens then go unseen: a named gap, see SECURITY.md).
    #[arg(long)]
    allow_io_uring: bool,
    /// Tracepoint mode: do not SIGKILL 32-bit (int $0x80) and x32 syscalls by processes outside
    /// --allow-cgroup; judge them in full instead, at the cost of a second program (raw
    /// sys_exit) on every syscall of the node.
    #[arg(long = "allow-32bit")]
    allow_32bit: bool,
    /// At most this many protected thread groups at once. A shim exec or a protected fork past it
    /// fails closed, with one `protected_set_full` line: lsm mode fails the exec or fork (ENOMEM),
    /// fentry mode kills the shim (before its first instruction) or the forking process (no child
    /// is made), tracepoint mode kills the shim or the new child on its return from fork.
    #[arg(long, default_value_t = loader::MAX_PROTECTED, value_parser = clap::value_parser!(u32).range(1..=4_000_000))]
    max_protected: u32,
    /// At most this many audit lines per second; the rest are counted in a summary line.
    #[arg(long, default_value_t = 200)]
    max_lines_per_sec: u32,
    /// Name the namespace, Pod and container in audit lines: watch this node's Pods (field
    /// selector spec.nodeName=<node>) through the API server, in-cluster (the ServiceAccount's
    /// token; needs get/list/watch on pods). Lines keep the cgroup-derived ids; the names are
    /// null while the API server is unreachable, and protection never waits for it.
    #[arg(long)]
    kube_pod_names: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Detach every program and remove the pinned maps (protection ends).
    Unload,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("guard: error: {}", error_chain(e.as_ref()));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(Cmd::Unload) = cli.cmd {
        loader::unload(&cli.pin_root).with_context(|| format!("removing {}", cli.pin_root.display()))?;
        eprintln!("guard: unloaded {}", cli.pin_root.display());
        return Ok(());
    }
    let allowed_cgroups = cli
        .allow_cgroups
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.ino()).with_context(|| format!("--allow-cgroup {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let opts = Options {
        requested: cli.mode,
        pin_root: cli.pin_root.clone(),
        allowed_cgroups,
        allow_io_uring: cli.allow_io_uring,
        max_protected: cli.max_protected,
        allow_32bit: cli.allow_32bit,
    };
    let (mut guard, facts) = loader::start(&opts).map_err(|e| anyhow::anyhow!(error_chain(&e)))?;
    for w in mode::warnings(guard.mode, &facts, !cli.allow_io_uring) {
        eprintln!("guard: warning: {w}");
    }
    let compat_refused = loader::refuses_compat(guard.mode, cli.allow_32bit);
    if compat_refused {
        eprintln!(
            "guard: warning: tracepoint mode: 32-bit (int $0x80) and x32 syscalls by processes outside --allow-cgroup \
             are SIGKILLed at entry; --allow-32bit judges them in full instead (slower on every syscall)"
        );
    }
    let gaps = mode::gaps(guard.mode, !cli.allow_io_uring);
    let node = cli
        .node
        .or_else(|| std::env::var("NODE_NAME").ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_owned()))
        .unwrap_or_default();
    // Started after the programs are attached: the API server is never on protection's path.
    let pods: Option<SharedPods> = if cli.kube_pod_names {
        match podwatch::spawn(&node) {
            Ok(pods) => Some(pods),
            Err(e) => {
                eprintln!("guard: warning: --kube-pod-names: {}; audit lines name no Pods", error_chain(&e));
                None
            }
        }
    } else {
        None
    };
    let mode_name = guard.mode.to_string();
    let wall_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i128;
    let ctx = LineCtx { node: &node, mode: &mode_name, boot_to_wall_ns: wall_now - sys::boottime_ns()? };

    let metrics = Arc::new(Metrics::default());
    for gap in &gaps {
        metrics.mode_gap(&mode_name, gap);
    }
    if let Some(addr) = &cli.metrics {
        let local = metrics::serve(addr, metrics.clone()).with_context(|| format!("--metrics {addr}"))?;
        eprintln!("guard: metrics on http://{local}/metrics");
    }
    let mut out = std::io::stdout().lock();
    let (lost_total, lost_lifecycle) = lost_counters(&guard);
    let mut losses = Losses::new(lost_total, lost_lifecycle);
    writeln!(
        out,
        "{}",
        serde_json::json!({"time": audit::rfc3339_ns(wall_now), "node": node, "mode": mode_name, "event": "start",
            "pid": std::process::id(), "pin_root": cli.pin_root, "lost_before_start": lost_total,
            "gaps": gaps, "max_protected": guard.max_protected, "pod_names": pods.is_some(), "compat_refused": compat_refused, "io_uring_refused": guard.mode == mode::Mode::Tracepoint && !cli.allow_io_uring})
    )?;
    out.flush()?;

    let mut paths = CgroupPaths::new();
    // Attempts and lifecycle lines (protect/release) have separate budgets, so a burst of pod
    // starts cannot hide attempts, nor a flood of attempts hide registrations.
    let mut limiters = [
        ("attempt", RateLimiter::new(cli.max_lines_per_sec, 1_000_000_000)),
        ("lifecycle", RateLimiter::new(cli.max_lines_per_sec, 1_000_000_000)),
    ];
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut stopped_by_attach: Vec<ContinueAfter> = Vec::new();
    loop {
        let timeout = if stopped_by_attach.is_empty() { 250 } else { 20 };
        let ready = sys::poll_readable(guard.events.as_fd(), timeout)?;
        let now = started.elapsed().as_nanos() as u64;
        if ready {
            while let Some(item) = guard.events.next() {
                let Some(mut ev) = Event::decode(&item) else {
                    eprintln!("guard: skipping a malformed ring buffer record of {} bytes", item.len());
                    continue;
                };
                drop(item);
                if (ev.action == Action::Killed as u32 || ev.action == Action::Exposed as u32)
                    && (ev.what == What::Ptrace as u32 || ev.what == What::Attach as u32)
                {
                    stopped_by_attach.push(ContinueAfter::new(&ev));
                }
                let reader_cg = paths.path_of(ev.reader.cgroup_id, ev.reader.tgid);
                let target_cg = if ev.target.comm[0] == 0 && ev.target.tgid != 0 {
                    paths.fill_from_proc(&mut ev.target)
                } else {
                    paths.path_of(ev.target.cgroup_id, ev.target.tgid)
                };
                let action = Action::from_u32(ev.action).map_or("unknown", Action::name);
                // The attempt as its audit line names it (an LSM/fentry ptrace access check is
                // named after the syscall that made it).
                metrics.event(action, audit::attempt_name(&ev));
                let lifecycle = Action::from_u32(ev.action).is_some_and(Action::is_lifecycle);
                let (lines, limiter) = &mut limiters[usize::from(lifecycle)];
                match limiter.admit(now) {
                    Verdict::Emit { summary } => {
                        if let Some(n) = summary {
                            let w = limiter.window_secs();
                            writeln!(out, "{}", audit::suppressed_line(lines, n, w, wall_ns(&ctx)?, &ctx))?;
                        }
                        let names = |cg: Option<&str>| {
                            pods.as_ref().map(|p| p.names(&cg.map(cgroup::identity).unwrap_or_default()))
                        };
                        let (reader_names, target_names) = (names(reader_cg.as_deref()), names(target_cg.as_deref()));
                        let reader = Side { cgroup: reader_cg.as_deref(), names: reader_names.as_ref() };
                        let target = Side { cgroup: target_cg.as_deref(), names: target_names.as_ref() };
                        writeln!(out, "{}", audit::line(&ev, reader, target, &ctx))?;
                    }
                    Verdict::Suppress => {
                        metrics.suppressed_line();
                    }
                }
            }
            out.flush()?;
        }
        stopped_by_attach.retain_mut(ContinueAfter::poll);
        for (lines, limiter) in &mut limiters {
            if let Some(n) = limiter.flush(now) {
                let w = limiter.window_secs();
                writeln!(out, "{}", audit::suppressed_line(lines, n, w, wall_ns(&ctx)?, &ctx))?;
                out.flush()?;
            }
        }
        if last_stats.elapsed().as_secs() >= 1 {
            last_stats = Instant::now();
            let (full, lifecycle) = lost_counters(&guard);
            let map_full = guard.stats.get(&STAT_MAP_FULL, 0).unwrap_or(0);
            metrics.set_bpf_stats(full, map_full);
            for (lines, n) in ["attempt", "lifecycle"].into_iter().zip(losses.update(full, lifecycle)) {
                if n > 0 {
                    writeln!(out, "{}", audit::lost_line(lines, n, wall_ns(&ctx)?, &ctx))?;
                    out.flush()?;
                }
            }
        }
    }
}

/// A PTRACE_ATTACH killed at syscall entry still attached and queued SIGSTOP for the target
/// before the tracer died; the detach at its death leaves the target group-stopped. Once the
/// tracer is gone, a target found stopped within a second is continued (see SECURITY.md).
struct ContinueAfter {
    tracer: u32,
    target: i32,
    until: Instant,
}

impl ContinueAfter {
    fn new(ev: &Event) -> Self {
        ContinueAfter {
            tracer: ev.reader.tgid,
            target: ev.target.tgid as i32,
            until: Instant::now() + std::time::Duration::from_secs(1),
        }
    }

    /// `false` once done.
    fn poll(&mut self) -> bool {
        if Instant::now() > self.until {
            return false;
        }
        if !matches!(proc_state(self.tracer as i32), None | Some('Z' | 'X')) {
            return true;
        }
        if matches!(proc_state(self.target), Some('T' | 't')) {
            let _ = sys::kill(self.target, libc::SIGCONT);
            eprintln!("guard: continued pid {} (stopped by a blocked ptrace attach)", self.target);
            return false;
        }
        true
    }
}

/// The ring-buffer drop counters: (all records, protect/release records). Lines the rate
/// limiter suppressed are counted by the limiter; these are records it never saw.
fn lost_counters(guard: &loader::Guard) -> (u64, u64) {
    let get = |i| guard.stats.get(&i, 0).unwrap_or(0);
    (get(STAT_RINGBUF_FULL), get(STAT_RINGBUF_FULL_LIFECYCLE))
}

fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn wall_ns(ctx: &LineCtx<'_>) -> Result<i128> {
    Ok(sys::boottime_ns()? + ctx.boot_to_wall_ns)
}
