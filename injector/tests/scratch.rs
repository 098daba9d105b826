//! The static shim in a root filesystem with nothing else: no libc, no shell, no
//! `/etc/ssl`, run as uid 65534 with no capabilities. Vault's name resolves from the
//! chroot's `/etc/hosts`; its certificate is trusted through `VAULT_CACERT` only.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::unique;

fn required(name: &str) -> PathBuf {
    std::env::var_os(name)
        .unwrap_or_else(|| panic!("{name} is not set: run this test through `cargo xtask test`"))
        .into()
}

fn openssl(dir: &Path, args: &[&str]) {
    let status =
        Command::new("openssl").current_dir(dir).args(args).stderr(Stdio::null()).status().expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for `vault.test` signed by it.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=hush-test-ca"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=vault.test"]].concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:vault.test\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An OpenBao dev server with an extra TLS listener.
struct TlsBao {
    child: Child,
    http: String,
    tls_port: u16,
}

impl TlsBao {
    fn start(bao: &Path, dir: &Path) -> TlsBao {
        let (http_port, tls_port) = (free_port(), free_port());
        std::fs::write(
            dir.join("listener.hcl"),
            format!(
                "listener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  tls_cert_file = \"{0}/server.pem\"\n  tls_key_file = \"{0}/server.key\"\n}}\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(bao)
            .args(["server", "-dev", "-dev-no-store-token", "-dev-root-token-id=root"])
            .arg(format!("-dev-listen-address=127.0.0.1:{http_port}"))
            .arg(format!("-config={}/listener.hcl", dir.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts");
        let server = TlsBao { child, http: format!("http://127.0.0.1:{http_port}"), tls_port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.cli(bao).arg("status").output().unwrap().status.success() {
            assert!(Instant::now() < deadline, "OpenBao did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn cli(&self, bao: &Path) -> Command {
        let mut cmd = Command::new(bao);
        cmd.env("VAULT_ADDR", &self.http).env("VAULT_TOKEN", "root");
        cmd
    }
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/proc` mounted in the chroot for the app to read its own status; unmounted on drop.
struct ProcMount(PathBuf);

impl Drop for ProcMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn run_in_chroot(root: &Path, env: &[(&str, &str)], app: &str) -> Output {
    Command::new("/usr/sbin/chroot")
        .arg("--userspec=65534:65534")
        .arg(root)
        .args(["/injector", "--", "/bin/busybox", "sh", "-c", app])
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("chroot runs")
}

#[test]
#[ignore = "needs the static shim, busybox and OpenBao: run through `cargo xtask test`"]
fn the_static_shim_runs_in_an_empty_root_as_nobody() {
    let shim = required("HUSH_TEST_STATIC_INJECTOR");
    let busybox = required("HUSH_TEST_BUSYBOX");
    let bao_bin = required("HUSH_TEST_BAO");
    let work = tempfile::tempdir().unwrap();
    certificates(work.path());
    let bao = TlsBao::start(&bao_bin, work.path());
    let app = unique("scratch");
    let status =
        bao.cli(&bao_bin).args(["kv", "put", &format!("secret/{app}"), "password=scratch-pw"]).output().unwrap();
    assert!(status.status.success());

    let root = work.path().join("root");
    for dir in ["bin", "etc", "proc"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(&shim, root.join("injector")).unwrap();
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    std::fs::copy(work.path().join("ca.pem"), root.join("ca.pem")).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 vault.test\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(Command::new("mount").args(["-t", "proc", "proc"]).arg(root.join("proc")).status().unwrap().success());
    let _proc = ProcMount(root.join("proc"));
    let everything: Vec<_> = walk(&root);
    assert!(!everything.iter().any(|p| p.contains("lib") || p.contains("ssl")), "no libc, no CA store: {everything:?}");

    let addr = format!("https://vault.test:{}", bao.tls_port);
    let reference = format!("vault:secret/data/{app}#password");
    let env = [
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_CACERT", "/ca.pem"),
        ("VAULT_TOKEN", "root"),
        ("VAULT_CLIENT_TIMEOUT", "3s"),
        ("SECRET", reference.as_str()),
    ];
    let app_script = "echo \"secret=$SECRET\"; echo \"uid=$(/bin/busybox id -u)\"; /bin/busybox grep -E '^Cap(Eff|Prm)' /proc/self/status";
    let out = run_in_chroot(&root, &env, app_script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("secret=scratch-pw"), "{stdout}");
    assert!(stdout.contains("uid=65534"), "{stdout}");
    assert!(stdout.contains("CapEff:\t0000000000000000") && stdout.contains("CapPrm:\t0000000000000000"), "{stdout}");

    // Without the CA the certificate is refused; without /etc/hosts the name does not resolve.
    let no_ca: Vec<_> = env.iter().copied().filter(|(k, _)| *k != "VAULT_CACERT").collect();
    let out = run_in_chroot(&root, &no_ca, "echo started");
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set VAULT_CACERT"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    // A CA that did not sign Vault's certificate: the TLS handshake fails, retried to the deadline.
    std::fs::copy(unrelated_ca(work.path()), root.join("ca.pem")).unwrap();
    let out = run_in_chroot(&root, &env, "echo started");
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    std::fs::copy(work.path().join("ca.pem"), root.join("ca.pem")).unwrap();
    std::fs::remove_file(root.join("etc/hosts")).unwrap();
    let out = run_in_chroot(&root, &env, "echo started");
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A second, unrelated CA.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    certificates(&other);
    other.join("ca.pem")
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.ends_with("proc") {
            continue;
        }
        found.push(path.display().to_string());
        if path.is_dir() {
            found.extend(walk(&path));
        }
    }
    found
}
