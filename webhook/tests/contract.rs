//! Issue 11.1: for every annotation set the webhook admits, the shim's configuration parser
//! accepts the environment the webhook writes. The real mutation (`webhook::mutate`) patches a
//! Pod, the patch is applied, each injected container's env is expanded as the kubelet does
//! (`$$` to `$`, `$(NAME)` from earlier variables), and the real `injector::config::Config::parse`
//! reads it. The fuzz target `webhook/fuzz/fuzz_targets/admitted_env.rs` checks the same.

use std::collections::BTreeMap;
use std::ffi::OsString;

use hush_contract::settings::{self as contract, Grammar};
use injector::config::{Config, ConfigError};
use proptest::prelude::*;
use serde_json::{Value, json};
use webhook::config::MutationConfig;
use webhook::mutate::{ImageConfig, plan};
use webhook::pod::Pod;

/// Every annotation key Hush reads: each setting's under all three prefixes, and the webhook's own.
fn keys() -> Vec<String> {
    let mut keys: Vec<String> = contract::SETTINGS.iter().flat_map(|s| s.annotation_keys()).collect();
    for own in [
        "hush.dev/inject",
        "hush.dev/tls-secret",
        "hush.dev/injector-image",
        "hush.dev/injector-image-pull-policy",
        "hush.dev/platform",
        "vault.security.banzaicloud.io/mutate",
        "vault.security.banzaicloud.io/vault-tls-secret",
        "vault.security.banzaicloud.io/vault-env-image",
        "vault.security.banzaicloud.io/vault-agent",
        "vault.security.banzaicloud.io/run-as-user",
        "secrets-webhook.security.bank-vaults.io/provider",
        "secrets-webhook.security.bank-vaults.io/bao-agent",
    ] {
        keys.push(own.to_owned());
    }
    keys
}

/// Values that sit on the edges of the grammars (and the issue's cases), plus anything.
const EDGES: &[&str] = &[
    "0",
    "0s",
    "-0s",
    "1m30s",
    "1.5h",
    "30",
    "-1s",
    "500ms",
    "9999999h",
    "true",
    "True",
    "T",
    "yes",
    "1",
    "CAP_FLY",
    "NET_ADMIN",
    "net_bind_service,chown",
    "keep",
    "none",
    "https://vault:8200",
    "https://vaült:8200",
    "http://[::1]:8200",
    "http://vault:99999",
    "https://vault.vault.svc:8200/v1?x=$(HOME)",
    "a/../b",
    "/auth/jwt/",
    "auth/",
    "kubernetes",
    "jwt",
    "token",
    "approle",
    "ldap",
    "A,B",
    "A-B",
    "",
    " ",
    "\t",
    "ro:/usr;rw:/tmp",
    "off",
    "secret/data/a, secret/b",
    "debug",
    "DEBUG",
    "restart",
    "exit",
    "25",
    "1000",
    "1001",
    "100000",
    "$(HOME)",
    "$$x",
    "vault:secret/data/a#k",
    ">>vault:es",
    "vault",
    "bao",
    "skip",
    "vault-tls",
    "Always",
    "always",
    "linux/arm64",
    "ghcr.io/bank-vaults/vault-env:latest",
    "hush/injector:1",
    "a\u{0}b",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(EDGES).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => "[a-z0-9/:.,$()_ -]{0,16}",
    ]
}

#[path = "support/kubelet.rs"]
mod kubelet;
use kubelet::expand;

fn app_pod(annotations: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "annotations": annotations},
        "spec": {"serviceAccountName": "app-sa", "containers": [{
            "name": "app", "image": "app:1", "command": ["/app"],
            "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"}],
        }]}
    })
}

/// Admits `annotations` as the webhook would; on admission, returns each injected container's
/// environment as the kubelet gives it to the process.
fn admitted_envs(annotations: &BTreeMap<String, String>) -> Option<Vec<BTreeMap<String, String>>> {
    let mut config = MutationConfig::default();
    config.defaults.settings.shim.insert("VAULT_ADDR", "https://vault.vault.svc:8200".into());
    let raw = app_pod(annotations);
    let pod: Pod = serde_json::from_value(raw.clone()).unwrap();
    let plan = plan(&pod, "default", &config).ok()?;
    let images: BTreeMap<_, _> =
        plan.images().into_iter().map(|k| (k, ImageConfig { entrypoint: vec!["/e".into()], cmd: vec![] })).collect();
    let patch = plan.patch(&images).ok()?;
    let mut doc = raw;
    json_patch::patch(&mut doc, &patch.to_patch()).unwrap();
    let mut envs = Vec::new();
    for c in doc["spec"]["containers"].as_array().unwrap() {
        if c["command"][0] != "/hush/injector" {
            continue;
        }
        let mut env = BTreeMap::new();
        for var in c["env"].as_array().into_iter().flatten() {
            let value = expand(var["value"].as_str().unwrap_or_default(), &env);
            env.insert(var["name"].as_str().unwrap().to_owned(), value);
        }
        envs.push(env);
    }
    Some(envs)
}

