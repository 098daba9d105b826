//! `cargo xtask demo`: Hush end to end on one machine, each step explained.
//!
//! The story follows the data: a Deployment manifest that names a secret → the webhook's
//! patch → the kubelet starting the rewritten container (emulated here: no kubelet runs on
//! this machine) → the shim logging in with the Pod's service-account token and exec-ing the
//! app → the guard stopping another process that reads the app's environment. Every step
//! checks what it shows, so the demo fails loudly instead of telling a story that is not true,
//! and each step says which parts are real and which are played. The closing summary is made
//! of those checks' results, never of fixed text.
//!
//! The terminal gets the story only: the tools' output (apt, pip, cargo, openssl) goes to
//! `target/xtask/demo.log` (see [`crate::progress`]); `--verbose` shows it as it runs.
//!
//! Where a cluster is at hand (`HUSH_KUBE_BIN`, or `--kubeconfig FILE`) the same story runs on
//! it instead: `cargo xtask e2e`'s story and checks (xtask/src/e2e.rs), told as numbered steps
//! with the same summary, made of the evidence that run's checks leave.

mod kubelet;
mod pki;
mod transcript;

use crate::{cmd, openbao::DevServer, progress, tools};
use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The manifest the demo deploys; its comments say what it means.
const MANIFEST: &str = "examples/deployment.yaml";
/// The app's user (the manifest's `runAsUser`), and the attacker's: `kubectl exec` into the
/// same container gets the same user, which is the case that needs the guard.
const APP_UID: u32 = 10001;
const PIN_ROOT: &str = "/sys/fs/bpf/hush-demo";
/// Where OpenBao mounts the JWT auth method: the shim's default mount path for `jwt`
/// (`hush_contract::settings::DEFAULT_JWT_MOUNT`, Bank-Vaults' default), so the Pod needs
/// no `hush.dev/auth-path`.
const JWT_MOUNT: &str = "kubernetes";
/// curl plays the API server's client, openssl makes the certificates and signs the Pod's
/// service-account token, setpriv (util-linux) runs the containers as their users.
const APT: &[&str] = &["curl", "openssl", "util-linux"];
const TITLE: &str = "Hush demo: a Vault secret reaches one process's environment, and nothing else.";
/// The steps of the one-machine story; `[n/STEPS]` on each header (the cluster's story has
/// [`crate::e2e::STEPS`]).
const STEPS: u32 = 10;
/// The summary's rows, in order: what the demo shows the password is not in.
pub(crate) const GUARANTEES: [&str; 6] = [
    "not in the manifest",
    "not in a Kubernetes Secret",
    "not on disk",
    "not in any log",
    "not readable by another process",
    "fail-closed",
];

#[derive(clap::Args, Default)]
pub struct Args {
    /// Show every tool's output (apt, pip, cargo, openssl) as it runs, instead of logging it.
    #[arg(long, short)]
    pub verbose: bool,
    /// Run the story on the cluster this kubeconfig reaches (`cargo xtask e2e`'s story and
    /// checks, told as the demo's steps) instead of on this machine; with `HUSH_KUBE_BIN` set and
    /// no kubeconfig, on a one-node cluster started from those binaries (and stopped after).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Run the demo with stdout not a terminal and check what it printed: each step, the
    /// summary, no tool output; and that its log holds the tool output (run by `cargo xtask test`).
    #[arg(long, conflicts_with_all = ["verbose", "kubeconfig"])]
    pub check: bool,
    /// With --check: check the cluster's story instead, on a one-node cluster started from
    /// `HUSH_KUBE_BIN` (default ../shared/kube/bin); what `cargo xtask test` runs in e2e's place.
    #[arg(long, requires = "check")]
    pub cluster: bool,
}

pub fn run(args: &Args) -> Result<()> {
    if args.check && args.cluster {
        let bin = crate::cluster::kube_bin_source()
            .context("no Kubernetes binaries: set HUSH_KUBE_BIN to a directory with SHA256SUMS and NAME.xz files")?;
        return check_on_cluster(&bin);
    }
    if args.check {
        return transcript::check_a_run(&transcript::Shape::Machine);
    }
    if let Some(on) = cluster_target(args) {
        return on_cluster(on, args.verbose);
    }
    ensure!(
        Command::new("id").arg("-u").output()?.stdout.starts_with(b"0\n"),
        "the demo loads BPF programs and switches users: run it as root"
    );
    let log = tools::target_dir().join("xtask").join("demo.log");
    let _quiet = if args.verbose { None } else { Some(progress::quiet(&log, true)?) };
    let mut demo = Demo::new(STEPS);
    say_top(TITLE);
    say_top("Runs on: this machine, no cluster (--kubeconfig FILE or HUSH_KUBE_BIN would name one).");
    say_top("Real here: OpenBao, the webhook, the shim, the guard, this kernel.");
    say_top(
        "Played here: the API server (curl), the kubelet (an emulation), `kubectl exec` (a process of the app's user).",
    );
    if !args.verbose {
        say_top(&format!("Tool output (apt, pip, cargo, openssl): {}", log.display()));
    }
    let result = story(&mut demo);
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(demo.failed(e)),
    }
}

