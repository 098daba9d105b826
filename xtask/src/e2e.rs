//! `cargo xtask e2e`: Hush on a real cluster, from images to the guard's audit line.
//!
//! Without `--kubeconfig` it starts the one-node cluster of `cargo xtask cluster up` and stops
//! it at the end (also on failure). Then: the images are built and pushed; OpenBao runs on the
//! host's bridge address with its kubernetes auth method reviewing tokens against this API
//! server; the chart is installed with Helm's engine; `examples/deployment.yaml` runs in a
//! namespace that enforces PodSecurity `restricted`; each claim of the story is checked
//! against what the cluster reports; and last, the password is searched for in every Secret,
//! etcd, every log and every file the run wrote. Every wait is bounded.
//!
//! The story is told through a [`Teller`]: `cargo xtask e2e` prints `e2e: ` lines and the
//! steps' durations ([`Lines`]); `cargo xtask demo` on a cluster prints the same story as its
//! numbered steps, each naming who plays it, and a summary made of the evidence the checks
//! leave (`crate::demo`). Both run every check below.

mod apiserver;
mod objects;

use crate::cluster::{self, Cluster};
use crate::demo::{GUARANTEES, occurrences};
use crate::{cmd, images, progress, tools};
use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

const RELEASE: &str = "hush";
const HUSH_NS: &str = "hush-system";
const GUARD_NS: &str = "hush-guard";
/// The label selector of the guard DaemonSet's Pods.
const GUARD_PODS: &str = "app.kubernetes.io/component=guard";
const APP_NS: &str = "shop";
const EXAMPLE: &str = "examples/deployment.yaml";
const VAULT_PORT: u16 = 8200;
/// The second registry, which requires a password (for the imagePullSecrets check).
const PRIVATE_REGISTRY_PORT: u16 = 5001;
/// How many times the story calls [`Teller::step`] (the demo's `[n/STEPS]`).
pub const STEPS: u32 = 12;

