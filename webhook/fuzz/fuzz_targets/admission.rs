//! Any request body: decoding never panics, and when it yields a Pod the mutation accepts, the
//! answer is an AdmissionReview, its patch applies to the object as sent (as the API server
//! applies it), and a second pass over the patched Pod patches nothing.
//!
//! The registry is pure data here: an image's ENTRYPOINT/CMD follow from its name, so the
//! paths that use the image's command, its CMD only, or find none are all reachable.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use webhook::admission::{self, Answer, Subject};
use webhook::annotations::{Annotations, Source};
use webhook::config::MutationConfig;
use webhook::mutate::{self, ImageConfig, ImageKey, Plan};
use webhook::pod::Pod;

fn annotations(pairs: &[(&str, &str)]) -> Annotations {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Annotations::parse(&map, Source::Defaults).expect("the fuzz target's defaults parse")
}

static CONFIG: LazyLock<MutationConfig> = LazyLock::new(|| MutationConfig {
    defaults: annotations(&[("hush.dev/vault-addr", "https://vault.vault.svc:8200")]),
    namespace_defaults: BTreeMap::from([(
        "team".to_owned(),
        annotations(&[("hush.dev/role", "team"), ("hush.dev/tls-secret", "vault-ca")]),
    )]),
    allowed_vault_addrs: vec!["https://vault.".to_owned(), "http://".to_owned()],
    ..MutationConfig::default()
});

fn image_config(key: &ImageKey) -> ImageConfig {
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect();
    if key.image.contains("none") {
        ImageConfig::default()
    } else if key.image.contains("cmd") {
        ImageConfig { entrypoint: Vec::new(), cmd: words(&["/bin/sh", "-c", "echo $(HOME) $$"]) }
    } else {
        ImageConfig { entrypoint: words(&["/entry", "$(VAR)"]), cmd: words(&["serve"]) }
    }
}

fn images(plan: &Plan<'_>) -> BTreeMap<ImageKey, ImageConfig> {
    plan.images()
        .into_iter()
        .map(|key| {
            let config = image_config(&key);
            (key, config)
        })
        .collect()
}

fuzz_target!(|body: &[u8]| {
    let Ok(decoded) = admission::decode_pod(body) else { return };
    let Ok(Subject::CreatePod(pod)) = decoded.subject else { return };
    let namespace = decoded.namespace.as_deref().or(pod.metadata.namespace.as_deref()).unwrap_or("default");
    let Ok(plan) = mutate::plan(&pod, namespace, &CONFIG) else { return };
    let Ok(patch) = plan.patch(&images(&plan)) else { return };
    let answer = Answer::allow(&decoded.uid).with_patch(patch.clone()).encode();
    let answer: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    assert_eq!(answer["response"]["uid"].as_str(), Some(decoded.uid.as_str()));
    if patch.is_empty() {
        return;
    }
    // serde_json's Value refuses numbers beyond f64 that the Pod decoder skips unread; the API
    // server would not send those, and there is no document to apply the patch to.
    let Ok(raw) = serde_json::from_slice::<Value>(body) else { return };
    let mut object = raw["request"]["object"].clone();
    let operations = patch.to_patch();
    if let Err(e) = json_patch::patch(&mut object, &operations) {
        panic!("the patch does not apply: {e}\npatch: {operations:?}\nobject: {}", raw["request"]["object"]);
    }
    let patched: Pod = serde_json::from_value(object.clone()).expect("the patched Pod decodes");
    let again = mutate::plan(&patched, namespace, &CONFIG).expect("the patched Pod plans");
    let again = again.patch(&images(&again)).expect("the patched Pod patches");
    assert!(again.is_empty(), "a second pass patched: {:?}\npatched Pod: {object}", again.to_patch());
});