/// The cluster to run on: `--kubeconfig FILE`, else (`None`) the one-node cluster that
/// `cargo xtask cluster up` starts when `HUSH_KUBE_BIN` is set; no cluster otherwise.
fn cluster_target(args: &Args) -> Option<Option<PathBuf>> {
    match &args.kubeconfig {
        Some(file) => Some(Some(file.clone())),
        None => std::env::var_os("HUSH_KUBE_BIN").map(|_| None),
    }
}

/// `cargo xtask demo --check --cluster`: the cluster's story, run with stdout piped and its
/// transcript checked (`bin`: the Kubernetes binaries the cluster starts from).
pub fn check_on_cluster(bin: &Path) -> Result<()> {
    transcript::check_a_run(&transcript::Shape::Cluster { kube_bin: bin.to_owned() })
}

/// The story on a real cluster: `cargo xtask e2e`'s (xtask/src/e2e.rs), every check of it,
/// told as the demo's numbered steps (each naming who plays it: the real API server, kubelet and
/// containerd, Helm's engine, kubectl, the guard DaemonSet, `kubectl exec` as the reader,
/// OpenBao's kubernetes auth with a real TokenReview) and closed by the same summary, made of
/// the evidence those checks leave.
fn on_cluster(kubeconfig: Option<PathBuf>, verbose: bool) -> Result<()> {
    if let Some(file) = &kubeconfig {
        ensure!(file.is_file(), "--kubeconfig {}: no such file", file.display());
    }
    let log = tools::target_dir().join("xtask").join("demo.log");
    let _quiet = if verbose { None } else { Some(progress::quiet(&log, true)?) };
    let owned = kubeconfig.is_none();
    let mut demo = Demo::new(crate::e2e::STEPS);
    demo.stopping = owned;
    say_top(TITLE);
    match &kubeconfig {
        Some(file) => say_top(&format!(
            "Runs on: a real cluster, the one {} reaches (not this machine's emulation); it stays up after.",
            file.display()
        )),
        None => say_top(
            "Runs on: a real one-node Kubernetes cluster started on this machine from HUSH_KUBE_BIN (stopped at the \
             end), not the one-machine emulation.",
        ),
    }
    say_top(
        "Real here: the API server, etcd, the controllers, the kubelet and its container runtime, Helm's engine, \
         kubectl, OpenBao, the webhook, the shim, the guard.",
    );
    if owned {
        say_top(
            "Played here: kube-proxy, which does not run: one iptables rule sends the `kubernetes` Service to the \
             API server, and the API server calls the webhook at its Pods' addresses. OpenBao runs in dev mode (in \
             memory); the images are built without Docker and served by a registry on this machine.",
        );
    } else {
        say_top("Played here: nothing. OpenBao runs in dev mode (in memory) on this machine.");
    }
    if !verbose {
        say_top(&format!("Tool output (apt, pip, cargo, kubectl, Helm): {}", log.display()));
    }
    let args = crate::e2e::Args {
        kubeconfig,
        registry: crate::cluster::REGISTRY.into(),
        host_ip: crate::cluster::NODE_IP.into(),
        keep: false,
    };
    match crate::e2e::run_told(&args, &mut demo) {
        Ok(()) => summary(&demo),
        Err(e) => Err(demo.failed(e)),
    }
}

/// The run's clock, its current step, and the evidence each check left for the summary.
struct Demo {
    /// How many steps the story has (`[n/steps]`).
    steps: u32,
    started: Instant,
    /// When the story began (step 2: after installing and building).
    story_started: Option<Instant>,
    /// When the story ended, when something (stopping the cluster) comes after it.
    story_ended: Option<Instant>,
    /// Whether the cluster stops after the story (the timing line says how long that took).
    stopping: bool,
    step: Option<(u32, String)>,
    step_started: Instant,
    step_log_start: u64,
    evidence: Vec<(&'static str, String)>,
}

impl Demo {
    fn new(steps: u32) -> Demo {
        let now = Instant::now();
        Demo {
            steps,
            started: now,
            story_started: None,
            story_ended: None,
            stopping: false,
            step: None,
            step_started: now,
            step_log_start: 0,
            evidence: Vec::new(),
        }
    }

