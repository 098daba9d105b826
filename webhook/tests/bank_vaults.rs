//! Issue 11.2 and 11.7: the compatibility suite. Bank-Vaults' own documented examples, each
//! naming its origin, go through the real mutation (`webhook::mutate`, the code the server
//! runs). Where a case runs, the patched Pod is started as the kubelet would (the init
//! container's `injector install`, `$(VAR)` expansion, the rewritten command) against a real
//! OpenBao, and the application's output and environment are compared with what Bank-Vaults
//! gives it. Every other case is a listed deliberate difference (webhook/README.md, "Moving
//! from Bank-Vaults").
//!
//! Origins (read from the sources, not recalled):
//! - GS: bank-vaults/bank-vaults.dev `content/headless/deploy-mutating-webhook.md` (commit
//!   bc8fb5a3), the getting-started `vault-test` Deployment;
//! - E2E: bank-vaults/vault-secrets-webhook `e2e/test/*.yaml` (the e2e Deployments) and
//!   `e2e/deploy/vault/vault.yaml` (their secrets: `secret/data/accounts/aws`);
//! - UNIT: bank-vaults/vault-secrets-webhook `pkg/webhook/pod_test.go` (`TestMutatePod` cases).
//!
//! What the harness changes, and why: the Vault address becomes the test's OpenBao (the
//! examples name an in-cluster `https://vault:8200`), the container gets the test's
//! `VAULT_TOKEN` (no Kubernetes API here to review a ServiceAccount token; Hush's kubernetes
//! login is tested in injector/tests/auth.rs), `/hush-tls/ca.crt` is a real PEM certificate in a
//! temporary directory, and a trailing `sleep 10000` becomes `env` so that the run ends and
//! shows the application's whole environment.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};
use webhook::config::MutationConfig;
use webhook::mutate::{ImageConfig, ImageKey, MutateError, plan};
use webhook::pod::Pod;

/// The getting-started `vault-test` Deployment's Pod template (GS), verbatim.
fn getting_started() -> Value {
    json!({
        "metadata": {
            "labels": {"app.kubernetes.io/name": "vault"},
            "annotations": {
                "vault.security.banzaicloud.io/vault-addr": "https://vault:8200",
                "vault.security.banzaicloud.io/vault-role": "default",
                "vault.security.banzaicloud.io/vault-skip-verify": "false",
                "vault.security.banzaicloud.io/vault-tls-secret": "vault-tls",
                "vault.security.banzaicloud.io/vault-agent": "false",
                "vault.security.banzaicloud.io/vault-path": "kubernetes"
            }
        },
        "spec": {
            "serviceAccountName": "default",
            "containers": [{
                "name": "alpine", "image": "alpine",
                "command": ["sh", "-c", "echo $AWS_SECRET_ACCESS_KEY && echo going to sleep... && sleep 10000"],
                "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "vault:secret/data/demosecret/aws#AWS_SECRET_ACCESS_KEY"}]
            }]
        }
    })
}

/// E2E `e2e/test/deployment.yaml`'s Pod template, verbatim (resources left out).
fn e2e_deployment() -> Value {
    json!({
        "metadata": {"annotations": {
            "vault.security.banzaicloud.io/vault-addr": "https://vault.default.svc.cluster.local:8200",
            "vault.security.banzaicloud.io/vault-role": "default",
            "vault.security.banzaicloud.io/vault-tls-secret": "vault-tls",
            "vault.security.banzaicloud.io/vault-path": "kubernetes"
        }},
        "spec": {
            "initContainers": [{
                "name": "init-ubuntu", "image": "ubuntu",
                "command": ["sh", "-c", "echo $AWS_SECRET_ACCESS_KEY && echo initContainers ready"],
                "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "vault:secret/data/accounts/aws#${.AWS_SECRET_ACCESS_KEY}"}]
            }],
            "containers": [
                {
                    "name": "alpine", "image": "alpine",
                    "command": ["sh", "-c", "echo $AWS_SECRET_ACCESS_KEY && echo going to sleep... && sleep 10000"],
                    "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY"}]
                },
                {
                    "name": "redis", "image": "redis",
                    "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY"}]
                }
            ]
        }
    })
}

