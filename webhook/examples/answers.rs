//! Every answer of a fixed set of admissions, computed in process, written to one file: run it
//! before and after a change to the decoder, the mutation or the encoder and compare the
//! files byte for byte (`cmp`). The set: every fixture Pod alone and with annotation
//! variants, under three configurations (with `--default`s, without, with namespace
//! defaults); the bench's review; odd bodies; and a few hundred generated Pods (escapes,
//! non-ASCII text, nulls, unknown fields, bad references, duplicate keys). Images are given a
//! fixed ENTRYPOINT/CMD (no registry).
//!
//! `cargo run --release -p webhook --example answers -- OUT`

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use webhook::annotations::{Annotations, Platform, Source};
use webhook::config::MutationConfig;
use webhook::mutate::{ImageConfig, ImageKey};
use webhook::server::{App, Limits, OnRegistryError, admit};

fn annotations(pairs: &[(&str, &str)]) -> Annotations {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Annotations::parse(&map, Source::Defaults).expect("defaults parse")
}

fn image_config(image: &str) -> ImageConfig {
    let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect();
    if image.contains("none") {
        ImageConfig::default()
    } else if image.contains("cmd") {
        ImageConfig { entrypoint: Vec::new(), cmd: words(&["/bin/sh", "-c", "echo $(HOME) $$"]) }
    } else {
        ImageConfig { entrypoint: words(&["/app/entry", "$(VAR)"]), cmd: words(&["serve", "--x=\"y\""]) }
    }
}

fn app(mutation: MutationConfig, images: &BTreeSet<String>) -> App {
    let metrics = Arc::new(webhook::metrics::Metrics::default());
    let registry = webhook::registry::Registry::new(
        webhook::registry::RegistryConfig {
            insecure: Vec::new(),
            ttl: Duration::from_secs(3600),
            timeout: Duration::from_millis(1),
        },
        metrics.clone(),
    );
    for image in images {
        for platform in [Platform::linux_amd64(), Platform::parse("linux/arm64").unwrap()] {
            registry.preload(ImageKey { image: image.clone(), platform }, &image_config(image));
        }
    }
    App {
        mutation: mutation.into(),
        registry,
        metrics,
        on_registry_error: OnRegistryError::Deny,
        canned: None,
        limits: Limits::default(),
        ready: std::sync::atomic::AtomicBool::new(true),
        referenced_objects: None,
    }
}

/// The fixture as the Pod its controller would create.
fn fixture_pod(path: &Path) -> Value {
    let object: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let template = match object["kind"].as_str().unwrap() {
        "Pod" => return object,
        "Deployment" | "Job" => &object["spec"]["template"],
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"],
        other => panic!("unexpected kind {other}"),
    };
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(format!("{}-7c9f8d5b6-x2x4q", object["metadata"]["name"].as_str().unwrap()));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

fn review(pod: &Value, namespace: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": namespace, "operation": "CREATE", "object": pod}
    }))
    .unwrap()
}

/// Reviews as raw text around `object` (itself raw text).
fn raw_review(operation: &str, kind: &str, object: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u\"2","kind":{{"group":"","version":"v1","kind":"{kind}"}},"namespace":"team","operation":"{operation}","object":{object}}}}}"#
    )
    .into_bytes()
}

