//! Acceptance 2: the command the webhook writes, run on this machine with the Pod's env as
//! the kubelet would (`$(VAR)` expansion included, the init container's `injector install`
//! included), reaches the original program with the secrets resolved from a real OpenBao.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::{Webhook, apply, response, review, tool};

use support::kubelet::expand;

#[test]
fn kubelet_expansion_is_emulated_faithfully() {
    let vars = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
    assert_eq!(expand("$(A)-$(B)-$$(A)-$$-$x-${A}", &vars), "1-$(B)-$(A)-$-$x-${A}");
}

/// The container's env as the kubelet hands it to the runtime: literal values, each expanded
/// with the variables defined before it.
fn kubelet_env(container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for var in container["env"].as_array().unwrap() {
        let value = expand(var["value"].as_str().expect("literal values only in this test"), &env);
        env.insert(var["name"].as_str().unwrap().to_owned(), value);
    }
    env
}

/// Maps a path inside the Pod to the directory standing in for the shim's volume.
fn host_path(path: &str, volume: &Path) -> String {
    match path.strip_prefix("/hush/") {
        Some(file) => volume.join(file).to_string_lossy().into_owned(),
        None => path.to_owned(),
    }
}

#[tokio::test]
#[ignore = "needs the static shim and OpenBao (HUSH_TEST_STATIC_INJECTOR, HUSH_TEST_VAULT_ADDR, HUSH_TEST_VAULT_TOKEN, HUSH_TEST_BAO)"]
async fn the_rewritten_command_reaches_the_original_program_with_secrets_from_openbao() {
    let shim = tool("HUSH_TEST_STATIC_INJECTOR");
    let addr = std::env::var("HUSH_TEST_VAULT_ADDR").expect("HUSH_TEST_VAULT_ADDR is not set");
    let token = std::env::var("HUSH_TEST_VAULT_TOKEN").expect("HUSH_TEST_VAULT_TOKEN is not set");
    let bao = tool("HUSH_TEST_BAO");
    let path = format!("secret/hush-webhook-e2e-{}", std::process::id());
    let put = Command::new(&bao)
        .args(["kv", "put", &path, "password=s3cr3t-pw", "api-key=k3y"])
        .env("VAULT_ADDR", &addr)
        .env("VAULT_TOKEN", &token)
        .output()
        .unwrap();
    assert!(put.status.success(), "bao kv put: {}", String::from_utf8_lossy(&put.stderr));
    let data_path = path.replacen("secret/", "secret/data/", 1);

    let script = r#"echo "password=$DB_PASSWORD"; echo "url=$DB_URL"; echo "key=$API_KEY"; echo "arg1=$1"; echo "arg2=$2"; echo "addr=${VAULT_ADDR:-unset}"; echo "token=${VAULT_TOKEN:-unset}""#;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "e2e"},
        "spec": {"containers": [{
            "name": "app", "image": "registry.test/hush/app:1",
            "command": ["/bin/sh", "-c", script, "app"],
            "args": ["$(GREETING), world", "$$(NOT_EXPANDED)"],
            "env": [
                {"name": "GREETING", "value": "hello"},
                {"name": "VAULT_TOKEN", "value": token},
                {"name": "DB_PASSWORD", "value": format!("vault:{data_path}#password")},
                {"name": "DB_URL", "value": format!("postgres://app:${{vault:{data_path}#password}}@db:5432/app")},
                {"name": "API_KEY", "value": format!("vault:{data_path}#api-key")}
            ]
        }]}
    });

    let vault_addr = format!("vault-addr={addr}");
    let webhook = Webhook::start(&["--default", &vault_addr, "--default", "auth-method=token"]);
    let r = review("e2e", "default", &pod);
    let (_, answer) = webhook.post(&webhook.client(), r.to_string()).await;
    let patched = apply(&r, response(&answer, "e2e"));

    // The init container: `injector install /hush`, with /hush standing for its volume.
    let volume = tempfile::tempdir().unwrap();
    let init = &patched["spec"]["initContainers"][0];
    let init_command: Vec<&str> = init["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(init_command, ["/injector", "install", "/hush"]);
    let installed = Command::new(&shim).arg("install").arg(volume.path()).output().unwrap();
    assert!(installed.status.success(), "injector install: {}", String::from_utf8_lossy(&installed.stderr));

    // The app container, started as the kubelet would.
    let container = &patched["spec"]["containers"][0];
    let env = kubelet_env(container);
    let argv: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(container["args"].as_array().unwrap())
        .map(|v| expand(v.as_str().unwrap(), &env))
        .collect();
    assert_eq!(argv[0], "/hush/injector");
    let out = Command::new(host_path(&argv[0], volume.path()))
        .args(&argv[1..])
        .env_clear()
        .envs(&env)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "password=s3cr3t-pw\nurl=postgres://app:s3cr3t-pw@db:5432/app\nkey=k3y\narg1=hello, world\narg2=$(NOT_EXPANDED)\naddr=unset\ntoken=unset\n"
    );
}
