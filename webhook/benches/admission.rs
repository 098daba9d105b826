//! `cargo xtask bench webhook`: admissions/s, p50/p99 latency and server CPU per admission of a
//! realistic Pod at fixed concurrency, side by side with a floor — the same binary and TLS
//! server answering a canned response without decoding (`--canned-response`) — and a floor
//! sized as the webhook's answer, measured interleaved, three runs, medians reported, plus
//! the webhook's peak RSS. Server CPU is read from each server's `/proc/PID/stat` (utime +
//! stime), which the client sharing the cores does not skew. Goals: throughput ≥ 0.80× the
//! floor's, server CPU per admission ≤ 1.3× the floor's, p99 < 2 ms at load ≤ 2, RSS < 30 MiB.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CONCURRENCY: usize = 8;
/// Runs, each reported, and the median of each figure over them.
const RUNS: usize = 3;
/// Interleaved rounds per run (after a warm-up round).
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(2);

/// One run's figures: for the webhook, the floor and the floor-sized variant, (latencies and
/// throughput, server CPU µs per admission, client CPU µs per admission); the load then.
struct Run {
    figures: [(Figures, f64, f64); 3],
    load: String,
}

/// The load average now (1, 5, 15 minutes).
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary with its logs going to a file (the reader of a pipe would compete
    /// for the CPU with the server and the client).
    fn start(dir: &std::path::Path, name: &str, extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_webhook"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--injector-image", "registry.test/hush/injector:1"])
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .args(["--default", "vault-addr=https://vault.vault.svc:8200", "--default", "role=bench"])
            .args(extra)
            .env("HUSH_LOG", "info")
            .stdout(log)
            .spawn()
            .expect("webhook starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port }
    }

    /// CPU time (user + system) the process has used so far.
    fn cpu(&self) -> Duration {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }

    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// utime + stime from a `/proc/…/stat` file, assuming the usual 100 ticks per second.
fn cpu_of(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = rest.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A Deployment's Pod with an init container, a sidecar and references in several forms (~3 KiB).
fn realistic_review() -> Vec<u8> {
    let env: Vec<Value> = (0..8)
        .map(|i| json!({"name": format!("SECRET_{i}"), "value": format!("vault:secret/data/app#key{i}")}))
        .chain([
            json!({"name": "DB_URL", "value": "postgres://app:${vault:database/creds/app#password}@db:5432/app"}),
            json!({"name": "LOG_LEVEL", "value": "info"}),
            json!({"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
        ])
        .collect();
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7c9f8d5b6-x2x4q", "namespace": "shop", "labels": {"app": "web", "pod-template-hash": "7c9f8d5b6"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f8d5b6", "uid": "d9b6c1a4-8e0f-4a57-9c33-1f1e2d3c4b5a", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {
            "serviceAccountName": "web",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "migrate", "image": "registry.example/shop/web:1.4.2", "command": ["/app/web", "migrate"],
                                "env": [{"name": "DB_URL", "value": "postgres://app:${vault:database/creds/app#password}@db:5432/app"}]}],
            "containers": [
                {"name": "web", "image": "registry.example/shop/web:1.4.2", "command": ["/app/web"], "args": ["--listen=:8080", "--log=$(LOG_LEVEL)"],
                 "ports": [{"containerPort": 8080, "name": "http"}], "env": env,
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                 "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                 "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true}},
                {"name": "metrics", "image": "registry.example/shop/exporter:0.9", "command": ["/exporter"], "ports": [{"containerPort": 9100}]}
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}]
        }
    });
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "0b5b9a3c-5f3e-4a7e-9f5e-2b1c3d4e5f60", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "shop", "operation": "CREATE",
                    "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                    "object": pod, "oldObject": null, "dryRun": false}
    }))
    .unwrap()
}

fn client(ca_pem: &str, port: u16) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap()
}

/// `CONCURRENCY` workers post `body` back to back for `ROUND`; returns every latency.
async fn load(client: &reqwest::Client, port: u16, body: &Arc<Vec<u8>>) -> Vec<Duration> {
    let url = Arc::new(format!("https://localhost:{port}/mutate"));
    let deadline = Instant::now() + ROUND;
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let start = Instant::now();
                let response = client.post(url.as_str()).body(body.as_ref().clone()).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await.unwrap();
                samples.push(start.elapsed());
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all
}