#[derive(clap::Args)]
pub struct Args {
    /// Run against this existing cluster instead of starting one. Its nodes must pull from
    /// `--registry` and reach `--host-ip`, and its API server must be reachable from here.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Registry (host:port, plain HTTP) the images are pushed to and pulled from.
    #[arg(long, default_value = cluster::REGISTRY)]
    pub registry: String,
    /// This host's address as the cluster's Pods see it: OpenBao listens there.
    #[arg(long, default_value = cluster::NODE_IP)]
    pub host_ip: String,
    /// Leave the cluster (and the release) running afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// How the story is told. Every check runs whoever tells it; the teller only decides what
/// the reader sees: `cargo xtask e2e`'s lines ([`Lines`]) or the demo's numbered steps.
pub trait Teller {
    /// The next part of the story begins: what it shows, and who plays it.
    fn step(&mut self, title: &str, who: &str);
    /// What a check showed (may hold several lines).
    fn say(&mut self, text: &str);
    /// What a check showed that backs one of the summary's guarantees ([`GUARANTEES`]).
    fn evidence(&mut self, guarantee: &'static str, text: String);
    /// The time since the last lap went to `name` (e2e's timings).
    fn lap(&mut self, name: &'static str);
    /// The story is over: the cluster (when ours) stops next.
    fn story_done(&mut self);
}

/// What `cargo xtask test` runs after the demo: the cluster story, told as the demo tells it
/// and checked as `demo --check` checks the one-machine story (every check of `cargo xtask
/// e2e` runs in it), when the Kubernetes binaries are there; else one loud line saying why not.
pub fn run_in_suite() -> Result<()> {
    let Some(bin) = cluster::kube_bin_source() else {
        println!(
            "\n==== e2e SKIPPED: no Kubernetes binaries (set HUSH_KUBE_BIN to a directory holding SHA256SUMS and \
             kube-apiserver.xz, kube-controller-manager.xz, kube-scheduler.xz, kubelet.xz) ====\n"
        );
        return Ok(());
    };
    crate::demo::check_on_cluster(&bin)
}

pub fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let mut lines = Lines::new();
    let result = run_told(args, &mut lines);
    lines.report();
    result?;
    println!("e2e: every check passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The whole run, told by `t`: the cluster up (unless `--kubeconfig`), the story, the
/// cluster down (unless `--keep`; also after a failure).
pub fn run_told(args: &Args, t: &mut dyn Teller) -> Result<()> {
    let owned = args.kubeconfig.is_none();
    t.step(
        "Start the cluster; build Hush's images and push them to its registry.",
        &if owned {
            "`xtask cluster up`: etcd, the real kube-apiserver, controller manager and scheduler, the real kubelet \
             with containerd and runc, one node on this machine; cargo, and the registry API for the images (no \
             Docker daemon)"
                .to_owned()
        } else {
            format!(
                "the cluster of {}, already running; cargo, and the registry API for the images (no Docker daemon)",
                args.kubeconfig.as_deref().unwrap_or(Path::new("?")).display()
            )
        },
    );
    let cluster = match &args.kubeconfig {
        Some(file) => external(file)?,
        None => cluster::up()?,
    };
    t.lap("cluster up");
    let result = story(&cluster, owned, args, t);
    t.story_done();
    if result.is_err() {
        diagnostics(&cluster);
    }
    if owned && !args.keep {
        let down = cluster::down();
        t.lap("cluster down");
        match (&result, down) {
            (Ok(()), Err(e)) => return Err(e),
            (Err(_), Err(e)) => progress::note(&format!("cluster down after the failure failed too: {e:#}")),
            _ => {}
        }
    }
    result
}

/// `cargo xtask e2e`'s teller: `e2e: ` lines on stdout, each lap's duration on stderr as it
/// ends, and at the end the timings and the evidence.
pub struct Lines {
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
    evidence: Vec<(&'static str, String)>,
}

impl Lines {
    pub fn new() -> Self {
        Lines { last: Instant::now(), laps: Vec::new(), evidence: Vec::new() }
    }

    fn report(&self) {
        println!("e2e timings:");
        for (name, d) in &self.laps {
            println!("  {name:<40} {:>6.1} s", d.as_secs_f64());
        }
        if !self.evidence.is_empty() {
            println!("e2e evidence:");
            for (guarantee, text) in &self.evidence {
                println!("  {guarantee:<31}  {text}");
            }
        }
    }
}

impl Teller for Lines {
    fn step(&mut self, title: &str, _who: &str) {
        progress::note(&format!("e2e: {title}"));
    }

    fn say(&mut self, text: &str) {
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            progress::println(&format!("e2e: {first}"));
        }
        for line in lines {
            progress::println(line);
        }
    }

    fn evidence(&mut self, guarantee: &'static str, text: String) {
        self.evidence.push((guarantee, text));
    }

    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.laps.push((name, now - self.last));
        progress::note(&format!("e2e: {name}: {:.1} s", (now - self.last).as_secs_f64()));
        self.last = now;
    }

    fn story_done(&mut self) {}
}

/// A cluster given by a kubeconfig file.
fn external(file: &Path) -> Result<Cluster> {
    let kubectl = cluster::kubectl()?;
    let view = |path: &str| -> Result<String> {
        cmd::stdout(Command::new(&kubectl).arg("--kubeconfig").arg(file).args([
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            &format!("jsonpath={path}"),
        ]))
    };
    let server = view("{.clusters[0].cluster.server}")?;
    let ca = tools::scratch("e2e-external")?.join("ca.crt");
    let data = view("{.clusters[0].cluster.certificate-authority-data}")?;
    if data.is_empty() {
        let path = view("{.clusters[0].cluster.certificate-authority}")?;
        ensure!(!path.is_empty(), "{} names no cluster CA", file.display());
        std::fs::copy(&path, &ca)?;
    } else {
        std::fs::write(&ca, base64::engine::general_purpose::STANDARD.decode(data.trim())?)?;
    }
    Ok(Cluster { kubeconfig: file.to_path_buf(), kubectl, ca, server })
}

/// What the cluster looked like when a check failed (in the demo's log inside a quiet session,
/// where its failure message shows the end of it).
fn diagnostics(cluster: &Cluster) {
    progress::note("e2e failed; the cluster's Pods and recent events:");
    let _ = cmd::run(cluster.kubectl().args(["get", "pods", "-A", "-o", "wide"]));
    let _ = cmd::run(cluster.kubectl().args(["get", "events", "-A", "--sort-by=.lastTimestamp"]));
}

fn kubectl_json(cluster: &Cluster, args: &[&str]) -> Result<Value> {
    let out = cmd::output(cluster.kubectl().args(args).args(["-o", "json"]))?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn kubectl_ok(cluster: &Cluster, args: &[&str]) -> Result<()> {
    cmd::output(cluster.kubectl().args(args)).map(|_| ())
}

/// `kubectl ARGS -f -` with `input` on stdin; the output, or an error holding it.
fn kubectl_stdin(cluster: &Cluster, args: &[&str], input: &[u8]) -> Result<std::process::Output> {
    let mut child = cluster
        .kubectl()
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("kubectl's stdin")?.write_all(input)?;
    Ok(child.wait_with_output()?)
}

fn apply(cluster: &Cluster, object: &Value) -> Result<()> {
    let out = kubectl_stdin(cluster, &["apply"], &serde_json::to_vec(object)?)?;
    ensure!(
        out.status.success(),
        "kubectl apply of {} {} failed: {}",
        object["kind"],
        object["metadata"]["name"],
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Who runs the containers, as the steps name it.
fn node(owned: bool) -> &'static str {
    if owned { "the real kubelet with containerd" } else { "the cluster's kubelet and container runtime" }
}

fn story(cluster: &Cluster, owned: bool, args: &Args, t: &mut dyn Teller) -> Result<()> {
    let version = kubectl_json(cluster, &["version"])?;
    let nodes = kubectl_json(cluster, &["get", "nodes"])?;
    let node_names: Vec<&str> =
        nodes["items"].as_array().into_iter().flatten().filter_map(|n| n["metadata"]["name"].as_str()).collect();
    t.say(&format!(
        "API server {} (Kubernetes {}); node(s): {}",
        cluster.server,
        version["serverVersion"]["gitVersion"].as_str().unwrap_or("?"),
        node_names.join(", ")
    ));
    remove_previous_run(cluster)?;
    let images = images::build_and_push(&args.registry)?;
    t.say(&format!(
        "images pushed to {}: {}",
        args.registry,
        [&images.injector, &images.webhook, &images.guard, &images.app]
            .iter()
            .map(|p| p.repository.rsplit('/').next().unwrap_or(&p.repository))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    t.lap("images built and pushed");

    t.step(
        "Start OpenBao; store the database password; let the app's ServiceAccount log in.",
        "a real OpenBao server (`bao server -dev`: in memory, on the node's bridge address); its kubernetes auth \
         method, which sends every token it is shown to the real kube-apiserver's TokenReview",
    );
    let password = random_hex(16)?;
    let bao = Bao::start(&args.host_ip)?;
    configure_vault(cluster, &bao, &password)?;
    t.say(&format!("OpenBao on {}; secret/shop/db holds password=<32 random hex digits>", bao.addr));
    t.say(&format!(
        "auth/kubernetes reviews tokens at {} (its reviewer token from a TokenRequest); role `shop` is bound to \
         the ServiceAccount {APP_NS}/app and may read secret/data/shop/db, nothing else",
        cluster.server
    ));
    t.lap("OpenBao with kubernetes auth");

    t.step(
        "Install the chart charts/hush: the webhook (2 replicas), its registration, the guard DaemonSet.",
        "Helm's engine (helm-python-sdk) installing charts/hush; the real kube-apiserver; `kubectl apply \
         --dry-run=server` for every rendered object",
    );
    let private = PrivateRegistry::start(&args.host_ip)?;
    install_chart(cluster, args, &images, t)?;
    t.lap("chart installed (Helm), checked");

    t.step(
        "The workload: examples/deployment.yaml, created with kubectl in a namespace enforcing PodSecurity \
         `restricted`.",
        &format!(
            "kubectl; the real kube-apiserver (PodSecurity, then the webhook), the Deployment and ReplicaSet \
             controllers, {}; the real shim in the app's container",
            node(owned)
        ),
    );
    let app = run_example(cluster, &images, &password, t)?;
    t.lap("example Deployment running");
    // Namespace defaults from the watched ConfigMap, the shim's default kubernetes login.
    apiserver::checks(cluster, &images, &bao, &password, t)?;
    apiserver::pull_secret_cases(cluster, &private, t)?;
    objects::check(cluster, &images.app.reference(), &password, t)?;
    t.lap("Secret with vault: values: warning; envFrom resolved");

    t.step(
        "Another process reads the app's environment: `kubectl exec ... cat /proc/1/environ`.",
        "`kubectl exec` as the reader (the API server and the kubelet join it to the app's container, same user); \
         the guard DaemonSet's BPF programs; `kubectl logs` for the guard's audit line",
    );
    attack(cluster, &app, &password, t)?;
    t.lap("kubectl exec attack stopped");

    t.step(
        "Fail closed: a Pod whose reference names a key that does not exist.",
        &format!("kubectl; {}, restarting the container; the real shim", node(owned)),
    );
    misspelled_key(cluster, &images, &password, t)?;
    t.lap("misspelled key: CrashLoopBackOff 66");

    t.step(
        "Fail closed at admission: a Pod with an unknown hush.dev/auth-method.",
        "kubectl; the real kube-apiserver calling the webhook (failurePolicy: Fail)",
    );
    denied(cluster, &images, t)?;
    t.lap("a bad annotation denied (Forbidden)");

    t.step(
        "Rotation: the secret changes in OpenBao; the shim's daemon mode restarts the process, not the container.",
        &format!(
            "`bao kv put`; the real shim in daemon mode in a container run by {}; kubectl for restartCount and the \
             container's ID",
            node(owned)
        ),
    );
    let rotated = rotation(cluster, &bao, &images, t)?;
    t.lap("daemon-mode rotation in place");

    t.step(
        "The shim logs in with a token the API server issued (TokenRequest); another ServiceAccount's is refused.",
        "`kubectl create token` (TokenRequest); the real shim on this host; OpenBao's kubernetes auth with a real \
         TokenReview",
    );
    shim_with_token_request(cluster, &bao, &rotated, t)?;
    t.lap("shim login with a TokenRequest token");

    t.step(
        "The webhook's rolling restart under a stream of Pod creations: no admission fails.",
        "`kubectl rollout restart`; two streams of `kubectl create --dry-run=server` (full admission, nothing \
         stored); the chart's PodDisruptionBudget",
    );
    rolling_restart(cluster, t)?;
    t.lap("webhook rolling restart under load");

    t.step(
        "imagePullSecrets: the webhook reads a Pod's pull Secret from the API server.",
        "a registry that requires a password (Debian's docker-registry, htpasswd); the webhook with the chart's \
         RBAC; the real kube-apiserver's 403 once that RBAC is gone",
    );
    pull_secrets(cluster, &private, t)?;
    t.lap("imagePullSecrets read from the API server");

    t.step(
        "Nowhere else: search for the passwords (the first and the rotated one, as written and base64-encoded).",
        if owned {
            "xtask reading every Secret (`kubectl get secrets -A`), etcd's data directory, every file the cluster \
             and this run wrote on this machine's disk, and every log (`kubectl logs`, the daemons', OpenBao's)"
        } else {
            "xtask reading every Secret (`kubectl get secrets -A`), every file this run wrote on this machine, and \
             every log it can reach (`kubectl logs`, OpenBao's)"
        },
    );
    nowhere_else(cluster, owned, &[&password, &rotated], t)?;
    t.lap("the passwords searched for");
    Ok(())
}

/// On an existing cluster (`--kubeconfig`, or a kept one): what an earlier run left, so that
/// the release installs afresh. The registration goes first: with `failurePolicy: Fail` and
/// no webhook, no Pod could be created.
fn remove_previous_run(cluster: &Cluster) -> Result<()> {
    kubectl_ok(
        cluster,
        &[
            "delete",
            "mutatingwebhookconfigurations,validatingwebhookconfigurations",
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "--ignore-not-found",
        ],
    )?;
    kubectl_ok(
        cluster,
        &["delete", "namespace", APP_NS, HUSH_NS, GUARD_NS, "--ignore-not-found", "--wait", "--timeout=180s"],
    )
}

pub(super) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

// ---- OpenBao ------------------------------------------------------------------------------

/// `bao server -dev` on the host's bridge address (Pods have no other route), killed on drop.
struct Bao {
    child: Child,
    addr: String,
    token: String,
    bin: PathBuf,
}

impl Bao {
    fn start(host_ip: &str) -> Result<Self> {
        let bin = tools::bao()?;
        let addr = format!("http://{host_ip}:{VAULT_PORT}");
        let token = format!("hush-e2e-{}", random_hex(8)?);
        let log = tools::target_dir().join("xtask").join("openbao-e2e.log");
        std::fs::create_dir_all(log.parent().expect("log has a parent"))?;
        let file = std::fs::File::create(&log)?;
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-listen-address={host_ip}:{VAULT_PORT}"))
            .arg(format!("-dev-root-token-id={token}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        let mut bao = Bao { child, addr, token, bin };
        cluster::wait_for("OpenBao", Duration::from_secs(30), || {
            if let Some(status) = bao.child.try_wait()? {
                bail!("bao exited: {status}; see {}", log.display());
            }
            Ok(bao.cli().arg("status").stdout(Stdio::null()).stderr(Stdio::null()).status()?.success())
        })?;
        Ok(bao)
    }

    fn cli(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.token)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token);
        c
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        cmd::output(self.cli().args(args)).map(|_| ())
    }

    /// `secret/shop/db` `password=VALUE`, the value on stdin (`password=-`), never in argv.
    fn put_password(&self, value: &str) -> Result<()> {
        let mut child = self
            .cli()
            .args(["kv", "put", "secret/shop/db", "password=-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        child.stdin.take().context("bao's stdin")?.write_all(value.as_bytes())?;
        ensure!(child.wait()?.success(), "bao kv put secret/shop/db failed");
        Ok(())
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The secret, a policy, and the kubernetes auth method: OpenBao sends each Pod's token to
/// this API server's TokenReview, authenticated by a reviewer token the API server issued
/// (TokenRequest) to a ServiceAccount bound to `system:auth-delegator`.
fn configure_vault(cluster: &Cluster, bao: &Bao, password: &str) -> Result<()> {
    bao.put_password(password)?;
    let policy = tools::scratch("e2e-vault")?.join("shop.hcl");
    std::fs::write(&policy, "path \"secret/data/shop/db\" { capabilities = [\"read\"] }\n")?;
    bao.run(&["policy", "write", "shop", &policy.display().to_string()])?;
    let sa = ["-n", "kube-system"];
    let _ = cluster.kubectl().args(["create", "serviceaccount", "openbao-reviewer"]).args(sa).output();
    let _ = cluster
        .kubectl()
        .args([
            "create",
            "clusterrolebinding",
            "openbao-reviewer",
            "--clusterrole=system:auth-delegator",
            "--serviceaccount=kube-system:openbao-reviewer",
        ])
        .output();
    let reviewer =
        cmd::stdout(cluster.kubectl().args(["create", "token", "openbao-reviewer", "--duration=1h"]).args(sa))?;
    let jwt_file = policy.with_file_name("reviewer.jwt");
    std::fs::write(&jwt_file, &reviewer)?;
    bao.run(&["auth", "enable", "kubernetes"])?;
    bao.run(&[
        "write",
        "auth/kubernetes/config",
        &format!("kubernetes_host={}", cluster.server),
        &format!("kubernetes_ca_cert=@{}", cluster.ca.display()),
        &format!("token_reviewer_jwt=@{}", jwt_file.display()),
        "disable_local_ca_jwt=true",
    ])?;
    bao.run(&[
        "write",
        "auth/kubernetes/role/shop",
        "bound_service_account_names=app",
        &format!("bound_service_account_namespaces={APP_NS}"),
        "token_policies=shop",
        "token_ttl=10m",
    ])
}

// ---- the chart ----------------------------------------------------------------------------

fn image_values(p: &images::Pushed) -> Value {
    json!({"repository": p.repository, "tag": images::TAG, "digest": p.digest})
}

fn install_chart(cluster: &Cluster, args: &Args, images: &images::Images, t: &mut dyn Teller) -> Result<()> {
    // The release namespace enforces "restricted": the chart's webhook Pods must pass it.
    apply(
        cluster,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": HUSH_NS, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}}),
    )?;
    let values = json!({
        "images": {
            "webhook": image_values(&images.webhook),
            "injector": image_values(&images.injector),
            "guard": image_values(&images.guard),
        },
        "webhook": {
            "defaults": {"vault-addr": format!("http://{}:{VAULT_PORT}", args.host_ip)},
            "insecureRegistries": [args.registry, format!("{}:{PRIVATE_REGISTRY_PORT}", args.host_ip)],
            // The webhook reads Pods' pull Secrets from the API server (chart RBAC).
            "readImagePullSecrets": true,
            // The webhook reads the ConfigMaps and Secrets Pods take into their environment
            // (objects::check runs a Pod whose only reference comes through envFrom).
            "readReferencedObjects": true,
            // Namespace defaults from a ConfigMap the webhook watches (e2e/apiserver.rs).
            "watchNamespaceDefaults": true,
        },
        "guard": {"enabled": true, "namespace": GUARD_NS},
    });
    let venv = tools::venv()?;
    let out = cmd::output(
        Command::new(venv.join("bin/python3"))
            .arg(tools::root().join("charts/tests/install.py"))
            .arg(tools::root().join("charts/hush"))
            .arg(&cluster.kubeconfig)
            .args([RELEASE, HUSH_NS, &values.to_string(), "240"]),
    )
    .context("helm install (Helm's engine through helm-python-sdk)")?;
    let manifest = tools::scratch("e2e-chart")?.join("manifest.yaml");
    std::fs::write(&manifest, &out.stdout)?;
    t.say("chart installed by Helm's engine (helm-python-sdk Config.install, wait=watcher)");

    // The webhook: 2 ready replicas and a PDB.
    let webhook = "app.kubernetes.io/component=webhook";
    kubectl_ok(cluster, &["-n", HUSH_NS, "rollout", "status", "deployment", "-l", webhook, "--timeout=180s"]).or_else(
        |_| {
            // `rollout status` takes no selector on older kubectl: by name.
            kubectl_ok(cluster, &["-n", HUSH_NS, "rollout", "status", "deployment/hush-webhook", "--timeout=180s"])
        },
    )?;
    let deploys = kubectl_json(cluster, &["-n", HUSH_NS, "get", "deployments", "-l", webhook])?;
    let deploy = &deploys["items"][0];
    ensure!(
        deploy["status"]["readyReplicas"] == 2,
        "webhook Deployment: {} ready replicas, want 2",
        deploy["status"]["readyReplicas"]
    );
    let pdbs = kubectl_json(cluster, &["-n", HUSH_NS, "get", "poddisruptionbudgets"])?;
    ensure!(
        pdbs["items"].as_array().is_some_and(|a| a.iter().any(|p| p["spec"]["minAvailable"] == 1)),
        "no PodDisruptionBudget with minAvailable 1 in {HUSH_NS}"
    );
    t.say(&format!("webhook Deployment {} Ready with 2 replicas, PDB minAvailable 1", deploy["metadata"]["name"]));

    // The caBundle the chart made matches the CA of the serving Secret.
    let mwcs =
        kubectl_json(cluster, &["get", "mutatingwebhookconfigurations", "-l", "app.kubernetes.io/component=webhook"])?;
    let bundle = mwcs["items"][0]["webhooks"][0]["clientConfig"]["caBundle"].as_str().unwrap_or("").to_owned();
    let secrets = kubectl_json(cluster, &["-n", HUSH_NS, "get", "secrets", "-l", webhook])?;
    let ca = secrets["items"][0]["data"]["ca.crt"].as_str().unwrap_or("");
    ensure!(!bundle.is_empty() && bundle == ca, "the MutatingWebhookConfiguration's caBundle is not the chart's CA");
    t.say(&format!("MutatingWebhookConfiguration caBundle = the chart-generated CA ({} base64 bytes)", bundle.len()));

    // The guard DaemonSet, in its privileged namespace.
    let ns = kubectl_json(cluster, &["get", "namespace", GUARD_NS])?;
    ensure!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged",
        "{GUARD_NS} does not enforce the privileged level"
    );
    kubectl_ok(cluster, &["-n", GUARD_NS, "rollout", "status", "daemonset/hush-guard", "--timeout=180s"])?;
    let ds = kubectl_json(cluster, &["-n", GUARD_NS, "get", "daemonset", "hush-guard"])?;
    let (ready, want) = (&ds["status"]["numberReady"], &ds["status"]["desiredNumberScheduled"]);
    ensure!(ready == want && want.as_u64() >= Some(1), "guard DaemonSet: {ready} of {want} ready");
    t.say(&format!("guard DaemonSet Running in {GUARD_NS} ({ready}/{want} ready)"));

    // Every rendered object, once more, through the API server's validation and admission.
    let out = cluster.kubectl().args(["apply", "--dry-run=server", "-f"]).arg(&manifest).output()?;
    ensure!(
        out.status.success(),
        "kubectl apply --dry-run=server refused a rendered object:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = String::from_utf8_lossy(&out.stdout).lines().count();
    t.say(&format!("kubectl apply --dry-run=server accepted all {count} rendered objects"));
    Ok(())
}

// ---- the example --------------------------------------------------------------------------

/// The running app Pod.
struct AppPod {
    name: String,
    uid: String,
}

/// A restricted-compliant Pod spec running `script` in the app image.
fn pod(name: &str, image: &str, annotations: Value, script: &str, env: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": APP_NS, "annotations": annotations},
        "spec": {
            "serviceAccountName": "app",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app",
                "image": image,
                "command": ["/bin/sh", "-c", script],
                "env": env,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    })
}

fn run_example(cluster: &Cluster, images: &images::Images, password: &str, t: &mut dyn Teller) -> Result<AppPod> {
    apply(
        cluster,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APP_NS, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest"}}}),
    )?;
    apply(
        cluster,
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": APP_NS}}),
    )?;

    // PodSecurity is the API server's own plugin: a privileged Pod is refused in this namespace.
    let mut bad = pod("privileged", &images.app.reference(), json!({}), "true", json!([]));
    bad["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let out = kubectl_stdin(cluster, &["create", "--dry-run=server"], &serde_json::to_vec(&bad)?)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("PodSecurity"),
        "a privileged Pod was not refused by PodSecurity: {err}"
    );
    t.say(&format!("PodSecurity (API server) refuses a privileged Pod in {APP_NS}: {}", err.trim()));

    // The example as written, but for two things this cluster needs: the image comes from the
    // loopback registry, and OpenBao checks the token with the kubernetes auth method
    // (TokenReview) rather than the demo's JWT signing key.
    let rendered = cmd::output(
        cluster.kubectl().args(["create", "--dry-run=client", "-o", "json", "-f"]).arg(tools::root().join(EXAMPLE)),
    )?;
    let mut deployment: Value = serde_json::from_slice(&rendered.stdout)?;
    let manifest_text = std::fs::read(tools::root().join(EXAMPLE))?;
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default();
    let references: Vec<String> = env
        .iter()
        .filter(|v| v["value"].as_str().is_some_and(|v| v.starts_with("vault:")))
        .map(|v| format!("{}={}", v["name"].as_str().unwrap_or(""), v["value"].as_str().unwrap_or("")))
        .collect();
    ensure!(!references.is_empty(), "{EXAMPLE} references no Vault secret");
    let in_manifest = occurrences(&manifest_text, password);
    ensure!(in_manifest == 0, "{EXAMPLE} holds the password");
    t.say(&format!("{EXAMPLE} names the secret, never its value: {}", references.join(", ")));
    let template = &mut deployment["spec"]["template"];
    template["metadata"]["annotations"]["hush.dev/auth-method"] = json!("kubernetes");
    template["spec"]["containers"][0]["image"] = json!(images.app.reference());
    apply(cluster, &deployment)?;
    kubectl_ok(cluster, &["-n", APP_NS, "rollout", "status", "deployment/shop", "--timeout=120s"])?;
    let pods = kubectl_json(cluster, &["-n", APP_NS, "get", "pods", "-l", "app=shop"])?;
    let pod = pods["items"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["status"]["phase"] == "Running"))
        .context("no running shop Pod")?;
    let name = pod["metadata"]["name"].as_str().context("pod name")?.to_owned();
    let uid = pod["metadata"]["uid"].as_str().context("pod uid")?.to_owned();
    let init: Vec<&str> = pod["spec"]["initContainers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    ensure!(!init.is_empty(), "the shop Pod was not mutated (no init container)");
    // Issue 12.6: the ServiceAccount admission plugin runs again after the webhook's patch and
    // mounts the API token into every container without a mount at its path; the webhook gives
    // its init container an empty volume there, so Hush's init container holds no API token.
    let token_volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            v["projected"]["sources"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some()))
        })
        .filter_map(|v| v["name"].as_str())
        .collect();
    let token_in_init: Vec<String> = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == "hush-injector-install")
        .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
        .filter(|m| m["name"].as_str().is_some_and(|n| token_volumes.contains(&n)))
        .map(|m| m.to_string())
        .collect();
    ensure!(!token_volumes.is_empty(), "the shop Pod has no service-account token volume at all");
    ensure!(token_in_init.is_empty(), "Hush's init container got the API token: {token_in_init:?}");
    t.say(&format!("Hush's init container holds no API token (token volumes {token_volumes:?} are the app's only)"));
    let logs = cmd::stdout(cluster.kubectl().args(["-n", APP_NS, "logs", &name, "-c", "app"]))?;
    t.say(&format!("{APP_NS}/{name} (init containers {init:?}) app log: {logs}"));
    ensure!(!logs.contains(password), "the password is in the app's log");
    ensure!(
        logs.contains(&format!("DB_PASSWORD holds {} characters", password.len())),
        "the app did not get its secret through the kubernetes auth method"
    );
    ensure!(logs.contains("VAULT_TOKEN is absent"), "the Vault token reached the app");

    // The objects as the API server stores them (in etcd): the Deployment, its ReplicaSet and
    // the patched Pod hold no copy of the password, and the Pod no Secret reference.
    let stored = kubectl_json(cluster, &["-n", APP_NS, "get", "deployments,replicasets,pods"])?;
    let stored_objects = stored["items"].as_array().map_or(0, Vec::len);
    let in_stored = copies(stored.to_string().as_bytes(), &[password]);
    ensure!(in_stored == 0, "the objects the API server stores in {APP_NS} hold the password");
    let secret_refs = crate::demo::secret_references(pod);
    ensure!(secret_refs == 0, "the patched shop Pod uses a Kubernetes Secret ({secret_refs} references)");
    t.say(&format!(
        "kubectl get deployments,replicasets,pods -n {APP_NS}: {stored_objects} objects, {in_stored} copies of the \
         password; the Pod: {secret_refs} Secret references"
    ));
    t.evidence(
        GUARANTEES[0],
        format!(
            "{EXAMPLE}: {} reference(s) to it, {in_manifest} copies; the {stored_objects} objects the API server \
             stores for it (Deployment, ReplicaSet, Pod): {in_stored} copies",
            references.len()
        ),
    );
    t.evidence(
        GUARANTEES[1],
        format!(
            "the patched Pod: {secret_refs} Secret references; the app got its {} characters from OpenBao (kubernetes \
             auth, TokenReview)",
            password.len()
        ),
    );
    Ok(AppPod { name, uid })
}

/// `kubectl exec ... cat /proc/1/environ` in the app's container: the guard kills or denies it.
fn attack(cluster: &Cluster, app: &AppPod, password: &str, t: &mut dyn Teller) -> Result<()> {
    let out = cluster
        .kubectl()
        .args(["-n", APP_NS, "exec", &app.name, "-c", "app", "--", "cat", "/proc/1/environ"])
        .output()?;
    let leaked = String::from_utf8_lossy(&out.stdout).contains(password);
    let cat_status = out.status;
    let cat_bytes = out.stdout.len();
    t.say(&format!(
        "kubectl exec {}/{} -- cat /proc/1/environ: {cat_status} ({cat_bytes} bytes on stdout) {}",
        APP_NS,
        app.name,
        String::from_utf8_lossy(&out.stderr).trim()
    ));
    ensure!(!leaked, "kubectl exec read the app's secret: the guard did not stop it");
    ensure!(!out.status.success(), "kubectl exec's cat succeeded");

    let mut found = None;
    let mut guard_log = String::new();
    cluster::wait_for("the guard's audit line", Duration::from_secs(30), || {
        let logs = cmd::stdout(cluster.kubectl().args(["-n", GUARD_NS, "logs", "-l", GUARD_PODS, "--tail=-1"]))?;
        found = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "attempt" && v["reader"]["comm"] == "cat");
        guard_log = logs;
        Ok(found.is_some())
    })
    .with_context(|| format!("{}; the guard logged {}", other_guards(), event_counts(&guard_log)))?;
    let line = found.expect("found by the wait");
    progress::note(&format!("e2e: guard audit line (kubectl logs): {line}"));
    t.say(&format!("the guard's audit line (kubectl logs): {}", audit_summary(&line)));
    ensure!(
        ["killed", "denied"].contains(&line["action"].as_str().unwrap_or("")),
        "the guard's action was {} (want killed or denied)",
        line["action"]
    );
    ensure!(!line.to_string().contains(password), "the audit line holds the secret");
    // Both sides are the app's container (`kubectl exec` joins it): the line must name its Pod
    // (issue 12: null in about a third of the lines before the guard read /proc/<tgid>/cgroup).
    // The container id is the one the kubelet reports for the app's container.
    let status = kubectl_json(cluster, &["-n", APP_NS, "get", "pod", &app.name])?;
    let container_id = status["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "app")
        .and_then(|c| c["containerID"].as_str())
        .and_then(|id| id.split_once("://"))
        .map(|(_, id)| id.to_owned())
        .context("the app Pod's status has no containerID for container app")?;
    for side in ["reader", "target"] {
        let uid = line[side]["pod_uid"].as_str().unwrap_or("null");
        ensure!(uid == app.uid, "the audit line's {side} names Pod {uid}, not the app's {}", app.uid);
        ensure!(
            line[side]["container_id"] == container_id.as_str(),
            "the audit line's {side} names container id {}, not the app container's {container_id}",
            line[side]["container_id"]
        );
        // Issue 12.4: the names come from the guard's watch of its node's Pods (kube crate,
        // guard.podNames); the cgroup path holds only the ids above.
        let names = [&line[side]["namespace"], &line[side]["pod"], &line[side]["container"]];
        ensure!(
            names == [APP_NS, app.name.as_str(), "app"],
            "the audit line's {side} is named namespace={} pod={} container={}, not {APP_NS}/{}/app \
             (the guard's Pod watch: {})",
            names[0],
            names[1],
            names[2],
            app.name,
            pod_watch_lines(&guard_log)
        );
    }
    // The guard said it watches its node's Pods, last (a warning before it, e.g. a first list
    // refused while the chart's ClusterRoleBinding was not yet in force, must have passed).
    let watch = pod_watch_lines(&guard_log);
    let last = guard_log.lines().rev().find(|l| l.starts_with("guard:") && l.contains("the Pods of node"));
    ensure!(
        last.is_some_and(|l| l.starts_with("guard: watching the Pods of node")),
        "the guard's last line about its Pod watch is not that it watches them: {watch}"
    );
    t.say(&format!("the guard's Pod watch (kubectl logs, stderr): {watch}"));

    let audit = format!(
        "{} {} ({}), naming the app's Pod ({APP_NS}/{}, container app)",
        line["attempt"].as_str().unwrap_or("?"),
        line["action"].as_str().unwrap_or("?"),
        line["hook"].as_str().unwrap_or("?"),
        app.name
    );

    // The guard's own attackers, from inside the app's container: io_uring (which Debian's
    // containerd 1.6 RuntimeDefault seccomp profile allows) and /proc/1/mem.
    let mut others = Vec::new();
    for kind in ["io-uring", "mem"] {
        let out = cluster
            .kubectl()
            .args(["-n", APP_NS, "exec", &app.name, "-c", "app", "--", "/bin/guard-suite", "attack", kind, "1"])
            .output()?;
        let leaked = String::from_utf8_lossy(&out.stdout).contains(password);
        t.say(&format!(
            "kubectl exec ... guard-suite attack {kind} 1: {} ({} bytes on stdout) {}",
            out.status,
            out.stdout.len(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").trim()
        ));
        ensure!(!leaked, "the {kind} attack read the app's secret");
        ensure!(!out.status.success(), "the {kind} attack succeeded");
        others.push(format!("{kind}: {} bytes read", out.stdout.len()));
    }
    let logs = cmd::stdout(cluster.kubectl().args(["-n", GUARD_NS, "logs", "-l", GUARD_PODS, "--tail=-1"]))?;
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reader"]["comm"] == "guard-suite")
        .collect();
    for l in &lines {
        t.say(&format!(
            "guard audit line: {} {} by {} ({})",
            l["action"], l["attempt"], l["reader"]["comm"], l["hook"]
        ));
    }
    ensure!(!lines.is_empty(), "the guard logged no line for the guard-suite attacks");
    t.evidence(
        GUARANTEES[4],
        format!(
            "kubectl exec ... cat /proc/1/environ: {cat_bytes} bytes read, {}; the guard's audit line: {audit}; \
             guard-suite's {}",
            short_status(&cat_status),
            others.join(", ")
        ),
    );
    guard_without_the_api(cluster, app, password, &container_id, t)
}

/// The guard that cannot read Pods (its ClusterRoleBinding deleted, the Pod restarted: every
/// list is refused with 403) starts, warns once, and still kills the reader; its line carries
/// the cgroup-derived Pod UID and container id, and null names. The binding is restored after.
fn guard_without_the_api(
    cluster: &Cluster,
    app: &AppPod,
    password: &str,
    container_id: &str,
    t: &mut dyn Teller,
) -> Result<()> {
    with_bindings_removed(cluster, "guard", |removed| {
        ensure!(removed == 1, "the guard has {removed} ClusterRoleBindings, want its one (guard.podNames)");
        guard_without_the_api_checks(cluster, app, password, container_id, t)
    })?;
    // It keeps retrying (kube's backoff, at most 30 s apart): once it may read Pods again it
    // lists them and says so.
    let mut last = String::new();
    cluster::wait_for("the guard's Pod watch after its ClusterRoleBinding is back", Duration::from_secs(90), || {
        let log = cmd::stdout(cluster.kubectl().args(["-n", GUARD_NS, "logs", "-l", GUARD_PODS, "--tail=-1"]))?;
        last = log
            .lines()
            .rev()
            .find(|l| l.starts_with("guard:") && l.contains("the Pods of node"))
            .unwrap_or("")
            .to_owned();
        Ok(last.starts_with("guard: watching the Pods of node"))
    })
    .with_context(|| format!("the guard's last line about its Pod watch: {last}"))?;
    t.say(&format!("the binding restored: {last}"));
    Ok(())
}

fn guard_without_the_api_checks(
    cluster: &Cluster,
    app: &AppPod,
    password: &str,
    container_id: &str,
    t: &mut dyn Teller,
) -> Result<()> {
    kubectl_ok(cluster, &["-n", GUARD_NS, "delete", "pod", "-l", GUARD_PODS, "--wait=true", "--timeout=60s"])?;
    kubectl_ok(cluster, &["-n", GUARD_NS, "rollout", "status", "daemonset/hush-guard", "--timeout=120s"])?;
    let logs = || cmd::stdout(cluster.kubectl().args(["-n", GUARD_NS, "logs", "-l", GUARD_PODS, "--tail=-1"]));
    let mut log = String::new();
    cluster::wait_for("the restarted guard's warning about its Pod watch", Duration::from_secs(60), || {
        log = logs().unwrap_or_default();
        Ok(log.lines().any(|l| l.starts_with("guard: warning: watching the Pods of node")))
    })?;
    let out = cluster
        .kubectl()
        .args(["-n", APP_NS, "exec", &app.name, "-c", "app", "--", "cat", "/proc/1/environ"])
        .output()?;
    ensure!(!String::from_utf8_lossy(&out.stdout).contains(password), "kubectl exec read the app's secret");
    ensure!(!out.status.success(), "kubectl exec's cat succeeded while the guard could not read Pods");
    let mut found = None;
    cluster::wait_for("the restarted guard's audit line", Duration::from_secs(30), || {
        log = logs()?;
        found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "attempt" && v["reader"]["comm"] == "cat");
        Ok(found.is_some())
    })?;
    let line = found.expect("found by the wait");
    ensure!(
        ["killed", "denied"].contains(&line["action"].as_str().unwrap_or("")),
        "without the API the guard's action was {} (want killed or denied)",
        line["action"]
    );
    for side in ["reader", "target"] {
        ensure!(
            line[side]["pod_uid"] == app.uid.as_str() && line[side]["container_id"] == container_id,
            "without the API the line's {side} lost its cgroup-derived ids: {}",
            line[side]
        );
        for field in ["namespace", "pod", "container"] {
            ensure!(line[side][field].is_null(), "without the API the line's {side}.{field} is {}", line[side][field]);
        }
    }
    let warnings: Vec<&str> =
        log.lines().filter(|l| l.starts_with("guard: warning: watching the Pods of node")).collect();
    ensure!(warnings.len() == 1, "the guard warned {} times about its Pod watch, want once", warnings.len());
    t.say(&format!(
        "the guard restarted without its ClusterRoleBinding: {}; `kubectl exec ... cat /proc/1/environ`: {}; its \
         line: pod_uid and container_id from the cgroup, namespace/pod/container null",
        warnings[0].chars().take(160).collect::<String>(),
        short_status(&out.status)
    ));
    Ok(())
}

/// Other guards pinned on this kernel (a host `guard-test`, the demo's): they protect the same
/// shim-started processes and may kill a reader before the DaemonSet's guard sees it.
fn other_guards() -> String {
    let ours = Path::new(cluster::GUARD_PIN_ROOT).file_name().unwrap_or_default();
    let others: Vec<String> = std::fs::read_dir("/sys/fs/bpf")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|name| name.to_string_lossy().starts_with("hush") && name.as_os_str() != ours)
        .map(|name| format!("/sys/fs/bpf/{}", name.to_string_lossy()))
        .collect();
    if others.is_empty() {
        "no other guard is pinned on this kernel".to_owned()
    } else {
        format!("another guard is pinned on this kernel ({}): it may have stopped the reader first", others.join(", "))
    }
}

/// The guard's log in a few words: how many lines of each `event` (and its attempts' readers).
fn event_counts(log: &str) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for v in log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        let mut key = v["event"].as_str().unwrap_or("?").to_owned();
        if key == "attempt" {
            key = format!("attempt by {} ({})", v["reader"]["comm"].as_str().unwrap_or("?"), v["action"]);
        }
        *counts.entry(key).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(event, n)| format!("{n} {event}")).collect();
    if counts.is_empty() { "no JSON line".to_owned() } else { counts.join(", ") }
}

/// The guard's lines (stderr, in `kubectl logs` with its JSON) about its watch of the Pods.
fn pod_watch_lines(log: &str) -> String {
    let lines: Vec<&str> =
        log.lines().filter(|l| l.starts_with("guard:") && (l.contains("Pods") || l.contains("pod-names"))).collect();
    if lines.is_empty() { "none".to_owned() } else { lines.join(" | ") }
}

/// A guard audit line in a few words: what was tried, what the guard did, by whom, on what.
fn audit_summary(line: &Value) -> String {
    let names = |side: &str| {
        let s = |f: &str| line[side][f].as_str().unwrap_or("?").to_owned();
        format!("{}/{} container {}", s("namespace"), s("pod"), s("container"))
    };
    format!(
        "event={} action={} attempt=\"{}\" hook={} reader={} (uid {}, {}) target={} ({}, pod uid {})",
        line["event"].as_str().unwrap_or("?"),
        line["action"].as_str().unwrap_or("?"),
        line["attempt"].as_str().unwrap_or("?"),
        line["hook"].as_str().unwrap_or("?"),
        line["reader"]["comm"].as_str().unwrap_or("?"),
        line["reader"]["uid"],
        names("reader"),
        line["target"]["comm"].as_str().unwrap_or("?"),
        names("target"),
        line["target"]["pod_uid"].as_str().unwrap_or("?"),
    )
}

/// `exit code N` (kubectl exec passes the command's code on: 137 is a SIGKILL).
fn short_status(status: &std::process::ExitStatus) -> String {
    match status.code() {
        Some(137) => "exit code 137 (killed)".to_owned(),
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}

fn misspelled_key(cluster: &Cluster, images: &images::Images, password: &str, t: &mut dyn Teller) -> Result<()> {
    let typo = pod(
        "typo",
        &images.app.reference(),
        json!({"hush.dev/auth-method": "kubernetes", "hush.dev/role": "shop"}),
        "echo app started; exec sleep 600",
        json!([{"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#passwrod"}]),
    );
    apply(cluster, &typo)?;
    let mut last = Value::Null;
    cluster::wait_for("typo: CrashLoopBackOff", Duration::from_secs(120), || {
        last = kubectl_json(cluster, &["-n", APP_NS, "get", "pod", "typo"])?["status"]["containerStatuses"][0].clone();
        Ok(last["state"]["waiting"]["reason"] == "CrashLoopBackOff")
    })?;
    let code = &last["lastState"]["terminated"]["exitCode"];
    ensure!(code == 66, "the misspelled key's container exited {code}, want 66");
    // The kubelet may be replacing the crashed container just then ("unable to retrieve container
    // logs", seen once in CI): ask again until the previous container's log is there.
    let mut logs = String::new();
    cluster::wait_for("typo: the crashed container's log", Duration::from_secs(30), || {
        logs = cmd::stdout(cluster.kubectl().args(["-n", APP_NS, "logs", "typo", "-c", "app", "--previous"]))?;
        Ok(!logs.trim().is_empty() && !logs.contains("unable to retrieve container logs"))
    })?;
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut said = format!("typo: CrashLoopBackOff, last exit {code}; its log ({} line(s)):", lines.len());
    for l in &lines {
        said.push_str(&format!("\n      {l}"));
    }
    t.say(&said);
    ensure!(!logs.contains("app started"), "the app ran despite the missing key");
    ensure!(logs.contains("passwrod"), "the shim's error does not name the missing key");
    ensure!(!logs.contains(password), "the shim's error holds the secret");
    ensure!(lines.len() == 1, "the shim printed {} lines, want one clear error line", lines.len());
    t.evidence(
        GUARANTEES[5],
        format!("a reference to a missing key: the container exited {code} (CrashLoopBackOff), the app never started"),
    );
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "pod", "typo", "--wait=false"])
}

/// A Pod the webhook refuses: kubectl shows the API server's answer with the webhook's code and
/// reason (issue 12.6: without a `reason` kubectl printed "Error from server:" alone) and the
/// message names the annotation.
fn denied(cluster: &Cluster, images: &images::Images, t: &mut dyn Teller) -> Result<()> {
    let bad = pod(
        "bad-auth",
        &images.app.reference(),
        json!({"hush.dev/auth-method": "telepathy"}),
        "exec sleep 600",
        json!([{"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#password"}]),
    );
    let out = kubectl_stdin(cluster, &["apply"], &serde_json::to_vec(&bad)?)?;
    let err = String::from_utf8_lossy(&out.stderr);
    t.say(&format!("denied: {}", err.trim()));
    ensure!(!out.status.success(), "the API server admitted a Pod with hush.dev/auth-method: telepathy");
    ensure!(err.contains("(Forbidden)"), "kubectl does not show the denial's reason: {err}");
    ensure!(err.contains("hush.dev/auth-method"), "the denial does not name the annotation: {err}");
    t.evidence(GUARANTEES[5], "an unknown hush.dev/auth-method: refused at admission (Forbidden)".to_owned());
    Ok(())
}

/// Returns the new password.
fn rotation(cluster: &Cluster, bao: &Bao, images: &images::Images, t: &mut dyn Teller) -> Result<String> {
    let rotor = pod(
        "rotor",
        &images.app.reference(),
        json!({
            "hush.dev/auth-method": "kubernetes",
            "hush.dev/role": "shop",
            "hush.dev/env-daemon": "true",
            "hush.dev/rotation": "restart",
            "hush.dev/kv-poll-interval": "1s",
            "hush.dev/restart-grace": "2s",
        }),
        "echo \"rotor: started, DB_PASSWORD holds ${#DB_PASSWORD} characters\"; exec sleep 600",
        json!([{"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#password"}]),
    );
    apply(cluster, &rotor)?;
    kubectl_ok(cluster, &["-n", APP_NS, "wait", "--for=condition=Ready", "pod/rotor", "--timeout=90s"])?;
    let logs = || cmd::stdout(cluster.kubectl().args(["-n", APP_NS, "logs", "rotor", "-c", "app"]));
    cluster::wait_for("rotor's first start", Duration::from_secs(30), || Ok(logs()?.contains("holds 32 characters")))?;
    let before = kubectl_json(cluster, &["-n", APP_NS, "get", "pod", "rotor"])?;
    let container_id = before["status"]["containerStatuses"][0]["containerID"].clone();
    let rotated = random_hex(20)?;
    bao.put_password(&rotated)?;
    cluster::wait_for("rotor's restart with the new value", Duration::from_secs(60), || {
        Ok(logs()?.contains("holds 40 characters"))
    })?;
    let after = kubectl_json(cluster, &["-n", APP_NS, "get", "pod", "rotor"])?;
    let status = &after["status"]["containerStatuses"][0];
    ensure!(after["metadata"]["uid"] == before["metadata"]["uid"], "the Pod was replaced");
    ensure!(status["restartCount"] == 0, "the container restarted ({} restarts)", status["restartCount"]);
    ensure!(status["containerID"] == container_id, "the container was replaced");
    let log = logs()?;
    ensure!(!log.contains(&rotated), "the rotated secret is in the log");
    let mut said = "rotation: same Pod, same container, restartCount 0; the app's log:".to_owned();
    for l in log.lines() {
        said.push_str(&format!("\n      {l}"));
    }
    t.say(&said);
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "pod", "rotor", "--wait=false"])?;
    Ok(rotated)
}

