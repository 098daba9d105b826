//! `cargo xtask bench`: figures beside their baselines, measured in one run.
//!
//! Commands are timed interleaved (A, B, C, A, B, C, ...) so that a noisy neighbour slows
//! every variant alike; medians and ratios are reported, never absolute goals in tests.

pub mod report;

use crate::{cmd, openbao::DevServer, tools};
use anyhow::{Context, Result, bail};
use report::Row;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Which benchmark: shim, webhook, guard (default: all).
    pub which: Option<String>,
    /// Timed runs of each variant.
    #[arg(long, default_value_t = 40)]
    pub runs: usize,
}

pub fn run(args: &Args) -> Result<()> {
    match args.which.as_deref() {
        None => {
            let started = std::time::SystemTime::now();
            shim(args.runs)?;
            crate::webhook::bench()?;
            crate::guard::bench()?;
            report::summarize(started)
        }
        Some("shim") => shim(args.runs),
        Some("webhook") => crate::webhook::bench(),
        Some("guard") => crate::guard::bench(),
        Some(other) => bail!("unknown benchmark `{other}`: expected shim, webhook or guard"),
    }
}

/// One command to time.
struct Variant {
    name: &'static str,
    what: &'static str,
    command: Command,
}

struct Timing {
    median: Duration,
    p90: Duration,
}

fn time_interleaved(variants: &mut [Variant], runs: usize) -> Result<Vec<Timing>> {
    let mut samples = vec![Vec::with_capacity(runs); variants.len()];
    for round in 0..runs + 2 {
        for (i, variant) in variants.iter_mut().enumerate() {
            let start = Instant::now();
            let status = variant
                .command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .with_context(|| format!("running {}", variant.name))?;
            let elapsed = start.elapsed();
            if !status.success() {
                bail!("{} failed: {status}", variant.name);
            }
            if round >= 2 {
                samples[i].push(elapsed); // the first two rounds warm caches
            }
        }
    }
    Ok(samples
        .into_iter()
        .map(|mut s| {
            s.sort();
            Timing { median: s[s.len() / 2], p90: s[s.len() * 9 / 10] }
        })
        .collect())
}

const SECRETS: usize = 10;

fn shim(runs: usize) -> Result<()> {
    tools::ensure_apt(&["curl"])?;
    let shim = tools::build_static_shim()?;
    let size = std::fs::metadata(&shim)?.len();
    let server = DevServer::start("openbao-bench")?;
    let fields: Vec<String> = (0..SECRETS).map(|i| format!("k{i}=value-{i}")).collect();
    cmd::run(server.cli().args(["kv", "put", "secret/bench"]).args(&fields).stdout(Stdio::null()))?;

    let mut with_shim = Command::new(&shim);
    with_shim
        .args(["--", "/bin/true"])
        .env_clear()
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .envs((0..SECRETS).map(|i| (format!("K{i}"), format!("vault:secret/data/bench#k{i}"))));
    let script: String = (0..SECRETS)
        .map(|i| format!("export K{i}=\"$(\"$BAO\" kv get -field=k{i} secret/bench)\"; "))
        .chain(["exec /bin/true".to_owned()])
        .collect();
    let mut with_bao = Command::new("/bin/sh");
    with_bao
        .args(["-c", &script])
        .env("BAO", &server.bao)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token);
    let mut one_trip = Command::new("curl");
    one_trip
        .args(["-sf", "-o", "/dev/null", "-H"])
        .arg(format!("X-Vault-Token: {}", server.root_token))
        .arg(format!("{}/v1/secret/data/bench", server.addr));
    let mut exec_floor = Command::new("/bin/true");
    exec_floor.env_clear();

    let mut variants = [
        Variant { name: "shim", what: "injector, 10 references, exec /bin/true", command: with_shim },
        Variant { name: "bao-script", what: "sh + `bao kv get -field` per variable", command: with_bao },
        Variant { name: "one-round-trip", what: "curl: one Vault read from a new process", command: one_trip },
        Variant { name: "exec-floor", what: "/bin/true alone", command: exec_floor },
    ];
    let timings = time_interleaved(&mut variants, runs)?;
    drop(server);

    let shim_median = timings[0].median.as_secs_f64();
    let mut table = String::from("| variant | what | median ms | p90 ms | this ÷ shim |\n|---|---|---|---|---|\n");
    for (variant, timing) in variants.iter().zip(&timings) {
        table.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |\n",
            variant.name,
            variant.what,
            ms(timing.median),
            ms(timing.p90),
            timing.median.as_secs_f64() / shim_median
        ));
    }
    let [shim_t, bao_t, trip_t, floor_t] = &timings[..] else { unreachable!("four variants") };
    let mib = size as f64 / (1024.0 * 1024.0);
    let rows = vec![
        Row::new("shim: start with 10 references, exec", ms(shim_t.median), "ms median")
            .beside("one Vault read by curl from a new process", ms(trip_t.median))
            .goal("at most 1.5x the round trip", |r| r <= 1.5),
        Row::new("shell script: `bao kv get -field` per variable", ms(bao_t.median), "ms median")
            .beside("the shim, same 10 references", ms(shim_t.median)),
        Row::new("exec floor: /bin/true alone", ms(floor_t.median), "ms median")
            .beside("the shim, same run", ms(shim_t.median)),
        Row::new("shim binary, static, stripped", mib, "MiB")
            .beside("the goal's size", 3.0)
            .goal("under 3 MiB", |r| r < 1.0),
    ];
    let machine = machine();
    println!("\n## shim ({runs} interleaved runs each; {machine})\n\n{table}");
    report::write(&report::Component { component: "shim", machine, detail: table, rows })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A line naming the machine the figures come from.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = tools::kernel_release();
    format!("{cpu}, {cores} cores, Linux {kernel}")
}