const VARIANTS: &[&[(&str, &str)]] = &[
    &[],
    &[("hush.dev/inject", "true")],
    &[("hush.dev/inject", "false")],
    &[("hush.dev/tls-secret", "vault-ca"), ("hush.dev/auth-method", "jwt")],
    &[("vault.security.banzaicloud.io/mutate", "skip")],
    &[("hush.dev/nope", "1")],
    &[("hush.dev/command", r#"{"app":["/x","$y"],"web":["/w"]}"#), ("hush.dev/platform", "linux/arm64")],
    &[("vault.security.banzaicloud.io/vault-agent", "false"), ("hush.dev/env-daemon", "true")],
    &[("hush.dev/vault-addr", "http://elsewhere:8200"), ("hush.dev/injector-image", "example/inj:2")],
];

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &["A", "DB_PASSWORD", "VAULT_ADDR", "VAULT_ROLE", "HUSH_LANDLOCK", "x\\u00e9", "T\\\"Q", "B_1"];
const VALUES: &[&str] = &[
    "plain",
    "vault:secret/data/app#key",
    "vault:secret/data/app#key#2",
    ">>vault:pki/issue/web#certificate#{\\\"common_name\\\":\\\"a\\\"}",
    "bao:kv/app#pw",
    "vault:v1:abcd==",
    "vault:secret/data/app",
    "vault:secret/../app#k",
    "pre ${vault:secret/data/app#k} post",
    "pre ${vault:secret/data/app#k post",
    "\\u0024{vault:secret/data/x#y}",
    "vault:secret/data/\\u00e9t\\u00e9#cl\\u00e9",
    "vault:secret/data/app#${.user}:${.password}",
    "a $(B) $$ c",
    "caf\\u00e9 \\n \\t \\\\",
    "vault:se cret#k",
    "",
    "vault:/secret/data/x#k",
    "${>>vault:db/creds/x#password}",
];

fn gen_container(rng: &mut Rng, name: &str) -> String {
    let mut fields: Vec<String> = vec![format!(r#""name":"{name}""#)];
    match rng.below(4) {
        0 => {}
        1 => fields.push(r#""image":"registry.test/app:1""#.into()),
        2 => fields.push(r#""image":"registry.test/cmd:1","args":["--a"]"#.into()),
        _ => fields.push(r#""image":null"#.into()),
    }
    match rng.below(4) {
        0 => fields.push(r#""command":["/bin/app","$(X)","caf\u00e9"]"#.into()),
        1 => fields.push(r#""command":[]"#.into()),
        2 => fields.push(r#""command":null"#.into()),
        _ => {}
    }
    match rng.below(5) {
        0 => {}
        1 => fields.push(r#""env":null"#.into()),
        2 => fields.push(r#""env":[]"#.into()),
        _ => {
            let n = rng.below(5) + 1;
            let vars: Vec<String> = (0..n)
                .map(|_| {
                    let name = rng.pick(NAMES);
                    match rng.below(6) {
                        0 => format!(r#"{{"name":"{name}","valueFrom":{{"secretKeyRef":{{"name":"s","key":"k"}}}}}}"#),
                        1 => format!(r#"{{"value":null,"name":"{name}"}}"#),
                        _ => format!(r#"{{"name":"{name}","value":"{}"}}"#, rng.pick(VALUES)),
                    }
                })
                .collect();
            fields.push(format!(r#""env":[{}]"#, vars.join(",")));
        }
    }
    match rng.below(5) {
        0 => fields.push(r#""volumeMounts":[{"name":"data","mountPath":"/data","readOnly":true}]"#.into()),
        1 => fields.push(r#""volumeMounts":[{"name":"x","mountPath":"/hush/"}]"#.into()),
        2 => fields.push(r#""volumeMounts":[]"#.into()),
        _ => {}
    }
    if rng.below(3) == 0 {
        fields.push(r#""envFrom":[{"configMapRef":{"name":"c"}},{"secretRef":{"name":"s","optional":true}}]"#.into());
    }
    if rng.below(3) == 0 {
        fields.push(r#""ports":[{"containerPort":8080,"protocol":"TCP"}],"resources":{"limits":{"cpu":1.5e0}}"#.into());
    }
    if rng.below(20) == 0 {
        fields.push(r#""name":"dup""#.into());
    }
    if rng.below(25) == 0 {
        fields.push(r#""env":7"#.into());
    }
    // Field order varies.
    let k = rng.below(fields.len() as u64) as usize;
    fields.rotate_left(k);
    format!("{{{}}}", fields.join(","))
}

fn gen_pod(rng: &mut Rng) -> String {
    let mut spec: Vec<String> = Vec::new();
    let n = rng.below(3) + if rng.below(10) == 0 { 0 } else { 1 };
    let containers: Vec<String> = (0..n).map(|i| gen_container(rng, ["app", "web", "side"][i as usize])).collect();
    spec.push(format!(r#""containers":[{}]"#, containers.join(",")));
    match rng.below(4) {
        0 => spec.push(format!(r#""initContainers":[{}]"#, gen_container(rng, "init"))),
        1 => spec.push(r#""initContainers":[]"#.into()),
        _ => {}
    }
    match rng.below(5) {
        0 => spec.push(r#""volumes":[{"name":"hush-injector","emptyDir":{}}]"#.into()),
        1 => spec.push(r#""volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"d"}}]"#.into()),
        2 => spec.push(r#""volumes":null"#.into()),
        3 => spec.push(
            r#""volumes":[{"name":"hush-vault-tls","secret":{"secretName":"vault-ca","items":[{"key":"ca.crt","path":"ca.crt"}]}}]"#
                .into(),
        ),
        _ => {}
    }
    match rng.below(4) {
        0 => spec.push(r#""serviceAccountName":"svc\u00e9""#.into()),
        1 => spec.push(r#""serviceAccountName":"""#.into()),
        _ => {}
    }
    if rng.below(4) == 0 {
        spec.push(r#""imagePullSecrets":[{"name":"pull"},{}],"securityContext":{"runAsUser":1000}"#.into());
    }
    let k = rng.below(spec.len() as u64) as usize;
    spec.rotate_left(k);
    let mut metadata = vec![r#""name":"p""#.to_owned()];
    match rng.below(6) {
        0 => metadata.push(r#""annotations":{"hush.dev/inject":"true","other":"x"}"#.into()),
        1 => metadata.push(
            r#""annotations":{"hush.dev/role":"r\u00e9","vault.security.banzaicloud.io/vault-role":"r\u00e9"}"#.into(),
        ),
        2 => metadata.push(r#""annotations":null,"labels":{"a":"b"}"#.into()),
        3 => metadata.push(r#""generateName":"p-","namespace":"ns""#.into()),
        _ => {}
    }
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{{}}},"spec":{{{}}},"status":{{}}}}"#,
        metadata.join(","),
        spec.join(",")
    )
}

fn main() {
    let out = std::env::args().nth(1).expect("usage: answers OUT");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in &files {
        let pod = fixture_pod(file);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (i, variant) in VARIANTS.iter().enumerate() {
            let mut pod = pod.clone();
            for (k, v) in variant.iter() {
                pod["metadata"]["annotations"][*k] = json!(v);
            }
            for namespace in ["shop", "team"] {
                bodies.push((format!("{name} variant {i} ns {namespace}"), review(&pod, namespace)));
            }
        }
    }
    // The bench's review.
    let bench = std::env::temp_dir().join(format!("hush-answers-bench-{}.json", std::process::id()));
    let status = std::process::Command::new(std::env::var("HUSH_BENCH_BINARY").unwrap_or_default())
        .env("HUSH_BENCH_WRITE_REVIEW", &bench)
        .status();
    match status {
        Ok(s) if s.success() => {
            bodies.push(("bench review".into(), std::fs::read(&bench).unwrap()));
            let _ = std::fs::remove_file(&bench);
        }
        _ => eprintln!("HUSH_BENCH_BINARY not set or failed: the bench's review is left out"),
    }
    let good =
        r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"vault:a/b#c"}]}]}}"#;
    let odd: Vec<(&str, Vec<u8>)> = vec![
        ("not json", b"nope".to_vec()),
        ("not utf-8", b"{\"a\":\"\xff\"}".to_vec()),
        ("empty", Vec::new()),
        ("array", b"[]".to_vec()),
        ("v1beta1", br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#.to_vec()),
        ("no request", br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec()),
        ("secret", raw_review("CREATE", "Secret", good)),
        ("update", raw_review("UPDATE", "Pod", good)),
        ("delete no object", raw_review("DELETE", "Pod", "null")),
        ("create null object", raw_review("CREATE", "Pod", "null")),
        ("bad pod", raw_review("CREATE", "Pod", r#"{"spec":{"containers":7}}"#)),
        ("bad pod 2", raw_review("CREATE", "Pod", r#"{"spec":{"containers":[{"env":[]}]}}"#)),
        ("bad pod 3", raw_review("CREATE", "Pod", r#"{"metadata":{"annotations":{"a":1}},"spec":{}}"#)),
        ("trailing", [raw_review("CREATE", "Pod", good), b" x".to_vec()].concat()),
        ("trailing space", [raw_review("CREATE", "Pod", good), b" \n".to_vec()].concat()),
        ("good", raw_review("CREATE", "Pod", good)),
        ("no spec", raw_review("CREATE", "Pod", r#"{"metadata":{}}"#)),
        ("empty object", raw_review("CREATE", "Pod", "{}")),
        ("big number", raw_review("CREATE", "Pod", &good.replace(r#""name":"p""#, r#""name":"p","x":1e999"#))),
        (
            "subresource",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"subResource":"ephemeralcontainers","operation":"UPDATE","object":{}}}"#.to_vec(),
        ),
        (
            "escaped uid and spaces",
            b" { \"apiVersion\" : \"admission.k8s.io/v1\" , \"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"\\u00e9\\n\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},\"operation\":\"CREATE\",\"object\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"env\":[{\"name\":\"A\",\"value\":\"vault:a/b#c\"}]}]}}} } ".to_vec(),
        ),
        (
            "escaped apiVersion",
            br#"{"apiVersion":"admission.k8s.io\/v1","kind":"Admission\u0052eview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{}}}"#.to_vec(),
        ),
    ];
    bodies.extend(odd.into_iter().map(|(n, b)| (n.to_owned(), b)));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..400 {
        let namespace = ["team", "shop"][i % 2];
        let pod = gen_pod(&mut rng);
        bodies.push((
            format!("generated {i}"),
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"g{i}","kind":{{"group":"","version":"v1","kind":"Pod"}},"namespace":"{namespace}","operation":"CREATE","object":{pod}}}}}"#
            )
            .into_bytes(),
        ));
    }

    // Every image named anywhere gets a fixed ENTRYPOINT/CMD.
    let mut images: BTreeSet<String> =
        ["registry.test/app:1", "registry.test/cmd:1", "registry.test/none:1"].map(str::to_owned).into();
    for (_, body) in &bodies {
        let text = String::from_utf8_lossy(body);
        for piece in text.split("\"image\":\"").skip(1) {
            if let Some(end) = piece.find('"') {
                images.insert(piece[..end].to_owned());
            }
        }
    }
    let defaults = annotations(&[("hush.dev/vault-addr", "https://vault.vault.svc:8200"), ("hush.dev/role", "bench")]);
    let configs = [
        (
            "defaults",
            MutationConfig {
                injector_image: "registry.test/hush/injector:1".into(),
                defaults: defaults.clone(),
                ..Default::default()
            },
        ),
        ("none", MutationConfig::default()),
        (
            "namespace",
            MutationConfig {
                defaults,
                namespace_defaults: BTreeMap::from([(
                    "team".to_owned(),
                    annotations(&[("hush.dev/role", "team"), ("hush.dev/tls-secret", "vault-ca")]),
                )]),
                allowed_vault_addrs: vec!["https://vault.".to_owned()],
                dir: "/opt/hush/".into(),
                ..Default::default()
            },
        ),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut text = String::new();
    let mut count = 0;
    for (config_name, config) in configs {
        let app = app(config, &images);
        for (name, body) in &bodies {
            let (status, answer, outcome) = runtime.block_on(admit(&app, body));
            count += 1;
            writeln!(text, "== {config_name} / {name}: {status} {outcome:?}\n{}", String::from_utf8_lossy(&answer))
                .unwrap();
        }
    }
    std::fs::write(&out, text).unwrap();
    eprintln!("{count} answers written to {out}");
}
