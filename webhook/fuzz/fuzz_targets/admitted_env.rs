//! Issue 11.1: what the webhook admits, the shim accepts. Arbitrary annotations (known keys
//! under all three prefixes, arbitrary values) go through the real mutation; when the Pod is
//! admitted, each injected container's env, expanded as the kubelet does, must be accepted by
//! the shim's real configuration parser, with a role for kubernetes/jwt login.
//! The property test `webhook/tests/contract.rs` checks the same with chosen values.
#![no_main]

use std::collections::BTreeMap;
use std::ffi::OsString;

use arbitrary::Arbitrary;
use hush_contract::settings as contract;
use injector::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use webhook::config::MutationConfig;
use webhook::mutate::{ImageConfig, plan};
use webhook::pod::Pod;

const OWN: &[&str] = &[
    "hush.dev/inject",
    "hush.dev/tls-secret",
    "hush.dev/injector-image",
    "hush.dev/platform",
    "vault.security.banzaicloud.io/mutate",
    "vault.security.banzaicloud.io/vault-env-image",
    "vault.security.banzaicloud.io/vault-agent",
    "secrets-webhook.security.bank-vaults.io/provider",
];

#[derive(Debug, Arbitrary)]
struct Entry {
    key: u16,
    value: String,
}

#[path = "../../tests/support/kubelet.rs"]
mod kubelet;
use kubelet::expand;

fuzz_target!(|entries: Vec<Entry>| {
    let mut keys: Vec<String> = contract::SETTINGS.iter().flat_map(|s| s.annotation_keys()).collect();
    keys.extend(OWN.iter().map(|k| (*k).to_owned()));
    let annotations: BTreeMap<String, String> =
        entries.into_iter().map(|e| (keys[usize::from(e.key) % keys.len()].clone(), e.value)).collect();
    let raw = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "annotations": annotations},
        "spec": {"serviceAccountName": "app-sa", "containers": [{
            "name": "app", "image": "app:1", "command": ["/app"],
            "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"}],
        }]}
    });
    let mut config = MutationConfig::default();
    config.defaults.settings.shim.insert("VAULT_ADDR", "https://vault.vault.svc:8200".into());
    let pod: Pod = serde_json::from_value(raw.clone()).unwrap();
    let Ok(plan) = plan(&pod, "default", &config) else { return };
    let images: BTreeMap<_, _> =
        plan.images().into_iter().map(|k| (k, ImageConfig { entrypoint: vec!["/e".into()], cmd: vec![] })).collect();
    let Ok(patch) = plan.patch(&images) else { return };
    let mut doc = raw;
    json_patch::patch(&mut doc, &patch.to_patch()).expect("the patch applies");
    for c in doc["spec"]["containers"].as_array().unwrap() {
        if c["command"][0] != "/hush/injector" {
            continue;
        }
        let mut env = BTreeMap::new();
        for var in c["env"].as_array().into_iter().flatten() {
            let value = expand(var["value"].as_str().unwrap_or_default(), &env);
            env.insert(var["name"].as_str().unwrap().to_owned(), value);
        }
        let parsed = Config::parse(&|name: &str| env.get(name).map(OsString::from));
        let config = parsed.unwrap_or_else(|e| panic!("admitted {annotations:?}, the shim refuses: {e}"));
        if let Err(e @ ConfigError::Missing { name: "VAULT_ROLE", .. }) = config.auth {
            panic!("admitted {annotations:?}, the shim has no role: {e}");
        }
    }
});
