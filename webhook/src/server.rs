//! HTTPS server: `POST /mutate`, `POST /objects`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! The `/mutate` handler only decodes ([`admission`]), calls the pure mutation ([`mutate`])
//! with the registry look-up in between, and encodes. The `/objects` handler (Secrets and
//! ConfigMaps) decodes, asks the pure [`objects`] what to warn about, and allows every request
//! unchanged. Limits: bounded body, header and body
//! read deadlines, TLS handshake deadline, a cap on open connections. Shutdown stops
//! accepting, turns `/readyz` to 503 and lets open requests finish within a grace period.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use self::slots::{Admission, Connection, Slots};

use crate::admission::{self, Answer, Subject};
use crate::config::{Current, MutationConfig};
use crate::kube::{ApiClient, GetError};
use crate::metrics::{Metrics, ObjectReview, Outcome};
use crate::objects::{EnvSource, Kind};
use crate::registry::{PullSecrets, Registry};
use crate::{mutate, objects};

mod slots;

/// What to do when the registry cannot say what a container runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnRegistryError {
    /// Deny the Pod with the registry's error.
    Deny,
    /// Admit the Pod unmutated, with an AdmissionResponse warning.
    Admit,
}

/// Bounds on what a client can make the server hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request body: [`MAX_BODY`].
    pub max_body: usize,
    /// Deadline for a client to send its request headers.
    pub header_timeout: Duration,
    /// Deadline for a client to send its request body.
    pub body_timeout: Duration,
    /// Deadline for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Most connections open at once. A new one past this takes the slot of the connection
    /// idle longest (closed with GOAWAY); it is closed at once only if every one is busy.
    pub max_connections: usize,
    /// A connection with no request in flight for this long is closed (GOAWAY).
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive: a PING after this long without frames from the peer…
    pub keepalive_interval: Duration,
    /// …and the connection is closed if the PING is not answered within this.
    pub keepalive_timeout: Duration,
    /// How long shutdown waits for open requests.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: MAX_BODY,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 1024,
            // Longer than the API server's own idle timeout for webhook connections (90 s: Go's
            // `http.DefaultTransport.IdleConnTimeout`, applied by `SetOldTransportDefaults` in
            // k8s.io/apimachinery/pkg/util/net/http.go), so the API server closes its idle
            // HTTP/1.1 connections first: a server-side close can cross a request the API server
            // is writing, and it does not retry a POST (the admission fails with EOF).
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// The largest write body the API server accepts and decodes: 3 MiB, `MaxRequestBodyBytes:
/// int64(3 * 1024 * 1024)` in `NewConfig`, kubernetes `staging/src/k8s.io/apiserver/pkg/server/config.go`
/// (kube-apiserver has no flag for it). The same comment sizes it as twice etcd's 1.5 MiB
/// request limit because "a request body might be encoded in json, and is converted to proto
/// when persisted in etcd": an object the API server can store is at most 3 MiB as JSON,
/// and the AdmissionReview carries it as JSON.
pub const API_SERVER_MAX_OBJECT: usize = 3 * 1024 * 1024;

/// Room for the review around the object: `uid`, `kind`, `resource`, `userInfo` (groups and
/// `extra` from the authenticator), `options`; a few KiB in practice. For Pods `oldObject` is
/// absent (registered for CREATE only, charts/hush/templates/mutatingwebhook.yaml); the
/// Secret/ConfigMap UPDATEs of `/objects` carry it, each object at most 1 MiB of data, and a
/// larger body is a failed call, which that registration's `failurePolicy: Ignore` admits.
const REVIEW_ENVELOPE: usize = 1024 * 1024;

/// The body limit: every AdmissionReview the API server can send for a Pod it can store
/// fits; a larger body is 413 before it is read on.
pub const MAX_BODY: usize = API_SERVER_MAX_OBJECT + REVIEW_ENVELOPE;

