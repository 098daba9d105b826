//! Acceptance 1: Pods made with `kubectl create deployment|job|cronjob … --dry-run=client -o json`
//! (see `tests/fixtures/README.md`) and hand-written Pods go through a running `webhook` over
//! TLS; each patch applies to the raw object (`json-patch`), the result validates against the
//! Pod schema of the current Kubernetes version (`kubernetes-validate`), and a second pass
//! yields no patch. Images without `command` are looked up in a real `docker-registry`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::registry::LocalRegistry;
use support::{Webhook, apply, patch_of, response, review, tool};

const SHIM: &str = "/hush/injector";
const INIT: &str = "hush-injector-install";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture as a Pod (workloads become the Pod their controller would create), images on `registry`.
fn load(name: &str, registry: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap().replace("registry.test", registry);
    let object: Value = serde_json::from_str(&text).unwrap();
    let template = match object["kind"].as_str().unwrap() {
        "Pod" => return object,
        "Deployment" | "Job" => &object["spec"]["template"],
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"],
        other => panic!("{name}: unexpected kind {other}"),
    };
    let mut metadata = template["metadata"].clone();
    // The API server has turned generateName into a name before admission.
    metadata["name"] = json!(format!("{}-7c9f8d5b6-x2x4q", object["metadata"]["name"].as_str().unwrap()));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no {name}"))
}

fn env_of(c: &Value) -> Vec<(String, String)> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
        .collect()
}

fn has_env(c: &Value, name: &str, value: &str) -> bool {
    env_of(c).contains(&(name.to_owned(), value.to_owned()))
}

/// The "restricted" checks (shared with the chart's tests) on a Pod.
fn restricted_violations(pod: &Value) -> Vec<String> {
    support::restricted::violations(&pod["spec"])
}

