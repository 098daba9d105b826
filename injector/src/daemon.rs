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
use crate::renewal::{self, Lifetime, Next};
use crate::sys::{self, Forked};
use crate::vault::{Fetched, Vault, resolve};
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
/// How long to wait before retrying a failed renewal or rotation.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The longest a round of Vault requests may hold up noticing that the app ended
/// (signals are forwarded by their own tasks meanwhile).
const MAX_BATCH: Duration = Duration::from_secs(5);

struct Tracked {
    lease_id: String,
    lifetime: Lifetime,
    next: Next,
}

/// The supervisor's state.
pub struct Daemon<'a> {
    config: &'a Config,
    plan: &'a Plan,
    program: &'a Path,
    argv: &'a [OsString],
    vault: Vault,
    leases: Vec<Tracked>,
    token: Option<Tracked>,
    kv_versions: HashMap<Request, u64>,
    next_kv_poll: Option<Instant>,
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

fn lifetime(now: Instant, ttl: Duration, renewable: bool) -> (Lifetime, Next) {
    let lifetime = Lifetime { since: now, ttl, renewable, capped: false };
    (lifetime, renewal::next(&lifetime, fastrand::f64()))
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
        let token = match vault.token_lifetime() {
            (ttl, renewable) if !ttl.is_zero() => {
                let (lifetime, next) = lifetime(now, ttl, renewable);
                Some(Tracked { lease_id: String::new(), lifetime, next })
            }
            _ => None,
        };
        let mut daemon = Daemon {
            config,
            plan,
            program,
            argv,
            vault,
            leases: Vec::new(),
            token,
            kv_versions: HashMap::new(),
            next_kv_poll: config.supervision.kv_poll.map(|every| now + every),
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
        let now = Instant::now();
        self.leases.clear();
        for (request, f) in &resolved.fetched {
            if !f.lease.id.is_empty() {
                let (lifetime, next) = lifetime(now, Duration::from_secs(f.lease.duration_secs), f.lease.renewable);
                self.leases.push(Tracked { lease_id: f.lease.id.clone(), lifetime, next });
            }
            if let (Some(version), Operation::Read { version: None }) = (f.kv_version, &request.operation) {
                self.kv_versions.insert(request.clone(), version);
            }
        }
        tracing::info!(leases = self.leases.len(), watched = self.kv_versions.len(), "daemon mode: supervising");
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
        match sys::fork().map_err(|source| ExecError::Exec { program: self.program.to_owned(), source })? {
            Forked::Child => {
                if prepared.enforce().is_err() {
                    sys::write_stderr(b"injector: hardening the application failed\n");
                    sys::exit_now(71);
                }
                let err = sys::execve(&program, &argv, &envp);
                sys::write_stderr(b"injector: exec of the application failed\n");
                sys::exit_now(match err.raw_os_error() {
                    Some(libc::ENOENT) => 127,
                    Some(libc::EACCES | libc::ENOEXEC) => 126,
                    _ => 71,
                });
            }
            Forked::Parent(pid) => {
                drop(prepared);
                // `rendered` drops here: the parent's copy of the environment is wiped.
                tracing::info!(pid, "started {}", self.program.display());
                Ok(pid)
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.leases.iter().chain(self.token.iter()).filter_map(|t| t.next.at()).chain(self.next_kv_poll).min()
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
            let due = self.next_due().unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
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
        let now = Instant::now();
        self.vault.refresh_deadline(self.batch_timeout());
        let mut rotate = false;
        let mut relogin = false;
        if let Some(token) = self.token.as_mut().filter(|t| t.next.at().is_some_and(|at| at <= now)) {
            match token.next {
                Next::Renew(_) => match self.vault.renew_token(token.lifetime.ttl).await {
                    Ok((granted, renewable)) => {
                        token.lifetime = renewal::renewed(Instant::now(), token.lifetime.ttl, granted, renewable);
                        token.next = renewal::next(&token.lifetime, fastrand::f64());
                        tracing::info!(ttl_secs = granted.as_secs(), "renewed the token");
                    }
                    Err(e) => retry_later(token, &e),
                },
                Next::Rotate(_) | Next::Nothing => relogin = true,
            }
        }
        for lease in self.leases.iter_mut().filter(|l| l.next.at().is_some_and(|at| at <= now)) {
            match lease.next {
                Next::Renew(_) => match self.vault.renew_lease(&lease.lease_id, lease.lifetime.ttl).await {
                    Ok((granted, renewable)) => {
                        lease.lifetime = renewal::renewed(Instant::now(), lease.lifetime.ttl, granted, renewable);
                        lease.next = renewal::next(&lease.lifetime, fastrand::f64());
                        tracing::info!(lease = lease.lease_id.as_str(), ttl_secs = granted.as_secs(), "renewed");
                    }
                    Err(e) => retry_later(lease, &e),
                },
                Next::Rotate(_) | Next::Nothing => {
                    tracing::info!(lease = lease.lease_id.as_str(), "lease reaches its max TTL: rotating");
                    rotate = true;
                }
            }
        }
        if relogin {
            // Leases end with the token that made them: a new token means new leases.
            rotate |= self.relogin().await && !self.leases.is_empty();
        }
        if self.next_kv_poll.is_some_and(|at| at <= now) {
            self.next_kv_poll = self.config.supervision.kv_poll.map(|every| now + every);
            rotate |= self.kv_changed().await;
        }
        if rotate { self.rotate().await } else { Ok(None) }
    }

    /// Logs in again when the token reaches its max TTL. `true` if there is a new token.
    async fn relogin(&mut self) -> bool {
        match self.config.auth.as_ref() {
            Ok(Auth::Token(_)) | Err(_) => {
                tracing::warn!("the handed-in token reaches its max TTL and cannot be renewed; no more renewals");
                self.token = None;
                false
            }
            Ok(auth) => match self.vault.login(auth).await {
                Ok(()) => {
                    let (ttl, renewable) = self.vault.token_lifetime();
                    let (lifetime, next) = lifetime(Instant::now(), ttl, renewable);
                    self.token = Some(Tracked { lease_id: String::new(), lifetime, next });
                    tracing::info!(ttl_secs = ttl.as_secs(), "logged in again: the old token reached its max TTL");
                    true
                }
                Err(e) => {
                    if let Some(token) = self.token.as_mut() {
                        token.next = Next::Rotate(Instant::now() + RETRY_AFTER);
                    }
                    tracing::warn!("logging in again: {e}; retrying");
                    false
                }
            },
        }
    }

    /// When the app's credentials stop working: the first lease to expire (a lease also
    /// ends with the token that made it). `None` without leases: KV secrets do not expire.
    fn credentials_expire(&self) -> Option<Instant> {
        let leases = self.leases.iter().map(|l| l.lifetime.since + l.lifetime.ttl).min()?;
        let token = self.token.as_ref().map(|t| t.lifetime.since + t.lifetime.ttl);
        Some(token.map_or(leases, |t| t.min(leases)))
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
                let expires = self.credentials_expire();
                if expires.is_some_and(|at| Instant::now() >= at) {
                    tracing::error!(
                        "rotation failed and the credentials have expired: {e}; stopping the application (exit 69)"
                    );
                    self.stop_child().await;
                    return Ok(Some(69));
                }
                tracing::warn!("rotation failed: {e}; the application keeps its current credentials, retrying");
                let retry_at = expires.map_or(Instant::now() + RETRY_AFTER, |at| at.min(Instant::now() + RETRY_AFTER));
                for lease in &mut self.leases {
                    lease.next = Next::Rotate(retry_at);
                }
                return Ok(None);
            }
        };
        let old: Vec<String> = self.leases.iter().map(|l| l.lease_id.clone()).collect();
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
        tracing::info!(leases = self.leases.len(), "rotation: the application restarted with new secrets");
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
        let cap = self.config.client_timeout.min(MAX_BATCH);
        match self.credentials_expire() {
            Some(at) => cap.min(at.saturating_duration_since(Instant::now()).max(Duration::from_millis(200))),
            None => cap,
        }
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

fn retry_later(tracked: &mut Tracked, error: &crate::vault::VaultError) {
    let expires = tracked.lifetime.since + tracked.lifetime.ttl;
    tracing::warn!(
        "{error}; the current credentials stay valid for {} s",
        expires.saturating_duration_since(Instant::now()).as_secs()
    );
    tracked.next = if Instant::now() + RETRY_AFTER < expires {
        Next::Renew(Instant::now() + RETRY_AFTER)
    } else {
        Next::Rotate(Instant::now())
    };
}

fn listen(kind: SignalKind) -> Result<Signal, Failure> {
    signal(kind).map_err(Failure::Runtime)
}