/// E2E `e2e/test/deployment-init-seccontext.yaml`'s Pod template, verbatim (resources left out).
fn e2e_init_seccontext() -> Value {
    json!({
        "metadata": {"annotations": {
            "vault.security.banzaicloud.io/vault-addr": "https://vault.default.svc.cluster.local:8200",
            "vault.security.banzaicloud.io/vault-role": "default",
            "vault.security.banzaicloud.io/vault-tls-secret": "vault-tls",
            "vault.security.banzaicloud.io/vault-path": "kubernetes",
            "vault.security.banzaicloud.io/run-as-non-root": "true",
            "vault.security.banzaicloud.io/run-as-user": "1000",
            "vault.security.banzaicloud.io/run-as-group": "1000"
        }},
        "spec": {"containers": [{
            "name": "alpine", "image": "alpine",
            "command": ["sh", "-c", "echo $AWS_SECRET_ACCESS_KEY && echo going to sleep... && sleep 10000"],
            "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY"}]
        }]}
    })
}

/// E2E `e2e/test/deployment-template.yaml`'s Pod template (an agent with a ConfigMap).
fn e2e_agent_template() -> Value {
    json!({
        "metadata": {"annotations": {
            "vault.security.banzaicloud.io/vault-addr": "https://vault:8200",
            "vault.security.banzaicloud.io/vault-role": "default",
            "vault.security.banzaicloud.io/vault-skip-verify": "false",
            "vault.security.banzaicloud.io/vault-tls-secret": "vault-tls",
            "vault.security.banzaicloud.io/vault-agent": "false",
            "vault.security.banzaicloud.io/vault-path": "kubernetes",
            "vault.security.banzaicloud.io/vault-agent-configmap": "my-app-vault-agent"
        }},
        "spec": {"serviceAccountName": "default", "containers": [{
            "name": "alpine", "image": "alpine",
            "command": ["sh", "-c", "cat /vault/secrets/config.yaml && echo going to sleep... && sleep 10000"]
        }]}
    })
}

/// UNIT cases: a container of `TestMutatePod` with the annotations its `vaultConfig` stands for.
fn unit(env_value: &str, annotations: Value) -> Value {
    json!({
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{
            "name": "MyContainer", "image": "myimage", "command": ["/bin/bash"],
            "env": [{"name": "myvar", "value": env_value}]
        }]}
    })
}

fn as_pod(template: &Value, name: &str) -> Value {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"].clone(), "spec": template["spec"].clone()});
    pod["metadata"]["name"] = json!(name);
    pod
}

/// What the webhook answers for a Pod: its patch applied (or the denial) and its warnings.
struct Admitted {
    pod: Value,
    warnings: Vec<String>,
}

/// The real mutation, with `redis`'s image config as Docker Hub's `redis` image has it.
fn admit(pod: &Value) -> Result<Admitted, MutateError> {
    let mut config = MutationConfig::default();
    config.defaults.settings.shim.insert("VAULT_ADDR", "https://vault:8200".into());
    let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
    let plan = plan(&parsed, "default", &config)?;
    let images: BTreeMap<ImageKey, ImageConfig> = plan
        .images()
        .into_iter()
        .map(|key| {
            let config = match key.image.as_str() {
                "redis" => {
                    ImageConfig { entrypoint: vec!["docker-entrypoint.sh".into()], cmd: vec!["redis-server".into()] }
                }
                other => panic!("no image config for {other}"),
            };
            (key, config)
        })
        .collect();
    let patch = plan.patch(&images)?;
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch.to_patch()).unwrap();
    Ok(Admitted { pod: out, warnings: plan.warnings().to_vec() })
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

fn env_value<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str())
}

// ---------------------------------------------------------------------------------------------
// Admission: every case, no services needed.

