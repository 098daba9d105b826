//! Daemon mode (`VAULT_ENV_DAEMON=true`): the shim stays as the application's parent. It
//! forwards signals, reaps zombies (it may be PID 1), renews the token and every lease
//! before it expires, and rotates — fetches fresh secrets and restarts the application, or
//! exits — when a lease reaches its max TTL or a watched KV v2 secret gets a new version.
//!
//! The application is started with `fork` + `execve`: the hardening is prepared in the
//! parent and enforced in the child with system calls only (see [`crate::harden`]). The
//! parent wipes its copy of the environment once the child has it.

use crate::config::{Auth, Config, Rotation};
use crate::exec::ExecError;
use crate::exit::Failure;
use crate::harden;
use crate::plan::Plan;
use crate::render::{Resolved, render_for};
use crate::renewal::{Credential, Schedule};
use crate::sys;
use crate::vault::{Fetched, Vault, resolve};
use hush_contract::exit as code;
use hush_contract::reference::{Operation, Request};
use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, sleep, sleep_until};

/// Exit code of `HUSH_ROTATION=exit`: EX_TEMPFAIL, "try again later".
pub const EXIT_ROTATE: i32 = hush_contract::exit::TEMP_FAIL as i32;
/// The longest a round of Vault requests may hold up noticing that the app ended
/// (signals are forwarded by their own tasks meanwhile).
const MAX_BATCH: Duration = Duration::from_secs(5);

/// The supervisor's state.
pub struct Daemon<'a> {
    config: &'a Config,
    plan: &'a Plan,
    program: &'a Path,
    argv: &'a [OsString],
    vault: Vault,
    /// When the token, the leases and the KV poll are due (pure, `renewal`).
    schedule: Schedule,
    kv_versions: HashMap<Request, u64>,
    child: i32,
    target: Arc<Target>,
    revoke_at_exit: bool,
}

/// Every signal the shim catches and passes on. Faults of the shim's own (SEGV, BUS, ...),
/// SIGCHLD (its own business), SIGPIPE (left ignored) and the uncatchable are not forwarded.
const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGURG,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
];

/// Where forwarded signals go: shared with the forwarding tasks.
#[derive(Default)]
struct Target {
    pid: AtomicI32,
    /// Set by SIGTERM, SIGINT or SIGQUIT: the app is stopping, no more rotations.
    stopping: AtomicBool,
}

impl Target {
    fn forward(&self, signal: i32) {
        if matches!(signal, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) {
            self.stopping.store(true, Ordering::Relaxed);
        }
        let pid = self.pid.load(Ordering::Relaxed);
        if pid > 0
            && let Err(e) = sys::kill(pid, signal)
        {
            tracing::warn!("forwarding signal {signal} to {pid}: {e}");
        }
    }
}

impl<'a> Daemon<'a> {
    /// Takes over after the first fetch: starts the app and supervises it. Returns the
    /// exit code for the shim.
    pub async fn run(
        config: &'a Config,
        plan: &'a Plan,
        program: &'a Path,
        argv: &'a [OsString],
        vault: Vault,
        fetched: Resolved,
        revoke_at_exit: bool,
    ) -> Result<i32, Failure> {
        let now = Instant::now();
        let mut schedule = Schedule::new(config.supervision.kv_poll, now);
        let (ttl, renewable) = vault.token_lifetime();
        schedule.set_token(ttl, renewable, now, fastrand::f64());
        let mut daemon = Daemon {
            config,
            plan,
            program,
            argv,
            vault,
            schedule,
            kv_versions: HashMap::new(),
            child: 0,
            target: Arc::default(),
            revoke_at_exit,
        };
        if let Err(e) = sys::become_subreaper() {
            tracing::warn!("could not become a child subreaper: orphans will not be reaped here: {e}");
        }
        crate::run::delay(config);
        daemon.track(&fetched);
        let pid = daemon.start(&fetched)?;
        daemon.set_child(pid);
        drop(fetched);
        daemon.supervise().await
    }

