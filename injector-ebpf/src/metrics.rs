//! Prometheus metrics, encoded by `prometheus-client` (as the webhook's are), plus a tiny
//! blocking HTTP endpoint (`--metrics`) with a deadline on each connection and a bound on
//! connections.
//!
//! Names (OpenMetrics adds `_total` to counters):
//! - `hush_guard_events_total{action,attempt}`: ring-buffer records by audit action and attempt;
//! - `hush_guard_suppressed_lines_total`: audit lines left out by `--max-lines-per-sec`;
//! - `hush_guard_ringbuf_dropped_total`: records the BPF programs could not queue (from `hush_stats`);
//! - `hush_guard_map_full_total`: failed registrations, full maps (from `hush_stats`);
//! - `hush_guard_mode_gap{mode,gap} 1`: one per gap of the running mode (`mode::gaps`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    action: String,
    attempt: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GapLabels {
    mode: String,
    gap: String,
}

/// The guard's metrics. Every method takes `&self` (atomics): share it in an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    suppressed_lines: Counter,
    ringbuf_dropped: Counter,
    map_full: Counter,
    mode_gap: Family<GapLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hush_guard");
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Ring-buffer records by audit action and attempt", events.clone());
        let suppressed_lines = Counter::default();
        registry.register(
            "suppressed_lines",
            "Audit lines left out by --max-lines-per-sec (counted in summary lines)",
            suppressed_lines.clone(),
        );
        let ringbuf_dropped = Counter::default();
        registry.register(
            "ringbuf_dropped",
            "Records the BPF programs could not queue on a full ring buffer (decisions were still made)",
            ringbuf_dropped.clone(),
        );
        let map_full = Counter::default();
        registry.register(
            "map_full",
            "Registrations that found a map or the protected set full (they fail closed)",
            map_full.clone(),
        );
        let mode_gap = Family::<GapLabels, Gauge>::default();
        registry.register("mode_gap", "1 for each gap of the running mode (SECURITY.md)", mode_gap.clone());
        Metrics { registry, events, suppressed_lines, ringbuf_dropped, map_full, mode_gap }
    }
}

impl Metrics {
    /// Counts one ring-buffer record.
    pub fn event(&self, action: &str, attempt: &str) {
        self.events.get_or_create(&EventLabels { action: action.to_owned(), attempt: attempt.to_owned() }).inc();
    }

    /// Counts one audit line left out by the rate limit.
    pub fn suppressed_line(&self) {
        self.suppressed_lines.inc();
    }

    /// The BPF programs' own counts (`hush_stats`), which only grow: ring-buffer drops and
    /// full maps.
    pub fn set_bpf_stats(&self, ringbuf_dropped: u64, map_full: u64) {
        self.ringbuf_dropped.inner().store(ringbuf_dropped, Ordering::Relaxed);
        self.map_full.inner().store(map_full, Ordering::Relaxed);
    }

    /// Marks one gap of the running mode.
    pub fn mode_gap(&self, mode: &str, gap: &str) {
        self.mode_gap.get_or_create(&GapLabels { mode: mode.to_owned(), gap: gap.to_owned() }).set(1);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Invariant: writing to a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encoding to a String");
        out
    }
}

/// How long one scrape may take to send its request and receive the answer: a client that
/// connects and stays silent is cut off after this, instead of holding the listener.
pub const CONN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// What `encode` writes (the webhook's `/metrics` says the same).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Scrapes served at once; a connection beyond this is closed at once (Prometheus retries).
pub const MAX_CONNS: usize = 8;

