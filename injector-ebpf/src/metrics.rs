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

/// Serves `counters` on `addr` from a background thread.
pub fn serve(addr: &str, counters: Arc<Mutex<Counters>>) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let body = counters.lock().map(|c| c.render()).unwrap_or_default();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(local)
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
}