#[test]
fn the_getting_started_deployment_is_admitted_with_a_warning_for_vault_agent_false() {
    let admitted = admit(&as_pod(&getting_started(), "vault-test-7c9f8d5b6-x2x4q")).unwrap();
    let c = container(&admitted.pod, "containers", "alpine");
    assert_eq!(c["command"][0], "/hush/injector");
    // As Bank-Vaults' pod.go writes them (VAULT_ADDR, VAULT_SKIP_VERIFY, VAULT_PATH, VAULT_ROLE,
    // VAULT_CACERT=/vault/tls/ca.crt there; Hush mounts the CA at /hush-tls).
    for (name, value) in [
        ("VAULT_ADDR", "https://vault:8200"),
        ("VAULT_ROLE", "default"),
        ("VAULT_PATH", "kubernetes"),
        ("VAULT_SKIP_VERIFY", "false"),
        ("VAULT_CACERT", "/hush-tls/ca.crt"),
    ] {
        assert_eq!(env_value(c, name), Some(value), "{name}");
    }
    assert!(
        matches!(admitted.warnings.as_slice(), [w] if w.contains("vault.security.banzaicloud.io/vault-agent")),
        "{:?}",
        admitted.warnings
    );
    let tls =
        admitted.pod["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "hush-vault-tls").unwrap();
    assert_eq!(tls["secret"]["items"], json!([{"key": "ca.crt", "path": "ca.crt"}]), "ca.crt alone, as Bank-Vaults");
}

#[test]
fn the_e2e_deployments_are_admitted() {
    let admitted = admit(&as_pod(&e2e_deployment(), "test-deployment-1")).unwrap();
    for (list, name) in [("initContainers", "init-ubuntu"), ("containers", "alpine"), ("containers", "redis")] {
        assert_eq!(container(&admitted.pod, list, name)["command"][0], "/hush/injector", "{name}");
    }
    // The templated key (`#${.AWS_SECRET_ACCESS_KEY}`) was refused before ("'}' is not allowed").
    assert_eq!(
        container(&admitted.pod, "containers", "redis")["command"],
        json!(["/hush/injector", "--", "docker-entrypoint.sh", "redis-server"]),
        "an image without command: its ENTRYPOINT and CMD, as Bank-Vaults' registry look-up"
    );
    assert!(admitted.warnings.is_empty());

    let admitted = admit(&as_pod(&e2e_init_seccontext(), "test-deployment-init-seccontext-1")).unwrap();
    assert_eq!(container(&admitted.pod, "containers", "alpine")["command"][0], "/hush/injector");
    assert_eq!(admitted.warnings.len(), 3, "run-as-non-root, run-as-user, run-as-group: {:?}", admitted.warnings);
    for key in ["run-as-non-root", "run-as-user", "run-as-group"] {
        assert!(admitted.warnings.iter().any(|w| w.contains(&format!("vault.security.banzaicloud.io/{key}"))), "{key}");
    }
}

/// A listed difference: Hush adds no agent (webhook/README.md).
#[test]
fn the_e2e_agent_deployment_is_refused_naming_the_annotation() {
    let e = admit(&as_pod(&e2e_agent_template(), "test-deployment-template-1")).err().unwrap().to_string();
    assert!(e.contains("vault.security.banzaicloud.io/vault-agent-configmap"), "{e}");
}

#[test]
fn the_webhook_unit_test_pods_are_admitted_with_bank_vaults_variables() {
    let annotations = json!({
        "vault.security.banzaicloud.io/vault-addr": "https://vault:8200",
        "vault.security.banzaicloud.io/vault-role": "role",
        "vault.security.banzaicloud.io/vault-path": "path",
        "vault.security.banzaicloud.io/vault-auth-method": "jwt",
        "vault.security.banzaicloud.io/vault-client-timeout": "10s",
    });
    // "Will mutate container with command, no args": args become the original command.
    let admitted = admit(&as_pod(&unit("vault:secret/data/a#k", annotations.clone()), "p")).unwrap();
    let c = container(&admitted.pod, "containers", "MyContainer");
    assert_eq!(c["command"], json!(["/hush/injector", "--", "/bin/bash"]));
    for (name, value) in
        [("VAULT_AUTH_METHOD", "jwt"), ("VAULT_PATH", "path"), ("VAULT_ROLE", "role"), ("VAULT_CLIENT_TIMEOUT", "10s")]
    {
        assert_eq!(env_value(c, name), Some(value), "{name}");
    }
    // "Will mutate container with command, no args, with inline mutation".
    let inline = "scheme://${vault:secret/data/account#username}:${vault:secret/data/account#password}@127.0.0.1:8080";
    let admitted = admit(&as_pod(&unit(inline, annotations.clone()), "p")).unwrap();
    assert_eq!(container(&admitted.pod, "containers", "MyContainer")["command"][0], "/hush/injector");
    // "Will mutate container with env-from-path annotation".
    let mut from_path = annotations.clone();
    from_path["vault.security.banzaicloud.io/vault-env-from-path"] = json!("secrets/application");
    let admitted = admit(&as_pod(&unit("plain", from_path), "p")).unwrap();
    let c = container(&admitted.pod, "containers", "MyContainer");
    assert_eq!(env_value(c, "VAULT_ENV_FROM_PATH"), Some("secrets/application"));
    assert_eq!(c["command"][0], "/hush/injector", "env-from-path alone injects, as pod.go");
    // "Will not mutate container without secrets with correct prefix".
    let mut plain = unit("x", annotations);
    plain["spec"]["containers"][0].as_object_mut().unwrap().remove("env");
    let admitted = admit(&as_pod(&plain, "p")).unwrap();
    assert_eq!(container(&admitted.pod, "containers", "MyContainer")["command"], json!(["/bin/bash"]));
    assert!(admitted.pod["spec"].get("initContainers").is_none(), "nothing injected");
}

// ---------------------------------------------------------------------------------------------
// Running the admitted Pods against OpenBao, as the kubelet would.

use support::kubelet::expand;

struct Bao {
    addr: String,
    token: String,
    bao: std::path::PathBuf,
}

impl Bao {
    fn from_env() -> Bao {
        Bao {
            addr: std::env::var("HUSH_TEST_VAULT_ADDR").expect("HUSH_TEST_VAULT_ADDR is not set"),
            token: std::env::var("HUSH_TEST_VAULT_TOKEN").expect("HUSH_TEST_VAULT_TOKEN is not set"),
            bao: support::tool("HUSH_TEST_BAO"),
        }
    }

    fn put(&self, path: &str, pairs: &[&str]) {
        let out = Command::new(&self.bao)
            .args(["kv", "put", path])
            .args(pairs)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .output()
            .unwrap();
        assert!(out.status.success(), "bao kv put {path}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The examples' secrets (E2E `e2e/deploy/vault/vault.yaml` `startupSecrets`; GS's `vault kv put`).
    fn seed(&self) {
        self.put("secret/accounts/aws", &["AWS_ACCESS_KEY_ID=secretId", "AWS_SECRET_ACCESS_KEY=s3cr3t"]);
        self.put("secret/demosecret/aws", &["AWS_SECRET_ACCESS_KEY=s3cr3t"]);
        self.put("secret/account", &["username=user", "password=pass"]);
    }
}

/// Runs one container of an admitted Pod as the kubelet would; returns (exit code, stdout, stderr).
fn run_container(admitted: &Value, list: &str, name: &str, bao: &Bao, dirs: &Dirs) -> (Option<i32>, String, String) {
    let c = container(admitted, list, name);
    let mut env = BTreeMap::new();
    // The harness's token (see the module documentation), first so that the Pod's own win.
    env.insert("VAULT_TOKEN".to_owned(), bao.token.clone());
    for var in c["env"].as_array().unwrap() {
        let value = expand(var["value"].as_str().unwrap(), &env);
        let value = match var["name"].as_str().unwrap() {
            "VAULT_ADDR" => bao.addr.clone(),
            "VAULT_CACERT" => dirs.tls.path().join("ca.crt").to_string_lossy().into_owned(),
            _ => value,
        };
        env.insert(var["name"].as_str().unwrap().to_owned(), value);
    }
    let mut argv: Vec<String> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["args"].as_array().into_iter().flatten())
        .map(|v| expand(v.as_str().unwrap(), &env))
        .collect();
    assert_eq!(argv[0], "/hush/injector");
    argv[0] = dirs.shim.path().join("injector").to_string_lossy().into_owned();
    for arg in &mut argv {
        *arg = arg.replace("sleep 10000", "env");
    }
    let out =
        Command::new(&argv[0]).args(&argv[1..]).env_clear().envs(&env).env("PATH", "/usr/bin:/bin").output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Dirs {
    shim: tempfile::TempDir,
    tls: tempfile::TempDir,
}

impl Dirs {
    /// The init container's `injector install /hush` into a directory standing for the volume,
    /// and a CA certificate standing for the `vault-tls` Secret's `ca.crt`.
    fn new(admitted: &Value) -> Dirs {
        let init = container(admitted, "initContainers", "hush-injector-install");
        assert_eq!(init["command"], json!(["/injector", "install", "/hush"]));
        let dirs = Dirs { shim: tempfile::tempdir().unwrap(), tls: tempfile::tempdir().unwrap() };
        let shim = support::tool("HUSH_TEST_STATIC_INJECTOR");
        let out = Command::new(shim).arg("install").arg(dirs.shim.path()).output().unwrap();
        assert!(out.status.success(), "injector install: {}", String::from_utf8_lossy(&out.stderr));
        let ca = rcgen::generate_simple_self_signed(vec!["vault".to_owned()]).unwrap();
        std::fs::write(dirs.tls.path().join("ca.crt"), ca.cert.pem()).unwrap();
        dirs
    }
}

/// The lines of `env` output after the application's own lines, as name=value pairs.
fn app_env(stdout: &str) -> BTreeMap<String, String> {
    stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Bank-Vaults strips its setting variables from the application (vault-env `main.go`
/// `sanitizeEnvmap`); so does Hush.
fn assert_no_settings(env: &BTreeMap<String, String>) {
    let leaked: Vec<&String> = env.keys().filter(|k| hush_contract::env::is_config_variable(k)).collect();
    assert!(leaked.is_empty(), "setting variables reached the application: {leaked:?}");
}

#[test]
#[ignore = "needs the static shim and OpenBao (HUSH_TEST_STATIC_INJECTOR, HUSH_TEST_VAULT_ADDR, HUSH_TEST_VAULT_TOKEN, HUSH_TEST_BAO)"]
fn the_getting_started_deployment_runs_with_the_secret_from_openbao() {
    let bao = Bao::from_env();
    bao.seed();
    let admitted = admit(&as_pod(&getting_started(), "vault-test-1")).unwrap().pod;
    let dirs = Dirs::new(&admitted);
    let (code, stdout, stderr) = run_container(&admitted, "containers", "alpine", &bao, &dirs);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.starts_with("s3cr3t\ngoing to sleep...\n"), "{stdout}");
    let env = app_env(&stdout);
    assert_eq!(env.get("AWS_SECRET_ACCESS_KEY").map(String::as_str), Some("s3cr3t"));
    assert_no_settings(&env);
}

#[test]
#[ignore = "needs the static shim and OpenBao (HUSH_TEST_STATIC_INJECTOR, HUSH_TEST_VAULT_ADDR, HUSH_TEST_VAULT_TOKEN, HUSH_TEST_BAO)"]
fn the_e2e_deployments_run_with_the_secrets_from_openbao() {
    let bao = Bao::from_env();
    bao.seed();
    let admitted = admit(&as_pod(&e2e_deployment(), "test-deployment-1")).unwrap().pod;
    let dirs = Dirs::new(&admitted);
    // The init container's key template `${.AWS_SECRET_ACCESS_KEY}`.
    let (code, stdout, stderr) = run_container(&admitted, "initContainers", "init-ubuntu", &bao, &dirs);
    assert_eq!((code, stdout.as_str()), (Some(0), "s3cr3t\ninitContainers ready\n"), "{stderr}");
    let (code, stdout, stderr) = run_container(&admitted, "containers", "alpine", &bao, &dirs);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("s3cr3t\ngoing to sleep...\n"), "{stdout}");
    assert_no_settings(&app_env(&stdout));

    let admitted = admit(&as_pod(&e2e_init_seccontext(), "test-deployment-init-seccontext-1")).unwrap().pod;
    let dirs = Dirs::new(&admitted);
    let (code, stdout, stderr) = run_container(&admitted, "containers", "alpine", &bao, &dirs);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("s3cr3t\n"), "{stdout}");
}

#[test]
#[ignore = "needs the static shim and OpenBao (HUSH_TEST_STATIC_INJECTOR, HUSH_TEST_VAULT_ADDR, HUSH_TEST_VAULT_TOKEN, HUSH_TEST_BAO)"]
fn the_unit_test_pods_run_as_bank_vaults_resolves_them() {
    let bao = Bao::from_env();
    bao.seed();
    let annotations = json!({"vault.security.banzaicloud.io/vault-addr": "https://vault:8200"});
    let run = |value: &str, extra: &[(&str, &str)], script: &str| {
        let mut a = annotations.clone();
        for (k, v) in extra {
            a[*k] = json!(v);
        }
        let mut template = unit(value, a);
        template["spec"]["containers"][0]["command"] = json!(["/bin/sh", "-c", script]);
        let admitted = admit(&as_pod(&template, "p")).unwrap().pod;
        let dirs = Dirs::new(&admitted);
        run_container(&admitted, "containers", "MyContainer", &bao, &dirs)
    };
    // Inline mutation: "scheme://${vault:...#username}:${vault:...#password}@127.0.0.1:8080".
    let inline = "scheme://${vault:secret/data/account#username}:${vault:secret/data/account#password}@127.0.0.1:8080";
    let (code, stdout, stderr) = run(inline, &[], "echo \"$myvar\"");
    assert_eq!((code, stdout.as_str()), (Some(0), "scheme://user:pass@127.0.0.1:8080\n"), "{stderr}");
    // env-from-path: every key of the path becomes a variable (vault-env main.go VAULT_ENV_FROM_PATH).
    let (code, stdout, stderr) = run(
        "plain",
        &[("vault.security.banzaicloud.io/vault-env-from-path", "secret/data/accounts/aws")],
        "echo \"$AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY $myvar\"",
    );
    assert_eq!((code, stdout.as_str()), (Some(0), "secretId s3cr3t plain\n"), "{stderr}");
}

/// Through the running server, as the API server sees it: the warning reaches the
/// AdmissionResponse (kubectl prints `Warning: …`), and a refusal carries code and reason
/// (kubectl prints `(Forbidden)`).
#[tokio::test]
async fn the_server_answers_with_warnings_and_forbidden_denials() {
    let webhook = support::Webhook::start(&["--default", "vault-addr=https://vault:8200"]);
    let client = webhook.client();
    let r = support::review("gs", "default", &as_pod(&getting_started(), "vault-test-1"));
    let (_, answer) = webhook.post(&client, r.to_string()).await;
    let response = support::response(&answer, "gs");
    assert_eq!(response["allowed"], true, "{answer}");
    let warnings = response["warnings"].as_array().unwrap_or_else(|| panic!("no warnings: {answer}"));
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("vault.security.banzaicloud.io/vault-agent")));
    assert_eq!(support::apply(&r, response)["spec"]["containers"][0]["command"][0], "/hush/injector");

    let r = support::review("agent", "default", &as_pod(&e2e_agent_template(), "template-1"));
    let (_, answer) = webhook.post(&client, r.to_string()).await;
    let response = support::response(&answer, "agent");
    assert_eq!(response["allowed"], false, "{answer}");
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["reason"], "Forbidden");
    assert!(response["status"]["message"].as_str().unwrap().contains("vault-agent-configmap"), "{answer}");
}