/// Everything a request handler needs.
pub struct App {
    /// The mutation's settings (swapped when the namespace defaults file changes).
    pub mutation: Current<MutationConfig>,
    /// Image look-ups.
    pub registry: Registry,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Registry failure policy.
    pub on_registry_error: OnRegistryError,
    /// Benchmark floor: answer every `/mutate` with these bytes, without decoding.
    pub canned: Option<Bytes>,
    /// Request limits.
    pub limits: Limits,
    /// `/readyz` answers 200 while this is true.
    pub ready: AtomicBool,
    /// `--read-referenced-objects`: the API client that reads the ConfigMaps and Secrets a
    /// Pod takes into its environment, so that a container whose only references come that
    /// way is injected without an annotation. `None`: they are not read.
    pub referenced_objects: Option<ApiClient>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
/// The floor's default answer: a minimal "allowed" review.
pub const CANNED: &[u8] =
    br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#;

async fn handle(app: Arc<App>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let reply = match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, TEXT, "ok\n"),
        (&Method::GET, "/readyz") => {
            if app.ready.load(Ordering::Relaxed) {
                reply(StatusCode::OK, TEXT, "ready\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, "not ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            reply(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", app.metrics.encode())
        }
        (&Method::POST, "/mutate") => mutate_http(&app, request).await,
        (&Method::POST, "/objects") => objects_http(&app, request).await,
        (_, "/healthz" | "/readyz" | "/metrics" | "/mutate" | "/objects") => {
            reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n")
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    };
    Ok(reply)
}

/// Reads a request body within the size and time limits, or the reply that refuses it.
async fn read_body(app: &App, request: Request<Incoming>) -> Result<Bytes, Reply> {
    let max = app.limits.max_body;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(reply(StatusCode::PAYLOAD_TOO_LARGE, TEXT, format!("the body is larger than {max} bytes\n")));
    }
    let body = tokio::time::timeout(app.limits.body_timeout, Limited::new(request.into_body(), max).collect()).await;
    match body {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => {
            let too_large = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
            Err(if too_large {
                reply(StatusCode::PAYLOAD_TOO_LARGE, TEXT, format!("the body is larger than {max} bytes\n"))
            } else {
                reply(StatusCode::BAD_REQUEST, TEXT, format!("reading the body: {e}\n"))
            })
        }
        Err(_) => Err(reply(StatusCode::REQUEST_TIMEOUT, TEXT, "the body did not arrive in time\n")),
    }
}

async fn mutate_http(app: &App, request: Request<Incoming>) -> Reply {
    let started = Instant::now();
    let body = match read_body(app, request).await {
        Ok(body) => body,
        Err(refused) => {
            app.metrics.admission(Outcome::Invalid, started.elapsed().as_secs_f64());
            return refused;
        }
    };
    if let Some(canned) = &app.canned {
        return reply(StatusCode::OK, JSON, canned.clone());
    }
    let (status, body, outcome) = admit(app, &body).await;
    app.metrics.admission(outcome, started.elapsed().as_secs_f64());
    reply(status, if status == StatusCode::OK { JSON } else { TEXT }, body)
}

async fn objects_http(app: &App, request: Request<Incoming>) -> Reply {
    let body = match read_body(app, request).await {
        Ok(body) => body,
        Err(refused) => {
            app.metrics.object_review(ObjectReview::Invalid);
            return refused;
        }
    };
    let (status, body, result) = review_object(&body);
    app.metrics.object_review(result);
    reply(status, if status == StatusCode::OK { JSON } else { TEXT }, body)
}

/// Answers one AdmissionReview of a Secret or ConfigMap: always allowed, never patched, with
/// warnings when values hold Vault references; HTTP 400 for a body that is not a review (the
/// API server then applies the registration's `failurePolicy: Ignore`).
pub fn review_object(body: &[u8]) -> (StatusCode, Vec<u8>, ObjectReview) {
    let request = match admission::decode(body) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "rejected a request body");
            return (StatusCode::BAD_REQUEST, format!("{e}\n").into_bytes(), ObjectReview::Invalid);
        }
    };
    let uid = request.uid.as_str();
    let allow = Answer::allow(uid);
    match objects::review(&request) {
        Ok(Some(reviewed)) => {
            let warnings = reviewed.warnings();
            if warnings.is_empty() {
                return (StatusCode::OK, allow.encode(), ObjectReview::Clean);
            }
            let f = &reviewed.findings;
            // Keys and names only: a value never reaches a log line.
            tracing::info!(
                uid,
                kind = reviewed.kind.as_str(),
                object = reviewed.object,
                env = ?f.env,
                binary = ?f.binary,
                pull_credentials = ?f.pull_credentials,
                malformed = ?f.malformed,
                result = "warned",
                "object review"
            );
            (StatusCode::OK, allow.with_warnings(&warnings).encode(), ObjectReview::Warned)
        }
        Ok(None) => (StatusCode::OK, allow.encode(), ObjectReview::Clean),
        Err(e) => {
            // Allowed all the same: this path refuses nothing.
            tracing::warn!(uid, error = %e, result = "allowed", "object review");
            (StatusCode::OK, allow.encode(), ObjectReview::Unreadable)
        }
    }
}

