//! TLS to Vault as Vault's own client configures it (the variables vault-env inherits from
//! `github.com/hashicorp/vault/api`, `ReadEnvironment`): VAULT_CACERT, VAULT_CAPATH,
//! VAULT_TLS_SERVER_NAME, VAULT_CLIENT_CERT/VAULT_CLIENT_KEY, and OpenBao's `cert` auth
//! method. Each test runs its own OpenBao dev server with an extra TLS listener whose
//! certificate names only `vault.hush.test` (so connecting to 127.0.0.1 needs the server
//! name), signed by a CA made here with openssl.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use support::*;

struct TlsBao {
    child: Child,
    /// `http://127.0.0.1:P1`, for set-up as root.
    plain: String,
    /// `https://127.0.0.1:P2`.
    tls: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).stdin(Stdio::null()).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn issue(dir: &Path, name: &str, subject: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

impl TlsBao {
    /// `require_client_cert`: the listener refuses clients without a certificate of the CA.
    fn start(require_client_cert: bool) -> TlsBao {
        let bin: PathBuf =
            std::env::var("HUSH_TEST_BAO").expect("HUSH_TEST_BAO: run through `cargo xtask test`").into();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=hush-test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        issue(d, "server", "/CN=vault.hush.test", "subjectAltName=DNS:vault.hush.test\nextendedKeyUsage=serverAuth\n");
        issue(d, "client", "/CN=app.hush.test", "extendedKeyUsage=clientAuth\n");
        let (p1, p2) = (free_port(), free_port());
        let client = if require_client_cert {
            format!(
                "tls_require_and_verify_client_cert = true\n  tls_client_ca_file = \"{}\"\n",
                d.join("ca.pem").display()
            )
        } else {
            String::new()
        };
        let hcl = format!(
            "listener \"tcp\" {{\n  address = \"127.0.0.1:{p2}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  {client}}}\n",
            d.join("server.pem").display(),
            d.join("server.key").display()
        );
        std::fs::write(d.join("tls.hcl"), hcl).unwrap();
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-root-token-id=root", "-dev-no-store-token"])
            .arg(format!("-dev-listen-address=127.0.0.1:{p1}"))
            .arg(format!("-config={}", d.join("tls.hcl").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts");
        let server =
            TlsBao { child, plain: format!("http://127.0.0.1:{p1}"), tls: format!("https://127.0.0.1:{p2}"), dir, bin };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !server.cli(&["status"]).status.success() {
            assert!(std::time::Instant::now() < deadline, "OpenBao did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        server
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin).args(args).env("VAULT_ADDR", &self.plain).env("VAULT_TOKEN", "root").output().unwrap()
    }

    fn run(&self, args: &[&str]) {
        let out = self.cli(args);
        assert!(out.status.success(), "bao {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shim(env: &[(&str, String)]) -> Output {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_shim(&pairs, &["env", "-0"])
}

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn ca_file_ca_directory_and_server_name() {
    let bao = TlsBao::start(false);
    bao.run(&["kv", "put", "secret/app", "password=tls-pw"]);
    let base = |extra: &[(&'static str, String)]| {
        let mut env = vec![
            ("VAULT_ADDR", bao.tls.clone()),
            ("VAULT_TOKEN", "root".to_owned()),
            ("PASSWORD", "vault:secret/data/app#password".to_owned()),
        ];
        env.extend(extra.iter().cloned());
        env
    };
    let name = ("VAULT_TLS_SERVER_NAME", "vault.hush.test".to_owned());
    // VAULT_CACERT + VAULT_TLS_SERVER_NAME: the certificate names vault.hush.test, not 127.0.0.1.
    let out = shim(&base(&[("VAULT_CACERT", bao.file("ca.pem")), name.clone()]));
    assert_eq!(get(&environ(&out), "PASSWORD"), "tls-pw");
    // Without the server name the same connection is refused: the name is really checked.
    let out = shim(&base(&[("VAULT_CACERT", bao.file("ca.pem"))]));
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    // VAULT_CAPATH: a directory of PEM files.
    let capath = tempfile::tempdir().unwrap();
    std::fs::copy(bao.file("ca.pem"), capath.path().join("hush-ca.pem")).unwrap();
    let out = shim(&base(&[("VAULT_CAPATH", capath.path().to_str().unwrap().to_owned()), name.clone()]));
    let seen = environ(&out);
    assert_eq!(get(&seen, "PASSWORD"), "tls-pw");
    for setting in ["VAULT_CAPATH", "VAULT_TLS_SERVER_NAME"] {
        assert!(!seen.contains_key(std::ffi::OsStr::new(setting)), "{setting} reached the app");
    }
    // A CA directory with a file that is not PEM fails, naming the setting and file.
    std::fs::write(capath.path().join("junk.pem"), "not a certificate").unwrap();
    let out = shim(&base(&[("VAULT_CAPATH", capath.path().to_str().unwrap().to_owned()), name]));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{log}");
    assert!(log.contains("VAULT_CAPATH") && log.contains("junk.pem"), "{log}");
}

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn client_certificate_for_mutual_tls() {
    let bao = TlsBao::start(true);
    bao.run(&["kv", "put", "secret/app", "password=mtls-pw"]);
    let base = vec![
        ("VAULT_ADDR", bao.tls.clone()),
        ("VAULT_TOKEN", "root".to_owned()),
        ("VAULT_CACERT", bao.file("ca.pem")),
        ("VAULT_TLS_SERVER_NAME", "vault.hush.test".to_owned()),
        ("PASSWORD", "vault:secret/data/app#password".to_owned()),
    ];
    // The listener requires a client certificate: without one the handshake fails.
    let out = shim(&base);
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    let mut with_cert = base.clone();
    with_cert.push(("VAULT_CLIENT_CERT", bao.file("client.pem")));
    with_cert.push(("VAULT_CLIENT_KEY", bao.file("client.key")));
    let out = shim(&with_cert);
    let seen = environ(&out);
    assert_eq!(get(&seen, "PASSWORD"), "mtls-pw");
    assert!(!seen.contains_key(std::ffi::OsStr::new("VAULT_CLIENT_KEY")));
    // The key file's content never shows in an error.
    let key = std::fs::read_to_string(bao.file("client.key")).unwrap();
    let mut half = base.clone();
    half.push(("VAULT_CLIENT_KEY", bao.file("client.key")));
    let out = shim(&half);
    let log = assert_no_secret(&out, &[key.lines().nth(1).unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{log}");
    assert!(log.contains("VAULT_CLIENT_CERT") || log.contains("VAULT_CLIENT_KEY"), "{log}");
}

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn cert_auth_logs_in_with_the_client_certificate() {
    // VAULT_AUTH_METHOD=cert: OpenBao's cert method checks the certificate the client
    // presented in the TLS handshake against the role's CA.
    let bao = TlsBao::start(false);
    bao.run(&["kv", "put", "secret/app", "password=cert-pw"]);
    let policy = bao.dir.path().join("read.hcl");
    std::fs::write(&policy, "path \"secret/data/app\" { capabilities = [\"read\"] }").unwrap();
    bao.run(&["policy", "write", "read-app", policy.to_str().unwrap()]);
    bao.run(&["auth", "enable", "cert"]);
    bao.run(&[
        "write",
        "auth/cert/certs/app",
        "display_name=app",
        "token_policies=read-app",
        &format!("certificate=@{}", bao.file("ca.pem")),
    ]);
    let base = vec![
        ("VAULT_ADDR", bao.tls.clone()),
        ("VAULT_AUTH_METHOD", "cert".to_owned()),
        ("VAULT_ROLE", "app".to_owned()),
        ("VAULT_CACERT", bao.file("ca.pem")),
        ("VAULT_TLS_SERVER_NAME", "vault.hush.test".to_owned()),
        ("PASSWORD", "vault:secret/data/app#password".to_owned()),
    ];
    let mut with_cert = base.clone();
    with_cert.push(("VAULT_CLIENT_CERT", bao.file("client.pem")));
    with_cert.push(("VAULT_CLIENT_KEY", bao.file("client.key")));
    let out = shim(&with_cert);
    let seen = environ(&out);
    assert_eq!(get(&seen, "PASSWORD"), "cert-pw");
    for setting in ["VAULT_AUTH_METHOD", "VAULT_ROLE", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_CACERT"] {
        assert!(!seen.contains_key(std::ffi::OsStr::new(setting)), "{setting} reached the app");
    }
    // Without a client certificate the login is refused (77), naming the method and mount.
    let out = shim(&base);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{log}");
    assert!(log.contains("cert login at auth/cert"), "{log}");
}
