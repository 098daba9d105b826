//! `webhook`: Hush's mutating admission webhook.
//!
//! Exit codes: 0 — stopped by SIGTERM/SIGINT after draining; 2 — bad command line;
//! 69 — cannot listen on the address; 78 — bad configuration (certificate, key,
//! `--default`, `--namespace-defaults`, `--namespace-defaults-configmap`,
//! `--read-image-pull-secrets` outside a cluster).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use webhook::annotations::{Annotations, PREFIX, Platform, PullPolicy, Source};
use webhook::config::{MutationConfig, parse_namespace_defaults};
use webhook::kube::{ApiClient, parse_configmap_ref};
use webhook::metrics::Metrics;
use webhook::registry::{CacheLimits, Registry, RegistryConfig};
use webhook::server::{App, CANNED, Limits, OnRegistryError};
use webhook::tls::ReloadingCert;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EX_UNAVAILABLE: u8 = 69;
const EX_CONFIG: u8 = 78;

/// Hush's mutating admission webhook: makes Pods start through the `injector` shim.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (HTTPS).
    #[arg(long, env = "HUSH_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// PEM certificate chain; reloaded when it changes.
    #[arg(long, env = "HUSH_TLS_CERT")]
    tls_cert: PathBuf,
    /// PEM private key; reloaded when it changes.
    #[arg(long, env = "HUSH_TLS_KEY")]
    tls_key: PathBuf,
    /// How often to check the certificate and key for changes, in seconds.
    #[arg(long, default_value_t = 10.0)]
    cert_reload_interval: f64,
    /// Image of the init container that runs `injector install`.
    #[arg(long, env = "HUSH_INJECTOR_IMAGE")]
    injector_image: String,
    /// Pull policy of the init container.
    #[arg(long, value_parser = ["Always", "IfNotPresent", "Never"])]
    injector_image_pull_policy: Option<String>,
    /// Path of the `injector` binary inside its image.
    #[arg(long, default_value = "/injector")]
    injector_binary: String,
    /// Directory where the shim's in-memory volume is mounted.
    #[arg(long, default_value = "/hush")]
    injector_dir: String,
    /// UID and GID of the init container (must not be 0).
    #[arg(long, default_value_t = 65532, value_parser = clap::value_parser!(i64).range(1..))]
    run_as_user: i64,
    /// A setting for every Pod, lowest precedence, as `KEY=VALUE` with the annotation's
    /// name after `hush.dev/`, e.g. `--default vault-addr=https://vault.vault.svc:8200`.
    #[arg(long = "default", value_name = "KEY=VALUE")]
    defaults: Vec<String>,
    /// JSON file `{"namespace": {"hush.dev/role": "…", …}}` of namespace defaults.
    #[arg(long)]
    namespace_defaults: Option<PathBuf>,
    /// `NAMESPACE/NAME` of a ConfigMap whose `namespace-defaults.json` holds the namespace
    /// defaults (the file's format), watched through the API server (needs `get`, `list` and
    /// `watch` on it; in-cluster API access). A bad version is logged and the last good kept.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_configmap_ref, conflicts_with = "namespace_defaults")]
    namespace_defaults_configmap: Option<(String, String)>,
    /// Only allow Vault addresses starting with one of these (repeatable); default: any.
    #[arg(long)]
    allowed_vault_addr: Vec<String>,
    /// Platform to pick from multi-platform images when the Pod names none.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
    /// Registries (`host:port`) to reach over plain HTTP (repeatable).
    #[arg(long)]
    insecure_registry: Vec<String>,
    /// Seconds an image tag's ENTRYPOINT/CMD stays cached (digests: a day).
    #[arg(long, default_value_t = 300)]
    registry_cache_ttl: u64,
    /// Most images held in the registry cache (least recently used out first).
    #[arg(long, default_value_t = 10_000)]
    registry_cache_entries: usize,
    /// Most MiB held in the registry cache.
    #[arg(long, default_value_t = 16)]
    registry_cache_mib: usize,
    /// Deadline of one registry look-up, in seconds; keep it below the webhook's
    /// `timeoutSeconds` so that a slow registry gets a clear denial, not an API server timeout.
    #[arg(long, default_value_t = 3.0)]
    registry_timeout: f64,
    /// Read the Pod's `imagePullSecrets` for registry look-ups (needs `get` on `secrets` in
    /// the namespaces served; in-cluster API access). Off: anonymous look-ups only.
    #[arg(long)]
    read_image_pull_secrets: bool,
    /// Read the ConfigMaps and Secrets a Pod's containers take into their environment
    /// (`envFrom`, `valueFrom`), so that a container whose only references come that way is
    /// injected without `hush.dev/inject` (needs `get` on `configmaps` and `secrets` in the
    /// namespaces served; in-cluster API access). Off: such Pods need `hush.dev/inject: "true"`.
    #[arg(long)]
    read_referenced_objects: bool,
    /// Directory with the ServiceAccount's `token` and the cluster's `ca.crt` (for
    /// `--read-image-pull-secrets`, `--read-referenced-objects` and `--namespace-defaults-configmap`).
    #[arg(long, default_value = webhook::kube::SERVICE_ACCOUNT_DIR)]
    service_account_dir: PathBuf,
    /// When the registry fails: deny the Pod, or admit it unmutated with a warning.
    #[arg(long, value_enum, default_value = "deny")]
    on_registry_error: OnRegistryError,
    /// Most open connections. Past it, a new connection takes the slot of the one idle
    /// longest (closed with GOAWAY); it is refused only when every connection is busy.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a connection may stay open with no request in flight. Keep it above the API
    /// server's own idle timeout (90 s), so that it closes its pooled connections first.
    #[arg(long, default_value_t = 120.0)]
    idle_timeout: f64,
    /// Seconds of silence from an HTTP/2 peer before a PING; the connection is closed if the
    /// PING is not answered within `--keepalive-timeout` seconds.
    #[arg(long, default_value_t = 30.0)]
    keepalive_interval: f64,
    /// Seconds an HTTP/2 PING may go unanswered.
    #[arg(long, default_value_t = 10.0)]
    keepalive_timeout: f64,
    /// Seconds to let open requests finish on SIGTERM.
    #[arg(long, default_value_t = 20.0)]
    shutdown_grace: f64,
    /// Benchmark floor: answer `/mutate` with a fixed response without decoding.
    #[arg(long, hide = true)]
    canned_response: bool,
    /// Benchmark floor: the fixed response is this file's content (default: a minimal review).
    #[arg(long, hide = true, requires = "canned_response")]
    canned_response_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The registry client (reqwest) takes the process-wide provider: ring, the only one linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HUSH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("webhook: starting the runtime: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    // kube's client spawns a task when it is built, and the ConfigMap is read before serving.
    let config = match runtime.block_on(configure(&args)) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "bad configuration");
            eprintln!("webhook: {e:#}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    runtime.block_on(run(args, config))
}