/// Answers one AdmissionReview body: (HTTP status, body, outcome).
pub async fn admit(app: &App, body: &[u8]) -> (StatusCode, Vec<u8>, Outcome) {
    let request = match admission::decode_pod(body) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, "rejected a request body");
            return (StatusCode::BAD_REQUEST, format!("{e}\n").into_bytes(), Outcome::Invalid);
        }
    };
    let uid = request.uid.as_str();
    let deny = |code: u16, reason: String| {
        tracing::info!(uid, result = "denied", reason, "admission");
        (StatusCode::OK, Answer::deny(uid, code, reason).encode(), Outcome::Denied)
    };
    let pod = match request.subject {
        Ok(Subject::CreatePod(pod)) => pod,
        Ok(Subject::Ignore(why)) => {
            tracing::debug!(uid, why, "admission ignored");
            return (StatusCode::OK, Answer::allow(uid).encode(), Outcome::Unchanged);
        }
        Err(e) => return deny(400, e.to_string()),
    };
    let namespace = request.namespace.as_deref().or(pod.metadata.namespace.as_deref()).unwrap_or("default");
    let name = pod.metadata.name.as_deref().or(pod.metadata.generate_name.as_deref()).unwrap_or_default();
    let mutation = app.mutation.get();
    let mut plan = match mutate::plan(&pod, namespace, &mutation) {
        Ok(plan) => plan,
        Err(e) => return deny(403, format!("Hush cannot inject Pod {namespace}/{name}: {e}")),
    };
    if let Some(api) = &app.referenced_objects
        && !plan.opted_out()
    {
        // Only containers the plan does not inject already: the others need no read.
        let targeted: BTreeSet<&str> = plan.containers().into_iter().collect();
        let mut sources = objects::env_sources(&pod);
        sources.retain(|container, _| !targeted.contains(container.as_str()));
        if !sources.is_empty() {
            let found = match read_referenced(api, namespace, &sources).await {
                Ok(found) => found,
                Err(e) => return deny(403, format!("Hush cannot inject Pod {namespace}/{name}: {e}")),
            };
            let from_objects = objects::containers_with_references(&sources, &found);
            if !from_objects.is_empty() {
                plan = match mutate::plan_with(&pod, namespace, &mutation, &from_objects) {
                    Ok(plan) => plan,
                    Err(e) => return deny(403, format!("Hush cannot inject Pod {namespace}/{name}: {e}")),
                };
            }
        }
    }
    let needed = plan.images();
    let images = if needed.is_empty() {
        BTreeMap::new()
    } else {
        let pull_secrets: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
            .filter(|r| !r.name.is_empty())
            .map(|r| r.name.clone())
            .collect();
        match app.registry.resolve(&needed, PullSecrets { namespace, names: &pull_secrets }).await {
            Ok(images) => images,
            Err(e) => match app.on_registry_error {
                OnRegistryError::Deny => return deny(403, format!("Hush cannot inject Pod {namespace}/{name}: {e}")),
                OnRegistryError::Admit => {
                    tracing::warn!(uid, namespace, name, result = "admitted-unmutated", reason = %e, "admission");
                    let answer = Answer::allow(uid)
                        .with_warnings(plan.warnings())
                        .with_warning(format!("Hush did not inject Pod {namespace}/{name}: {e}"));
                    return (StatusCode::OK, answer.encode(), Outcome::AdmittedOnRegistryError);
                }
            },
        }
    };
    let patch = match plan.patch(&images) {
        Ok(patch) => patch,
        Err(e) => return deny(403, format!("Hush cannot inject Pod {namespace}/{name}: {e}")),
    };
    if patch.is_empty() {
        tracing::debug!(uid, namespace, name, result = "unchanged", "admission");
        return (StatusCode::OK, Answer::allow(uid).with_warnings(plan.warnings()).encode(), Outcome::Unchanged);
    }
    let operations = patch.len();
    // Debug, not info: the API server's audit log already records every webhook patch
    // (`mutation.webhook.admission.k8s.io/…` annotations) and the metrics count them; at
    // info this line was an eighth of an admission's CPU. Denials stay at info.
    tracing::debug!(uid, namespace, name, containers = ?plan.containers(), operations, result = "mutated", "admission");
    // Bank-Vaults annotations accepted though Hush ignores them (`vault-agent: "false"`, `run-as-*`, …).
    (StatusCode::OK, Answer::allow(uid).with_patch(patch).with_warnings(plan.warnings()).encode(), Outcome::Mutated)
}

