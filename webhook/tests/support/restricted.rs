//! The Pod Security Standards "restricted" profile's container-level checks
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>), with Pod-level
//! fallbacks, for any Pod spec (a Pod's or a workload template's): the mutated fixtures and the
//! chart's rendered workloads.
//!
//! The judge of "restricted" is the API server's own PodSecurity admission plugin: `cargo
//! xtask e2e` runs the injected Pods in a namespace that enforces it (and checks that it
//! refuses a privileged Pod there) and the chart's webhook Pods in another. This copy of its
//! checks stays because it earns its place where no cluster runs: every `cargo xtask test`
//! holds each mutated fixture (`tests/fixtures.rs`: Pods of shapes the e2e does not create) and
//! the chart's webhook Pod template (`tests/chart.rs`) to the profile in milliseconds, names the
//! field that breaks it, and shows the guard's DaemonSet is not "restricted" (why it has a
//! namespace of its own). It is a subset (no sysctls, AppArmor, SELinux, proc mount or host
//! port checks) and can drift from the plugin; where they disagree, the e2e's verdict stands.

use serde_json::{Value, json};

const VOLUME_TYPES: [&str; 8] =
    ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

/// Every violation of "restricted" in `spec` (a PodSpec), one message each.
pub fn violations(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for field in ["hostPID", "hostIPC", "hostNetwork"] {
        if spec[field] == true {
            out.push(format!("{field} is true"));
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if !v.as_object().unwrap().keys().filter(|k| *k != "name").all(|k| VOLUME_TYPES.contains(&k.as_str())) {
            out.push(format!("volume {} has a disallowed type", v["name"]));
        }
    }
    let psc = &spec["securityContext"];
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            out.extend(container_violations(c, psc));
        }
    }
    out
}

fn container_violations(c: &Value, psc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let sc = &c["securityContext"];
    let name = c["name"].as_str().unwrap_or("?");
    if sc["allowPrivilegeEscalation"] != false {
        out.push(format!("{name}: allowPrivilegeEscalation is not false"));
    }
    if sc["privileged"] == true {
        out.push(format!("{name}: privileged"));
    }
    if !sc["capabilities"]["drop"].as_array().is_some_and(|d| d.contains(&json!("ALL"))) {
        out.push(format!("{name}: capabilities do not drop ALL"));
    }
    if sc["capabilities"]["add"].as_array().is_some_and(|a| a.iter().any(|c| c != "NET_BIND_SERVICE")) {
        out.push(format!("{name}: adds capabilities"));
    }
    if !(sc["runAsNonRoot"] == true || (sc["runAsNonRoot"].is_null() && psc["runAsNonRoot"] == true)) {
        out.push(format!("{name}: runAsNonRoot is not true"));
    }
    if sc["runAsUser"] == 0 || (sc["runAsUser"].is_null() && psc["runAsUser"] == 0) {
        out.push(format!("{name}: runs as UID 0"));
    }
    let seccomp = if sc["seccompProfile"].is_null() { &psc["seccompProfile"] } else { &sc["seccompProfile"] };
    if !(seccomp["type"] == "RuntimeDefault" || seccomp["type"] == "Localhost") {
        out.push(format!("{name}: seccompProfile is not RuntimeDefault or Localhost"));
    }
    out
}
