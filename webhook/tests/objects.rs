//! `POST /objects` on the running binary over TLS, as the API server calls the chart's
//! ValidatingWebhookConfiguration for Secrets and ConfigMaps: every request is allowed and
//! never patched; an object whose values hold Vault references gets warnings naming the object
//! and its keys, never a value. What `--read-referenced-objects` does with the objects Pods
//! take into their environment is checked against a real API server, in `cargo xtask e2e`
//! (`xtask/src/e2e/objects.rs`), which replaced this file's loopback stand-in for its GETs.

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use support::{Webhook, response};

/// An AdmissionReview as the API server sends it for a Secret or ConfigMap.
fn review(uid: &str, operation: &str, object: &Value, old: &Value) -> Value {
    let kind = object["kind"].as_str().or(old["kind"].as_str()).unwrap();
    let resource = if kind == "Secret" { "secrets" } else { "configmaps" };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": resource},
            "requestKind": {"group": "", "version": "v1", "kind": kind},
            "requestResource": {"group": "", "version": "v1", "resource": resource},
            "name": object["metadata"]["name"].as_str().or(old["metadata"]["name"].as_str()).unwrap(),
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind(operation)}
        }
    })
}

/// `CreateOptions`, `UpdateOptions`, `DeleteOptions`.
fn options_kind(operation: &str) -> String {
    let (first, rest) = operation.split_at(1);
    format!("{first}{}Options", rest.to_lowercase())
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

const REFERENCE: &str = "vault:secret/data/shop/db#password";
const TEMPLATE: &str = "postgres://app:${vault:secret/data/shop/db#password}@db:5432/shop";

fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| ((*k).to_owned(), json!(b64(v)))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": "shop", "uid": "8a0c", "creationTimestamp": "2026-12-02T06:00:00Z"},
           "data": data})
}

fn config_map(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"}, "data": data})
}

/// POSTs to `/objects`; the response of an HTTP 200 answer, checked: allowed, no patch.
async fn ask(webhook: &Webhook, client: &reqwest::Client, uid: &str, body: &Value) -> Value {
    let answer = client.post(webhook.url("/objects")).json(body).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let answer: Value = answer.json().await.unwrap();
    let r = response(&answer, uid).clone();
    assert_eq!(r["allowed"], true, "{answer}");
    assert!(r.get("patch").is_none() && r.get("patchType").is_none() && r.get("status").is_none(), "{answer}");
    r
}