/// The shim's verdict on an environment: `Err` names what it refuses.
fn shim_accepts(env: &BTreeMap<String, String>) -> Result<(), String> {
    let config = Config::parse(&|name: &str| env.get(name).map(OsString::from)).map_err(|e| e.to_string())?;
    match config.auth {
        // The role default (the ServiceAccount's name) is written by the webhook.
        Err(e @ ConfigError::Missing { name: "VAULT_ROLE", .. }) => Err(e.to_string()),
        _ => Ok(()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn what_the_webhook_admits_the_shim_accepts(
        entries in proptest::collection::vec((proptest::sample::select(keys()), value()), 0..6)
    ) {
        let annotations: BTreeMap<String, String> = entries.into_iter().collect();
        if let Some(envs) = admitted_envs(&annotations) {
            for env in envs {
                prop_assert_eq!(shim_accepts(&env), Ok(()), "annotations {:?} gave env {:?}", annotations, env);
            }
        }
    }
}

/// Each grammar has admitted values in the run above: the property is not vacuous.
#[test]
fn every_setting_with_an_annotation_is_admitted_for_some_value() {
    for setting in contract::SETTINGS.iter().filter(|s| s.annotation.is_some()) {
        let key = format!("hush.dev/{}", setting.annotation.unwrap());
        let admitted = EDGES.iter().any(|v| {
            let annotations = BTreeMap::from([(key.clone(), (*v).to_owned())]);
            admitted_envs(&annotations).is_some_and(|envs| {
                envs.iter().any(|env| env.contains_key(setting.env) || setting.grammar == Grammar::EnvNames)
            })
        });
        assert!(admitted, "no edge value of {key} is admitted");
    }
}

/// The mismatches of issue 11, one by one: before, each was admitted and every container then
/// exited 78; now the webhook refuses each, naming the annotation.
#[test]
fn the_issue_11_values_are_refused_at_admission() {
    let mut config = MutationConfig::default();
    config.defaults.settings.shim.insert("VAULT_ADDR", "https://vault.vault.svc:8200".into());
    for (key, value) in [
        ("hush.dev/client-timeout", "0s"),
        ("hush.dev/restart-grace", "0s"),
        ("hush.dev/capabilities", "CAP_FLY"),
        ("hush.dev/vault-addr", "https://vaült.example:8200"),
        ("hush.dev/auth-path", "a/../b"),
    ] {
        let pod: Pod = serde_json::from_value(app_pod(&BTreeMap::from([(key.to_owned(), value.to_owned())]))).unwrap();
        let e = plan(&pod, "default", &config).unwrap_err().to_string();
        assert!(e.contains(key), "{key}={value}: {e}");
        // The shim refuses the same value under the variable the annotation writes.
        let setting = hush_contract::settings::by_annotation(hush_contract::settings::Prefix::Hush, &key[9..]).unwrap();
        let env =
            BTreeMap::from([(setting.env.to_owned(), value.to_owned()), ("VAULT_ROLE".to_owned(), "r".to_owned())]);
        assert!(shim_accepts(&env).is_err(), "{key}");
    }
    // Admitted, and accepted by the shim as Bank-Vaults means them.
    for (key, value, var) in [
        ("vault.security.banzaicloud.io/vault-client-timeout", "1m30s", "VAULT_CLIENT_TIMEOUT"),
        ("vault.security.banzaicloud.io/vault-auth-method", "jwt", "VAULT_AUTH_METHOD"),
    ] {
        let envs = admitted_envs(&BTreeMap::from([(key.to_owned(), value.to_owned())])).unwrap();
        assert_eq!(envs[0].get(var).map(String::as_str), Some(value));
        assert_eq!(envs[0].get("VAULT_ROLE").map(String::as_str), Some("app-sa"), "role = ServiceAccount name");
        assert_eq!(shim_accepts(&envs[0]), Ok(()));
    }
}
