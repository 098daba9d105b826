//! A malformed AdmissionReview never crashes the webhook: random bytes and valid reviews with
//! random parts replaced get an HTTP 400 or a well-formed answer, in process (no TLS needed).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use webhook::annotations::{Annotations, Source};
use webhook::config::MutationConfig;
use webhook::metrics::Metrics;
use webhook::registry::{Registry, RegistryConfig};
use webhook::server::{App, Limits, OnRegistryError, admit};

fn app() -> App {
    let defaults = std::collections::BTreeMap::from([(
        "hush.dev/vault-addr".to_owned(),
        "https://vault.vault.svc:8200".to_owned(),
    )]);
    let metrics = Arc::new(Metrics::default());
    App {
        mutation: MutationConfig {
            defaults: Annotations::parse(&defaults, Source::Defaults).unwrap(),
            ..MutationConfig::default()
        }
        .into(),
        // Nothing listens on port 9: a look-up fails at once, which is one more path to cover.
        registry: Registry::new(
            RegistryConfig {
                insecure: vec!["127.0.0.1:9".into()],
                ttl: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            },
            metrics.clone(),
        ),
        metrics,
        on_registry_error: OnRegistryError::Deny,
        canned: None,
        limits: Limits::default(),
        ready: AtomicBool::new(true),
        referenced_objects: None,
    }
}

fn valid_review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns", "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "annotations": {"hush.dev/role": "r"}},
                "spec": {
                    "initContainers": [{"name": "i", "image": "127.0.0.1:9/i:1", "env": [{"name": "A", "value": "vault:secret/data/a#b"}]}],
                    "containers": [{"name": "c", "image": "c", "command": ["/c"], "args": ["x"],
                        "env": [{"name": "B", "value": "${vault:secret/data/a#b}"}], "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                    "volumes": [{"name": "v", "emptyDir": {}}]}}
        }
    })
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(json!("vault:")),
        Just(json!("${vault:x")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer of `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            map.iter().for_each(|(k, v)| pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out))
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn check(app: &App, runtime: &tokio::runtime::Runtime, body: &[u8]) -> Result<(), TestCaseError> {
    let (status, answer, _) = runtime.block_on(admit(app, body));
    if status == 400 {
        return Ok(());
    }
    prop_assert_eq!(status.as_u16(), 200);
    let answer: Value = serde_json::from_slice(&answer).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&answer["kind"], "AdmissionReview");
    prop_assert!(answer["response"]["allowed"].is_boolean(), "{}", answer);
    prop_assert!(answer["response"]["uid"].is_string(), "{}", answer);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_get_a_400(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (status, _, _) = runtime.block_on(admit(&app(), &body));
        prop_assert_eq!(status.as_u16(), 400);
    }

    #[test]
    fn reviews_with_a_part_replaced_get_a_clear_answer(pick in any::<prop::sample::Index>(), replacement in any_json()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut review = valid_review();
        let mut all = Vec::new();
        pointers(&review, String::new(), &mut all);
        let target = pick.get(&all[1..]).clone();
        *review.pointer_mut(&target).unwrap() = replacement;
        check(&app(), &runtime, review.to_string().as_bytes())?;
    }
}