/// Serves `metrics` on `addr`: an accept thread hands each connection to its own thread with
/// read and write timeouts, at most [`MAX_CONNS`] at a time, so an idle or slow client can
/// never block other scrapes.
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNS {
                active.fetch_sub(1, Ordering::SeqCst);
                drop(conn);
                continue;
            }
            let (metrics, active) = (metrics.clone(), active.clone());
            std::thread::spawn(move || {
                answer(conn, &metrics);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(local)
}

/// Reads the request head (up to the blank line, 1 KiB at most, within [`CONN_TIMEOUT`]) and
/// answers with the metrics.
fn answer(mut conn: std::net::TcpStream, metrics: &Metrics) {
    let deadline = std::time::Instant::now() + CONN_TIMEOUT;
    let _ = conn.set_write_timeout(Some(CONN_TIMEOUT));
    let mut buf = [0u8; 1024];
    let mut got = 0;
    while got < buf.len() && !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match conn.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => got += n,
        }
    }
    let body = metrics.encode();
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `name{labels} -> value` of every sample line (label order as encoded).
    fn samples(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').expect("a sample line is `name value`");
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    /// What the guard's loop does to its metrics (main.rs), in miniature.
    fn exercised() -> Metrics {
        let m = Metrics::default();
        m.mode_gap("tracepoint", "shared_fd_table");
        m.mode_gap("tracepoint", "proc_fd_link");
        m.event("killed", "open environ");
        m.event("killed", "open environ");
        m.event("killed", "open environ");
        m.event("denied", "x\"y");
        m.suppressed_line();
        m.set_bpf_stats(4, 2);
        m.set_bpf_stats(5, 2);
        m
    }

    fn expected() -> BTreeMap<String, String> {
        [
            ("hush_guard_events_total{action=\"killed\",attempt=\"open environ\"}", "3"),
            ("hush_guard_events_total{action=\"denied\",attempt=\"x\\\"y\"}", "1"),
            ("hush_guard_suppressed_lines_total", "1"),
            ("hush_guard_ringbuf_dropped_total", "5"),
            ("hush_guard_map_full_total", "2"),
            ("hush_guard_mode_gap{mode=\"tracepoint\",gap=\"shared_fd_table\"}", "1"),
            ("hush_guard_mode_gap{mode=\"tracepoint\",gap=\"proc_fd_link\"}", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn encodes_every_name_label_and_value() {
        let text = exercised().encode();
        assert_eq!(samples(&text), expected(), "{text}");
        for ty in [
            "# TYPE hush_guard_events counter",
            "# TYPE hush_guard_suppressed_lines counter",
            "# TYPE hush_guard_ringbuf_dropped counter",
            "# TYPE hush_guard_map_full counter",
            "# TYPE hush_guard_mode_gap gauge",
        ] {
            assert!(text.lines().any(|l| l == ty), "no `{ty}` in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn before_any_event_the_counters_read_zero() {
        let text = Metrics::default().encode();
        let want: BTreeMap<String, String> =
            ["hush_guard_suppressed_lines_total", "hush_guard_ringbuf_dropped_total", "hush_guard_map_full_total"]
                .into_iter()
                .map(|k| (k.to_owned(), "0".to_owned()))
                .collect();
        assert_eq!(samples(&text), want, "{text}");
    }

    /// `GET /metrics` over loopback; the whole answer (head and body).
    fn scrape(addr: std::net::SocketAddr) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn the_served_endpoint_answers_every_name_and_value() {
        let m = Arc::new(exercised());
        let addr = serve("127.0.0.1:0", m.clone()).unwrap();
        let out = scrape(addr);
        let (head, body) = out.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}\r\n")), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{head}");
        assert_eq!(samples(body), expected(), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        // The endpoint reads the live metrics, not a copy taken when it started.
        m.event("killed", "open environ");
        let after = scrape(addr);
        let after = samples(after.split_once("\r\n\r\n").unwrap().1);
        assert_eq!(after["hush_guard_events_total{action=\"killed\",attempt=\"open environ\"}"], "4");
    }

    /// Before: one thread read each connection to completion with no timeout, so a client that
    /// connected and said nothing blocked every later scrape (this test timed out reading).
    #[test]
    fn idle_connections_do_not_block_scrapes() {
        let m = Arc::new(Metrics::default());
        m.set_bpf_stats(9, 0);
        let served = |out: &str| out.contains("\nhush_guard_ringbuf_dropped_total 9\n") && out.ends_with("# EOF\n");
        let addr = serve("127.0.0.1:0", m).unwrap();
        let idle: Vec<_> = (0..MAX_CONNS + 4).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        // While they hold their slots (or were turned away), a scrape is answered in time:
        // within the idle clients' timeout plus margin, not never.
        let t = std::time::Instant::now();
        let mut out = String::new();
        while !served(&out) && t.elapsed() < CONN_TIMEOUT * 3 {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(CONN_TIMEOUT * 3)).unwrap();
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
            out.clear();
            let _ = s.read_to_string(&mut out);
        }
        assert!(served(&out), "no scrape answered in {:?}: {out:?}", t.elapsed());
        drop(idle);
        assert!(served(&scrape(addr)));
    }
}