/// Pod creations (server-side dry runs: full admission, webhook included, nothing stored)
/// in a loop while the webhook's Deployment rolls; none may fail.
fn rolling_restart(cluster: &Cluster, t: &mut dyn Teller) -> Result<()> {
    let probe = pod(
        "admission-probe",
        "registry.example/shop/app:1.4",
        json!({"hush.dev/auth-method": "kubernetes", "hush.dev/role": "shop"}),
        "true",
        json!([{"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#password"}]),
    );
    let body = serde_json::to_vec(&probe)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kubectl = cluster.kubectl.clone();
    let kubeconfig = cluster.kubeconfig.clone();
    let streams: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed, errors, body) =
                (stop.clone(), ok.clone(), failed.clone(), errors.clone(), body.clone());
            let view = Cluster {
                kubeconfig: kubeconfig.clone(),
                kubectl: kubectl.clone(),
                ca: PathBuf::new(),
                server: String::new(),
            };
            std::thread::spawn(move || {
                // Bounded: at most 10 minutes whatever happens to the main thread.
                let deadline = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match kubectl_stdin(&view, &["create", "--dry-run=server", "-o", "json"], &body) {
                        Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hush") => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(out) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.lock().expect("lock").push(String::from_utf8_lossy(&out.stderr).trim().to_owned());
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.lock().expect("lock").push(format!("{e:#}"));
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let before = ok.load(Ordering::Relaxed);
    let rollout =
        kubectl_ok(cluster, &["-n", HUSH_NS, "rollout", "restart", "deployment/hush-webhook"]).and_then(|()| {
            kubectl_ok(cluster, &["-n", HUSH_NS, "rollout", "status", "deployment/hush-webhook", "--timeout=240s"])
        });
    // Until the old Pods are gone, so that their whole preStop pause and drain are under load.
    let drained = cluster::wait_for("the old webhook Pods to exit", Duration::from_secs(90), || {
        let pods = kubectl_json(cluster, &["-n", HUSH_NS, "get", "pods", "-l", "app.kubernetes.io/component=webhook"])?;
        Ok(pods["items"].as_array().is_some_and(|a| a.len() == 2))
    });
    stop.store(true, Ordering::Relaxed);
    for s in streams {
        let _ = s.join();
    }
    rollout?;
    drained?;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    t.say(&format!(
        "webhook rolling restart: {ok} admissions passed ({} during the rollout), {failed} failed",
        ok - before
    ));
    let errors = errors.lock().expect("lock");
    ensure!(
        failed == 0,
        "{failed} admissions failed during the rolling restart, e.g.: {}",
        errors.first().cloned().unwrap_or_default()
    );
    ensure!(ok - before >= 10, "too few admissions during the rollout ({}) to show anything", ok - before);
    Ok(())
}

// ---- imagePullSecrets through the real API server -------------------------------------------

/// Debian's docker-registry once more, on the host's bridge address, requiring a password
/// (htpasswd, bcrypt); killed on drop.
struct PrivateRegistry {
    child: Child,
    addr: String,
    user: String,
    password: String,
    /// curl's config file with `user = "name:password"` (the password stays off argv).
    curl_config: PathBuf,
    dir: PathBuf,
    /// The app image pushed as shop/private:1 with the password, once for every check that uses it.
    app: String,
}

impl PrivateRegistry {
    fn start(host_ip: &str) -> Result<Self> {
        tools::ensure_apt(&["apache2-utils", "docker-registry", "curl"])?;
        let dir = tools::scratch("e2e-registry")?;
        let (user, password) = ("hush-e2e".to_owned(), random_hex(12)?);
        let htpasswd = dir.join("htpasswd");
        let mut child = Command::new("htpasswd")
            .args(["-B", "-c", "-i"])
            .arg(&htpasswd)
            .arg(&user)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().context("htpasswd's stdin")?.write_all(password.as_bytes())?;
        // Its stderr ("Adding password for user ...") is shown only when it fails.
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        let addr = format!("{host_ip}:{PRIVATE_REGISTRY_PORT}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n\
                 auth:\n  htpasswd:\n    realm: hush-e2e\n    path: {}\n",
                dir.join("data").display(),
                htpasswd.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let curl_config = dir.join("curl.conf");
        std::fs::write(&curl_config, format!("user = \"{user}:{password}\"\n"))?;
        let mut registry = PrivateRegistry { child, addr, user, password, curl_config, dir, app: String::new() };
        cluster::wait_for("the private registry", Duration::from_secs(30), || {
            Ok(std::net::TcpStream::connect(&registry.addr).is_ok())
        })?;
        registry.app = images::push_app(
            &registry.addr,
            "shop/private",
            "1",
            &registry.dir.join("image"),
            Some(&registry.curl_config),
            None,
        )?
        .reference();
        Ok(registry)
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deletes every ClusterRoleBinding of the webhook (the pull Secrets' and, with
/// webhook.readReferencedObjects, the referenced objects': both grant `get` on Secrets), waits
/// up to 30 s until `refused` holds (the API server's 403 has reached the webhook), and puts the
/// bindings back whatever happened.
fn without_webhook_bindings(cluster: &Cluster, refused: impl FnMut() -> Result<bool>) -> Result<()> {
    with_bindings_removed(cluster, "webhook", |removed| {
        ensure!(removed > 0, "no ClusterRoleBinding lets the webhook read Secrets");
        cluster::wait_for("a 403 from the API server", Duration::from_secs(30), refused)
    })
}

/// Deletes every ClusterRoleBinding of the chart's `component` (its
/// `app.kubernetes.io/component` label), runs `body` with how many there were, and applies
/// them again whatever `body` returned.
fn with_bindings_removed<T>(cluster: &Cluster, component: &str, body: impl FnOnce(usize) -> Result<T>) -> Result<T> {
    let selector = format!("app.kubernetes.io/component={component}");
    let bindings = kubectl_json(cluster, &["get", "clusterrolebindings", "-l", &selector])?;
    let mut saved = Vec::new();
    for b in bindings["items"].as_array().into_iter().flatten() {
        let mut b = b.clone();
        for field in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
            b["metadata"].as_object_mut().context("metadata")?.remove(field);
        }
        kubectl_ok(cluster, &["delete", "clusterrolebinding", b["metadata"]["name"].as_str().context("name")?])?;
        saved.push(b);
    }
    let result = body(saved.len());
    for b in &saved {
        apply(cluster, b)?;
    }
    result
}

/// The webhook reads a Pod's pull Secret from the API server (chart RBAC) and looks up the
/// image's entrypoint in a registry that requires it; without the Secret, and once the
/// ClusterRoleBinding is gone (a real 403 from the API server), the look-up is refused.
fn pull_secrets(cluster: &Cluster, registry: &PrivateRegistry, t: &mut dyn Teller) -> Result<()> {
    let anonymous = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/v2/shop/private/manifests/1", registry.addr))
        .output()?;
    let code = String::from_utf8_lossy(&anonymous.stdout).into_owned();
    ensure!(code == "401", "the private registry answered an anonymous request with {code}, want 401");

    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let auth = b64.encode(format!("{}:{}", registry.user, registry.password));
    let docker_config =
        json!({"auths": {&registry.addr: {"username": registry.user, "password": registry.password, "auth": auth}}});
    apply(
        cluster,
        &json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "regcred", "namespace": APP_NS},
            "data": {".dockerconfigjson": b64.encode(docker_config.to_string())}}),
    )?;
    // No command: the webhook must read the image's ENTRYPOINT from the registry.
    let mut probe = pod(
        "private",
        &registry.app,
        json!({"hush.dev/auth-method": "kubernetes", "hush.dev/role": "shop"}),
        "true",
        json!([{"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#password"}]),
    );
    let container = &mut probe["spec"]["containers"][0];
    container.as_object_mut().context("container")?.remove("command");
    container["args"] = json!(["-c", "true"]);
    let without = serde_json::to_vec(&probe)?;
    probe["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let with = serde_json::to_vec(&probe)?;
    let create = |body: &[u8]| kubectl_stdin(cluster, &["create", "--dry-run=server", "-o", "json"], body);

    let out = create(&with)?;
    ensure!(out.status.success(), "admission with the pull Secret failed: {}", String::from_utf8_lossy(&out.stderr));
    let admitted: Value = serde_json::from_slice(&out.stdout)?;
    let app = &admitted["spec"]["containers"][0];
    let argv = format!("{} {}", app["command"], app["args"]);
    ensure!(argv.contains("/bin/sh"), "the patched command lacks the image's entrypoint /bin/sh: {argv}");
    t.say(&format!("pull Secret read from the API server; the private image's entrypoint found: {argv}"));

    let out = create(&without)?;
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    ensure!(!out.status.success(), "the private image was looked up without credentials");
    t.say(&format!("without imagePullSecrets: refused: {err}"));

    let mut refused = String::new();
    let result = without_webhook_bindings(cluster, || {
        let out = create(&with)?;
        refused = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Ok(!out.status.success() && refused.contains("403"))
    });
    result?;
    t.say(&format!("without RBAC: refused, naming the API server's answer: {refused}"));
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "secret", "regcred"])
}

// ---- the shim with a token the API server issued ---------------------------------------------

/// The shim on this host, logging in with a token the API server issued (TokenRequest) for
/// the app's ServiceAccount, which OpenBao sends back to the API server (TokenReview); a token
/// of another ServiceAccount is refused (exit 77).
fn shim_with_token_request(cluster: &Cluster, bao: &Bao, password: &str, t: &mut dyn Teller) -> Result<()> {
    let shim = tools::build_static_shim()?;
    let dir = tools::scratch("e2e-token")?;
    let run = |account: &str| -> Result<std::process::Output> {
        let token = cmd::stdout(cluster.kubectl().args(["-n", APP_NS, "create", "token", account, "--duration=10m"]))?;
        let file = dir.join(format!("{account}.jwt"));
        std::fs::write(&file, token)?;
        Ok(Command::new(&shim)
            .args(["--", "/bin/sh", "-c", "echo \"DB_PASSWORD holds ${#DB_PASSWORD} characters\""])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_AUTH_METHOD", "kubernetes")
            .env("VAULT_ROLE", "shop")
            .env("HUSH_SA_TOKEN_PATH", &file)
            .env("DB_PASSWORD", "vault:secret/data/shop/db#password")
            .output()?)
    };
    let out = run("app")?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    t.say(&format!("shim with a TokenRequest token of {APP_NS}/app: {}; {stdout}", out.status));
    ensure!(out.status.success(), "the shim failed: {}", String::from_utf8_lossy(&out.stderr));
    ensure!(
        stdout == format!("DB_PASSWORD holds {} characters", password.len()),
        "the shim did not hand over the secret"
    );
    let out = run("default")?;
    let err = String::from_utf8_lossy(&out.stderr);
    t.say(&format!(
        "shim with a token of {APP_NS}/default: {}; {}",
        out.status,
        err.lines().last().unwrap_or("").trim()
    ));
    ensure!(out.status.code() == Some(77), "a token of another ServiceAccount: exit {:?}, want 77", out.status.code());
    ensure!(out.stdout.is_empty() && !err.contains(password), "the refused shim leaked or ran the app");
    Ok(())
}

// ---- nowhere else -----------------------------------------------------------------------------

/// The secrets as written and base64-encoded: what the last step searches for.
fn needles(secrets: &[&str]) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    secrets.iter().flat_map(|s| [(*s).to_owned(), b64.encode(s)]).collect()
}

