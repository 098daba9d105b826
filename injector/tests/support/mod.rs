//! Shared set-up for the tests that run the shim against a real OpenBao.
//!
//! `cargo xtask test` starts one `bao server -dev` and passes its address, root token and
//! the `bao` binary in `HUSH_TEST_*` variables. Each test makes its own mounts and names
//! (see [`unique`]) so tests can run in parallel against the one server.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The server `cargo xtask test` started.
pub struct Bao {
    pub addr: String,
    pub root_token: String,
    pub bin: PathBuf,
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this test through `cargo xtask test`"))
}

impl Bao {
    pub fn shared() -> Bao {
        Bao {
            addr: required("HUSH_TEST_VAULT_ADDR"),
            root_token: required("HUSH_TEST_VAULT_TOKEN"),
            bin: required("HUSH_TEST_BAO").into(),
        }
    }

    /// `bao ARGS` as root; panics unless it succeeds; returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.root_token)
            .stdin(Stdio::null())
            .output()
            .expect("bao runs");
        assert!(out.status.success(), "bao {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("bao prints UTF-8")
    }

    /// `bao ARGS -format=json` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.insert(1, "-format=json");
        serde_json::from_str(&self.run(&args)).expect("bao prints JSON")
    }

    /// A policy named `name` with `hcl`.
    pub fn policy(&self, name: &str, hcl: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.hcl");
        std::fs::write(&file, hcl).unwrap();
        self.run(&["policy", "write", name, file.to_str().unwrap()]);
    }

    /// A token with `policy` only.
    pub fn token(&self, policy: &str) -> String {
        self.run(&["token", "create", "-policy", policy, "-field", "token"]).trim().to_owned()
    }
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The shim built for this test run.
pub fn injector() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_injector"))
}

/// Runs the shim with exactly `env` (plus PATH) in front of `command`.
pub fn run_shim(env: &[(&str, &str)], command: &[&str]) -> Output {
    run_shim_os(&env.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect::<Vec<_>>(), command)
}

pub fn run_shim_os(env: &[(OsString, OsString)], command: &[&str]) -> Output {
    Command::new(injector())
        .arg("--")
        .args(command)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("the shim starts")
}

/// The environment `env -0` printed.
pub fn environ(output: &Output) -> BTreeMap<OsString, OsString> {
    assert!(
        output.status.success(),
        "the shim or app failed: {:?}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let eq = entry.iter().position(|&b| b == b'=').expect("NAME=VALUE");
            (OsString::from_vec(entry[..eq].to_vec()), OsString::from_vec(entry[eq + 1..].to_vec()))
        })
        .collect()
}

pub fn get<'a>(env: &'a BTreeMap<OsString, OsString>, name: &str) -> &'a str {
    env.get(OsStr::new(name)).unwrap_or_else(|| panic!("{name} missing from {env:?}")).to_str().expect("UTF-8")
}

/// Asserts that none of `secrets` appears in the output, and returns stderr.
pub fn assert_no_secret(output: &Output, secrets: &[&str]) -> String {
    for secret in secrets {
        for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{stream} holds a secret: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether `path` exists: the marker an app writes when it starts.
pub fn started(path: &Path) -> bool {
    path.exists()
}

pub fn bytes(s: &OsStr) -> &[u8] {
    s.as_bytes()
}

/// A private OpenBao dev server, for tests that stop it; killed on drop.
pub struct OwnBao {
    child: std::process::Child,
    pub addr: String,
    bin: PathBuf,
}

impl OwnBao {
    /// A server on a port it picks itself (`127.0.0.1:0`): no port is chosen here, freed and
    /// handed over, so no other process can take it in between. Its address is the listening
    /// port of the process that answers `bao status` over plain HTTP (the other one is the
    /// cluster listener, TLS).
    pub fn start() -> OwnBao {
        let (child, bin) = Self::spawn("127.0.0.1:0");
        let mut server = OwnBao { child, addr: String::new(), bin };
        let pid = server.child.id();
        wait_until("OpenBao listens and answers `bao status`", std::time::Duration::from_secs(30), || {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("OpenBao exited while starting: {status}");
            }
            listening_ports(pid).into_iter().any(|port| {
                server.addr = format!("http://127.0.0.1:{port}");
                server.cli(&["status"]).status.success()
            })
        });
        server
    }

    /// A server on `port`, which the caller chose (a test of a server that appears later at a
    /// known address).
    pub fn start_on(port: u16) -> OwnBao {
        let (child, bin) = Self::spawn(&format!("127.0.0.1:{port}"));
        let server = OwnBao { child, addr: format!("http://127.0.0.1:{port}"), bin };
        wait_until("OpenBao answers `bao status`", std::time::Duration::from_secs(30), || {
            server.cli(&["status"]).status.success()
        });
        server
    }

    fn spawn(listen: &str) -> (std::process::Child, PathBuf) {
        let bin: PathBuf = required("HUSH_TEST_BAO").into();
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-no-store-token", "-dev-root-token-id=root"])
            .arg(format!("-dev-listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts");
        (child, bin)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin).args(args).env("VAULT_ADDR", &self.addr).env("VAULT_TOKEN", "root").output().unwrap()
    }

    pub fn run(&self, args: &[&str]) {
        let out = self.cli(args);
        assert!(out.status.success(), "bao {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now. Freed before it is used, so another process may take
/// it in between: only for a test of an address that is meant to refuse or to appear later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `done` every 20 ms until it holds; an error naming `what` once `limit` has passed (so
/// that the caller can stop what it started before it fails).
pub fn wait_for(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        if std::time::Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting until: {what}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// [`wait_for`], panicking on the deadline.
pub fn wait_until(what: &str, limit: std::time::Duration, done: impl FnMut() -> bool) {
    if let Err(e) = wait_for(what, limit, done) {
        panic!("{e}");
    }
}

/// The TCP ports (IPv4) process `pid` listens on: its socket fds matched against the
/// listening sockets of its network namespace (`/proc/PID/net/tcp`, state `0A`).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let t = target.to_str()?;
                    Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            (*state == "0A" && inodes.iter().any(|i| i == inode)).then_some(port)
        })
        .collect()
}
