//! `POST /objects` on the running binary over TLS, as the API server calls the chart's
//! ValidatingWebhookConfiguration for Secrets and ConfigMaps: every request is allowed and
//! never patched; an object whose values hold Vault references gets warnings naming the object
//! and its keys, never a value.

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

/// `--read-referenced-objects`: the ConfigMaps and Secrets a Pod takes into its environment
/// are read from the API server (the loopback stand-in for its GETs), and a container whose
/// only references come that way is injected without an annotation, as Bank-Vaults does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_read_referenced_objects_a_pod_whose_references_come_through_env_from_is_injected() {
    use support::registry::SecretsApi;
    const PLAIN: &str = "hunter2-4c1d-do-not-log";
    let api = SecretsApi::start(vec![
        (("shop", "db"), secret("db", &[("DB_PASSWORD", REFERENCE), ("DB_USER", PLAIN)])),
        (("shop", "cfg"), config_map("cfg", &[("URL", TEMPLATE), ("LOG", "debug")])),
    ])
    .await;
    let env = api.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sa_dir = api.dir.path().to_str().unwrap().to_owned();
    let on = Webhook::start_with_env(&["--read-referenced-objects", "--service-account-dir", &sa_dir], &env, |_| {});
    let client = on.client();

    let pod = |name: &str, annotations: Value, env_from: Value, env: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": annotations},
               "spec": {"containers": [
                   {"name": "app", "image": "app:1", "command": ["/app"], "envFrom": env_from, "env": env},
                   {"name": "sidecar", "image": "side:1", "command": ["/side"]}]}})
    };
    // Which containers the answer injects (their command starts with the shim).
    let injected = |review: &Value, answer: &Value| -> Vec<String> {
        let r = response(answer, review["request"]["uid"].as_str().unwrap());
        assert_eq!(r["allowed"], true, "{answer}");
        let patched = support::apply(review, r);
        patched["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["command"][0] == "/hush/injector")
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let ask = |pod: Value| {
        let (webhook, client) = (&on, &client);
        async move {
            let review = support::review(pod["metadata"]["name"].as_str().unwrap(), "shop", &pod);
            let (status, answer) = webhook.post(client, review.to_string()).await;
            assert_eq!(status, 200, "{answer}");
            (review, answer)
        }
    };

    // envFrom a Secret holding a reference: that container, not the other.
    let (r, a) = ask(pod("env-from", json!({}), json!([{"secretRef": {"name": "db"}}]), json!([]))).await;
    assert_eq!(injected(&r, &a), ["app"]);
    // valueFrom one ConfigMap key: the key with a template counts, the plain one does not.
    let key = |k: &str| json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": k}}}]);
    let (r, a) = ask(pod("value-from", json!({}), json!([]), key("URL"))).await;
    assert_eq!(injected(&r, &a), ["app"]);
    let (r, a) = ask(pod("plain-key", json!({}), json!([]), key("LOG"))).await;
    assert!(injected(&r, &a).is_empty(), "{a}");
    // A missing object (optional or not, the kubelet decides): nothing to inject.
    let (r, a) =
        ask(pod("missing", json!({}), json!([{"secretRef": {"name": "gone", "optional": true}}]), json!([]))).await;
    assert!(injected(&r, &a).is_empty(), "{a}");
    let before = api.requests().len();
    // An opted-out Pod and a Pod injected anyway are not read for.
    let (r, a) =
        ask(pod("opted-out", json!({"hush.dev/inject": "false"}), json!([{"secretRef": {"name": "db"}}]), json!([])))
            .await;
    assert!(injected(&r, &a).is_empty(), "{a}");
    let (r, a) =
        ask(pod("annotated", json!({"hush.dev/inject": "true"}), json!([{"secretRef": {"name": "db"}}]), json!([])))
            .await;
    assert_eq!(injected(&r, &a), ["app", "sidecar"]);
    assert_eq!(api.requests().len(), before, "{:?}", api.requests());
    // Every read was a GET with the ServiceAccount's token, of the Pod's namespace.
    let requests = api.requests();
    assert!(
        requests.iter().all(|(line, token)| *token && line.starts_with("GET /api/v1/namespaces/shop/")),
        "{requests:?}"
    );
    assert!(requests.iter().any(|(line, _)| line == "GET /api/v1/namespaces/shop/configmaps/cfg"), "{requests:?}");
    // No value reached a log line.
    let log = on.logs.lock().unwrap().join("\n");
    for value in ["secret/data", PLAIN, "postgres://"] {
        assert!(!log.contains(value), "a value reached the log ({value}): {log}");
    }

    // An object the webhook may not read: denied, naming it and the missing permission.
    let wrong = tempfile::tempdir().unwrap();
    std::fs::copy(api.dir.path().join("ca.crt"), wrong.path().join("ca.crt")).unwrap();
    std::fs::write(wrong.path().join("token"), "not-the-token").unwrap();
    let forbidden = Webhook::start_with_env(
        &["--read-referenced-objects", "--service-account-dir", wrong.path().to_str().unwrap()],
        &env,
        |_| {},
    );
    let p = pod("forbidden", json!({}), json!([{"secretRef": {"name": "db"}}]), json!([]));
    let review = support::review("forbidden", "shop", &p);
    let (_, answer) = forbidden.post(&forbidden.client(), review.to_string()).await;
    let r = response(&answer, "forbidden");
    assert_eq!(r["allowed"], false, "{answer}");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.contains("may not read Secret shop/db (HTTP 403)"), "{message}");
    assert!(message.contains("`get` on `secrets`"), "{message}");

    // Without the flag (the default) the same Pod is left alone: it needs the annotation.
    let off = Webhook::start(&[]);
    let p = pod("off", json!({}), json!([{"secretRef": {"name": "db"}}]), json!([]));
    let review = support::review("off", "shop", &p);
    let (_, answer) = off.post(&off.client(), review.to_string()).await;
    assert!(injected(&review, &answer).is_empty(), "{answer}");
}
