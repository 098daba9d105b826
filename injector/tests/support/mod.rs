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
    pub fn start() -> OwnBao {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> OwnBao {
        let bin: PathBuf = required("HUSH_TEST_BAO").into();
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-no-store-token", "-dev-root-token-id=root"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts");
        let server = OwnBao { child, addr: format!("http://127.0.0.1:{port}"), bin };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !server.cli(&["status"]).status.success() {
            assert!(std::time::Instant::now() < deadline, "OpenBao did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