struct Figures {
    per_second: f64,
    p50: f64,
    p99: f64,
}

fn figures(mut samples: Vec<Duration>, seconds: f64) -> Figures {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e3;
    Figures { per_second: samples.len() as f64 / seconds, p50: at(0.50), p99: at(0.99) }
}

/// The in-process cost of one admission (decode, plan, patch, encode), without TLS or HTTP.
fn in_process_micros(body: &[u8], n: usize) -> f64 {
    use webhook::annotations::{Annotations, Source};
    let defaults = std::collections::BTreeMap::from([
        ("hush.dev/vault-addr".to_owned(), "https://vault.vault.svc:8200".to_owned()),
        ("hush.dev/role".to_owned(), "bench".to_owned()),
    ]);
    let mutation = webhook::config::MutationConfig {
        injector_image: "registry.test/hush/injector:1".into(),
        defaults: Annotations::parse(&defaults, Source::Defaults).unwrap(),
        ..Default::default()
    };
    let metrics = Arc::new(webhook::metrics::Metrics::default());
    let registry = webhook::registry::Registry::new(
        webhook::registry::RegistryConfig {
            insecure: Vec::new(),
            ttl: Duration::from_secs(300),
            timeout: Duration::from_secs(3),
        },
        metrics.clone(),
    );
    let app = webhook::server::App {
        mutation: mutation.into(),
        registry,
        metrics,
        on_registry_error: webhook::server::OnRegistryError::Deny,
        canned: None,
        limits: webhook::server::Limits::default(),
        ready: std::sync::atomic::AtomicBool::new(true),
        referenced_objects: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        for _ in 0..2000 {
            std::hint::black_box(webhook::server::admit(&app, body).await);
        }
        let start = Instant::now();
        for _ in 0..n {
            let (status, answer, _) = webhook::server::admit(&app, std::hint::black_box(body)).await;
            assert_eq!(status, 200);
            std::hint::black_box(answer);
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    })
}

/// One row of the unified table; `met` is null for figures without a goal, and a missing
/// baseline is null too.
fn row(
    name: &str,
    value: f64,
    unit: &str,
    baseline: &str,
    baseline_value: f64,
    goal: &str,
    met: impl Into<Option<bool>>,
) -> Value {
    let finite = |v: f64| v.is_finite().then_some(v);
    json!({
        "name": name, "value": value, "unit": unit,
        "baseline_name": (!baseline.is_empty()).then_some(baseline),
        "baseline_value": finite(baseline_value),
        "ratio": finite(baseline_value).map(|b| value / b),
        "goal": goal, "met": met.into(),
    })
}