    /// Prints step `n`'s header and who plays its parts.
    fn step(&mut self, n: u32, title: &str, who: &str) {
        self.end_step();
        let steps = self.steps;
        self.step = Some((n, title.to_owned()));
        self.step_started = Instant::now();
        if n == 2 {
            self.story_started = Some(self.step_started);
        }
        self.step_log_start = progress::log_len();
        progress::stage(&format!("[{n}/{steps}]"));
        progress::println("");
        progress::println(&format!("[{n}/{steps}] {title}"));
        say(&format!("who: {who}"));
    }

    /// Notes in the log how long the current step took (where a slow story spent its time).
    fn end_step(&self) {
        if let Some((n, _)) = &self.step {
            progress::note(&format!("step {n}/{} took {}", self.steps, seconds(self.step_started.elapsed())));
        }
    }

    /// Keeps `evidence` for the summary row `guarantee`.
    fn evidence(&mut self, guarantee: &'static str, evidence: String) {
        debug_assert!(GUARANTEES.contains(&guarantee));
        self.evidence.push((guarantee, evidence));
    }

    /// The error, naming the step it ended, with that step's last log lines unless the
    /// error already carries a failed tool's.
    fn failed(&self, e: anyhow::Error) -> anyhow::Error {
        let Some((n, title)) = &self.step else { return e };
        let carries_tail = e.chain().any(|c| c.is::<cmd::Failed>());
        let mut context = match self.story_ended {
            Some(_) => format!("the demo failed after step {n}/{} ({title}), stopping the cluster", self.steps),
            None => format!("the demo stopped at step {n}/{} ({title})", self.steps),
        };
        if let Some(log) = progress::log_path() {
            let tail = progress::log_tail(self.step_log_start, 15);
            if !carries_tail && !tail.is_empty() {
                context.push_str(&format!("; the step's last log lines ({}):\n{}", log.display(), tail.trim_end()));
            } else {
                context.push_str(&format!("; every tool's output is in {}", log.display()));
            }
        }
        e.context(context)
    }
}

/// A line of the story's text, indented under its step.
fn say(text: &str) {
    for line in text.lines() {
        progress::println(&format!("    {line}"));
    }
}

fn say_top(text: &str) {
    progress::println(text);
}

fn story(demo: &mut Demo) -> Result<()> {
    demo.step(
        1,
        "Install the tools; build the shim, the webhook and the guard.",
        "apt-get, pip and cargo on this machine (the first run takes minutes, later runs seconds)",
    );
    tools::ensure_apt(APT)?;
    tools::venv()?;
    let work = tools::scratch("demo")?;
    pki::world_traversable(&work)?;
    let shim = tools::build_static_shim()?;
    let webhook = build_webhook()?;
    let guard = crate::guard::build()?.guard;
    say(&format!(
        "shim {} bytes (static: it runs in images without libc), webhook and guard built",
        std::fs::metadata(&shim)?.len()
    ));

    demo.step(
        2,
        "Start OpenBao; store the database password; let the Pod's service account log in.",
        "a real OpenBao server (`bao server -dev`: in memory, on loopback); openssl, playing the cluster's \
         service-account signer",
    );
    let server = DevServer::start("openbao-demo")?;
    let password = pki::random_hex(16)?;
    let sa_key = pki::service_account_key(&work)?;
    configure_vault(&server, &password, &sa_key.public_pem)?;
    say(&format!("OpenBao on {}; secret/shop/db holds password=<32 random hex digits>", server.addr));
    say(&format!("JWT auth at auth/{JWT_MOUNT} (the shim's default mount) trusts the cluster's service-account"));
    say("signing key; role `shop` is bound to system:serviceaccount:shop:app and may read");
    say("secret/data/shop/db, nothing else.");

    demo.step(
        3,
        "The workload: examples/deployment.yaml. It names the secret, never its value:",
        "kubernetes-validate, checking the file against the Kubernetes schemas (no API server here)",
    );
    let (deployment, manifest_text) = load_manifest()?;
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut references = 0;
    for var in container["env"].as_array().context("the manifest's container has no env")? {
        let value = var["value"].as_str().unwrap_or("");
        references += usize::from(value.contains("vault:"));
        say(&format!("{}={value}", var["name"].as_str().unwrap_or("")));
    }
    say("kubernetes-validate --strict: the manifest is a valid apps/v1 Deployment.");
    let in_manifest = occurrences(manifest_text.as_bytes(), &password);
    ensure!(references > 0, "{MANIFEST} references no Vault secret");
    ensure!(in_manifest == 0, "{MANIFEST} holds the password");

    demo.step(
        4,
        "The ReplicaSet controller makes a Pod from the template; the API server sends it to the webhook.",
        "xtask, playing the ReplicaSet controller; curl, playing the API server (an AdmissionReview over TLS); \
         the real webhook",
    );
    let tls = pki::webhook_certificate(&work)?;
    let mut hook = Webhook::start(&webhook, &tls, &server.addr, &work)?;
    let pod = pod_from_template(&deployment);
    let admitted = hook.admit(&pod, &tls.cert)?;
    show_mutation(&admitted.pod)?;
    let in_pod = occurrences(admitted.pod.to_string().as_bytes(), &password);
    ensure!(in_pod == 0, "the patched Pod holds the password");
    demo.evidence(
        GUARANTEES[0],
        format!("{MANIFEST}: {references} references to it, {in_manifest} copies; the patched Pod: {in_pod} copies"),
    );
    let secret_ops = admitted.ops.iter().filter(|op| names_a_secret(op)).count();
    let secret_refs = secret_references(&admitted.pod);
    ensure!(secret_ops == 0 && secret_refs == 0, "the mutated Pod uses a Kubernetes Secret");

    demo.step(
        5,
        "The guard starts on the node: BPF programs attached, one JSON audit line per attempt.",
        "the real guard on this machine's kernel, as root (in a cluster: a DaemonSet)",
    );
    let mut guard = Guard::start(&guard, &work)?;
    say(&format!("guard mode: {} (this kernel: {})", guard.mode, tools::kernel_release()));
    if guard.mode != "lsm" {
        say("(BPF LSM is not enabled in this kernel: the guard kills a reader before its read instead of refusing it)");
    }

    demo.step(
        6,
        "The kubelet runs the init container (`injector install`), then the app's rewritten command.",
        "a kubelet emulation (xtask/src/demo/kubelet.rs: setpriv, no container runtime); the real shim; \
         /bin/sh as the app",
    );
    let volume = work.join("hush-volume");
    let token_file = sa_key.projected_token(&work, "shop", "app")?;
    let mut app =
        kubelet::start_pod(&admitted.pod, &kubelet::Node { shim: &shim, volume: &volume, token_file: &token_file })?;
    let first_line = {
        let _shown = progress::task("waiting for the app's first line");
        app.first_line(Duration::from_secs(30))?
    };
    say(&format!("app stdout: {first_line}"));
    say(&format!("shim log:   {}", app.log().trim()));
    let got = format!("DB_PASSWORD holds {} characters", password.len());
    ensure!(first_line.contains(&got), "the app did not get the secret");
    ensure!(first_line.contains("VAULT_TOKEN is absent"), "the Vault token leaked into the app");
    ensure!(!first_line.contains(&password) && !app.log().contains(&password), "the password was printed");
    say(&format!("The app (pid {}) holds the password in its environment; the shim exec'd it and is gone.", app.pid()));
    demo.evidence(
        GUARANTEES[1],
        format!(
            "the webhook's patch: {} operations, {secret_ops} use a Secret; the Pod: {secret_refs} Secret references; \
             the app got its {} characters from OpenBao",
            admitted.ops.len(),
            password.len()
        ),
    );

    demo.step(
        7,
        "Another process of the same user reads the app's environment: `cat /proc/<app pid>/environ`.",
        &format!("cat as uid {APP_UID}, playing `kubectl exec` into the app's container (same user)"),
    );
    let environ = format!("/proc/{}/environ", app.pid());
    let attack = Command::new("setpriv").args(kubelet::as_user(APP_UID)).args(["cat", &environ]).output()?;
    let leaked = occurrences(&attack.stdout, &password);
    say(&format!("cat {environ}: {} ({} bytes on stdout)", describe_exit(&attack.status), attack.stdout.len()));
    ensure!(leaked == 0, "the attacker read the password: the guard did not stop it");
    ensure!(!attack.status.success(), "the attacker's read succeeded");
    let line = {
        let _shown = progress::task("waiting for the guard's audit line");
        guard.audit_for(app.pid(), Duration::from_secs(10))?
    };
    let audit = format!(
        "event={} action={} attempt=\"{}\" reader={} (uid {}) target={} (pid {})",
        line["event"].as_str().unwrap_or("?"),
        line["action"].as_str().unwrap_or("?"),
        line["attempt"].as_str().unwrap_or("?"),
        line["reader"]["comm"].as_str().unwrap_or("?"),
        line["reader"]["uid"],
        line["target"]["comm"].as_str().unwrap_or("?"),
        line["target"]["tgid"],
    );
    say(&format!("the guard's audit line: {audit}"));
    say("The app's other /proc files stay readable (ps and top keep working):");
    let status = Command::new("setpriv")
        .args(kubelet::as_user(APP_UID))
        .args(["head", "-1", &format!("/proc/{}/status", app.pid())])
        .output()?;
    say(&format!("head -1 /proc/{}/status: {}", app.pid(), String::from_utf8_lossy(&status.stdout).trim()));
    ensure!(status.status.success(), "reading /proc/<pid>/status should stay allowed");
    demo.evidence(
        GUARANTEES[4],
        format!(
            "cat {environ} as uid {APP_UID}: {} bytes read, {}; the guard's audit line: {} {} ({} mode)",
            attack.stdout.len(),
            short_exit(&attack.status),
            line["attempt"].as_str().unwrap_or("?"),
            line["action"].as_str().unwrap_or("?"),
            guard.mode,
        ),
    );

    demo.step(
        8,
        "Fail closed: the same container with a reference to a key that does not exist.",
        "the real shim, started as the kubelet emulation starts the app",
    );
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
    let typo_log = String::from_utf8_lossy(&typo.stderr).trim().to_owned();
    say(&format!("shim: {} (66: a referenced secret does not exist); the app never ran", describe_exit(&typo.status)));
    say(&typo_log);
    ensure!(typo.status.code() == Some(66) && typo.stdout.is_empty(), "the shim should have failed closed");
    demo.evidence(
        GUARANTEES[5],
        format!(
            "a reference to a missing key: the shim ended with {}, the app printed {} bytes",
            short_exit(&typo.status),
            typo.stdout.len()
        ),
    );

    demo.step(9, "Clean up: stop the app, the guard (and unpin its programs), the webhook and OpenBao.", "xtask");
    let app_output = format!("{first_line}\n{}", app.log());
    app.stop();
    let guard_stop = guard.stop();
    hook.stop();
    drop(server);
    guard_stop?;
    say("all stopped; their logs are complete and closed");

    demo.step(
        10,
        "Nothing on disk, nothing in any log: search for the password, as written and base64-encoded.",
        "xtask, reading every file the demo and its servers wrote, and every log line it kept in memory",
    );
    let needles = [password.clone(), base64::engine::general_purpose::STANDARD.encode(&password)];
    // What the demo and its servers wrote: the work directory (keys, token, the Pod's volume,
    // the webhook's and the guard's logs), the tool log and OpenBao's log.
    let openbao_log = tools::target_dir().join("xtask/openbao-demo.log");
    let mut written = vec![work.clone(), openbao_log.clone()];
    written.extend(progress::log_path());
    let scanned = scan_files(&written, &needles)?;
    let names: Vec<String> =
        written.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    say(&format!(
        "{} files ({} KiB; {} under {}): {} hold it",
        scanned.files,
        scanned.bytes / 1024,
        names.join(", "),
        work.parent().unwrap_or(&work).display(),
        scanned.holding.len()
    ));
    ensure!(scanned.holding.is_empty(), "the password is in {:?}", scanned.holding);
    demo.evidence(
        GUARANTEES[2],
        format!(
            "{} files the demo wrote (keys, token, the Pod's volume, every log): {} hold it",
            scanned.files,
            scanned.holding.len()
        ),
    );
    let mut kept: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(log) = progress::log_path() {
        kept.push(("tool log", std::fs::read(log)?));
    }
    kept.extend([
        ("OpenBao", std::fs::read(&openbao_log)?),
        ("webhook", std::fs::read(work.join("webhook.log"))?),
        ("guard", std::fs::read(work.join("guard.log"))?),
        ("app and shim", app_output.into_bytes()),
        ("refused shim", typo.stderr),
        ("this screen", progress::transcript().into_bytes()),
    ]);
    let logs: Vec<(&str, usize)> = kept
        .into_iter()
        .map(|(name, bytes)| {
            let hits = needles.iter().map(|n| occurrences(&bytes, n)).sum();
            (name, hits)
        })
        .collect();
    let log_names: Vec<&str> = logs.iter().map(|(name, _)| *name).collect();
    say(&format!(
        "copies per log: {}",
        logs.iter().map(|(name, hits)| format!("{name} {hits}")).collect::<Vec<_>>().join(", ")
    ));
    let holding = logs.iter().filter(|(_, hits)| *hits > 0).count();
    ensure!(holding == 0, "the password is in a log");
    demo.evidence(GUARANTEES[3], format!("{} logs ({}): {holding} hold it", logs.len(), log_names.join(", ")));

    summary(demo)
}

/// The closing table, each row the evidence the checks left (joined when several did), and
/// the run's time.
fn summary(demo: &Demo) -> Result<()> {
    if demo.story_ended.is_none() {
        demo.end_step();
    }
    let printed = demo.step.as_ref().map_or(0, |(n, _)| *n);
    ensure!(printed == demo.steps, "the story told {printed} of its {} steps", demo.steps);
    say_top("");
    say_top("Summary: where the password is not, and the check that shows it");
    let width = GUARANTEES.iter().map(|g| g.len()).max().unwrap_or(0);
    for guarantee in GUARANTEES {
        let evidence: Vec<&str> =
            demo.evidence.iter().filter(|(g, _)| *g == guarantee).map(|(_, e)| e.as_str()).collect();
        ensure!(!evidence.is_empty(), "no check left evidence for `{guarantee}`");
        say_top(&format!("  {guarantee:<width$}  {}", evidence.join("; ")));
    }
    let now = Instant::now();
    let story_started = demo.story_started.context("the story never started")?;
    let story_ended = demo.story_ended.unwrap_or(now);
    let mut timing = format!(
        "Done in {}: {} installing and building (step 1), {} the story (steps 2-{})",
        seconds(now - demo.started),
        seconds(story_started - demo.started),
        seconds(story_ended - story_started),
        demo.steps
    );
    if demo.stopping {
        timing.push_str(&format!(", {} stopping the cluster", seconds(now - story_ended)));
    }
    say_top("");
    say_top(&format!("{timing}."));
    Ok(())
}

/// The cluster's story tells itself through the demo: numbered steps, lines under them, and
/// the evidence kept for the summary.
impl crate::e2e::Teller for Demo {
    fn step(&mut self, title: &str, who: &str) {
        let n = self.step.as_ref().map_or(1, |(n, _)| n + 1);
        Demo::step(self, n, title, who);
    }