enum Expect {
    /// Mutated; then these checks on the patched Pod.
    Mutated(fn(&Value)),
    Unchanged,
    Denied(&'static str),
}

fn expectations() -> Vec<(&'static str, Expect)> {
    vec![
        (
            "deployment.json",
            Expect::Mutated(|p| {
                let c = container(p, "containers", "web");
                assert_eq!(c["command"], json!([SHIM, "--", "/app/web", "--listen=:8080"]));
                assert!(has_env(c, "VAULT_ADDR", "https://vault.vault.svc:8200"));
                assert!(has_env(c, "PLAIN", "hello"));
            }),
        ),
        (
            "job.json",
            Expect::Mutated(|p| {
                let c = container(p, "containers", "migrate");
                assert_eq!(c["command"], json!([SHIM, "--", "/migrate", "--to=latest"]));
                assert_eq!(p["spec"]["restartPolicy"], "Never");
            }),
        ),
        (
            "cronjob.json",
            Expect::Mutated(|p| {
                let c = container(p, "containers", "report");
                assert_eq!(c["command"], json!([SHIM, "--", "/app/entry", "serve"]));
                assert!(c.get("args").is_none());
            }),
        ),
        (
            "pod-no-command.json",
            Expect::Mutated(|p| {
                assert_eq!(container(p, "containers", "app")["command"], json!([SHIM, "--", "/app/entry", "serve"]));
            }),
        ),
        (
            "pod-no-command-args.json",
            Expect::Mutated(|p| {
                let c = container(p, "containers", "app");
                assert_eq!(c["command"], json!([SHIM, "--", "/app/entry"]));
                assert_eq!(c["args"], json!(["--verbose", "$(GREETING)"]));
            }),
        ),
        (
            "pod-init-containers.json",
            Expect::Mutated(|p| {
                let names: Vec<&str> = p["spec"]["initContainers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, [INIT, "migrate", "wait", "proxy"]);
                assert_eq!(container(p, "initContainers", "migrate")["command"], json!([SHIM, "--", "/migrate", "up"]));
                assert_eq!(container(p, "initContainers", "wait")["command"], json!(["sleep", "1"]));
                assert_eq!(container(p, "initContainers", "proxy")["command"], json!(["/proxy"]));
                assert_eq!(container(p, "containers", "app")["command"], json!([SHIM, "--", "/app"]));
            }),
        ),
        (
            "pod-envfrom.json",
            Expect::Mutated(|p| {
                let c = container(p, "containers", "app");
                assert_eq!(c["command"], json!([SHIM, "--", "/app"]));
                assert!(has_env(c, "VAULT_ROLE", "envfrom"));
                assert_eq!(c["envFrom"].as_array().unwrap().len(), 2);
            }),
        ),
        (
            "pod-valuefrom-bank-vaults.json",
            Expect::Mutated(|p| {
                let c = container(p, "containers", "app");
                assert_eq!(c["command"], json!([SHIM, "--", "/app"]));
                for (k, v) in [
                    ("VAULT_ROLE", "legacy"),
                    ("VAULT_PATH", "kubernetes"),
                    ("VAULT_SKIP_VERIFY", "false"),
                    ("VAULT_ENV_PASSTHROUGH", "VAULT_ADDR"),
                    ("VAULT_CACERT", "/hush-tls/ca.crt"),
                ] {
                    assert!(has_env(c, k, v), "{k}={v} in {c}");
                }
                let volumes = p["spec"]["volumes"].as_array().unwrap();
                // Only `ca.crt` is projected (b078a10): the Secret may also hold keys.
                assert!(volumes.contains(&json!({"name": "hush-vault-tls",
                    "secret": {"secretName": "vault-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}})));
                // Bank-Vaults' `mutate` counts only as `skip`; this Pod's references come through
                // `valueFrom`, so it asks with `hush.dev/inject: "true"` (issue 11).
            }),
        ),
        (
            "pod-several-containers.json",
            Expect::Mutated(|p| {
                assert_eq!(container(p, "containers", "plain")["command"], json!(["/plain"]));
                assert!(container(p, "containers", "plain").get("volumeMounts").is_none());
                let s = container(p, "containers", "secretive");
                assert_eq!(s["command"], json!([SHIM, "--", "/secretive"]));
                assert_eq!(s["args"], json!(["--db", "$(DB_URL)"]));
                assert!(has_env(s, "VAULT_ROLE", "own-role"));
                assert_eq!(env_of(s).iter().filter(|(n, _)| n == "VAULT_ROLE").count(), 1);
                assert_eq!(s["volumeMounts"][0], json!({"name": "data", "mountPath": "/data"}));
                assert_eq!(
                    container(p, "containers", "no-command")["command"],
                    json!([SHIM, "--", "/app/entry", "serve"])
                );
            }),
        ),
        (
            "pod-volume-names.json",
            Expect::Mutated(|p| {
                let names: Vec<&str> =
                    p["spec"]["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
                // The last is the init container's empty mount over the token directory (issue 11).
                assert_eq!(names, ["hush-injector", "hush-injector-1", "hush-injector-2", "hush-injector-no-token"]);
                let c = container(p, "containers", "app");
                assert_eq!(c["volumeMounts"][0], json!({"name": "hush-injector", "mountPath": "/config"}));
                assert_eq!(c["volumeMounts"][1]["name"], "hush-injector-2");
                assert_eq!(container(p, "initContainers", INIT)["volumeMounts"][0]["name"], "hush-injector-2");
            }),
        ),
        (
            "pod-restricted.json",
            Expect::Mutated(|p| {
                assert_eq!(restricted_violations(p), Vec::<String>::new(), "still passes \"restricted\"");
            }),
        ),
        ("pod-no-references.json", Expect::Unchanged),
        ("pod-opt-out.json", Expect::Unchanged),
        (
            "pod-unknown-fields.json",
            Expect::Mutated(|p| {
                assert_eq!(p["spec"]["hostnameOverrideFromTheFuture"], "x");
                let c = container(p, "containers", "app");
                assert_eq!(c["fieldFromTheFuture"], json!({"keep": "me"}));
                assert_eq!(c["env"][0]["futureEnvField"], 1);
            }),
        ),
        (
            "pod-bad-annotation.json",
            Expect::Denied("annotation `hush.dev/skip-verify` has an invalid value \"perhaps\""),
        ),
        ("pod-bad-reference.json", Expect::Denied("container `app`, variable `K`: invalid Vault reference")),
    ]
}

fn validate(files: &[PathBuf], strict: bool) {
    let mut cmd = Command::new(tool("HUSH_TEST_KUBERNETES_VALIDATE"));
    cmd.args(["--kubernetes-version", "1.37.0", "--quiet"]);
    if strict {
        cmd.arg("--strict");
    }
    let out = cmd.args(files).output().unwrap();
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "needs docker-registry and kubernetes-validate (HUSH_TEST_DOCKER_REGISTRY, HUSH_TEST_KUBERNETES_VALIDATE)"]
async fn fixtures_are_mutated_over_tls_apply_cleanly_validate_and_are_left_alone_the_second_time() {
    // Fail early, with the variable's name, if a tool is missing.
    tool("HUSH_TEST_KUBERNETES_VALIDATE");
    let registry = LocalRegistry::start();
    for image in ["hush/app:1", "hush/web:1", "hush/migrate:1", "hush/proxy:1"] {
        registry.push_image(image, "amd64", &["/app/entry"], &["serve"]).await;
    }
    let webhook = Webhook::start(&["--insecure-registry", &registry.host]);
    let client = webhook.client();
    let out = tempfile::tempdir().unwrap();
    let (mut strict, mut lax) = (Vec::new(), Vec::new());
    let mut seen = 0;

    for (name, expect) in expectations() {
        let pod = load(name, &registry.host);
        let uid = format!("uid-{name}");
        let r = review(&uid, "team-a", &pod);
        let (status, answer) = webhook.post(&client, r.to_string()).await;
        assert_eq!(status, 200, "{name}: {answer}");
        let resp = response(&answer, &uid);
        match expect {
            Expect::Denied(message) => {
                assert_eq!(resp["allowed"], false, "{name}: {answer}");
                let got = resp["status"]["message"].as_str().unwrap();
                assert!(got.contains(message), "{name}: {got}");
                continue;
            }
            Expect::Unchanged => {
                assert_eq!(resp["allowed"], true, "{name}: {answer}");
                assert!(patch_of(resp).0.is_empty(), "{name}: {answer}");
                continue;
            }
            Expect::Mutated(check) => {
                assert_eq!(resp["allowed"], true, "{name}: {answer}");
                assert!(!patch_of(resp).0.is_empty(), "{name}: no patch");
                let patched = apply(&r, resp);
                check(&patched);
                // Our init container comes first and passes "restricted" on its own.
                let init = &patched["spec"]["initContainers"][0];
                assert_eq!(init["name"], INIT, "{name}");
                let alone = json!({"spec": {"initContainers": [init]}});
                assert_eq!(restricted_violations(&alone), Vec::<String>::new(), "{name}");

                // Second pass (reinvocation): nothing to do.
                let again = review(&format!("{uid}-again"), "team-a", &patched);
                let (_, answer) = webhook.post(&client, again.to_string()).await;
                let resp = response(&answer, &format!("{uid}-again"));
                assert_eq!(resp["allowed"], true, "{name}: {answer}");
                assert!(resp.get("patch").is_none(), "{name}: second pass patched: {answer}");

                let file = out.path().join(name);
                std::fs::write(&file, serde_json::to_vec_pretty(&patched).unwrap()).unwrap();
                let original = out.path().join(format!("original-{name}"));
                std::fs::write(&original, serde_json::to_vec_pretty(&pod).unwrap()).unwrap();
                if name == "pod-unknown-fields.json" {
                    lax.extend([file, original]);
                } else {
                    strict.extend([file, original]);
                }
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 12);
    validate(&strict, true);
    validate(&lax, false);

    // The validator does reject a broken Pod (so the check above means something).
    let broken = out.path().join("broken.json");
    let mut pod = load("pod-restricted.json", &registry.host);
    pod["spec"]["containers"][0]["command"] = json!("/not/an/array");
    std::fs::write(&broken, pod.to_string()).unwrap();
    let out = Command::new(tool("HUSH_TEST_KUBERNETES_VALIDATE")).arg("--quiet").arg(&broken).output().unwrap();
    assert!(!out.status.success(), "kubernetes-validate accepted a broken Pod");
    assert!(String::from_utf8_lossy(&out.stdout).contains("spec.containers.0.command"));
}

#[test]
fn the_restricted_checker_catches_violations() {
    let pod = json!({"spec": {"containers": [{"name": "root", "securityContext": {"runAsUser": 0}}],
                              "volumes": [{"name": "host", "hostPath": {"path": "/"}}]}});
    let v = restricted_violations(&pod);
    assert!(v.iter().any(|m| m.contains("disallowed type")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("UID 0")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("seccompProfile")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("drop ALL")), "{v:?}");
}
