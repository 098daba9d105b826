//! Secrets and ConfigMaps holding Vault references on this cluster (issue 11 point 6): Hush
//! never resolves them into the object, as Bank-Vaults does; the chart's
//! ValidatingWebhookConfiguration (`objects.hush.dev`, `failurePolicy: Ignore`) makes the API
//! server hand kubectl a warning instead, and the Secret consumed through `envFrom` by a Pod
//! with `hush.dev/inject: "true"` reaches the app resolved by the shim, as the warning says;
//! with `webhook.readReferencedObjects` also by a Pod without the annotation.
//!
//! `--read-referenced-objects` against this API server (it replaced the loopback stand-in
//! of webhook/tests/objects.rs), through `kubectl create --dry-run=server` (full admission,
//! nothing stored): an envFrom Secret with a reference injects that container only; a
//! valueFrom ConfigMap key holding a template counts, a plain key does not; a missing
//! optional object injects nothing; the objects read are the Pod's namespace's (a Secret of
//! the same name elsewhere is not); the reads are the webhook's ServiceAccount's (once its
//! ClusterRoleBindings are gone the API server's 403 denies the Pod, naming the object and the
//! missing permission), and opted-out or annotated Pods are admitted meanwhile, so they were not
//! read for; and no value reaches the webhook's log.

use super::{APP_NS, HUSH_NS, Teller, kubectl_json, kubectl_ok, kubectl_stdin, pod, random_hex};
use crate::cluster::{self, Cluster};
use crate::cmd;
use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;

const REFERENCE: &str = "vault:secret/data/shop/db#password";
/// A ConfigMap value that is a template around a reference (the marker shows in no log).
const TEMPLATE: &str = "postgres://objects-e2e:${vault:secret/data/shop/db#password}@db:5432/shop";
const WEBHOOK: &str = "app.kubernetes.io/component=webhook";
/// A namespace of its own, holding a Secret named as the one in the app's namespace.
const OTHER_NS: &str = "shop-objects-other";

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
    // A plain value beside the reference: the webhook reads the whole Secret, and must log neither.
    let plain_value = format!("plain-{}", random_hex(8)?);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-refs", "namespace": APP_NS},
                        "stringData": {"DB_PASSWORD": REFERENCE, "DB_USER": plain_value}});
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
        read_referenced_objects(cluster, app_image, &plain_value, t)?;
    } else {
        t.say("(the chart runs without webhook.readReferencedObjects: the Pod without the annotation is not tried)");
    }
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "secret", "db-refs"])?;
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "configmap", "plain"])
}

/// A Pod of two containers, `app` (taking `env_from` and `env`) and `sidecar` (nothing), in
/// `namespace`, restricted-compliant; no Vault reference of its own.
fn two_containers(name: &str, namespace: &str, image: &str, annotations: Value, env_from: Value, env: Value) -> Value {
    let mut p = pod(name, image, annotations, "true", env);
    p["metadata"]["namespace"] = json!(namespace);
    if namespace != APP_NS {
        // The namespace's default ServiceAccount.
        if let Some(spec) = p["spec"].as_object_mut() {
            spec.remove("serviceAccountName");
        }
    }
    let mut sidecar = p["spec"]["containers"][0].clone();
    sidecar["name"] = json!("sidecar");
    sidecar["env"] = json!([]);
    p["spec"]["containers"][0]["envFrom"] = env_from;
    if let Some(containers) = p["spec"]["containers"].as_array_mut() {
        containers.push(sidecar);
    }
    p
}

/// `kubectl create --dry-run=server` of `pod`: `Ok(names of the containers the webhook
/// injected)` when admitted, `Err(kubectl's stderr)` when denied.
fn admit(cluster: &Cluster, pod: &Value) -> Result<std::result::Result<Vec<String>, String>> {
    let out = kubectl_stdin(cluster, &["create", "--dry-run=server", "-o", "json"], &serde_json::to_vec(pod)?)?;
    if !out.status.success() {
        return Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    let admitted: Value = serde_json::from_slice(&out.stdout)?;
    Ok(Ok(admitted["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["command"][0] == "/hush/injector")
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()))
}

/// What `--read-referenced-objects` does with the objects Pods take into their environment,
/// on this API server (see the module's comment). Needs Secret db-refs (DB_PASSWORD a
/// reference, DB_USER `plain_value`) in the app's namespace.
fn read_referenced_objects(cluster: &Cluster, image: &str, plain_value: &str, t: &mut dyn Teller) -> Result<()> {
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": APP_NS},
                     "data": {"URL": TEMPLATE, "LOG": "debug-objects-e2e"}});
    let out = kubectl_stdin(cluster, &["apply"], &serde_json::to_vec(&cfg)?)?;
    ensure!(out.status.success(), "kubectl apply of ConfigMap cfg failed: {}", String::from_utf8_lossy(&out.stderr));
    let result = read_referenced_cases(cluster, image, plain_value, t);
    let _ = kubectl_ok(cluster, &["-n", APP_NS, "delete", "configmap", "cfg"]);
    let _ = kubectl_ok(cluster, &["delete", "namespace", OTHER_NS, "--wait=false", "--ignore-not-found"]);
    result
}