    fn say(&mut self, text: &str) {
        say(text);
    }

    fn evidence(&mut self, guarantee: &'static str, text: String) {
        Demo::evidence(self, guarantee, text);
    }

    fn lap(&mut self, name: &'static str) {
        progress::note(&format!("{name} ({} into the run)", seconds(self.started.elapsed())));
    }

    fn story_done(&mut self) {
        self.end_step();
        self.story_ended = Some(Instant::now());
        progress::stage("");
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 { format!("{s:.1} s") } else { format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60) }
}

/// How many times `needle` occurs in `haystack` (overlapping ones counted).
pub(crate) fn occurrences(haystack: &[u8], needle: &str) -> usize {
    let needle = needle.as_bytes();
    let Some(&first) = needle.first() else { return 0 };
    let mut count = 0;
    let mut from = 0;
    // Jump between occurrences of the first byte: xtask runs unoptimised, and the Pod's
    // volume holds a 3 MB binary.
    while let Some(at) = haystack[from..].iter().position(|&b| b == first) {
        let at = from + at;
        count += usize::from(haystack[at..].starts_with(needle));
        from = at + 1;
    }
    count
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

/// Stores the password (on bao's stdin, never in its argv), the policy and the JWT role.
fn configure_vault(server: &DevServer, password: &str, public_pem: &Path) -> Result<()> {
    let bao = |args: &[&str]| -> Result<()> { cmd::run(server.cli().args(args)) };
    cmd::run_with_input(server.cli().args(["kv", "put", "secret/shop/db", "password=-"]), password.as_bytes())?;
    let policy = "path \"secret/data/shop/db\" { capabilities = [\"read\"] }";
    cmd::run_with_input(server.cli().args(["policy", "write", "shop", "-"]), policy.as_bytes())?;
    // At `auth/kubernetes`: the shim's default mount for every method, as Bank-Vaults'.
    bao(&["auth", "enable", &format!("-path={JWT_MOUNT}"), "jwt"])?;
    bao(&["write", &format!("auth/{JWT_MOUNT}/config"), &format!("jwt_validation_pubkeys=@{}", public_pem.display())])?;
    bao(&[
        "write",
        &format!("auth/{JWT_MOUNT}/role/shop"),
        "role_type=jwt",
        "user_claim=sub",
        "bound_subject=system:serviceaccount:shop:app",
        "bound_audiences=vault",
        "token_policies=shop",
        "token_ttl=10m",
    ])
}

/// The manifest as JSON, after checking it against the Kubernetes schemas, and its text.
fn load_manifest() -> Result<(Value, String)> {
    let path = tools::root().join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {MANIFEST}"))?;
    let venv = tools::venv()?;
    cmd::run(Command::new(venv.join("bin/kubernetes-validate")).args(["--strict", "--quiet"]).arg(&path))
        .with_context(|| format!("{MANIFEST} does not validate"))?;
    // kubectl cannot convert files without an API server; PyYAML (kubernetes-validate's) can.
    let out = Command::new(venv.join("bin/python3"))
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"])
        .arg(&path)
        .output()?;
    ensure!(out.status.success(), "reading {MANIFEST}: {}", String::from_utf8_lossy(&out.stderr));
    Ok((serde_json::from_slice(&out.stdout)?, text))
}

/// What the ReplicaSet controller sends: the template's metadata and spec as a Pod.
fn pod_from_template(deployment: &Value) -> Value {
    let template = &deployment["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["generateName"] = json!("shop-7d4b9c-");
    metadata["namespace"] = deployment["metadata"]["namespace"].clone();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// Whether a patch operation adds a Secret reference: an env `secretKeyRef`, an `envFrom`
/// `secretRef`, or a `secret` volume (the webhook's own injection needs none of them).
fn names_a_secret(op: &json_patch::PatchOperation) -> bool {
    use json_patch::PatchOperation::*;
    match op {
        Add(a) => mentions_secret(&a.value),
        Replace(r) => mentions_secret(&r.value),
        Test(_) | Remove(_) | Move(_) | Copy(_) => false,
    }
}

fn mentions_secret(v: &Value) -> bool {
    match v {
        Value::Object(map) => {
            map.keys().any(|k| matches!(k.as_str(), "secretKeyRef" | "secretRef" | "secret"))
                || map.values().any(mentions_secret)
        }
        Value::Array(items) => items.iter().any(mentions_secret),
        _ => false,
    }
}

/// How many Secret references the Pod's spec holds (see [`names_a_secret`]).
pub(crate) fn secret_references(pod: &Value) -> usize {
    fn count(v: &Value) -> usize {
        match v {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| usize::from(matches!(k.as_str(), "secretKeyRef" | "secretRef" | "secret")) + count(v))
                .sum(),
            Value::Array(items) => items.iter().map(count).sum(),
            _ => 0,
        }
    }
    count(&pod["spec"])
}

fn show_mutation(patched: &Value) -> Result<()> {
    let spec = &patched["spec"];
    let init = &spec["initContainers"][0];
    say(&format!("init container {}: {}", init["name"], init["command"]));
    let app = &spec["containers"][0];
    let command = app["command"].to_string();
    let shown = match command.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &command[..cut]),
        None => command,
    };
    say(&format!("app command: {shown}"));
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

/// What [`scan_files`] found.
struct Scan {
    files: usize,
    bytes: u64,
    holding: Vec<PathBuf>,
}

/// Every file of `roots` (files, and every file under directories), and those whose bytes
/// contain one of `needles`.
fn scan_files(roots: &[PathBuf], needles: &[String]) -> Result<Scan> {
    let mut scan = Scan { files: 0, bytes: 0, holding: Vec::new() };
    let mut paths = roots.to_vec();
    while let Some(path) = paths.pop() {
        let meta = std::fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
                paths.push(entry?.path());
            }
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            scan.files += 1;
            scan.bytes += bytes.len() as u64;
            if needles.iter().any(|n| occurrences(&bytes, n) > 0) {
                scan.holding.push(path);
            }
        }
    }
    Ok(scan)
}