/// The machine as `cargo xtask bench` names it: CPU, cores, kernel.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // For `perf record`: only the in-process admission, this many times.
    if let Some(path) = std::env::var_os("HUSH_BENCH_WRITE_REVIEW") {
        std::fs::write(path, realistic_review()).unwrap();
        return;
    }
    if let Some(n) = std::env::var("HUSH_BENCH_IN_PROCESS_ONLY").ok().and_then(|n| n.parse().ok()) {
        let body = realistic_review();
        println!("in-process admission: {:.2} µs", in_process_micros(&body, n));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();

    let webhook = Server::start(dir.path(), "webhook", &[]);
    let floor = Server::start(dir.path(), "floor", &["--canned-response"]);
    let body = Arc::new(realistic_review());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    // Sanity: the webhook really mutates this Pod. Its answer, canned, is a second floor:
    // the same bytes on the wire with none of the work.
    let answer = runtime.block_on(async {
        let url = format!("https://localhost:{}/mutate", webhook.port);
        let response = client(&ca.pem(), webhook.port).post(url).body(body.as_ref().clone()).send().await.unwrap();
        response.bytes().await.unwrap()
    });
    let parsed: Value = serde_json::from_slice(&answer).unwrap();
    assert!(parsed["response"]["patch"].is_string(), "the realistic Pod is not mutated: {parsed}");
    let answer_file = dir.path().join("answer.json");
    std::fs::write(&answer_file, &answer).unwrap();
    let sized = Server::start(
        dir.path(),
        "floor-sized",
        &["--canned-response", "--canned-response-file", answer_file.to_str().unwrap()],
    );
    // RUNS runs, each ROUNDS interleaved rounds of the three servers after a warm-up round;
    // every figure is reported per run and as the median of the runs.
    let runs: Vec<Run> = runtime.block_on(async {
        let clients = [&webhook, &floor, &sized].map(|s| (client(&ca.pem(), s.port), s.port));
        let servers = [&webhook, &floor, &sized];
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let mut cpu = [(Duration::ZERO, Duration::ZERO); 3];
            let mut samples: [Vec<Duration>; 3] = Default::default();
            for round in 0..=ROUNDS {
                for (i, (c, port)) in clients.iter().enumerate() {
                    let (server_before, client_before) = (servers[i].cpu(), cpu_of("/proc/self/stat"));
                    let s = load(c, *port, &body).await;
                    if round > 0 {
                        // Round 0 warms connections and caches.
                        cpu[i].0 += servers[i].cpu() - server_before;
                        cpu[i].1 += cpu_of("/proc/self/stat") - client_before;
                        samples[i].extend(s);
                    }
                }
            }
            let seconds = ROUNDS as f64 * ROUND.as_secs_f64();
            let measured = samples.map(|s| {
                let n = s.len().max(1) as f64;
                (figures(s, seconds), n)
            });
            let mut i = 0;
            runs.push(Run {
                figures: measured.map(|(f, n)| {
                    let (server, client) = (cpu[i].0.as_secs_f64() * 1e6 / n, cpu[i].1.as_secs_f64() * 1e6 / n);
                    i += 1;
                    (f, server, client)
                }),
                load: load_average(),
            });
        }
        runs
    });
    let median = |f: &dyn Fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    // The run whose figure is the median, so that a row's value ÷ baseline is that median.
    let median_run = |f: &dyn Fn(&Run) -> f64| {
        let mut order: Vec<&Run> = runs.iter().collect();
        order.sort_by(|a, b| f(a).total_cmp(&f(b)));
        order[order.len() / 2]
    };
    let by_throughput = median_run(&|r| r.figures[0].0.per_second / r.figures[1].0.per_second);
    let by_cpu = median_run(&|r| r.figures[0].1 / r.figures[1].1);
    let ratio = median(&|r| r.figures[0].0.per_second / r.figures[1].0.per_second);
    let sized_ratio = median(&|r| r.figures[0].0.per_second / r.figures[2].0.per_second);
    let cpu_ratio = median(&|r| r.figures[0].1 / r.figures[1].1);
    let per_second = [0, 1, 2].map(|i| median(&|r| r.figures[i].0.per_second));
    let p50 = [0, 1, 2].map(|i| median(&|r| r.figures[i].0.p50));
    let p99 = [0, 1, 2].map(|i| median(&|r| r.figures[i].0.p99));
    let server_cpu = [0, 1, 2].map(|i| median(&|r| r.figures[i].1));
    let client_cpu = [0, 1, 2].map(|i| median(&|r| r.figures[i].2));
    let in_process = in_process_micros(&body, 20_000);
    let (rss, hwm) = webhook.rss_kib();
    let floor_hwm = floor.rss_kib().1;
    let machine = machine();
    let load = load_average();
    let run_lines: String = runs
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let [w, f, fs] = &r.figures;
            format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.3} / {:.3} | {:.1} / {:.1} / {:.1} |\n",
                n + 1,
                r.load,
                w.0.per_second / f.0.per_second,
                w.0.per_second / fs.0.per_second,
                w.1 / f.1,
                w.0.p99,
                f.0.p99,
                w.1,
                f.1,
                fs.1,
            )
        })
        .collect();
    let goals = format!(
        "throughput ÷ floor: {ratio:.2} (goal ≥ 0.80); ÷ floor-sized: {sized_ratio:.2}; server CPU per admission ÷ floor's: {cpu_ratio:.2} (goal ≤ 1.30) — p99: {:.3} ms (goal < 2 ms at load ≤ 2; the floor's: {:.3} ms) — webhook RSS now {:.1} MiB, peak {:.1} MiB (goal < 30 MiB)",
        p99[0],
        p99[1],
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    let table = format!(
        "## webhook ({CONCURRENCY} connections; median of {RUNS} runs, each {ROUNDS} interleaved rounds of {}s per server; {} B review; {machine}; load {load})\n\n\
         | variant | what | admissions/s | p50 ms | p99 ms | server CPU µs per admission | client CPU µs |\n|---|---|---|---|---|---|---|\n\
         | webhook | decode, plan, patch, encode (3 containers, 10 references) | {:.0} | {:.3} | {:.3} | {:.1} | {:.1} |\n\
         | floor | same binary and TLS server, canned minimal response | {:.0} | {:.3} | {:.3} | {:.1} | {:.1} |\n\
         | floor-sized | same, canned copy of the webhook's answer ({} B) | {:.0} | {:.3} | {:.3} | {:.1} | {:.1} |\n\n\
         {goals}\n\
         (client and servers share the machine's cores: the floor bounds what the client can drive; server CPU is each server \
         process's own utime + stime, which the client's share does not skew)\n\n\
         | run | load (1, 5, 15 min) | ÷ floor | ÷ floor-sized | CPU ÷ floor's | p99 ms webhook / floor | server CPU µs webhook / floor / floor-sized |\n|---|---|---|---|---|---|---|\n{run_lines}\n\
         in-process admission (decode, plan, patch, encode; no TLS or HTTP): {in_process:.1} µs\n",
        ROUND.as_secs(),
        body.len(),
        per_second[0],
        p50[0],
        p99[0],
        server_cpu[0],
        client_cpu[0],
        per_second[1],
        p50[1],
        p99[1],
        server_cpu[1],
        client_cpu[1],
        answer.len(),
        per_second[2],
        p50[2],
        p99[2],
        server_cpu[2],
        client_cpu[2],
    );
    println!("\n{table}");
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("webhook.md"), &table).unwrap();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let load_1: f64 = load.split_whitespace().next().and_then(|l| l.parse().ok()).unwrap_or(f64::NAN);
    let rows = json!([
        row(
            "throughput (the run of median ratio)",
            by_throughput.figures[0].0.per_second,
            "admissions/s",
            "floor: same TLS server, canned minimal response",
            by_throughput.figures[1].0.per_second,
            "≥ 0.80× the floor",
            ratio >= 0.8
        ),
        row(
            "throughput vs. sized floor",
            per_second[0],
            "admissions/s",
            "floor-sized: canned copy of the webhook's answer",
            per_second[2],
            "",
            None
        ),
        row(
            "server CPU per admission (the run of median ratio)",
            by_cpu.figures[0].1,
            "µs",
            "floor server CPU per request",
            by_cpu.figures[1].1,
            "≤ 1.3× the floor's",
            cpu_ratio <= 1.3
        ),
        row("p50 latency", p50[0], "ms", "floor p50", p50[1], "", None),
        row(
            "p99 latency",
            p99[0],
            "ms",
            "floor p99",
            p99[1],
            "< 2 ms at load ≤ 2",
            (load_1 <= 2.0).then_some(p99[0] < 2.0)
        ),
        row("peak RSS", mib(hwm), "MiB", "floor peak RSS", mib(floor_hwm), "< 30 MiB", mib(hwm) < 30.0),
        row("in-process admission", in_process, "µs", "", f64::NAN, "", None),
    ]);
    std::fs::write(
        out.join("webhook.json"),
        serde_json::to_string_pretty(&json!({
            "component": "webhook",
            "machine": machine,
            "load_average": load,
            "setup": format!("{CONCURRENCY} connections, median of {RUNS} runs of {ROUNDS} interleaved rounds of {}s, {} B review", ROUND.as_secs(), body.len()),
            "runs": runs.iter().map(|r| json!({
                "load_average": r.load,
                "ratio": r.figures[0].0.per_second / r.figures[1].0.per_second,
                "sized_ratio": r.figures[0].0.per_second / r.figures[2].0.per_second,
                "cpu_ratio": r.figures[0].1 / r.figures[1].1,
                "p99_ms": r.figures[0].0.p99,
                "floor_p99_ms": r.figures[1].0.p99,
                "server_cpu_us": r.figures.iter().map(|f| f.1).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "rows": rows,
        }))
        .unwrap(),
    )
    .unwrap();
    eprintln!("wrote {}", out.join("webhook.md").display());
}