fn read_referenced_cases(cluster: &Cluster, image: &str, plain_value: &str, t: &mut dyn Teller) -> Result<()> {
    let none = json!({});
    let from_secret = json!([{"secretRef": {"name": "db-refs"}}]);
    let key = |k: &str| json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": k}}}]);
    let cases = [
        ("envFrom Secret db-refs (a reference)", "rro-env-from", from_secret.clone(), json!([]), vec!["app"]),
        ("valueFrom ConfigMap cfg key URL (a template)", "rro-value-from", json!([]), key("URL"), vec!["app"]),
        ("valueFrom ConfigMap cfg key LOG (plain)", "rro-plain-key", json!([]), key("LOG"), vec![]),
        (
            "envFrom optional Secret gone (missing)",
            "rro-missing",
            json!([{"secretRef": {"name": "gone", "optional": true}}]),
            json!([]),
            vec![],
        ),
    ];
    for (what, name, env_from, env, want) in cases {
        let p = two_containers(name, APP_NS, image, none.clone(), env_from, env);
        let injected = admit(cluster, &p)?.map_err(|e| anyhow::anyhow!("Pod {name} ({what}) was denied: {e}"))?;
        t.say(&format!("--read-referenced-objects, Pod {name} ({what}), no annotation: injected {injected:?}"));
        ensure!(injected == want, "Pod {name} ({what}): injected {injected:?}, want {want:?}");
    }

    // The Pod's namespace's objects: a Secret db-refs holding no reference in another
    // namespace leaves the same Pod there alone.
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OTHER_NS, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-refs", "namespace": OTHER_NS},
                        "stringData": {"DB_PASSWORD": plain_value}});
    for object in [&ns, &secret] {
        let out = kubectl_stdin(cluster, &["apply"], &serde_json::to_vec(object)?)?;
        ensure!(out.status.success(), "kubectl apply in {OTHER_NS} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Its default ServiceAccount comes from the controller manager.
    cluster::wait_for(&format!("ServiceAccount {OTHER_NS}/default"), Duration::from_secs(30), || {
        Ok(cluster.kubectl().args(["-n", OTHER_NS, "get", "serviceaccount", "default"]).output()?.status.success())
    })?;
    let elsewhere = two_containers("rro-other-ns", OTHER_NS, image, none.clone(), from_secret.clone(), json!([]));
    let injected = admit(cluster, &elsewhere)?.map_err(|e| anyhow::anyhow!("Pod in {OTHER_NS} was denied: {e}"))?;
    t.say(&format!(
        "the same Pod in {OTHER_NS}, whose Secret db-refs holds no reference: injected {injected:?} (the webhook \
         reads the Pod's namespace's object)"
    ));
    ensure!(injected.is_empty(), "a Pod in {OTHER_NS} was injected for {APP_NS}'s Secret db-refs: {injected:?}");

    // The reads are the webhook ServiceAccount's: without its ClusterRoleBindings the API
    // server refuses them (403) and the Pod is denied, naming the object and the permission.
    // Meanwhile opted-out and annotated Pods are admitted: nothing was read for them.
    let needs_read = two_containers("rro-forbidden", APP_NS, image, none.clone(), from_secret.clone(), json!([]));
    let opted_out = two_containers(
        "rro-opted-out",
        APP_NS,
        image,
        json!({"hush.dev/inject": "false"}),
        from_secret.clone(),
        json!([]),
    );
    let annotated =
        two_containers("rro-annotated", APP_NS, image, json!({"hush.dev/inject": "true"}), from_secret, json!([]));
    let mut denial = String::new();
    let mut unread = Vec::new();
    super::without_webhook_bindings(cluster, || {
        denial = match admit(cluster, &needs_read)? {
            Err(e) => e,
            Ok(_) => return Ok(false),
        };
        if !denial.contains("403") {
            return Ok(false);
        }
        unread.clear();
        for (p, want) in [(&opted_out, vec![]), (&annotated, vec!["app", "sidecar"])] {
            let name = p["metadata"]["name"].as_str().unwrap_or("?");
            let injected = admit(cluster, p)?.map_err(|e| {
                anyhow::anyhow!("Pod {name} was denied while the webhook may not read Secrets, so it was read for: {e}")
            })?;
            ensure!(injected == want, "Pod {name} without RBAC: injected {injected:?}, want {want:?}");
            unread.push(format!("{name}: admitted, injected {injected:?}"));
        }
        Ok(true)
    })?;
    t.say(&format!("without the webhook's ClusterRoleBindings, a Pod that needs the read: {denial}"));
    ensure!(
        denial.contains(&format!("may not read Secret {APP_NS}/db-refs (HTTP 403)"))
            && denial.contains("`get` on `secrets`"),
        "the denial does not name Secret {APP_NS}/db-refs and the missing `get` on `secrets`: {denial}"
    );
    t.say(&format!("meanwhile, not read for: {}", unread.join("; ")));

    // No value of either object in the webhook's log.
    let logs = cmd::stdout(cluster.kubectl().args(["-n", HUSH_NS, "logs", "-l", WEBHOOK, "--tail=-1"]))?;
    for value in [plain_value, "postgres://objects-e2e", "debug-objects-e2e"] {
        ensure!(!logs.contains(value), "a value read for --read-referenced-objects is in the webhook's log");
    }
    t.say(&format!(
        "the webhook's log ({} lines): none of the values it read (the plain Secret value, the ConfigMap's)",
        logs.lines().count()
    ));
    Ok(())
}
