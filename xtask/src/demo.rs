//! `cargo xtask demo`: Hush end to end on one machine, each step explained.
//!
//! The story follows the data: a Deployment manifest that names a secret → the webhook's
//! patch → the kubelet starting the rewritten container (emulated here: no kubelet runs on
//! this machine) → the shim logging in with the Pod's service-account token and exec-ing the
//! app → the guard stopping another process that reads the app's environment. Every step
//! checks what it shows, so the demo fails loudly instead of telling a story that is not true.

mod kubelet;
mod pki;

use crate::{cmd, openbao::DevServer, tools};
use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The manifest the demo deploys; its comments say what it means.
const MANIFEST: &str = "examples/deployment.yaml";
/// The app's user (the manifest's `runAsUser`), and the attacker's: `kubectl exec` into the
/// same container gets the same user, which is the case that needs the guard.
const APP_UID: u32 = 10001;
const PIN_ROOT: &str = "/sys/fs/bpf/hush-demo";
/// curl plays the API server's client, openssl makes the certificates and signs the Pod's
/// service-account token, setpriv (util-linux) runs the containers as their users.
const APT: &[&str] = &["curl", "openssl", "util-linux"];

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn say(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

pub fn run() -> Result<()> {
    ensure!(
        Command::new("id").arg("-u").output()?.stdout.starts_with(b"0\n"),
        "the demo loads BPF programs and switches users: run it as root"
    );
    println!("Hush demo: a Vault secret reaches one process's environment, and nothing else.");
    tools::ensure_apt(APT)?;
    let work = tools::scratch("demo")?;
    pki::world_traversable(&work)?;

    step(1, "Build the three binaries: the shim (static: it runs in images without libc), the webhook, the guard.");
    let shim = tools::build_static_shim()?;
    let webhook = build_webhook()?;
    let guard = crate::guard::build()?.guard;
    say(&format!("injector {} bytes, webhook and guard built", std::fs::metadata(&shim)?.len()));

    step(2, "Start a real OpenBao server; store the database password; let the Pod's service account log in.");
    let server = DevServer::start("openbao-demo")?;
    let password = pki::random_hex(16)?;
    let sa_key = pki::service_account_key(&work)?;
    configure_vault(&server, &password, &sa_key.public_pem)?;
    say(&format!("OpenBao on {}; secret/shop/db holds password=<32 random hex digits>", server.addr));
    say("JWT auth trusts the cluster's service-account signing key; role `shop` is bound to");
    say("system:serviceaccount:shop:app and may read secret/data/shop/db, nothing else.");

    step(3, &format!("The workload: {MANIFEST}. It names the secret, never its value:"));
    let deployment = load_manifest()?;
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    for var in container["env"].as_array().context("the manifest's container has no env")? {
        say(&format!("{}={}", var["name"].as_str().unwrap_or(""), var["value"].as_str().unwrap_or("")));
    }
    say("kubernetes-validate --strict: the manifest is a valid apps/v1 Deployment.");

    step(4, "The ReplicaSet controller creates a Pod from the template; the API server sends it to the webhook.");
    let tls = pki::webhook_certificate(&work)?;
    let mut hook = Webhook::start(&webhook, &tls, &server.addr)?;
    let pod = pod_from_template(&deployment);
    let patched = hook.admit(&pod, &tls.cert)?;
    show_mutation(&patched)?;

    step(5, "The guard starts on the node (it would run as a DaemonSet): BPF programs attached, audit on stdout.");
    let mut guard = Guard::start(&guard)?;
    say(&format!("guard mode: {} (this kernel: {})", guard.mode, tools::kernel_release()));

    step(6, "The kubelet runs the init container (`injector install`), then the app's rewritten command.");
    let volume = work.join("hush-volume");
    let token_file = sa_key.projected_token(&work, "shop", "app")?;
    let mut app =
        kubelet::start_pod(&patched, &kubelet::Node { shim: &shim, volume: &volume, token_file: &token_file })?;
    let first_line = app.first_line(Duration::from_secs(30))?;
    say(&format!("app stdout: {first_line}"));
    say(&format!("shim log:   {}", app.log().trim()));
    ensure!(
        first_line.contains(&format!("DB_PASSWORD holds {} characters", password.len())),
        "the app did not get the secret"
    );
    ensure!(first_line.contains("VAULT_TOKEN is absent"), "the Vault token leaked into the app");
    ensure!(!first_line.contains(&password) && !app.log().contains(&password), "the password was printed");
    say(&format!("The app (pid {}) holds the password in its environment; the shim exec'd it and is gone.", app.pid()));

    step(
        7,
        &format!(
            "Another process of the same user ({APP_UID}, as `kubectl exec` would be) runs `cat /proc/{}/environ`.",
            app.pid()
        ),
    );
    let attack = Command::new("setpriv")
        .args(kubelet::as_user(APP_UID))
        .args(["cat", &format!("/proc/{}/environ", app.pid())])
        .output()?;
    let leaked = String::from_utf8_lossy(&attack.stdout).contains(&password);
    say(&format!("cat: {} ({} bytes on stdout)", describe_exit(&attack.status), attack.stdout.len()));
    ensure!(!leaked, "the attacker read the password: the guard did not stop it");
    ensure!(!attack.status.success(), "the attacker's read succeeded");
    let line = guard.audit_for(app.pid(), Duration::from_secs(10))?;
    say("The guard's audit line for it:");
    say(&serde_json::to_string_pretty(&line)?);
    say("Its own files stay readable for the app itself and for /proc readers of status/cmdline:");
    let status = Command::new("setpriv")
        .args(kubelet::as_user(APP_UID))
        .args(["head", "-1", &format!("/proc/{}/status", app.pid())])
        .output()?;
    say(&format!("head -1 /proc/{}/status: {}", app.pid(), String::from_utf8_lossy(&status.stdout).trim()));
    ensure!(status.status.success(), "reading /proc/<pid>/status should stay allowed");

    step(8, "Fail closed: the same container with a reference to a key that does not exist.");
    let typo = Command::new("setpriv")
        .args(kubelet::as_user(APP_UID))
        .arg(volume.join("injector"))
        .args(["--", "/bin/echo", "app started (this must not print)"])
        .env_clear()
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_AUTH_METHOD", "jwt")
        .env("VAULT_ROLE", "shop")
        .env("HUSH_SA_TOKEN_PATH", &token_file)
        .env("DB_PASSWORD", "vault:secret/data/shop/db#passwrod")
        .output()?;
    say(&format!("shim: {} (66: a referenced secret does not exist); the app never ran", describe_exit(&typo.status)));
    say(String::from_utf8_lossy(&typo.stderr).trim());
    ensure!(typo.status.code() == Some(66) && typo.stdout.is_empty(), "the shim should have failed closed");

    step(9, "Nothing on disk: no file the demo made holds the password (the emptyDir holds only the shim).");
    let files = files_holding(&work, &password)?;
    ensure!(files.is_empty(), "the password is in {files:?}");
    say(&format!("searched every file under {}: none holds it", work.display()));

    step(10, "Clean up: stop the app, the guard (and unpin its programs), the webhook and OpenBao.");
    app.stop();
    guard.stop()?;
    hook.stop();
    drop(server);
    println!(
        "\nDone. The password lived in OpenBao and in one process's environment: not in the manifest, not in a\n\
         Kubernetes Secret, not on disk, not in any log, and not in the output of the process that tried to read it."
    );
    Ok(())
}

fn build_webhook() -> Result<PathBuf> {
    cmd::run(Command::new(env!("CARGO")).current_dir(tools::root()).args([
        "build",
        "--locked",
        "--package",
        "webhook",
        "--bin",
        "webhook",
    ]))?;
    Ok(tools::target_dir().join("debug").join("webhook"))
}

fn configure_vault(server: &DevServer, password: &str, public_pem: &Path) -> Result<()> {
    let bao = |args: &[&str]| -> Result<()> { cmd::run(server.cli().args(args).stdout(Stdio::null())) };
    bao(&["kv", "put", "secret/shop/db", &format!("password={password}")])?;
    let policy = "path \"secret/data/shop/db\" { capabilities = [\"read\"] }";
    let mut write = server.cli();
    write.args(["policy", "write", "shop", "-"]).stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = write.spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().context("bao's stdin")?, policy.as_bytes())?;
    ensure!(child.wait()?.success(), "bao policy write failed");
    bao(&["auth", "enable", "jwt"])?;
    bao(&["write", "auth/jwt/config", &format!("jwt_validation_pubkeys=@{}", public_pem.display())])?;
    bao(&[
        "write",
        "auth/jwt/role/shop",
        "role_type=jwt",
        "user_claim=sub",
        "bound_subject=system:serviceaccount:shop:app",
        "bound_audiences=vault",
        "token_policies=shop",
        "token_ttl=10m",
    ])
}