    fn track(&mut self, resolved: &Resolved) {
        let leases = resolved
            .fetched
            .values()
            .filter(|f| !f.lease.id.is_empty())
            .map(|f| (f.lease.id.clone(), Duration::from_secs(f.lease.duration_secs), f.lease.renewable));
        self.schedule.set_leases(leases, Instant::now(), &mut fastrand::f64);
        for (request, f) in &resolved.fetched {
            if let (Some(version), Operation::Read { version: None }) = (f.kv_version, &request.operation) {
                self.kv_versions.insert(request.clone(), version);
            }
        }
        tracing::info!(
            leases = self.schedule.leases().len(),
            watched = self.kv_versions.len(),
            "daemon mode: supervising"
        );
    }

    /// Renders the environment and starts the app in a hardened child.
    fn start(&self, fetched: &Resolved) -> Result<i32, Failure> {
        let rendered = render_for(self.plan, fetched, self.config.ignore_missing, true)?;
        let prepared = harden::prepare(&self.config.hardening)?;
        let program =
            CString::new(self.program.as_os_str().as_bytes()).map_err(|_| ExecError::NulInArgument { index: 0 })?;
        let args: Vec<CString> = self
            .argv
            .iter()
            .enumerate()
            .map(|(index, a)| CString::new(a.as_bytes()).map_err(|_| ExecError::NulInArgument { index }))
            .collect::<Result<_, _>>()?;
        let mut argv: Vec<*const std::ffi::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let envp = rendered.block.envp();
        let exits = exec_exits(self.program);
        let exits = sys::ChildExits { hardening: code::OS, exec: &exits, exec_other: code::OS };
        let pid = sys::spawn_hardened(&program, &argv, &envp, || prepared.enforce().is_ok(), exits)
            .map_err(|source| ExecError::Exec { program: self.program.to_owned(), source })?;
        // `rendered` drops here: the parent's copy of the environment is wiped.
        tracing::info!(pid, "started {}", self.program.display());
        Ok(pid)
    }

