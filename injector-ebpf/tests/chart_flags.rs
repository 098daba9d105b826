//! The chart's guard DaemonSet passes only flags that `guard --help` lists, and each guard
//! value turns into its flag (the webhook's flags: webhook/tests/chart.rs). Helm's engine renders
//! the chart through charts/tests/render.py in the venv `cargo xtask test` installs.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The guard container's args as the chart renders them with `values`.
fn guard_args(values: &Value) -> Vec<String> {
    let python = std::env::var("HUSH_TEST_PYTHON").expect("HUSH_TEST_PYTHON (set by cargo xtask test)");
    let out = Command::new(python)
        .arg(root().join("charts/tests/render.py"))
        .arg(root().join("charts/hush"))
        .arg(values.to_string())
        .args(["hush", "hush-system"])
        .output()
        .unwrap();
    assert!(out.status.success(), "render failed: {}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let daemonset = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["object"])
        .find(|o| o["kind"] == "DaemonSet")
        .expect("the chart renders the guard DaemonSet");
    let container = daemonset["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "guard")
        .unwrap();
    container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
}

fn guard_flags() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_guard")).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches([',', '.', '`']).split(['=', '[', '<']).next().unwrap().to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
fn every_flag_the_chart_passes_the_guard_is_one_it_has() {
    let flags = guard_flags();
    let everything = json!({"guard": {"enabled": true, "mode": "tracepoint", "allowIoUring": true, "allow32bit": true,
        "allowCgroups": ["/sys/fs/cgroup/system.slice/agent.service"], "metrics": {"enabled": true}}});
    let args = guard_args(&everything);
    for wanted in ["--mode=tracepoint", "--allow-io-uring", "--allow-32bit"] {
        assert!(args.iter().any(|a| a == wanted), "values ask for {wanted}, the chart renders {args:?}");
    }
    for arg in &args {
        let name = arg.strip_prefix("--").unwrap_or_else(|| panic!("{arg} is not a flag"));
        let name = name.split('=').next().unwrap();
        assert!(flags.contains(name), "the chart passes --{name}, which `guard --help` does not list: {flags:?}");
    }
    let defaults = guard_args(&json!({"guard": {"enabled": true}}));
    assert!(!defaults.iter().any(|a| a.starts_with("--allow-")), "opt-outs are off by default: {defaults:?}");
}

#[test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
fn every_mode_the_guard_has_is_one_the_chart_accepts() {
    for mode in ["auto", "lsm", "fentry", "tracepoint", "audit"] {
        let args = guard_args(&json!({"guard": {"enabled": true, "mode": mode}}));
        assert!(args.contains(&format!("--mode={mode}")), "{mode}: {args:?}");
    }
}
