//! The running guard's `/metrics` (`guard --metrics 127.0.0.1:0`), scraped over HTTP and held
//! to its own audit lines: every gap of its start line as `hush_guard_mode_gap{mode,gap} 1`,
//! and every (action, attempt) it wrote a line for counted in `hush_guard_events_total` at
//! least as often (a record is counted before its line is written; suppressed ones only
//! counted).

use super::*;
use std::collections::BTreeMap;

/// Whether this machine has a loopback address to serve metrics on (a bare VM `/init` may
/// not have brought `lo` up).
pub(super) fn loopback_up() -> bool {
    std::net::TcpListener::bind("127.0.0.1:0").is_ok()
}

/// `name{labels} -> value` of every sample line of an OpenMetrics text body.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// One `GET /metrics`; the body, once the answer is `200` with the OpenMetrics content type.
fn scrape(addr: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    std::io::Write::write_all(&mut s, b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").with_context(|| format!("no HTTP head in {out:?}"))?;
    ensure!(head.starts_with("HTTP/1.1 200 OK\r\n"), "answer {head:?}");
    ensure!(head.contains("\r\nContent-Type: application/openmetrics-text;"), "content type in {head:?}");
    Ok(body.to_owned())
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Suite<'_> {
    pub(super) fn metrics(&mut self, g: &GuardProc) -> Result<()> {
        let Some(addr) = g.metrics_addr(self.patience()) else {
            if loopback_up() {
                self.check(false, "the guard printed its metrics address (--metrics 127.0.0.1:0)".into());
            } else {
                println!("skip: the guard's metrics (no loopback address here)");
            }
            return Ok(());
        };
        let body = scrape(&addr)?;
        let got = samples(&body);
        let lines: Vec<Value> = g.lines.lock().expect("lines lock").clone();
        let start = lines.iter().find(|v| v["event"] == "start").context("no start line")?;
        let mode = start["mode"].as_str().unwrap_or_default();
        let want_gaps: BTreeMap<String, f64> = start["gaps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|gap| (format!("hush_guard_mode_gap{{mode=\"{}\",gap=\"{}\"}}", label(mode), label(gap)), 1.0))
            .collect();
        let got_gaps: BTreeMap<String, f64> =
            got.iter().filter(|(k, _)| k.starts_with("hush_guard_mode_gap{")).map(|(k, v)| (k.clone(), *v)).collect();
        self.check(
            got_gaps == want_gaps,
            format!("metrics at http://{addr}/metrics: hush_guard_mode_gap is the start line's gaps ({got_gaps:?})"),
        );
        let mut lines_per_pair: BTreeMap<(String, String), u64> = BTreeMap::new();
        for v in lines.iter().filter(|v| ["attempt", "protect", "release"].iter().any(|e| v["event"] == *e)) {
            if let (Some(action), Some(attempt)) = (v["action"].as_str(), v["attempt"].as_str()) {
                *lines_per_pair.entry((action.to_owned(), attempt.to_owned())).or_default() += 1;
            }
        }
        let short: Vec<String> = lines_per_pair
            .iter()
            .filter_map(|((action, attempt), n)| {
                let key =
                    format!("hush_guard_events_total{{action=\"{}\",attempt=\"{}\"}}", label(action), label(attempt));
                let counted = got.get(&key).copied().unwrap_or(0.0);
                (counted < *n as f64).then(|| format!("{key} {counted} < {n} lines"))
            })
            .collect();
        let killed = lines_per_pair.keys().filter(|(action, _)| action == "killed" || action == "denied").count();
        self.check(
            short.is_empty() && killed > 0,
            format!(
                "hush_guard_events_total counts every (action, attempt) of the guard's {} lines ({} pairs, {killed} refused kinds){}",
                lines_per_pair.values().sum::<u64>(),
                lines_per_pair.len(),
                if short.is_empty() { String::new() } else { format!(": {short:?}") }
            ),
        );
        let counters =
            ["hush_guard_suppressed_lines_total", "hush_guard_ringbuf_dropped_total", "hush_guard_map_full_total"];
        let missing: Vec<&str> = counters.iter().copied().filter(|c| !got.contains_key(*c)).collect();
        self.check(
            missing.is_empty() && body.ends_with("# EOF\n"),
            format!("the stats counters are served (missing: {missing:?})"),
        );
        Ok(())
    }
}