    async fn supervise(&mut self) -> Result<i32, Failure> {
        let mut child_signal = listen(SignalKind::child())?;
        // Forwarding runs in its own tasks, so that it goes on while a Vault round is slow.
        for &signal in FORWARDED {
            let mut stream = listen(SignalKind::from_raw(signal))?;
            let target = Arc::clone(&self.target);
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    target.forward(signal);
                }
            });
        }
        loop {
            // A child may have ended before the handler was installed: look first.
            if let Some(code) = self.reap() {
                return Ok(self.finish(code).await);
            }
            let due = self.schedule.next_due().unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let stopping = self.target.stopping.load(Ordering::Relaxed);
            tokio::select! {
                _ = child_signal.recv() => {}
                _ = sleep_until(due), if !stopping => {
                    if let Some(code) = self.tick().await? {
                        return Ok(self.finish(code).await);
                    }
                }
            }
        }
    }

    /// Starts supervising a new application process.
    fn set_child(&mut self, pid: i32) {
        self.child = pid;
        self.target.pid.store(pid, Ordering::Relaxed);
    }

    /// Reaps every ended child; the app's exit code if it was among them.
    fn reap(&mut self) -> Option<i32> {
        let mut app = None;
        while let Ok(Some((pid, ended))) = sys::try_wait(-1) {
            if pid == self.child {
                tracing::info!(code = ended.code(), "the application ended");
                app = Some(ended.code());
            }
        }
        app
    }

    /// Due renewals, KV checks and rotations. `Some(code)`: the shim should exit.
    async fn tick(&mut self) -> Result<Option<i32>, Failure> {
        let due = self.schedule.due(Instant::now());
        self.vault.refresh_deadline(self.batch_timeout());
        let mut rotate = due.rotate;
        if due.renew_token {
            let asked = self.schedule.token().map_or(Duration::ZERO, |t| t.lifetime.ttl);
            match self.vault.renew_token(asked).await {
                Ok((granted, renewable)) => {
                    self.schedule.renewed(Credential::Token, granted, renewable, Instant::now(), fastrand::f64());
                    tracing::info!(ttl_secs = granted.as_secs(), "renewed the token");
                }
                Err(e) => self.retry_later(Credential::Token, &e),
            }
        }
        for i in due.renew_leases {
            let lease = &self.schedule.leases()[i];
            let (id, asked) = (lease.lease_id.clone(), lease.lifetime.ttl);
            match self.vault.renew_lease(&id, asked).await {
                Ok((granted, renewable)) => {
                    self.schedule.renewed(Credential::Lease(i), granted, renewable, Instant::now(), fastrand::f64());
                    tracing::info!(lease = id.as_str(), ttl_secs = granted.as_secs(), "renewed");
                }
                Err(e) => self.retry_later(Credential::Lease(i), &e),
            }
        }
        if due.rotate {
            tracing::info!("a lease reaches its max TTL: rotating");
        }
        if due.relogin {
            // Leases end with the token that made them: a new token means new leases.
            rotate |= self.relogin().await && !self.schedule.leases().is_empty();
        }
        if due.kv_poll {
            rotate |= self.kv_changed().await;
        }
        if rotate { self.rotate().await } else { Ok(None) }
    }

    /// A renewal failed: logged, retried while the credential lasts (`renewal::Schedule`).
    fn retry_later(&mut self, which: Credential, error: &crate::vault::VaultError) {
        let valid = self.schedule.renewal_failed(which, Instant::now());
        tracing::warn!("{error}; the current credentials stay valid for {} s", valid.as_secs());
    }

    /// Logs in again when the token reaches its max TTL. `true` if there is a new token.
    async fn relogin(&mut self) -> bool {
        match self.config.auth.as_ref() {
            Ok(Auth::Token(_)) | Err(_) => {
                tracing::warn!("the handed-in token reaches its max TTL and cannot be renewed; no more renewals");
                self.schedule.forget_token();
                false
            }
            Ok(auth) => match self.vault.login(auth).await {
                Ok(()) => {
                    let (ttl, renewable) = self.vault.token_lifetime();
                    self.schedule.set_token(ttl, renewable, Instant::now(), fastrand::f64());
                    tracing::info!(ttl_secs = ttl.as_secs(), "logged in again: the old token reached its max TTL");
                    true
                }
                Err(e) => {
                    self.schedule.relogin_failed(Instant::now());
                    tracing::warn!("logging in again: {e}; retrying");
                    false
                }
            },
        }
    }

    async fn kv_changed(&self) -> bool {
        for (request, seen) in &self.kv_versions {
            match self.vault.fetch(request).await {
                Ok(Fetched { kv_version: Some(version), .. }) if version != *seen => {
                    tracing::info!(
                        path = request.path.as_str(),
                        from = seen,
                        to = version,
                        "KV secret changed: rotating"
                    );
                    return true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("checking {} for a new version: {e}", request.path),
            }
        }
        false
    }

    /// Fetches fresh secrets and applies the rotation policy.
    async fn rotate(&mut self) -> Result<Option<i32>, Failure> {
        let transit = crate::run::transit_settings(self.config);
        let fresh = match resolve(Arc::new(self.fresh_vault()), self.plan, self.config.max_concurrency, &transit).await
        {
            Ok(fresh) => fresh,
            Err(e) => {
                let expires = self.schedule.credentials_expire();
                if expires.is_some_and(|at| Instant::now() >= at) {
                    tracing::error!(
                        "rotation failed and the credentials have expired: {e}; stopping the application (exit 69)"
                    );
                    self.stop_child().await;
                    return Ok(Some(69));
                }
                tracing::warn!("rotation failed: {e}; the application keeps its current credentials, retrying");
                self.schedule.rotation_failed(Instant::now());
                return Ok(None);
            }
        };
        let old: Vec<String> = self.schedule.leases().iter().map(|l| l.lease_id.clone()).collect();
        self.stop_child().await;
        if self.config.supervision.rotation == Rotation::Exit {
            tracing::info!("rotation: the application was stopped; exiting for Kubernetes to restart the container");
            self.revoke(&old).await;
            return Ok(Some(EXIT_ROTATE));
        }
        self.track(&fresh);
        let pid = self.start(&fresh)?;
        self.set_child(pid);
        drop(fresh);
        self.revoke(&old).await;
        tracing::info!(leases = self.schedule.leases().len(), "rotation: the application restarted with new secrets");
        Ok(None)
    }

    /// The vault client for a new batch of requests: same token, fresh deadline.
    fn fresh_vault(&mut self) -> Vault {
        self.vault.refresh_deadline(self.batch_timeout());
        self.vault.clone()
    }

    /// How long one round of renewals or a rotation may retry: short, so that the loop
    /// gets back to reaping, and never past the credentials' expiry.
    fn batch_timeout(&self) -> Duration {
        self.schedule.batch_timeout(self.config.client_timeout.min(MAX_BATCH), Instant::now())
    }

    async fn revoke(&self, leases: &[String]) {
        for id in leases {
            match self.vault.revoke_lease(id).await {
                Ok(()) => tracing::info!(lease = id.as_str(), "revoked the old lease"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }

    /// SIGTERM, the grace period, then SIGKILL; waits until the app has ended.
    async fn stop_child(&mut self) {
        let _ = sys::kill(self.child, libc::SIGTERM);
        let deadline = Instant::now() + self.config.supervision.grace;
        loop {
            match sys::try_wait(self.child) {
                Ok(Some((_, ended))) => {
                    tracing::info!(code = ended.code(), "the application stopped");
                    return;
                }
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
                Ok(None) => {
                    tracing::warn!("the application did not stop within the grace period: SIGKILL");
                    let _ = sys::kill(self.child, libc::SIGKILL);
                    sleep(Duration::from_millis(20)).await;
                }
                Err(_) => return,
            }
        }
    }

    /// The app has ended: revoke what the shim obtained, and hand on its exit code.
    async fn finish(&mut self, code: i32) -> i32 {
        self.vault.refresh_deadline(self.config.client_timeout);
        if self.revoke_at_exit
            && let Err(e) = self.vault.revoke_self().await
        {
            tracing::warn!("{e}");
        }
        code
    }
}

/// The `execve` errors a child can meet, each with the exit code the non-daemon path gives
/// it (`exec::classify` + `Failure::exit_code`): built in the parent, because the forked
/// child may not allocate an error to classify.
const EXEC_ERRNOS: [i32; 10] = [
    libc::ENOENT,
    libc::EACCES,
    libc::ENOEXEC,
    libc::EISDIR,
    libc::ETXTBSY,
    libc::ENOTDIR,
    libc::ELOOP,
    libc::ENAMETOOLONG,
    libc::E2BIG,
    libc::ENOMEM,
];

fn exec_exits(program: &Path) -> [(i32, u8); 10] {
    EXEC_ERRNOS.map(|errno| {
        let error = crate::exec::classify(program, std::io::Error::from_raw_os_error(errno));
        (errno, Failure::Exec(error).exit_code())
    })
}

fn listen(kind: SignalKind) -> Result<Signal, Failure> {
    signal(kind).map_err(Failure::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forked child once mapped only ENOENT, EACCES and ENOEXEC, so EISDIR and ETXTBSY
    /// gave 71 in daemon mode and 126 without it.
    #[test]
    fn the_daemon_child_maps_exec_errors_as_the_non_daemon_path() {
        let table = exec_exits(Path::new("/app"));
        let code_of = |errno| table.iter().find(|(e, _)| *e == errno).map(|&(_, c)| c);
        assert_eq!(code_of(libc::EISDIR), Some(code::CANNOT_EXECUTE));
        assert_eq!(code_of(libc::ETXTBSY), Some(code::CANNOT_EXECUTE));
        assert_eq!(code_of(libc::EACCES), Some(code::CANNOT_EXECUTE));
        assert_eq!(code_of(libc::ENOENT), Some(code::NOT_FOUND));
        assert_eq!(code_of(libc::E2BIG), Some(code::OS));
    }
}