/// The manifest as JSON, after checking it against the Kubernetes schemas.
fn load_manifest() -> Result<Value> {
    let path = tools::root().join(MANIFEST);
    let venv = tools::venv()?;
    cmd::run(Command::new(venv.join("bin/kubernetes-validate")).args(["--strict", "--quiet"]).arg(&path))
        .with_context(|| format!("{MANIFEST} does not validate"))?;
    // kubectl cannot convert files without an API server; PyYAML (kubernetes-validate's) can.
    let out = Command::new(venv.join("bin/python3"))
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"])
        .arg(&path)
        .output()?;
    ensure!(out.status.success(), "reading {MANIFEST}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// What the ReplicaSet controller sends: the template's metadata and spec as a Pod.
fn pod_from_template(deployment: &Value) -> Value {
    let template = &deployment["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["generateName"] = json!("shop-7d4b9c-");
    metadata["namespace"] = deployment["metadata"]["namespace"].clone();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

fn show_mutation(patched: &Value) -> Result<()> {
    let spec = &patched["spec"];
    let init = &spec["initContainers"][0];
    say(&format!("init container {}: {}", init["name"], init["command"]));
    let app = &spec["containers"][0];
    say(&format!("app command: {}", app["command"]));
    let added: Vec<String> = app["env"]
        .as_array()
        .context("no env after the mutation")?
        .iter()
        .filter_map(|v| v["name"].as_str())
        .filter(|n| n.starts_with("VAULT_") || n.starts_with("HUSH_"))
        .map(|n| n.to_owned())
        .collect();
    say(&format!("settings added to env: {}", added.join(", ")));
    let volume = spec["volumes"].as_array().and_then(|v| v.last()).context("no volume added")?;
    say(&format!("volume: {volume}"));
    let pod = tools::target_dir().join("xtask/demo/pod.json");
    std::fs::write(&pod, serde_json::to_vec_pretty(patched)?)?;
    cmd::run(Command::new(tools::venv()?.join("bin/kubernetes-validate")).args(["--strict", "--quiet"]).arg(&pod))
        .context("the mutated Pod does not validate")?;
    say(&format!("The patched Pod validates against the Pod schema ({}).", pod.display()));
    ensure!(app["command"][0] == "/hush/injector", "the app does not start through the shim");
    Ok(())
}

/// Files under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle)?);
        } else if std::fs::read(&path)?.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(path);
        }
    }
    Ok(found)
}

fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(9)) => "killed by SIGKILL before it could print".to_owned(),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), _) => format!("exit code {code}"),
        _ => "ended".to_owned(),
    }
}

/// The webhook, serving on a free loopback port.
struct Webhook {
    child: Child,
    port: u16,
}

impl Webhook {
    fn start(bin: &Path, tls: &pki::Tls, vault_addr: &str) -> Result<Webhook> {
        let port = crate::openbao::free_port()?;
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key)
            .args(["--injector-image", "registry.example/hush/injector:demo"])
            .args(["--default", &format!("vault-addr={vault_addr}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the webhook")?;
        let mut hook = Webhook { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while hook.curl(&tls.cert, "readyz", None).is_err() {
            ensure!(Instant::now() < deadline, "the webhook did not become ready on port {port}");
            ensure!(hook.child.try_wait()?.is_none(), "the webhook exited at start");
            std::thread::sleep(Duration::from_millis(100));
        }
        say(&format!("webhook listening on https://127.0.0.1:{port} (TLS, POST /mutate)"));
        say(&format!(
            "flags: --default vault-addr={vault_addr} (auth method and role come from the Pod's annotations)"
        ));
        Ok(hook)
    }

    fn curl(&self, ca: &Path, path: &str, body: Option<&Path>) -> Result<Vec<u8>> {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--fail", "--max-time", "10", "--cacert"]).arg(ca);
        if let Some(body) = body {
            curl.args(["-H", "Content-Type: application/json", "--data-binary"]).arg(format!("@{}", body.display()));
        }
        let out = curl.arg(format!("https://127.0.0.1:{}/{path}", self.port)).output()?;
        ensure!(out.status.success(), "curl /{path}: {}", String::from_utf8_lossy(&out.stderr).trim());
        Ok(out.stdout)
    }

    /// Sends the Pod as the API server would and returns the Pod with the patch applied.
    fn admit(&mut self, pod: &Value, ca: &Path) -> Result<Value> {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "3f2a9c1e-demo", "operation": "CREATE", "namespace": "shop",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod, "dryRun": false
            }
        });
        let file = tools::target_dir().join("xtask/demo/review.json");
        std::fs::write(&file, review.to_string())?;
        let answer: Value = serde_json::from_slice(&self.curl(ca, "mutate", Some(&file))?)?;
        let response = &answer["response"];
        ensure!(response["allowed"] == true, "the webhook denied the Pod: {}", response["status"]);
        let patch = kubelet::decode_patch(response)?;
        let ops: Vec<String> = patch.0.iter().map(|op| format!("{} {}", op_name(op), op.path())).collect();
        say(&format!("webhook answered allowed=true with a JSON Patch of {} operations:", ops.len()));
        for op in &ops {
            say(&format!("  {op}"));
        }
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &patch).context("the webhook's patch does not apply")?;
        Ok(patched)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation::*;
    match op {
        Add(_) => "add",
        Remove(_) => "remove",
        Replace(_) => "replace",
        Move(_) => "move",
        Copy(_) => "copy",
        Test(_) => "test",
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The guard, with its audit lines arriving on a channel.
struct Guard {
    child: Child,
    lines: mpsc::Receiver<Value>,
    mode: String,
    bin: PathBuf,
}

impl Guard {
    fn start(bin: &Path) -> Result<Guard> {
        crate::guard::ensure_mounted("tracefs", "/sys/kernel/tracing")?;
        crate::guard::ensure_mounted("bpf", "/sys/fs/bpf")?;
        // A pin root left by an interrupted demo would keep old programs attached.
        let _ = Command::new(bin).args(["unload", "--pin-root", PIN_ROOT]).stderr(Stdio::null()).status();
        let mut child = Command::new(bin)
            .args(["--mode", "auto", "--pin-root", PIN_ROOT])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the guard")?;
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().context("the guard's stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && send.send(v).is_err()
                {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().context("the guard's stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                say(&format!("guard: {}", line.trim_start_matches("guard: ")));
            }
        });
        let start = lines.recv_timeout(Duration::from_secs(60)).context("the guard did not start")?;
        ensure!(start["event"] == "start", "the guard's first line is not its start line: {start}");
        let mode = start["mode"].as_str().unwrap_or("unknown").to_owned();
        Ok(Guard { child, lines, mode, bin: bin.to_owned() })
    }

    /// The first attempt line whose target is `pid`.
    fn audit_for(&mut self, pid: u32, patience: Duration) -> Result<Value> {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).context("the guard wrote no audit line for the attempt")?;
            if line["event"] == "attempt" && line["target"]["tgid"] == pid {
                return Ok(line);
            }
        }
    }

    fn stop(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Links stay pinned after the daemon exits (protection survives restarts): unpin them.
        cmd::run(Command::new(&self.bin).args(["unload", "--pin-root", PIN_ROOT]).stderr(Stdio::null()))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.stop();
        }
    }
}