fn warnings(r: &Value) -> Vec<String> {
    r["warnings"].as_array().map(|a| a.iter().map(|w| w.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn secrets_and_configmaps_with_references_are_allowed_with_warnings_naming_keys_only() {
    let webhook = Webhook::start(&[]);
    let client = webhook.client();

    // A Secret with a reference, a template and a plain value.
    let s = secret("db", &[("password", REFERENCE), ("url", TEMPLATE), ("user", "shop")]);
    let r = ask(&webhook, &client, "s1", &review("s1", "CREATE", &s, &Value::Null)).await;
    let w = warnings(&r);
    assert_eq!(w.len(), 2, "{r}");
    assert_eq!(
        w[0],
        "Secret shop/db: keys `password`, `url` hold Vault references; Hush leaves them as written (it never writes \
         secrets into Secrets or ConfigMaps)"
    );
    assert_eq!(
        w[1],
        "Secret shop/db: a Pod annotated hush.dev/inject: \"true\" that takes them through envFrom or valueFrom gets \
         them resolved by Hush's shim at start; mounted as files they stay as written"
    );

    // The same Secret without references: nothing to say.
    let s = secret("plain", &[("password", "hunter2"), ("user", "shop")]);
    let r = ask(&webhook, &client, "s2", &review("s2", "CREATE", &s, &Value::Null)).await;
    assert!(r.get("warnings").is_none(), "{r}");

    // A ConfigMap with one reference, updated (the old object is ignored).
    let old = config_map("cfg", &[("DB_PASSWORD", "x")]);
    let cm = config_map("cfg", &[("DB_PASSWORD", "bao:secret/data/shop/db#password"), ("LOG", "debug")]);
    let r = ask(&webhook, &client, "c1", &review("c1", "UPDATE", &cm, &old)).await;
    let w = warnings(&r);
    assert_eq!(w.len(), 2, "{r}");
    assert!(w[0].starts_with("ConfigMap shop/cfg: key `DB_PASSWORD` holds a Vault reference; Hush leaves it"), "{r}");

    // A ConfigMap without references, and a DELETE (no object).
    let cm = config_map("plain", &[("LOG", "debug")]);
    let r = ask(&webhook, &client, "c2", &review("c2", "CREATE", &cm, &Value::Null)).await;
    assert!(r.get("warnings").is_none(), "{r}");
    let r = ask(&webhook, &client, "c3", &review("c3", "DELETE", &Value::Null, &cm)).await;
    assert!(r.get("warnings").is_none(), "{r}");

    let metrics = webhook.metrics(&client).await;
    assert!(metrics.contains(r#"hush_webhook_object_reviews_total{result="Warned"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"hush_webhook_object_reviews_total{result="Clean"} 3"#), "{metrics}");
    // Not counted as Pod admissions.
    assert!(!metrics.contains("hush_webhook_admissions_total{"), "{metrics}");

    assert!(webhook.await_log(r#""result":"warned""#).await);
    let log = webhook.logs.lock().unwrap().join("\n");
    assert!(log.contains(r#""object":"shop/db""#) && log.contains("DB_PASSWORD"), "{log}");
    for value in ["secret/data", "hunter2", "postgres://", "debug\""] {
        assert!(!log.contains(value), "a value reached the log ({value}): {log}");
    }
}

#[tokio::test]
async fn the_objects_path_refuses_nothing() {
    let webhook = Webhook::start(&[]);
    let client = webhook.client();

    // A Pod sent to /objects (a misregistration): allowed, untouched, not mutated.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "K", "value": REFERENCE}]}]}});
    let mut r = review("p1", "CREATE", &config_map("x", &[]), &Value::Null);
    r["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    r["request"]["object"] = pod;
    let answer = ask(&webhook, &client, "p1", &r).await;
    assert!(answer.get("warnings").is_none(), "{answer}");

    // A Secret that does not decode: allowed.
    let mut bad = review("b1", "CREATE", &secret("s", &[]), &Value::Null);
    bad["request"]["object"]["data"] = json!(["not", "a", "map"]);
    ask(&webhook, &client, "b1", &bad).await;

    // Bank-Vaults' opt-out: no warning.
    let mut skipped = secret("skipped", &[("password", REFERENCE)]);
    skipped["metadata"]["annotations"] = json!({"vault.security.banzaicloud.io/mutate": "skip"});
    let answer = ask(&webhook, &client, "k1", &review("k1", "CREATE", &skipped, &Value::Null)).await;
    assert!(answer.get("warnings").is_none(), "{answer}");

    // Not a review at all: HTTP 400 (the API server then applies failurePolicy: Ignore).
    let answer = client.post(webhook.url("/objects")).body("nope").send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let answer = client.get(webhook.url("/objects")).send().await.unwrap();
    assert_eq!(answer.status(), 405);

    let metrics = webhook.metrics(&client).await;
    assert!(metrics.contains(r#"hush_webhook_object_reviews_total{result="Unreadable"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"hush_webhook_object_reviews_total{result="Invalid"} 1"#), "{metrics}");

    // /mutate still refuses a Secret: the two paths stay apart.
    let (status, answer) =
        webhook.post(&client, review("m1", "CREATE", &secret("s", &[]), &Value::Null).to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(response(&answer, "m1")["allowed"], false, "{answer}");
}

/// Without `--read-referenced-objects` (the default) the webhook reads nothing: a container
/// whose only references would come through `envFrom` is left alone, and the same Pod with
/// `hush.dev/inject: "true"` is injected. With the flag, the reads are checked against a real
/// API server by `cargo xtask e2e` (`xtask/src/e2e/objects.rs`).
#[tokio::test]
async fn without_read_referenced_objects_an_env_from_pod_needs_the_annotation() {
    let off = Webhook::start(&[]);
    let client = off.client();
    let pod = |name: &str, annotations: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations},
               "spec": {"containers": [
                   {"name": "app", "image": "app:1", "command": ["/app"], "envFrom": [{"secretRef": {"name": "db"}}]},
                   {"name": "sidecar", "image": "side:1", "command": ["/side"]}]}})
    };
    let mut injected = Vec::new();
    for (name, annotations) in [("off", json!({})), ("annotated", json!({"hush.dev/inject": "true"}))] {
        let review = support::review(name, "shop", &pod(name, annotations));
        let (status, answer) = off.post(&client, review.to_string()).await;
        assert_eq!(status, 200, "{answer}");
        let r = response(&answer, name);
        assert_eq!(r["allowed"], true, "{answer}");
        let patched = support::apply(&review, r);
        let names: Vec<String> = patched["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["command"][0] == "/hush/injector")
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        injected.push(names);
    }
    assert_eq!(injected, [vec![], vec!["app".to_owned(), "sidecar".to_owned()]]);
}
