//! Secrets and ConfigMaps holding Vault references on this cluster (issue 11 point 6): Hush
//! never resolves them into the object, as Bank-Vaults does; the chart's
//! ValidatingWebhookConfiguration (`objects.hush.dev`, `failurePolicy: Ignore`) makes the API
//! server hand kubectl a warning instead, and the Secret consumed through `envFrom` by a Pod
//! with `hush.dev/inject: "true"` reaches the app resolved by the shim, as the warning says;
//! with `webhook.readReferencedObjects` also by a Pod without the annotation.

use super::{APP_NS, HUSH_NS, Teller, kubectl_json, kubectl_ok, kubectl_stdin, pod};
use crate::cluster::{self, Cluster};
use crate::cmd;
use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use serde_json::json;
use std::time::Duration;

const REFERENCE: &str = "vault:secret/data/shop/db#password";
const WEBHOOK: &str = "app.kubernetes.io/component=webhook";

/// A Pod taking Secret db-refs through envFrom (annotated `hush.dev/inject: "true"` when
/// `annotated`): its app must print the resolved password's length, not the reference's.
fn envfrom_pod(
    cluster: &Cluster,
    app_image: &str,
    password: &str,
    name: &str,
    annotated: bool,
    t: &mut dyn Teller,
) -> Result<()> {
    let mut annotations = json!({"hush.dev/auth-method": "kubernetes", "hush.dev/role": "shop"});
    if annotated {
        annotations["hush.dev/inject"] = json!("true");
    }
    let script = format!("echo \"{name}: DB_PASSWORD holds ${{#DB_PASSWORD}} characters\"; exec sleep 600");
    let mut consumer = pod(name, app_image, annotations.clone(), &script, json!([]));
    consumer["spec"]["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "db-refs"}}]);
    let out = kubectl_stdin(cluster, &["apply"], &serde_json::to_vec(&consumer)?)?;
    ensure!(out.status.success(), "kubectl apply of Pod {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    let want = format!("{name}: DB_PASSWORD holds {} characters", password.len());
    let mut logs = String::new();
    cluster::wait_for(&format!("{name}: the app's log line"), Duration::from_secs(120), || {
        logs = cmd::stdout(cluster.kubectl().args(["-n", APP_NS, "logs", name, "-c", "app"])).unwrap_or_default();
        Ok(logs.contains(&format!("{name}:")))
    })?;
    t.say(&format!("Pod {name} (envFrom: secretRef db-refs, annotations {annotations}) app log: {}", logs.trim()));
    ensure!(logs.contains(&want), "the app of Pod {name} did not get the resolved secret through envFrom: {logs}");
    ensure!(!logs.contains(password), "the password is in the app's log");
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "pod", name, "--wait=false"])
}

/// The checks, for one call in `story` after `run_example` (namespace `shop`, its ServiceAccount
/// `app` and OpenBao's role `shop` exist); `password` is the secret's current value.
pub(super) fn check(cluster: &Cluster, app_image: &str, password: &str, t: &mut dyn Teller) -> Result<()> {
    // `kubectl apply` of a Secret whose value is a reference: created, with the webhook's
    // warnings on stderr, naming the Secret and the key and quoting no value.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-refs", "namespace": APP_NS},
                        "stringData": {"DB_PASSWORD": REFERENCE}});
    let out = kubectl_stdin(cluster, &["apply"], &serde_json::to_vec(&secret)?)?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "kubectl apply of Secret db-refs failed: {stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Warning: ")).collect();
    t.say(&format!("kubectl apply -f secret.yaml (stringData DB_PASSWORD: {REFERENCE}): {}", stdout.trim()));
    for w in &warnings {
        t.say(&format!("  {w}"));
    }
    ensure!(
        warnings.iter().any(|w| w.starts_with(&format!(
            "Warning: Secret {APP_NS}/db-refs: key `DB_PASSWORD` holds a Vault reference; Hush leaves it as written"
        ))),
        "kubectl printed no warning naming Secret {APP_NS}/db-refs and its key: {stderr}"
    );
    ensure!(
        warnings.iter().any(|w| w.contains("envFrom or valueFrom") && w.contains("hush.dev/inject")),
        "the warnings do not say how Hush serves the need: {stderr}"
    );
    ensure!(!stderr.contains("secret/data") && !stderr.contains(password), "a warning quotes a value: {stderr}");

    // What is stored is the reference as written: no secret went into etcd.
    let stored = kubectl_json(cluster, &["-n", APP_NS, "get", "secret", "db-refs"])?;
    let data = stored["data"]["DB_PASSWORD"].as_str().context("Secret db-refs has no DB_PASSWORD")?;
    let data = base64::engine::general_purpose::STANDARD.decode(data)?;
    ensure!(data == REFERENCE.as_bytes(), "Secret db-refs holds something else than the reference as written");
    t.say("kubectl get secret db-refs: DB_PASSWORD is the reference as written (nothing resolved into etcd)");

    // A ConfigMap without references: no warning.
    let plain = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain", "namespace": APP_NS},
                       "data": {"LOG_LEVEL": "debug"}});
    let out = kubectl_stdin(cluster, &["apply"], &serde_json::to_vec(&plain)?)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "kubectl apply of ConfigMap plain failed: {stderr}");
    ensure!(!stderr.contains("Warning:"), "a ConfigMap without references got a warning: {stderr}");
    t.say("kubectl apply of a ConfigMap without references: no warning");

    // The way the warning points: the Secret through envFrom, the Pod asking for Hush.
    envfrom_pod(cluster, app_image, password, "envfrom", true, t)?;
    // With `webhook.readReferencedObjects` the webhook reads the Secret itself and the Pod
    // needs no annotation, as with Bank-Vaults.
    let deployments = kubectl_json(cluster, &["-n", HUSH_NS, "get", "deployments", "-l", WEBHOOK])?;
    let reads = deployments["items"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .is_some_and(|a| a.iter().any(|a| a == "--read-referenced-objects"));
    if reads {
        envfrom_pod(cluster, app_image, password, "envfrom-auto", false, t)?;
    } else {
        t.say("(the chart runs without webhook.readReferencedObjects: the Pod without the annotation is not tried)");
    }
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "secret", "db-refs"])?;
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "configmap", "plain"])
}