/// Reads each ConfigMap and Secret the containers take into their environment, once and
/// concurrently, and keeps for each only the keys whose values may hold a reference (values
/// are dropped, Secret bodies zeroized). A missing object contributes nothing (the kubelet
/// refuses to start a container whose non-optional object is missing); any other failure
/// denies the Pod, naming the object: whether the container needs the shim is unknown.
async fn read_referenced(
    api: &ApiClient,
    namespace: &str,
    sources: &BTreeMap<String, Vec<EnvSource>>,
) -> Result<BTreeMap<(Kind, String), BTreeSet<String>>, String> {
    let wanted: BTreeSet<(Kind, &str)> = sources.values().flatten().map(|s| (s.kind, s.name.as_str())).collect();
    let reads = wanted.into_iter().map(|(kind, name)| async move {
        let body = match kind {
            Kind::Secret => api.secret(namespace, name).await,
            Kind::ConfigMap => api.config_map(namespace, name).await,
        };
        (kind, name, body)
    });
    let mut found = BTreeMap::new();
    for (kind, name, body) in futures_util::future::join_all(reads).await {
        match body {
            Ok(body) => {
                let keys = objects::keys_with_references(kind, &body).map_err(|e| e.to_string())?;
                found.insert((kind, name.to_owned()), keys);
            }
            Err(GetError::NotFound(..)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(found)
}

/// Serves until `shutdown` completes, then drains open connections for the grace period.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Slots::new(app.limits.max_connections));
    let limits = app.limits;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (id, connection) = match slots.admit() {
            Admission::Admitted { id, connection, evicted } => {
                if evicted {
                    tracing::debug!(max = limits.max_connections, "all connections open; closing the longest idle");
                }
                (id, connection)
            }
            Admission::Refused => {
                tracing::warn!(max = limits.max_connections, "too many busy connections; closing a new one");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            serve_connection(acceptor, tcp, app, &connection).await;
            slots.release(id);
        });
    }
    app.ready.store(false, Ordering::Relaxed);
    drop(listener);
    tracing::info!(grace = ?limits.shutdown_grace, "shutting down: draining open connections");
    slots.close_all();
    let drained = async {
        while slots.len() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(limits.shutdown_grace, drained).await.is_err() {
        tracing::warn!("grace period over; closing the remaining connections");
    }
}

/// How long a connection told to close (evicted or idle) may take to finish its GOAWAY
/// exchange; it has no request in flight, so only a peer that ignores the close needs this.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One connection: TLS handshake, then HTTP/1 or HTTP/2 until the peer leaves, the idle
/// deadline passes, or the connection is told to close (evicted for a new one, or shutdown).
async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    app: Arc<App>,
    connection: &Arc<Connection>,
) {
    let limits = app.limits;
    let stream = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    // Pings find peers that are gone without a FIN (a half-open TCP connection answers
    // nothing); the idle deadline below finds peers that answer pings but send no request.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.keepalive_interval))
        .keep_alive_timeout(limits.keepalive_timeout);
    let in_service = connection.clone();
    // Whether the peer speaks HTTP/2 (known from its first request; until then, HTTP/1).
    let h2 = Arc::new(AtomicBool::new(false));
    let h2_in_service = h2.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        let busy = in_service.busy();
        let connection = in_service.clone();
        let version = request.version();
        if version == hyper::Version::HTTP_2 {
            h2_in_service.store(true, Ordering::Relaxed);
        }
        let app = app.clone();
        async move {
            let mut reply = handle(app, request).await;
            // An HTTP/1.1 connection told to close ends after this answer, which says so: the
            // API server drops it from its pool instead of sending the next request into a
            // connection that is being closed (see the drain below).
            if version < hyper::Version::HTTP_2
                && connection.closing()
                && let Ok(reply) = reply.as_mut()
            {
                reply.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
            }
            drop(busy);
            reply
        }
    });
    let stream = FirstByteDeadline::new(stream, limits.header_timeout);
    let mut served = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
    // Until told to close: the idle deadline, re-read after each wake (a request may have
    // come and gone meanwhile). Once closing: `hard` is when the connection is dropped if the
    // peer has not finished the GOAWAY exchange; a request still in flight extends it, up to
    // the shutdown grace.
    let mut closing: Option<(Instant, Instant)> = None;
    let result = loop {
        let wake = match (closing, connection.idle_deadline(limits.idle_timeout)) {
            (Some((_, hard)), _) => hard,
            (None, Some(idle)) => idle,
            (None, None) => Instant::now() + limits.idle_timeout,
        };
        tokio::select! {
            result = served.as_mut() => break result,
            () = connection.close.notified(), if closing.is_none() => {
                let now = Instant::now();
                if connection.draining() && !h2.load(Ordering::Relaxed) {
                    // Shutdown, HTTP/1.1: closing an idle keep-alive connection now can cross
                    // the API server's next request on it (written, then EOF: a POST is not
                    // retried, and the admission fails). Keep serving; each answer from now on
                    // carries `Connection: close`, so the API server retires the connection
                    // itself. Whatever is still open when the grace ends is dropped.
                    closing = Some((now, now + limits.shutdown_grace));
                    continue;
                }
                // HTTP/2 (GOAWAY: the API server retries the streams it names as unprocessed),
                // or an eviction.
                served.as_mut().graceful_shutdown();
                let grace = if connection.draining() { limits.shutdown_grace } else { CLOSE_GRACE };
                closing = Some((now, now + grace));
            }
            () = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if let Some((started, hard)) = closing {
                    let idle = connection.idle_deadline(limits.idle_timeout).is_some();
                    let waiting_for_h1_peer = connection.draining() && !h2.load(Ordering::Relaxed) && now < hard;
                    if (idle && !waiting_for_h1_peer) || now >= started + limits.shutdown_grace {
                        tracing::debug!("the connection did not close in time; dropping it");
                        return;
                    }
                    closing = Some((started, now + CLOSE_GRACE));
                } else if connection.idle_deadline(limits.idle_timeout).is_some_and(|at| at <= now) {
                    tracing::debug!(idle = ?limits.idle_timeout, "closing an idle connection");
                    served.as_mut().graceful_shutdown();
                    closing = Some((now, now + CLOSE_GRACE));
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A stream whose first bytes must arrive within a deadline. Telling HTTP/1 from HTTP/2 waits
/// for the client's first bytes with no deadline of its own (HTTP/1's header deadline starts
/// after it), so a client that completed the handshake and then sent nothing held a
/// connection slot for ever, and `max_connections` such clients locked the API server out.
struct FirstByteDeadline<S> {
    inner: S,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> FirstByteDeadline<S> {
    fn new(inner: S, within: Duration) -> Self {
        FirstByteDeadline { inner, deadline: Some(Box::pin(tokio::time::sleep(within))) }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByteDeadline<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(deadline) = this.deadline.as_mut() {
            match polled {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.deadline = None,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "no request before the deadline");
                    return Poll::Ready(Err(timed_out));
                }
                _ => {}
            }
        }
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByteDeadline<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