struct Configured {
    mutation: MutationConfig,
    /// The namespace defaults file as it was read, to notice changes.
    namespace_defaults_text: Option<Vec<u8>>,
    cert: Arc<ReloadingCert>,
    api: Option<ApiClient>,
}

fn parse_defaults(args: &Args) -> Result<Annotations> {
    let mut map = BTreeMap::new();
    for item in &args.defaults {
        let (key, value) =
            item.split_once('=').with_context(|| format!("--default {item:?}: expected KEY=VALUE, e.g. role=app"))?;
        map.insert(format!("{PREFIX}{key}"), value.to_owned());
    }
    Annotations::parse(&map, Source::Defaults).context("--default")
}

async fn configure(args: &Args) -> Result<Configured> {
    let cert = ReloadingCert::load(&args.tls_cert, &args.tls_key)?;
    let api = if args.read_image_pull_secrets
        || args.read_referenced_objects
        || args.namespace_defaults_configmap.is_some()
    {
        let flag = if args.read_image_pull_secrets {
            "--read-image-pull-secrets"
        } else if args.read_referenced_objects {
            "--read-referenced-objects"
        } else {
            "--namespace-defaults-configmap"
        };
        Some(ApiClient::in_cluster(&args.service_account_dir, seconds(args.registry_timeout)).context(flag)?)
    } else {
        None
    };
    let mut namespace_defaults = BTreeMap::new();
    let mut namespace_defaults_text = None;
    if let Some(path) = &args.namespace_defaults {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        namespace_defaults = parse_namespace_defaults(&text).with_context(|| path.display().to_string())?;
        namespace_defaults_text = Some(text);
    }
    if let (Some((namespace, name)), Some(api)) = (&args.namespace_defaults_configmap, &api) {
        // Read once before serving, so that no Pod is admitted without its namespace's defaults.
        namespace_defaults = api.namespace_defaults(namespace, name).await.context("--namespace-defaults-configmap")?;
    }
    let pull_policy = match args.injector_image_pull_policy.as_deref() {
        Some("Always") => Some(PullPolicy::Always),
        Some("IfNotPresent") => Some(PullPolicy::IfNotPresent),
        Some("Never") => Some(PullPolicy::Never),
        _ => None,
    };
    let mutation = MutationConfig {
        injector_image: args.injector_image.clone(),
        injector_image_pull_policy: pull_policy,
        injector_binary: args.injector_binary.clone(),
        dir: args.injector_dir.clone(),
        run_as_user: args.run_as_user,
        defaults: parse_defaults(args)?,
        namespace_defaults,
        allowed_vault_addrs: args.allowed_vault_addr.clone(),
        default_platform: Platform::parse(&args.platform).map_err(|e| anyhow::anyhow!("--platform: {e}"))?,
        ..MutationConfig::default()
    };
    Ok(Configured { mutation, namespace_defaults_text, cert: Arc::new(cert), api })
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

async fn run(args: Args, config: Configured) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(address = %args.listen, error = %e, "cannot listen");
            eprintln!("webhook: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let tls = match webhook::tls::server_config(config.cert.clone()) {
        Ok(tls) => Arc::new(tls),
        Err(e) => {
            eprintln!("webhook: TLS configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let metrics = Arc::new(Metrics::default());
    let registry = Registry::with_pull_secrets(
        RegistryConfig {
            insecure: args.insecure_registry.clone(),
            ttl: Duration::from_secs(args.registry_cache_ttl),
            timeout: seconds(args.registry_timeout),
        },
        metrics.clone(),
        config.api.clone().filter(|_| args.read_image_pull_secrets),
    )
    .with_cache_limits(CacheLimits {
        max_entries: args.registry_cache_entries,
        max_bytes: args.registry_cache_mib.saturating_mul(1024 * 1024),
        ..CacheLimits::default()
    });
    let app = Arc::new(App {
        mutation: config.mutation.into(),
        registry,
        metrics,
        on_registry_error: args.on_registry_error,
        canned: match (&args.canned_response, &args.canned_response_file) {
            (false, _) => None,
            (true, None) => Some(Bytes::from_static(CANNED)),
            (true, Some(path)) => match std::fs::read(path) {
                Ok(body) => Some(Bytes::from(body)),
                Err(e) => {
                    eprintln!("webhook: --canned-response-file {}: {e}", path.display());
                    return ExitCode::from(EX_CONFIG);
                }
            },
        },
        limits: Limits {
            max_connections: args.max_connections,
            idle_timeout: seconds(args.idle_timeout),
            keepalive_interval: seconds(args.keepalive_interval).max(Duration::from_millis(100)),
            keepalive_timeout: seconds(args.keepalive_timeout),
            shutdown_grace: seconds(args.shutdown_grace),
            ..Limits::default()
        },
        ready: AtomicBool::new(true),
        referenced_objects: config.api.clone().filter(|_| args.read_referenced_objects),
    });
    let cert = config.cert;
    let interval = seconds(args.cert_reload_interval).max(Duration::from_millis(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match cert.reload_if_changed() {
                Ok(true) => tracing::info!("reloaded the TLS certificate"),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "keeping the old TLS certificate"),
            }
        }
    });
    if let Some(path) = args.namespace_defaults.clone() {
        tokio::spawn(reload_namespace_defaults(path, config.namespace_defaults_text, interval, app.clone()));
    }
    if let (Some((namespace, name)), Some(api)) = (&args.namespace_defaults_configmap, &config.api) {
        let app = app.clone();
        tokio::spawn(api.watch_namespace_defaults(namespace, name, move |defaults| {
            let mut next = MutationConfig::clone(&app.mutation.get());
            next.namespace_defaults = defaults;
            app.mutation.set(next);
        }));
    }
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(address, "listening");
    webhook::server::serve(listener, tls, app, shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Polls the namespace defaults file and swaps in each new valid version; a bad or missing
/// file is logged once and the defaults in use stay.
async fn reload_namespace_defaults(path: PathBuf, mut last: Option<Vec<u8>>, interval: Duration, app: Arc<App>) {
    let file = path.display().to_string();
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let text = match std::fs::read(&path) {
            Ok(text) if last.as_ref() != Some(&text) => text,
            Ok(_) => continue,
            Err(e) => {
                if last.take().is_some() {
                    tracing::error!(file, error = %e, "keeping the old namespace defaults");
                }
                continue;
            }
        };
        match parse_namespace_defaults(&text) {
            Ok(defaults) => {
                let mut next = MutationConfig::clone(&app.mutation.get());
                let namespaces = defaults.len();
                next.namespace_defaults = defaults;
                app.mutation.set(next);
                tracing::info!(file, namespaces, "reloaded the namespace defaults");
            }
            Err(e) => tracing::error!(file, error = %e, "keeping the old namespace defaults"),
        }
        last = Some(text);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; SIGTERM will not drain");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
