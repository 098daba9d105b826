//! Registry look-ups against a real `docker-registry` on loopback: ENTRYPOINT/CMD of images
//! without `command`, the cache, multi-platform indexes, what happens when it fails, and
//! private images with the Pod's `imagePullSecrets`.

mod support;

use serde_json::{Value, json};
use support::registry::LocalRegistry;
use support::{Webhook, apply, response, review};

fn pod(image: &str, args: Option<&[&str]>, annotations: Value) -> Value {
    let mut container =
        json!({"name": "app", "image": image, "env": [{"name": "K", "value": "vault:secret/data/app#k"}]});
    if let Some(args) = args {
        container["args"] = json!(args);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations},
           "spec": {"containers": [container]}})
}

#[tokio::test]
#[ignore = "needs docker-registry (HUSH_TEST_DOCKER_REGISTRY, set by cargo xtask test)"]
async fn entrypoint_comes_from_the_registry_and_the_second_pod_hits_the_cache() {
    let mut registry = LocalRegistry::start();
    registry.push_image("hush/app:1", "amd64", &["/app/entry", "--from-image"], &["serve", "$(NOT_A_VAR)"]).await;
    let image = format!("{}/hush/app:1", registry.host);
    let webhook = Webhook::start(&["--insecure-registry", &registry.host]);
    let client = webhook.client();

    let first = review("first", "default", &pod(&image, None, json!({})));
    let (status, answer) = webhook.post(&client, first.to_string()).await;
    assert_eq!(status, 200);
    let patched = apply(&first, response(&answer, "first"));
    assert_eq!(
        patched["spec"]["containers"][0]["command"],
        json!(["/hush/injector", "--", "/app/entry", "--from-image", "serve", "$$(NOT_A_VAR)"])
    );

    // The registry is gone: the second Pod of the same image is answered from the cache.
    registry.stop();
    let second = review("second", "default", &pod(&image, Some(&["--port", "80"]), json!({})));
    let (_, answer) = webhook.post(&client, second.to_string()).await;
    let patched = apply(&second, response(&answer, "second"));
    assert_eq!(
        patched["spec"]["containers"][0]["command"],
        json!(["/hush/injector", "--", "/app/entry", "--from-image"])
    );
    assert_eq!(patched["spec"]["containers"][0]["args"], json!(["--port", "80"]));

    let metrics = webhook.metrics(&client).await;
    assert!(metrics.contains(r#"hush_webhook_registry_lookups_total{result="Ok"} 1"#), "{metrics}");
    assert!(metrics.contains("hush_webhook_registry_cache_hits_total 1"), "{metrics}");
}

#[tokio::test]
#[ignore = "needs docker-registry (HUSH_TEST_DOCKER_REGISTRY, set by cargo xtask test)"]
async fn a_multi_platform_index_resolves_to_amd64_unless_the_pod_names_a_platform() {
    let registry = LocalRegistry::start();
    let amd = registry.push_image("hush/multi:amd64", "amd64", &["/amd64-entry"], &[]).await;
    let arm = registry.push_image("hush/multi:arm64", "arm64", &["/arm64-entry"], &[]).await;
    registry.push_index("hush/multi:1", &[("arm64", arm.0, arm.1), ("amd64", amd.0, amd.1)]).await;
    let image = format!("{}/hush/multi:1", registry.host);
    let webhook = Webhook::start(&["--insecure-registry", &registry.host]);
    let client = webhook.client();

    for (uid, annotations, want) in
        [("default", json!({}), "/amd64-entry"), ("arm", json!({"hush.dev/platform": "linux/arm64"}), "/arm64-entry")]
    {
        let r = review(uid, "default", &pod(&image, None, annotations));
        let (_, answer) = webhook.post(&client, r.to_string()).await;
        let patched = apply(&r, response(&answer, uid));
        assert_eq!(patched["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", want]), "{uid}");
    }

    let r = review("riscv", "default", &pod(&image, None, json!({"hush.dev/platform": "linux/riscv64"})));
    let (_, answer) = webhook.post(&client, r.to_string()).await;
    let resp = response(&answer, "riscv");
    assert_eq!(resp["allowed"], false);
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(message.contains(&image) && message.contains("linux/riscv64"), "{message}");
}

#[tokio::test]
#[ignore = "needs docker-registry (HUSH_TEST_DOCKER_REGISTRY, set by cargo xtask test)"]
async fn a_registry_failure_denies_with_the_reason_or_admits_unmutated_with_a_warning() {
    let registry = LocalRegistry::start();
    let missing = format!("{}/hush/missing:1", registry.host);
    let r = review("deny", "default", &pod(&missing, None, json!({})));

    let deny = Webhook::start(&["--insecure-registry", &registry.host, "--registry-timeout", "2"]);
    let (_, answer) = deny.post(&deny.client(), r.to_string()).await;
    let resp = response(&answer, "deny");
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 403);
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(message.contains(&missing), "{message}");

    let admit = Webhook::start(&["--insecure-registry", &registry.host, "--on-registry-error", "admit"]);
    let client = admit.client();
    let r = review("admit", "default", &pod(&missing, None, json!({})));
    let (_, answer) = admit.post(&client, r.to_string()).await;
    let resp = response(&answer, "admit");
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none(), "{answer}");
    assert!(resp["warnings"][0].as_str().unwrap().contains(&missing), "{answer}");
    let metrics = admit.metrics(&client).await;
    assert!(metrics.contains(r#"hush_webhook_registry_lookups_total{result="Error"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"hush_webhook_admissions_total{result="AdmittedOnRegistryError"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry (HUSH_TEST_DOCKER_REGISTRY, set by cargo xtask test)"]
async fn pods_of_a_scale_out_arriving_together_cause_one_registry_look_up() {
    let registry = LocalRegistry::start();
    registry.push_image("hush/scale:1", "amd64", &["/scale"], &[]).await;
    let image = format!("{}/hush/scale:1", registry.host);
    let webhook = std::sync::Arc::new(Webhook::start(&["--insecure-registry", &registry.host]));
    let client = webhook.client();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (webhook, client, image) = (webhook.clone(), client.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            let uid = format!("pod-{i}");
            let r = review(&uid, "default", &pod(&image, None, json!({})));
            let (_, answer) = webhook.post(&client, r.to_string()).await;
            let patched = apply(&r, response(&answer, &uid));
            assert_eq!(patched["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", "/scale"]));
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let metrics = webhook.metrics(&client).await;
    assert!(metrics.contains(r#"hush_webhook_registry_lookups_total{result="Ok"} 1"#), "{metrics}");
    assert!(metrics.contains("hush_webhook_registry_cache_hits_total 15"), "{metrics}");
}

fn private_pod(image: &str, pull_secrets: &[&str]) -> Value {
    let mut pod = pod(image, None, json!({}));
    if !pull_secrets.is_empty() {
        let names: Vec<Value> = pull_secrets.iter().map(|n| json!({"name": n})).collect();
        pod["spec"]["imagePullSecrets"] = json!(names);
    }
    pod
}

/// Posts a review of a Pod of `image` with these pull secrets; returns (review, response).
async fn ask(webhook: &Webhook, image: &str, uid: &str, namespace: &str, secrets: &[&str]) -> (Value, Value) {
    let r = review(uid, namespace, &private_pod(image, secrets));
    let (status, answer) = webhook.post(&webhook.client(), r.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    let resp = response(&answer, uid).clone();
    (r, resp)
}

/// A private image behind htpasswd, with the webhook not reading `imagePullSecrets`: refused,
/// saying how the Pod was looked up and how to turn the reading on. The reading itself (the
/// Pod's Secret used, another registry's skipped, a wrong password, another namespace, a path
/// as a Secret name, the API server's 403, no password in the log) runs against the real API
/// server in `cargo xtask e2e` (xtask/src/e2e.rs `pull_secrets`, xtask/src/e2e/apiserver.rs
/// `pull_secret_cases`); the loopback stand-in for the API server this test used is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs docker-registry (HUSH_TEST_DOCKER_REGISTRY, set by cargo xtask test)"]
async fn without_read_image_pull_secrets_a_private_image_is_refused_saying_how_to_read_them() {
    const PASSWORD: &str = "pw-9f3e1c7a-do-not-log";
    let registry = LocalRegistry::start_with_login("puller", PASSWORD);
    registry.push_image("team-a/private:1", "amd64", &["/private-entry"], &["--serve"]).await;
    let image = format!("{}/team-a/private:1", registry.host);
    let off = Webhook::start(&["--insecure-registry", &registry.host]);
    let denial = |resp: &Value| -> String {
        assert_eq!(resp["allowed"], false, "{resp}");
        let message = resp["status"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(&image), "the denial names the image: {message}");
        message
    };
    let (_, resp) = ask(&off, &image, "none", "team-a", &[]).await;
    let message = denial(&resp);
    assert!(message.contains("anonymously (the Pod has no imagePullSecrets)"), "{message}");
    let (_, resp) = ask(&off, &image, "off", "team-a", &["pull"]).await;
    let message = denial(&resp);
    assert!(message.contains("start it with --read-image-pull-secrets"), "{message}");
    assert!(off.await_log(r#""result":"denied""#).await);
    let log = off.logs.lock().unwrap().join("\n");
    assert!(!log.contains(PASSWORD), "a password was logged: {log}");
}
