//! The attack classes of issue 13, each against the protected app and an unprotected control:
//! 32-bit system calls, the fork window (environ and ptrace), a tracer attached before the
//! shim's exec, `/proc/<pid>/fd/N`, a shared fd table (CLONE_FILES), perf_event_open with
//! PERF_SAMPLE_STACK_USER, and io_uring. What each mode does with each is SECURITY.md's table.

use super::*;
use std::ffi::CString;
use std::io::Write;

/// The mode runs attempts to completion and kills the reader (tracepoint, fentry) rather than
/// refusing them (lsm).
pub(super) fn kill_mode(expect: &str) -> bool {
    expect != "lsm"
}

// ---- attacks performed by this binary ------------------------------------------------------

/// `attack int80-*`, `attack x32-*`: the 32-bit reads through `int $0x80` and x32 calls.
pub(super) fn int80_attack(kind: SelfAttack, pid: i32) -> Result<Vec<u8>> {
    Ok(match kind {
        SelfAttack::Int80Environ => read_all(std::fs::File::from(sys::int80_open(&format!("/proc/{pid}/environ"))?))?,
        SelfAttack::Int80Mem => {
            read_env_through_mem(std::fs::File::from(sys::int80_open(&format!("/proc/{pid}/mem"))?), pid)?
        }
        SelfAttack::Int80Ptrace => peek_env_after(sys::int80_ptrace_attach, pid)?,
        SelfAttack::Int80PidfdGetfd => {
            let pidfd = sys::pidfd_open(pid)?;
            let f = std::fs::File::from(sys::int80_pidfd_getfd(pidfd.as_fd(), 3)?);
            let mut buf = vec![0; 8192];
            let n = f.read_at(&mut buf, 0)?;
            buf.truncate(n);
            buf
        }
        SelfAttack::X32Environ => read_all(std::fs::File::from(sys::x32_open(&format!("/proc/{pid}/environ"))?))?,
        SelfAttack::X32Ptrace => peek_env_after(sys::x32_ptrace_attach, pid)?,
        SelfAttack::CloneFiles => clone_files(pid)?,
        SelfAttack::Perf => {
            // As root of an ordinary container: without CAP_PERFMON/CAP_SYS_ADMIN the kernel
            // checks ptrace access to the target (a holder of those is node root: out of scope).
            sys::drop_perf_capabilities()?;
            let _fd = sys::perf_stack_sampler(pid)?;
            b"perf-event-open: ok\n".to_vec()
        }
        _ => bail!("not an issue-13 attack"),
    })
}

/// `attack clone-files`: a second process sharing our fd table (CLONE_FILES, not a thread)
/// waits for the fd we open on the target's environ and reads it; the opener may die.
fn clone_files(pid: i32) -> Result<Vec<u8>> {
    let path = format!("/proc/{pid}/environ");
    let sibling = sys::fork_sharing_files()?;
    if sibling == 0 {
        // The sibling: find the fd (by its link) in the shared table, read it, print it.
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            for fd in 3..64 {
                if std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|l| l.as_os_str() == path.as_str()) {
                    // Safety of the borrow: the fd stays open in the shared table while we read.
                    let mut buf = vec![0; 8192];
                    let n = sys::pread_fd(fd, &mut buf).unwrap_or(0);
                    let _ = std::io::stdout().write_all(&buf[..n]);
                    let _ = std::io::stdout().flush();
                    sys::exit_now(0);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        sys::exit_now(1);
    }
    std::thread::sleep(Duration::from_millis(50));
    let f = std::fs::File::open(&path)?;
    // Keep the fd open while the sibling reads, then wait for it.
    let _ = sys::wait_status(sibling);
    drop(f);
    Ok(Vec::new())
}

/// `guard-suite fork-race PID --secs S [--ptrace]`: names each pid about to be created (from
/// `ns_last_pid`) as fast as it can, reading its environ (or attaching and peeking its
/// environment), and prints the first environment that holds `HUSH_SUITE_SECRET=`.
pub(super) fn fork_race(secs: u64, ptrace: bool) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(secs);
    let (mut tries, mut refused) = (0u64, 0u64);
    while Instant::now() < until {
        let last: i32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")?.trim().parse()?;
        for p in last + 1..=last + 3 {
            tries += 1;
            let got =
                if ptrace { race_ptrace(p) } else { std::fs::read(format!("/proc/{p}/environ")).map_err(Into::into) };
            match got {
                Ok(env) if contains(&env, "HUSH_SUITE_SECRET=") => {
                    std::io::stdout().write_all(&env)?;
                    eprintln!("fork-race: read pid {p} after {tries} tries ({refused} refused)");
                    return Ok(());
                }
                Err(e)
                    if e.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error)
                        == Some(libc::EPERM)
                        || e.downcast_ref::<sys::SyscallError>().and_then(|s| s.io_error.raw_os_error())
                            == Some(libc::EPERM) =>
                {
                    refused += 1
                }
                _ => {}
            }
        }
    }
    println!("fork-race: nothing read in {tries} tries ({refused} refused)");
    Ok(())
}