/// `exit code N` or `SIGKILL` (for the summary).
fn short_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(9)) => "killed (SIGKILL)".to_owned(),
        (_, Some(sig)) => format!("signal {sig}"),
        (Some(code), _) => format!("exit code {code}"),
        _ => "ended".to_owned(),
    }
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

/// The webhook, serving on a free loopback port, its output in `webhook.log`.
struct Webhook {
    child: Child,
    port: u16,
}

/// The webhook's answer: the Pod with the patch applied, and the patch.
struct Admitted {
    pod: Value,
    ops: Vec<json_patch::PatchOperation>,
}

impl Webhook {
    fn start(bin: &Path, tls: &pki::Tls, vault_addr: &str, work: &Path) -> Result<Webhook> {
        let port = crate::openbao::free_port()?;
        let log = File::create(work.join("webhook.log"))?;
        let child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(&tls.cert)
            .arg("--tls-key")
            .arg(&tls.key)
            .args(["--injector-image", "registry.example/hush/injector:demo"])
            .args(["--default", &format!("vault-addr={vault_addr}")])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the webhook")?;
        let mut hook = Webhook { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        let _shown = progress::task("waiting for the webhook to answer /readyz");
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
    fn admit(&mut self, pod: &Value, ca: &Path) -> Result<Admitted> {
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
        Ok(Admitted { pod: patched, ops: patch.0 })
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

/// The guard, with its audit lines arriving on a channel; everything it writes (audit lines
/// and its own messages) is kept in `guard.log`.
struct Guard {
    child: Child,
    lines: mpsc::Receiver<Value>,
    mode: String,
    bin: PathBuf,
}

impl Guard {
    fn start(bin: &Path, work: &Path) -> Result<Guard> {
        crate::guard::ensure_mounted("tracefs", "/sys/kernel/tracing")?;
        crate::guard::ensure_mounted("bpf", "/sys/fs/bpf")?;
        // A pin root left by an interrupted demo would keep old programs attached.
        let _ = Command::new(bin).args(["unload", "--pin-root", PIN_ROOT]).output();
        let mut child = Command::new(bin)
            .args(["--mode", "auto", "--pin-root", PIN_ROOT])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the guard")?;
        let log = Arc::new(Mutex::new(File::create(work.join("guard.log"))?));
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().context("the guard's stdout")?;
        let audit_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(audit_log.lock().unwrap_or_else(|e| e.into_inner()), "{line}");
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
                let _ = writeln!(log.lock().unwrap_or_else(|e| e.into_inner()), "{line}");
                progress::note(&line);
            }
        });
        let _shown = progress::task("waiting for the guard to attach its programs");
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
            let line = self
                .lines
                .recv_timeout(left)
                .with_context(|| format!("the guard wrote no audit line for the attempt{}", other_guards()))?;
            if line["event"] == "attempt" && line["target"]["tgid"] == pid {
                return Ok(line);
            }
        }
    }