/// How many copies of any of `secrets`, as written or base64-encoded, `bytes` holds.
fn copies(bytes: &[u8], secrets: &[&str]) -> usize {
    needles(secrets).iter().map(|n| occurrences(bytes, n)).sum()
}

/// What [`scan_disk`] read.
#[derive(Debug, Default)]
struct DiskScan {
    files: usize,
    bytes: u64,
    holding: Vec<PathBuf>,
    /// Mount points below the roots, not entered: the containers' root file systems (overlays
    /// of directories read where they lie), memory volumes, network namespaces.
    mounts: usize,
}

impl DiskScan {
    fn size(&self) -> String {
        format!("{:.1} MiB", self.bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Every regular file under `roots` (files, or directories walked without following symlinks)
/// that lies on its root's file system, and those holding one of `needles`. A file that
/// vanishes while the walk runs (a log rotated, an etcd WAL segment recycled) is skipped.
fn scan_disk(roots: &[PathBuf], needles: &[String]) -> Result<DiskScan> {
    use std::os::unix::fs::MetadataExt;
    let mut scan = DiskScan::default();
    for root in roots {
        let Ok(meta) = std::fs::symlink_metadata(root) else { continue };
        let dev = meta.dev();
        let mut paths = vec![root.clone()];
        while let Some(path) = paths.pop() {
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            if meta.dev() != dev {
                scan.mounts += 1;
            } else if meta.is_dir() {
                let entries = match std::fs::read_dir(&path) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                for entry in entries {
                    paths.push(entry?.path());
                }
            } else if meta.is_file() {
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                scan.files += 1;
                scan.bytes += bytes.len() as u64;
                if needles.iter().any(|n| occurrences(&bytes, n) > 0) {
                    scan.holding.push(path);
                }
            }
        }
    }
    Ok(scan)
}

/// The last step: the passwords are in no Secret of the cluster, nowhere in etcd, in no file
/// on this machine's disk that the cluster or this run wrote, and in no log (on a cluster of
/// `--kubeconfig`: the Secrets, this machine's files and the logs `kubectl logs` reaches).
fn nowhere_else(cluster: &Cluster, owned: bool, secrets: &[&str], t: &mut dyn Teller) -> Result<()> {
    let needles = needles(secrets);
    let b64 = base64::engine::general_purpose::STANDARD;

    // Every Secret, each value decoded as well (the password inside a longer value is not its
    // own base64 encoding).
    let all = kubectl_json(cluster, &["get", "secrets", "-A"])?;
    let items = all["items"].as_array().context("kubectl get secrets -A: no items")?;
    let mut values = 0;
    let mut holding = Vec::new();
    for secret in items {
        let mut hits = copies(secret.to_string().as_bytes(), secrets);
        for value in secret["data"].as_object().into_iter().flat_map(|d| d.values()) {
            values += 1;
            hits += copies(&b64.decode(value.as_str().unwrap_or("")).unwrap_or_default(), secrets);
        }
        if hits > 0 {
            let meta = &secret["metadata"];
            holding.push(format!(
                "{}/{}",
                meta["namespace"].as_str().unwrap_or("?"),
                meta["name"].as_str().unwrap_or("?")
            ));
        }
    }
    t.say(&format!(
        "kubectl get secrets -A: {} Secrets, {values} values decoded: {} hold it",
        items.len(),
        holding.len()
    ));
    ensure!(holding.is_empty(), "the password is in the Secret(s) {}", holding.join(", "));
    let mut in_secrets = format!("every Secret in the cluster ({}): {} hold it", items.len(), holding.len());
    if owned {
        let etcd = scan_disk(&[cluster::state().join("etcd")], &needles)?;
        ensure!(etcd.files > 0, "no file in etcd's data directory {}", cluster::state().join("etcd").display());
        t.say(&format!(
            "etcd's data directory (where the API server keeps every object): {} files, {}: {} hold it",
            etcd.files,
            etcd.size(),
            etcd.holding.len()
        ));
        ensure!(etcd.holding.is_empty(), "the password is in etcd's data: {:?}", etcd.holding);
        in_secrets.push_str(&format!("; etcd's data ({} files, {}): {} hold it", etcd.files, etcd.size(), 0));
    }
    t.evidence(GUARANTEES[1], in_secrets);

    // Files on this machine's disk: the cluster's (etcd, the kubelet's and containerd's state,
    // the images, every log) when it is ours, and what this run wrote.
    let xtask = tools::target_dir().join("xtask");
    let openbao_log = xtask.join("openbao-e2e.log");
    let mut roots: Vec<PathBuf> = ["e2e-vault", "e2e-chart", "e2e-token", "e2e-registry", "e2e-external"]
        .iter()
        .map(|dir| xtask.join(dir))
        .chain([openbao_log.clone()])
        .chain(progress::log_path())
        .collect();
    if owned {
        roots.extend([cluster::state(), cluster::logs()]);
    }
    let started = Instant::now();
    let disk = scan_disk(&roots, &needles)?;
    progress::note(&format!(
        "e2e: read {} files ({}) in {:.1} s; {} mount points below them not entered",
        disk.files,
        disk.size(),
        started.elapsed().as_secs_f64(),
        disk.mounts
    ));
    let what = if owned {
        "on this machine's disk (etcd, the kubelet's and containerd's state, the images, every log, this run's \
         files)"
    } else {
        "this run wrote on this machine (the cluster's own disks are not reachable from here)"
    };
    t.say(&format!("{} files ({}) {what}: {} hold it", disk.files, disk.size(), disk.holding.len()));
    ensure!(disk.holding.is_empty(), "the password is on disk: {:?}", disk.holding);
    t.evidence(GUARANTEES[2], format!("{} files ({}) {what}: 0 hold it", disk.files, disk.size()));

    // Logs: every container's that the API server serves, the node's (daemons' and containers'
    // log files) when it is ours, OpenBao's, the tool log and what this run printed.
    let mut logs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut unreadable = Vec::new();
    for ns in [APP_NS, HUSH_NS, GUARD_NS] {
        let pods = kubectl_json(cluster, &["-n", ns, "get", "pods"])?;
        for pod in pods["items"].as_array().into_iter().flatten() {
            let name = pod["metadata"]["name"].as_str().context("a Pod without a name")?;
            let containers = ["initContainers", "containers"]
                .iter()
                .flat_map(|list| pod["spec"][*list].as_array().into_iter().flatten())
                .filter_map(|c| c["name"].as_str());
            for container in containers {
                let out = cluster.kubectl().args(["-n", ns, "logs", name, "-c", container]).output()?;
                if out.status.success() {
                    logs.push((format!("{ns}/{name}/{container}"), out.stdout));
                } else {
                    unreadable.push(format!("{ns}/{name}/{container}"));
                }
            }
        }
    }
    let served = logs.len();
    let mut node_logs = 0;
    if owned {
        for dir in [cluster::logs(), cluster::state().join("pod-logs")] {
            let mut paths = vec![dir];
            while let Some(path) = paths.pop() {
                if path.is_dir() {
                    paths.extend(std::fs::read_dir(&path)?.filter_map(|e| e.ok().map(|e| e.path())));
                } else if let Ok(bytes) = std::fs::read(&path) {
                    node_logs += 1;
                    logs.push((path.display().to_string(), bytes));
                }
            }
        }
    }
    logs.push(("OpenBao".to_owned(), std::fs::read(&openbao_log)?));
    if let Some(log) = progress::log_path() {
        logs.push(("the tool log".to_owned(), std::fs::read(log)?));
    }
    logs.push(("this run's screen".to_owned(), progress::transcript().into_bytes()));
    let holding: Vec<&str> =
        logs.iter().filter(|(_, bytes)| copies(bytes, secrets) > 0).map(|(name, _)| name.as_str()).collect();
    let mut kinds = format!("{served} containers' through `kubectl logs`");
    if owned {
        kinds.push_str(&format!(", {node_logs} log files on the node (its daemons' and its containers')"));
    }
    kinds.push_str(", OpenBao's");
    if progress::log_path().is_some() {
        kinds.push_str(", the tool log");
    }
    kinds.push_str(", this screen");
    t.say(&format!("{} logs ({kinds}): {} hold it", logs.len(), holding.len()));
    if !unreadable.is_empty() {
        t.say(&format!(
            "not readable through `kubectl logs` (not started, or being deleted): {}",
            unreadable.join(", ")
        ));
    }
    ensure!(served > 0, "`kubectl logs` served no container's log");
    ensure!(holding.is_empty(), "the password is in the log(s): {}", holding.join(", "));
    t.evidence(GUARANTEES[3], format!("{} logs ({kinds}): 0 hold it", logs.len()));
    Ok(())
}