fn race_ptrace(p: i32) -> Result<Vec<u8>> {
    sys::ptrace_attach_nowait(p)?;
    // Attached, to whatever took the next pid: on a shared host that may be anyone's process.
    // It must be detached whatever happens: left traced, its queued SIGSTOP stops it for good
    // when this racer exits (seen: another engineer's `ar` group-stopped for 15 minutes).
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match sys::wait_nohang(p) {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_micros(200)),
            Ok(None) => {
                // Never stopped (uninterruptible for 10 s): SIGCONT drops the queued SIGSTOP.
                let _ = sys::kill(p, libc::SIGCONT);
                let _ = sys::ptrace_detach(p);
                bail!("pid {p}: no stop after the attach");
            }
            Err(e) => return Err(e.into()), // gone
        }
    }
    let mut buf = Vec::new();
    if let Ok((start, end)) = env_range(p) {
        let mut a = start;
        while a < end {
            match sys::ptrace_peek(p, a) {
                Ok(w) => buf.extend_from_slice(&w.to_ne_bytes()),
                Err(_) => break,
            }
            a += 8;
        }
    }
    let _ = sys::ptrace_detach(p);
    // The first stop may have been another signal's, the SIGSTOP still queued: SIGCONT drops it.
    let _ = sys::kill(p, libc::SIGCONT);
    Ok(buf)
}

/// `guard-suite traced-exec -- CMD...`: forks a child that calls PTRACE_TRACEME and execs CMD,
/// then at every stop peeks the child's environment and prints it. Exits 0 if the child
/// exited 0, 137 if it was SIGKILLed, 126 if its exec failed, 79 if the real shim refused to
/// run traced, 1 otherwise.
pub(super) fn traced_exec(cmd: Vec<String>) -> Result<()> {
    let argv: Vec<CString> = cmd.iter().map(|a| CString::new(a.as_str())).collect::<Result<_, _>>()?;
    let child = sys::fork_traceme_exec(&argv)?;
    let mut out = std::io::stdout();
    loop {
        let st = sys::wait_status(child)?;
        if libc::WIFEXITED(st) {
            let code = libc::WEXITSTATUS(st);
            eprintln!("traced-exec: child exited {code}");
            sys::exit_now(match code {
                0 => 0,
                126 => 126,
                // hush_contract::exit::TRACED: the real shim refused its traced start itself.
                79 => 79,
                _ => 1,
            });
        }
        if libc::WIFSIGNALED(st) {
            eprintln!("traced-exec: child killed by signal {}", libc::WTERMSIG(st));
            sys::exit_now(if libc::WTERMSIG(st) == libc::SIGKILL { 137 } else { 1 });
        }
        if libc::WIFSTOPPED(st) {
            if let Ok((start, end)) = env_range(child) {
                let mut a = start;
                while a < end {
                    match sys::ptrace_peek(child, a) {
                        Ok(w) => out.write_all(&w.to_ne_bytes())?,
                        Err(_) => break,
                    }
                    a += 8;
                }
                out.flush()?;
            }
            let sig = libc::WSTOPSIG(st);
            sys::ptrace_cont(child, if sig == libc::SIGTRAP { 0 } else { sig })?;
        }
    }
}

