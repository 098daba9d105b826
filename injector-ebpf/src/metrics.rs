//! Prometheus counters: pure rendering plus a tiny blocking HTTP endpoint (`--metrics`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Counters keyed by (metric name, label pairs).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    map: BTreeMap<(String, Vec<(String, String)>), u64>,
}

impl Counters {
    pub fn add(&mut self, name: &str, labels: &[(&str, &str)], n: u64) {
        let key = (name.to_owned(), labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        *self.map.entry(key).or_insert(0) += n;
    }

    pub fn set(&mut self, name: &str, n: u64) {
        self.map.insert((name.to_owned(), Vec::new()), n);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), v) in &self.map {
            if name != last {
                out.push_str(&format!("# TYPE {name} counter\n"));
                last = name;
            }
            let l: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace(['"', '\\', '\n'], "_"))).collect();
            if l.is_empty() {
                out.push_str(&format!("{name} {v}\n"));
            } else {
                out.push_str(&format!("{name}{{{}}} {v}\n", l.join(",")));
            }
        }
        out
    }
}

/// How long one scrape may take to send its request and receive the answer: a client that
/// connects and stays silent is cut off after this, instead of holding the listener.
pub const CONN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Scrapes served at once; a connection beyond this is closed at once (Prometheus retries).
pub const MAX_CONNS: usize = 8;

/// Serves `counters` on `addr`: an accept thread hands each connection to its own thread with
/// read and write timeouts, at most [`MAX_CONNS`] at a time, so an idle or slow client can
/// never block other scrapes.
pub fn serve(addr: &str, counters: Arc<Mutex<Counters>>) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            use std::sync::atomic::Ordering;
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNS {
                active.fetch_sub(1, Ordering::SeqCst);
                drop(conn);
                continue;
            }
            let (counters, active) = (counters.clone(), active.clone());
            std::thread::spawn(move || {
                answer(conn, &counters);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(local)
}

/// Reads the request head (up to the blank line, 1 KiB at most, within [`CONN_TIMEOUT`]) and
/// answers with the counters.
fn answer(mut conn: std::net::TcpStream, counters: &Mutex<Counters>) {
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
    let body = counters.lock().map(|c| c.render()).unwrap_or_default();
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_grouped_counters() {
        let mut c = Counters::default();
        c.add("hush_guard_events_total", &[("action", "killed"), ("attempt", "open environ")], 2);
        c.add("hush_guard_events_total", &[("action", "killed"), ("attempt", "open environ")], 1);
        c.add("hush_guard_events_total", &[("action", "denied"), ("attempt", "x\"y")], 1);
        c.set("hush_guard_ringbuf_dropped_total", 4);
        assert_eq!(
            c.render(),
            "# TYPE hush_guard_events_total counter\n\
             hush_guard_events_total{action=\"denied\",attempt=\"x_y\"} 1\n\
             hush_guard_events_total{action=\"killed\",attempt=\"open environ\"} 3\n\
             # TYPE hush_guard_ringbuf_dropped_total counter\n\
             hush_guard_ringbuf_dropped_total 4\n"
        );
    }

    #[test]
    fn serves_over_loopback() {
        let c = Arc::new(Mutex::new(Counters::default()));
        c.lock().unwrap().set("x_total", 9);
        let addr = serve("127.0.0.1:0", c).unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK") && out.ends_with("x_total 9\n"), "{out}");
    }

    fn scrape(addr: std::net::SocketAddr) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// Before: one thread read each connection to completion with no timeout, so a client that
    /// connected and said nothing blocked every later scrape (this test timed out reading).
    #[test]
    fn idle_connections_do_not_block_scrapes() {
        let c = Arc::new(Mutex::new(Counters::default()));
        c.lock().unwrap().set("x_total", 9);
        let addr = serve("127.0.0.1:0", c).unwrap();
        let idle: Vec<_> = (0..MAX_CONNS + 4).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        // While they hold their slots (or were turned away), a scrape is answered in time:
        // within the idle clients' timeout plus margin, not never.
        let t = std::time::Instant::now();
        let mut out = String::new();
        while !out.ends_with("x_total 9\n") && t.elapsed() < CONN_TIMEOUT * 3 {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(CONN_TIMEOUT * 3)).unwrap();
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
            out.clear();
            let _ = s.read_to_string(&mut out);
        }
        assert!(out.ends_with("x_total 9\n"), "no scrape answered in {:?}: {out:?}", t.elapsed());
        drop(idle);
        assert!(scrape(addr).ends_with("x_total 9\n"));
    }
}