    fn stop(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Links stay pinned after the daemon exits (protection survives restarts): unpin them.
        cmd::run(Command::new(&self.bin).args(["unload", "--pin-root", PIN_ROOT]))
    }
}

/// Other guards pinned on this kernel (a cluster's DaemonSet, `cargo xtask guard-test`):
/// they protect the same shim-started processes and may kill a reader first.
fn other_guards() -> String {
    let ours = Path::new(PIN_ROOT).file_name();
    let others: Vec<String> = std::fs::read_dir("/sys/fs/bpf")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|name| name.to_string_lossy().starts_with("hush") && Some(name.as_os_str()) != ours)
        .map(|name| format!("/sys/fs/bpf/{}", name.to_string_lossy()))
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!(
            " (another guard is pinned on this kernel, at {}: it may have stopped the reader first)",
            others.join(", ")
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_occurrences() {
        assert_eq!(occurrences(b"abcabc", "abc"), 2);
        assert_eq!(occurrences(b"ab", "abc"), 0);
        assert_eq!(occurrences(b"abc", ""), 0);
        assert_eq!(occurrences(b"aaa", "aa"), 2);
        assert_eq!(occurrences(b"xabcabx", "abx"), 1);
    }

    #[test]
    fn finds_secret_references_anywhere_in_a_patch_value() {
        let env = json!({"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}});
        let volume = json!({"name": "v", "secret": {"secretName": "db"}});
        let empty_dir = json!({"name": "hush", "emptyDir": {"medium": "Memory"}});
        assert!(mentions_secret(&env));
        assert!(mentions_secret(&json!([empty_dir.clone(), volume])));
        assert!(!mentions_secret(&empty_dir));
        assert!(!mentions_secret(&json!({"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#password"})));
        let pod = json!({"spec": {"containers": [{"envFrom": [{"secretRef": {"name": "db"}}], "env": [env]}]}});
        assert_eq!(secret_references(&pod), 2);
    }

    #[test]
    fn seconds_reads_as_a_person_would_say_it() {
        assert_eq!(seconds(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(seconds(Duration::from_secs(125)), "2m 05s");
    }
}