/// `guard-suite perf-exec -- CMD...`: forks a child, attaches a PERF_SAMPLE_STACK_USER sampler
/// to it, then lets it exec CMD. Exit codes as `traced-exec` (137 killed, 126 exec refused).
pub(super) fn perf_exec(cmd: Vec<String>) -> Result<()> {
    let argv: Vec<CString> = cmd.iter().map(|a| CString::new(a.as_str())).collect::<Result<_, _>>()?;
    let (child, gate) = sys::fork_gated_exec(&argv)?;
    let sampler = sys::perf_stack_sampler(child);
    drop(gate);
    let st = sys::wait_status(child)?;
    drop(sampler?);
    if libc::WIFSIGNALED(st) {
        sys::exit_now(if libc::WTERMSIG(st) == libc::SIGKILL { 137 } else { 1 });
    }
    sys::exit_now(match libc::WEXITSTATUS(st) {
        0 => 0,
        126 => 126,
        _ => 1,
    })
}

// ---- the checks ----------------------------------------------------------------------------

impl Suite<'_> {
    fn start_line(&self, g: &GuardProc) -> Option<Value> {
        g.wait_for(Duration::from_secs(1), |v| v["event"] == "start")
    }

    /// A class this mode does not close: it must be named in the start line's `gaps`.
    pub(super) fn gap_named(&mut self, g: &GuardProc, gap: &str, what: &str) {
        let named =
            self.start_line(g).is_some_and(|s| s["gaps"].as_array().is_some_and(|a| a.iter().any(|x| x == gap)));
        self.check(named, format!("{what}: a gap of {} mode, named `{gap}` in the start line", self.a.expect));
    }

    /// Forks in a loop under injector (or launcher) with its own secret; the fork race must
    /// never read the protected one (workers are respawned when killed), and reads the control's.
    pub(super) fn fork_window(
        &mut self,
        g: &GuardProc,
        injector: &Path,
        launcher: &Path,
        real_shim: bool,
        ptrace: bool,
    ) -> Result<()> {
        let kind = if ptrace { "ptrace attach" } else { "environ open" };
        let secs = self.a.race_secs;
        let script = "while :; do /bin/true; done";
        let secret = random_secret()?;
        let forker = Reaped(
            launcher_cmd(injector, real_shim, &secret, &["/bin/sh", "-c", script]).stdout(Stdio::null()).spawn()?,
        );
        let from = g.line_count();
        let until = Instant::now() + Duration::from_secs(secs);
        let (mut workers, mut leaked, mut killed) = (0, false, 0);
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now()).as_secs().max(1).to_string();
            let mut argv = vec!["{self}", "fork-race", "--secs", &left];
            if ptrace {
                argv.push("--ptrace");
            }
            let o = spawn_attack(&argv, 0)?;
            workers += 1;
            leaked |= contains(&o.stdout, &secret);
            if o.status.signal() == Some(libc::SIGKILL) {
                killed += 1;
            }
            if leaked {
                break;
            }
        }
        drop(forker);
        std::thread::sleep(Duration::from_millis(500));
        let lines = g.lines_since(from);
        let refusals = lines
            .iter()
            .filter(|v| v["event"] == "attempt" && (v["action"] == "denied" || v["action"] == "killed"))
            .count();
        let in_creation = lines.iter().filter(|v| v["target"]["in_creation"] == true).count();
        println!(
            "fork window ({kind}): {workers} workers in {secs}s, {killed} killed, {refusals} refusal lines, {in_creation} caught while being created"
        );
        self.check(
            !leaked && refusals > 0,
            format!("fork window ({kind}): the protected forker's children were never read ({refusals} refused)"),
        );

        let prot_secret = secret;
        let secret = random_secret()?;
        let forker = Reaped(
            launcher_cmd(launcher, real_shim, &secret, &["/bin/sh", "-c", script]).stdout(Stdio::null()).spawn()?,
        );
        // A worker returns at the first environment holding HUSH_SUITE_SECRET=, which may be
        // another process's of this suite: race again until the control's is read or 20 s pass.
        // The protected forker's secret, read here, is a leak.
        let until = Instant::now() + Duration::from_secs(20);
        let (mut read, mut prot_read, mut last) = (false, false, String::new());
        while !read && !prot_read && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now()).as_secs().max(1).to_string();
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["fork-race", "--secs", &left]);
            if ptrace {
                c.arg("--ptrace");
            }
            let o = c.stdin(Stdio::null()).output()?;
            read = contains(&o.stdout, &secret);
            prot_read = contains(&o.stdout, &prot_secret);
            last = format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim());
        }
        drop(forker);
        self.check(
            !prot_read,
            format!("fork window ({kind}): the protected forker's secret was not read later ({last})"),
        );
        self.check(read, format!("fork window ({kind}): the same race reads the control forker's children ({last})"));
        Ok(())
    }

    /// PTRACE_TRACEME, then exec of the shim: refused (lsm: the exec fails; kill modes: the
    /// process is SIGKILLed at its exec) with one line naming the tracer; the control runs.
    pub(super) fn traced_exec(
        &mut self,
        g: &GuardProc,
        injector: &Path,
        launcher: &Path,
        real_shim: bool,
    ) -> Result<()> {
        let secret = self.secret.clone();
        let run = |bin: &Path, how: &str| -> Result<Outcome> {
            let me = std::env::current_exe()?;
            let mut c = Command::new(me);
            c.args([how, "--"]).arg(bin);
            if !real_shim {
                c.arg("exec-env");
            }
            c.args(["--", "/bin/sh", "-c", "cat /proc/self/environ"])
                .env("HUSH_SUITE_SECRET", &secret)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let child = c.spawn()?;
            let pid = child.id();
            let out = child.wait_with_output()?;
            Ok(Outcome { status: out.status, stdout: out.stdout, pid })
        };
        let o = run(injector, "traced-exec")?;
        let want = if kill_mode(&self.a.expect) { 137 } else { 126 };
        self.check(
            o.status.code() == Some(want) && !contains(&o.stdout, &self.secret),
            format!("a traced start of injector is refused ({}; want exit {want}), secret not read", o.status),
        );
        let tracer = o.pid;
        let mine = move |v: &Value| v["event"] == "attempt" && v["reader"]["tgid"] == tracer;
        let line = g.wait_for(self.patience(), mine);
        std::thread::sleep(Duration::from_millis(300));
        let n = g.count(mine);
        let action = if kill_mode(&self.a.expect) { "killed" } else { "denied" };
        self.check(
            n == 1
                && line
                    .as_ref()
                    .is_some_and(|l| l["action"] == action && l["attempt"] == "exec of the shim while traced"),
            format!("the traced start: exactly one line, action {action}, naming the tracer (got {n}: {line:?})"),
        );
        // The control is not protected: the tracer reads its environment at the exec stop. The
        // real shim then refuses to run traced (exit 79, issue 13), before any Vault contact.
        let o = run(launcher, "traced-exec")?;
        let control_exit = if real_shim { 79 } else { 0 };
        self.check(
            o.status.code() == Some(control_exit) && contains(&o.stdout, &self.secret),
            format!(
                "the same traced start of the control: its environment is read, and it exits {control_exit}{} ({})",
                if real_shim { " (the shim refuses to run traced)" } else { "" },
                o.status
            ),
        );

        // The same with perf events attached before the exec (their samples would carry the
        // app's stack): refused the same way; the line names the process itself.
        let o = run(injector, "perf-exec")?;
        self.check(
            o.status.code() == Some(want) && !contains(&o.stdout, &self.secret),
            format!("a perf-monitored start of injector is refused ({}; want exit {want})", o.status),
        );
        let starter = o.pid;
        let mine = move |v: &Value| {
            v["event"] == "attempt"
                && v["attempt"] == "exec of the shim while perf-monitored"
                && v["target"]["tgid"] != starter
        };
        let line = g.wait_for(self.patience(), mine);
        self.check(
            line.as_ref().is_some_and(|l| l["action"] == action),
            format!("the perf-monitored start has its line, action {action} ({line:?})"),
        );
        let o = run(launcher, "perf-exec")?;
        self.check(
            o.status.success() && contains(&o.stdout, &self.secret),
            format!("the same perf-monitored start of the control runs ({})", o.status),
        );
        Ok(())
    }

    /// x32 system calls (`nr | __X32_SYSCALL_BIT`), probed before the guard starts. Where the
    /// kernel has x32 off (not built, as on the 6.18 host; built but off, Debian's default) an
    /// x32 open of `/proc/P/environ` fails with ENOSYS: the kernel closes the class. A kernel
    /// booted with `syscall.x32=y`, or run with `--expect-x32` (the VMs of `cargo xtask test`),
    /// must have it on. Returns whether it is on.
    pub(super) fn x32_kernel(&mut self) -> Result<bool> {
        let me = std::process::id().to_string();
        let o = Command::new(std::env::current_exe()?)
            .args(["attack", "x32-environ", &me])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let err = String::from_utf8_lossy(&o.stderr);
        let enosys = !o.status.success() && err.contains("os error 38");
        let booted_on = std::fs::read_to_string("/proc/cmdline")?
            .split_whitespace()
            .any(|a| a == "syscall.x32=y" || a == "syscall.x32=1");
        let asked = booted_on || self.a.expect_x32;
        let on = !enosys && o.status.success();
        let what = match (enosys, asked) {
            (true, false) => "x32 is off on this kernel: an x32 open of /proc/P/environ fails with ENOSYS",
            (true, true) => "x32 must be on here (syscall.x32=y / --expect-x32), yet an x32 open fails with ENOSYS",
            (false, true) => "x32 is on, as asked: an x32 open of an unguarded environ succeeds",
            (false, false) => "x32 is on on this kernel: an x32 open of an unguarded environ succeeds",
        };
        self.check(if asked { on } else { enosys || on }, format!("{what} ({}: {})", o.status, err.trim()));
        Ok(on)
    }

    /// Where x32 is on: x32 open of environ and x32 PTRACE_ATTACH against the protected app are
    /// refused (lsm) or killed (fentry) with one line, and read the control; where the guard
    /// refuses 32-bit syscalls (tracepoint mode), both die at entry (`Attack::compat`).
    pub(super) fn x32_attacks(&mut self, g: &GuardProc, prot: i32, ctrl: i32) -> Result<()> {
        let attacks = [
            Attack::compat("x32 open environ", &["{self}", "attack", "x32-environ", "{pid}"], "open environ"),
            Attack::compat("x32 ptrace attach", &["{self}", "attack", "x32-ptrace", "{pid}"], "ptrace attach"),
        ];
        for att in &attacks {
            self.blocked(g, att, prot, "protected app")?;
            self.allowed(g, att, ctrl, "control app")?;
        }
        Ok(())
    }

    /// The fork window exists, and a race wins it when nothing but the `TASK_NEW` rule stands in
    /// the way. With the guard in audit mode (the same judgement, logged and allowed), this process
    /// reads the environ of each pid about to be created while a protected forker forks. A read
    /// the guard logs with `in_creation: true` was judged protected by the `TASK_NEW` rule alone
    /// (the pid was not yet in the protected map): without the rule it would have passed in
    /// enforce mode too. The check needs one such read whose bytes hold the forker's secret,
    /// within `4 * race_secs`; the counts are printed.
    pub(super) fn fork_window_audit(&mut self, injector: &Path, real_shim: bool) -> Result<()> {
        // Every read of a protected child is a line here: lift the line limit so none is summarised.
        let audit =
            RunArgs { mode: "audit".into(), expect: "audit".into(), max_lines: Some(1_000_000), ..self.a.clone() };
        let g = GuardProc::start(&audit)?;
        let secret = random_secret()?;
        let script = "while :; do /bin/true; done";
        let forker = Reaped(
            launcher_cmd(injector, real_shim, &secret, &["/bin/sh", "-c", script]).stdout(Stdio::null()).spawn()?,
        );
        let fpid = forker.0.id();
        g.wait_for(self.patience(), move |v: &Value| v["event"] == "protect" && v["target"]["tgid"] == fpid)
            .context("the audit guard did not register the forker")?;
        let me = std::process::id();
        let from = g.line_count();
        let started = Instant::now();
        let until = started + Duration::from_secs(4 * self.a.race_secs);
        let (mut tries, mut reads) = (0u64, 0u64);
        let mut with_secret = std::collections::HashSet::new();
        let mut next_look = Instant::now();
        let won = |g: &GuardProc, with_secret: &std::collections::HashSet<i64>| {
            g.lines_since(from).into_iter().find(|v| {
                v["event"] == "attempt"
                    && v["reader"]["tgid"] == me
                    && v["target"]["in_creation"] == true
                    && v["target"]["tgid"].as_i64().is_some_and(|t| with_secret.contains(&t))
            })
        };
        let mut hit = None;
        while hit.is_none() && Instant::now() < until {
            // The next pid: spin on its environ from before the kernel makes it visible
            // (attach_pid), so the first open that succeeds lands as early in the window as
            // this process can. Give up on it once another pid is handed out or after 50 ms.
            let last: i64 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")?.trim().parse()?;
            let p = last + 1;
            let path = format!("/proc/{p}/environ");
            let spin_until = Instant::now() + Duration::from_millis(50);
            loop {
                tries += 1;
                match std::fs::File::open(&path) {
                    Ok(mut f) => {
                        let mut env = Vec::new();
                        if f.read_to_end(&mut env).is_ok() {
                            reads += 1;
                            if contains(&env, &secret) {
                                with_secret.insert(p);
                            }
                        }
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < spin_until => {
                        if tries % 256 == 0
                            && std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")?.trim().parse::<i64>()? >= p
                        {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if Instant::now() >= next_look {
                hit = won(&g, &with_secret);
                next_look = Instant::now() + Duration::from_millis(250);
            }
        }
        let took = started.elapsed();
        drop(forker);
        std::thread::sleep(Duration::from_millis(500));
        let hit = hit.or_else(|| won(&g, &with_secret));
        let lines = g.lines_since(from);
        let mine: Vec<&Value> = lines.iter().filter(|v| v["event"] == "attempt" && v["reader"]["tgid"] == me).collect();
        let caught = mine.iter().filter(|v| v["target"]["in_creation"] == true).count();
        println!(
            "fork window (audit mode, environ open): {tries} tries in {:.1}s, {reads} reads, {} with the forker's secret, \
             {} audited lines, {caught} caught while being created",
            took.as_secs_f64(),
            with_secret.len(),
            mine.len()
        );
        self.check(
            hit.as_ref().is_some_and(|l| l["action"] == "audited"),
            format!(
                "fork window (audit mode): a read of a protected child caught while being created got the secret \
                 (the TASK_NEW rule alone refuses it in enforce mode): {hit:?}"
            ),
        );
        g.stop()
    }

    /// io_uring: lsm denies its open, fentry kills the opener; tracepoint mode kills at
    /// io_uring_setup (unless --allow-io-uring, then a named gap).
    pub(super) fn io_uring(&mut self, g: &GuardProc, prot: i32, ctrl: i32) -> Result<()> {
        let att = &Attack::new("io_uring openat", &["{self}", "attack", "io-uring", "{pid}"], "open environ");
        if self.a.expect != "tracepoint" {
            self.blocked(g, att, prot, "protected app")?;
            return self.allowed(g, att, ctrl, "control app");
        }
        let setup = &Attack::new("io_uring openat", &["{self}", "attack", "io-uring", "{pid}"], "io_uring_setup");
        let o = spawn_attack(setup.argv, prot)?;
        self.check(
            o.status.signal() == Some(libc::SIGKILL) && !contains(&o.stdout, &self.secret),
            format!("io_uring_setup is SIGKILLed in tracepoint mode ({})", o.status),
        );
        let reader = o.pid;
        let line = g.wait_for(self.patience(), move |v: &Value| v["reader"]["tgid"] == reader);
        self.check(
            line.as_ref().is_some_and(|l| l["action"] == "killed" && l["attempt"] == "io_uring_setup"),
            format!("the refused io_uring_setup has its line ({line:?})"),
        );
        Ok(())
    }

    /// The protect lines name the app's cgroup (issue 12: resolved at event time).
    pub(super) fn lifecycle_lines_name_cgroups(&mut self, g: &GuardProc) {
        let lines = g.lines_since(0);
        let life: Vec<&Value> = lines.iter().filter(|v| v["event"] == "protect" || v["event"] == "release").collect();
        let unnamed = life.iter().filter(|v| !v["target"]["cgroup"].is_string()).count();
        self.check(
            !life.is_empty() && unnamed == 0,
            format!("every protect/release line names the target's cgroup ({unnamed} of {} without)", life.len()),
        );
    }
}

/// What an attack that reads from a forked child prints on stderr before the child's pid (in
/// the root namespace): the reader the audit line must name.
pub(super) const READER_PREFIX: &str = "hush-suite-reader: ";

/// `unshare -p -f`: the command after `--` runs as pid 1 of a new pid namespace; exits as it did.
pub(super) fn pidns_exec(cmd: Vec<String>) -> Result<()> {
    sys::unshare_pid()?;
    let st = Command::new(&cmd[0]).args(&cmd[1..]).status()?;
    sys::exit_now(st.code().unwrap_or(1));
}

/// `attack pidns-inner PID`: enter PID's pid namespace (setns), and from a child forked there
/// read environ by PID's inner pid through that namespace's own procfs (the second-procfs
/// attack run inside). The child's root-namespace pid goes to stderr (READER_PREFIX); this
/// process ends as the child did (SIGKILL included).
pub(super) fn pidns_inner(pid: i32) -> Result<()> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:")).context("no NSpid in status")?;
    let levels: Vec<&str> = nspid.split_whitespace().collect();
    ensure!(levels.len() >= 2, "pid {pid} is not in a nested pid namespace (NSpid: {nspid})");
    let inner = levels[levels.len() - 1];
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/pid"))?;
    sys::setns_pid(ns.as_fd())?;
    let me = std::env::current_exe()?;
    let mut child = Command::new(me).args(["attack", "procfs-mount", inner]).spawn()?;
    eprintln!("{READER_PREFIX}{}", child.id());
    let st = child.wait()?;
    if st.signal() == Some(libc::SIGKILL) {
        sys::kill(std::process::id() as i32, libc::SIGKILL)?;
    }
    sys::exit_now(st.code().unwrap_or(1));
}

/// `bin` (injector or launcher) started as pid 1 of a new pid namespace: the sh it execs and
/// that sh's `sleep`, by their root-namespace pids.
fn start_app_in_pidns(bin: &Path, real_shim: bool, secret: &str) -> Result<App> {
    let script = "sleep 1000 & wait";
    let me = std::env::current_exe()?;
    let mut c = Command::new(me);
    c.args(["pidns-exec", "--"]).arg(bin);
    if !real_shim {
        c.arg("exec-env");
    }
    let child = c
        .args(["--", "/bin/sh", "-c", script])
        .env("HUSH_SUITE_SECRET", secret)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} in a new pid namespace", bin.display()))?;
    let outer = child.id() as i32;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(&pid) = children_of(outer).first()
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim() == "sh"
            && let Some(&kid) = children_of(pid).first()
            && std::fs::read_to_string(format!("/proc/{kid}/comm")).unwrap_or_default().trim() == "sleep"
        {
            return Ok(App { child, pid, kid });
        }
        ensure!(Instant::now() < until, "{} did not come up as sh + sleep in a pid namespace", bin.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Suite<'_> {
    /// open_by_handle_at: procfs exports no file handles, so name_to_handle_at of
    /// `/proc/P/environ` fails with EOPNOTSUPP on the protected app and the control alike: the
    /// kernel closes the path. A kernel that exports them fails this check (then the attack reads
    /// through open_by_handle_at and must be judged as an open).
    pub(super) fn open_by_handle_closed(&mut self, prot: i32, ctrl: i32) -> Result<()> {
        let me = std::env::current_exe()?;
        for (pid, label) in [(prot, "protected app"), (ctrl, "control app")] {
            let o = Command::new(&me).args(["attack", "open-by-handle", &pid.to_string()]).output()?;
            let err = String::from_utf8_lossy(&o.stderr);
            self.check(
                !o.status.success()
                    && o.status.signal().is_none()
                    && err.contains("name_to_handle_at")
                    && err.contains("os error 95")
                    && !contains(&o.stdout, &self.secret),
                format!(
                    "open_by_handle_at on {label} {pid}: procfs exports no file handles, name_to_handle_at \
                     fails with EOPNOTSUPP ({}: {})",
                    o.status,
                    err.trim()
                ),
            );
        }
        Ok(())
    }

    /// A protected app (and its control twin) started as pid 1 of a nested pid namespace:
    /// registered by its root-namespace pid; read from the root namespace by that pid, and from
    /// inside its own namespace by its inner pid: refused/killed with one line, control read.
    pub(super) fn nested_pidns(
        &mut self,
        g: &GuardProc,
        injector: &Path,
        launcher: &Path,
        real_shim: bool,
    ) -> Result<()> {
        let prot = start_app_in_pidns(injector, real_shim, &self.secret)?;
        let ctrl = start_app_in_pidns(launcher, real_shim, &self.secret)?;
        for (app, label) in [(&prot, "protected"), (&ctrl, "control")] {
            let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid)).unwrap_or_default();
            let nspid = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap_or_default().trim().to_owned();
            let levels: Vec<&str> = nspid.split_whitespace().collect();
            self.check(
                levels.len() == 2 && levels[1] == "1",
                format!("the {label} app {} runs as pid 1 of a nested pid namespace (NSpid: {nspid})", app.pid),
            );
        }
        let registered = g.wait_for(self.patience(), |v| v["event"] == "protect" && v["target"]["tgid"] == prot.pid);
        self.check(
            registered.is_some(),
            format!("exec of injector in a nested pid namespace registered pid {}", prot.pid),
        );
        self.blocked(g, &ATTACKS[0], prot.pid, "protected app in a nested pid namespace, root-ns pid")?;
        self.allowed(g, &ATTACKS[0], ctrl.pid, "control app in a nested pid namespace, root-ns pid")?;
        self.blocked(g, &PIDNS_INNER, prot.pid, "protected app in a nested pid namespace")?;
        self.allowed(g, &PIDNS_INNER, ctrl.pid, "control app in a nested pid namespace")?;
        Ok(())
    }
}
