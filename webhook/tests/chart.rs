//! The Helm chart (`charts/hush`): linted and rendered by Helm's own engine (PyPI
//! `helm-python-sdk`, Helm v4's Go SDK, through `charts/tests/render.py`) for the default values
//! and the guard, cert-manager, existing-Secret and RBAC variants; every built-in object
//! validated against the Kubernetes 1.37 schemas (`kubernetes-validate --strict`); the webhook
//! Pods checked against Pod Security "restricted"; and the real `webhook` binary started with
//! the rendered Deployment's arguments and the chart-generated certificate, answering an
//! AdmissionReview on the path and port the MutatingWebhookConfiguration and Service name.
//! Plus a consistency check (not a build: there is no docker daemon here) that
//! `docker/Dockerfile`'s shim stage builds the way `cargo xtask build-shim` does.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::{apply, patch_of, response, review, tool};

const NAMESPACE: &str = "hush-system";
const RELEASE: &str = "hush";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct Rendered {
    lint: Value,
    values: Value,
    objects: Vec<Value>,
}

impl Rendered {
    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        match self.all(kind).as_slice() {
            [one] => one,
            other => panic!("expected one {kind}, found {}", other.len()),
        }
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.objects.iter().map(|o| o["kind"].as_str().unwrap().to_owned()).collect()
    }
}

/// Runs the render script; `Err(stderr)` when Helm refuses the values.
fn try_render(values: &Value) -> Result<Rendered, String> {
    let out = Command::new(tool("HUSH_TEST_PYTHON"))
        .arg(root().join("charts/tests/render.py"))
        .arg(root().join("charts/hush"))
        .arg(values.to_string())
        .args([RELEASE, NAMESPACE])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = doc["objects"].as_array_mut().unwrap().iter_mut().map(|o| o["object"].take()).collect();
    Ok(Rendered { lint: doc["lint"].take(), values: doc["values"].take(), objects })
}

fn render(values: &Value) -> Rendered {
    try_render(values).unwrap_or_else(|e| panic!("rendering with {values} failed:\n{e}"))
}

/// Lint in strict mode (warnings are errors); only informational messages may remain.
fn assert_lint_clean(r: &Rendered, variant: &str) {
    assert_eq!(r.lint["errors"], json!([]), "{variant}: {}", r.lint);
    let serious: Vec<&Value> =
        r.lint["messages"].as_array().unwrap().iter().filter(|m| m["severity"].as_u64().unwrap() >= 2).collect();
    assert!(serious.is_empty(), "{variant}: lint: {serious:?}");
}

/// Runs kubernetes-validate on `objects`; `Err(output)` when it rejects any.
fn kubernetes_validate(objects: &[&Value], strict: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let file = dir.path().join(format!("{i}-{}.json", o["kind"].as_str().unwrap()));
            std::fs::write(&file, o.to_string()).unwrap();
            file
        })
        .collect();
    let mut cmd = Command::new(tool("HUSH_TEST_KUBERNETES_VALIDATE"));
    cmd.args(["--kubernetes-version", "1.37.0", "--quiet"]);
    if strict {
        cmd.arg("--strict");
    }
    let out = cmd.args(&files).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// cert-manager's CRDs are not among kubernetes-validate's schemas, so its objects are checked
/// here: apiVersion, kind, and the fields cert-manager requires of each.
fn check_cert_manager(o: &Value) {
    assert_eq!(o["apiVersion"], "cert-manager.io/v1", "{o}");
    assert_eq!(o["metadata"]["namespace"], NAMESPACE, "{o}");
    assert!(o["metadata"]["name"].as_str().is_some_and(|n| !n.is_empty()), "{o}");
    let spec = &o["spec"];
    match o["kind"].as_str().unwrap() {
        "Issuer" => {
            let kinds = ["selfSigned", "ca", "acme", "vault", "venafi"];
            let set: Vec<&String> = spec.as_object().unwrap().keys().collect();
            assert!(set.len() == 1 && kinds.contains(&set[0].as_str()), "Issuer needs exactly one type: {o}");
            if set[0] == "ca" {
                assert!(spec["ca"]["secretName"].is_string(), "{o}");
            }
        }
        "Certificate" => {
            assert!(spec["secretName"].is_string(), "{o}");
            assert!(spec["issuerRef"]["name"].is_string(), "{o}");
            assert!(["Issuer", "ClusterIssuer"].contains(&spec["issuerRef"]["kind"].as_str().unwrap()), "{o}");
            assert!(spec["commonName"].is_string() || spec["dnsNames"].is_array(), "{o}");
            for field in ["duration", "renewBefore"] {
                if let Some(d) = spec[field].as_str() {
                    assert!(d.ends_with('h') && d[..d.len() - 1].parse::<u32>().is_ok(), "{field}: {o}");
                }
            }
        }
        other => panic!("unexpected cert-manager kind {other}"),
    }
}

fn validate_all(r: &Rendered, variant: &str) {
    let (cert_manager, builtin): (Vec<&Value>, Vec<&Value>) =
        r.objects.iter().partition(|o| o["apiVersion"].as_str().unwrap().starts_with("cert-manager.io/"));
    cert_manager.into_iter().for_each(check_cert_manager);
    if let Err(e) = kubernetes_validate(&builtin, true) {
        panic!("{variant}: kubernetes-validate rejected the chart:\n{e}");
    }
}

fn webhook_container(r: &Rendered) -> &Value {
    let containers = r.one("Deployment")["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    containers.iter().find(|c| c["name"] == "webhook").unwrap()
}

fn args_of(c: &Value) -> Vec<String> {
    c["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
}

fn mwc_hook(r: &Rendered) -> &Value {
    let hooks = r.one("MutatingWebhookConfiguration")["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    &hooks[0]
}

fn vwc_hook(r: &Rendered) -> &Value {
    let hooks = r.one("ValidatingWebhookConfiguration")["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    &hooks[0]
}

fn excluded_namespaces(r: &Rendered) -> Vec<String> {
    let expr = &mwc_hook(r)["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(expr["key"], "kubernetes.io/metadata.name");
    assert_eq!(expr["operator"], "NotIn");
    expr["values"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// The `hush.dev/…` keys of webhook/README.md's settings table.
fn readme_keys() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("webhook/README.md")).unwrap();
    let settings = readme.split("## Settings").nth(1).unwrap().split("\n## ").next().unwrap();
    settings
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split_once('`').map(|(k, _)| k.to_owned()))
        // The header row names the column `hush.dev/…`.
        .filter(|k| !k.contains('/'))
        .collect()
}

#[test]
#[ignore = "needs helm-python-sdk and kubernetes-validate (HUSH_TEST_PYTHON, HUSH_TEST_KUBERNETES_VALIDATE)"]
fn chart_lints_renders_and_validates_in_every_variant() {
    let variants = [
        ("defaults", json!({})),
        ("guard", json!({"guard": {"enabled": true}})),
        ("guard-no-pod-names", json!({"guard": {"enabled": true, "podNames": {"enabled": false}}})),
        (
            "guard-tracepoint-privileged",
            json!({"guard": {"enabled": true, "mode": "tracepoint", "privileged": true,
            "allowCgroups": ["/sys/fs/cgroup/system.slice/agent.service"], "metrics": {"enabled": false}}}),
        ),
        ("cert-manager", json!({"tls": {"mode": "certManager"}})),
        (
            "cert-manager-issuer",
            json!({"tls": {"mode": "certManager",
            "certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "corp-ca"}}}}),
        ),
        ("existing-secret", json!({"tls": {"mode": "secret", "secretName": "webhook-tls", "caBundle": "Q0E="}})),
        ("no-object-warnings", json!({"webhook": {"objectWarnings": {"enabled": false}}})),
        (
            "everything",
            json!({"guard": {"enabled": true}, "tls": {"mode": "certManager"},
            "webhook": {"readImagePullSecrets": true, "readReferencedObjects": true, "replicas": 3, "podAntiAffinity": "hard",
                "namespaceDefaults": {"team-a": {"hush.dev/role": "a"}},
                "allowedVaultAddrs": ["https://vault."], "insecureRegistries": ["registry.local:5000"],
                "objectWarnings": {"timeoutSeconds": 10, "objectSelector": {"matchLabels": {"team": "a"}}},
                "defaults": {"vault-addr": "https://vault.vault.svc:8200", "env-daemon": "true"},
                "networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                    "dnsTo": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]}},
            "images": {"webhook": {"digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}}),
        ),
    ];
    let base: BTreeSet<String> = [
        "Deployment",
        "MutatingWebhookConfiguration",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    .map(String::from)
    .into();
    for (variant, values) in &variants {
        let r = render(values);
        assert_lint_clean(&r, variant);
        validate_all(&r, variant);
        let kinds = r.kinds();
        assert!(kinds.is_superset(&base), "{variant}: {kinds:?}");
        let guard = values["guard"]["enabled"] == true;
        assert_eq!(kinds.contains("DaemonSet"), guard, "{variant}");
        assert_eq!(excluded_namespaces(&r).contains(&"hush-guard".to_owned()), guard, "{variant}");
        let warnings = values["webhook"]["objectWarnings"]["enabled"] != false;
        assert_eq!(kinds.contains("ValidatingWebhookConfiguration"), warnings, "{variant}");
        if warnings {
            // The Secret/ConfigMap registration skips the same namespaces as the Pod one.
            assert_eq!(vwc_hook(&r)["namespaceSelector"], mwc_hook(&r)["namespaceSelector"], "{variant}");
            assert_eq!(vwc_hook(&r)["clientConfig"]["caBundle"], mwc_hook(&r)["clientConfig"]["caBundle"], "{variant}");
        }
        let cert_manager = values["tls"]["mode"] == "certManager";
        assert_eq!(kinds.contains("Certificate"), cert_manager, "{variant}");
        assert_eq!(kinds.contains("Secret"), values["tls"]["mode"].is_null(), "{variant}: the generated Secret");
        let reads =
            values["webhook"]["readImagePullSecrets"] == true || values["webhook"]["readReferencedObjects"] == true;
        let roles_of = |component: &str| {
            let of = |kind| {
                r.all(kind)
                    .into_iter()
                    .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/component"] == component)
                    .count()
            };
            (of("ClusterRole"), of("ClusterRoleBinding"))
        };
        assert_eq!(roles_of("webhook").0 > 0, reads, "{variant}");
        // The guard's only role: reading Pods, for the names in its audit lines (on by default).
        let pod_names = guard && values["guard"]["podNames"]["enabled"] != false;
        assert_eq!(roles_of("guard"), if pod_names { (1, 1) } else { (0, 0) }, "{variant}");
        assert!(!kinds.contains("Role") && !kinds.contains("RoleBinding"), "{variant}");
    }
    // The validator does reject a broken rendering, so the passes above mean something.
    let r = render(&json!({}));
    let mut broken = r.one("Deployment").clone();
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("https");
    let err = kubernetes_validate(&[&broken], true).unwrap_err();
    assert!(err.contains("containerPort"), "{err}");
    let mut unknown = r.one("MutatingWebhookConfiguration").clone();
    unknown["webhooks"][0]["reinvocation"] = json!("IfNeeded");
    assert!(kubernetes_validate(&[&unknown], true).is_err(), "strict mode must reject unknown fields");
}

#[test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
fn chart_refuses_values_that_cannot_work() {
    for (values, message) in [
        (json!({"tls": {"mode": "selfmade"}}), "tls.mode must be generate, certManager or secret"),
        (json!({"tls": {"mode": "secret", "secretName": "x"}}), "tls.mode=secret needs tls.caBundle"),
        (json!({"webhook": {"registryTimeout": 5}}), "webhook.registryTimeout must be below webhook.timeoutSeconds"),
        (
            json!({"guard": {"enabled": true, "mode": "strict"}}),
            "guard.mode must be auto, lsm, fentry, tracepoint or audit",
        ),
        (json!({"guard": {"pinRoot": "/var/run/hush"}}), "guard.pinRoot must be under /sys/fs/bpf/"),
    ] {
        match try_render(&values) {
            Ok(_) => panic!("{values} rendered"),
            Err(e) => assert!(e.contains(message), "{values}: {e}"),
        }
    }
}

#[test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
fn webhook_objects_are_least_privilege_and_registered_as_the_issue_asks() {
    let r = render(&json!({}));
    let hook = mwc_hook(&r);
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(
        hook["rules"],
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
        "resources": ["pods"], "scope": "Namespaced"}])
    );
    assert_eq!(excluded_namespaces(&r), [NAMESPACE, "kube-system"]);

    // Secrets and ConfigMaps: warnings only, so validating, never blocking, its own deadline;
    // Helm's release Secrets are not sent.
    let objects = vwc_hook(&r);
    assert_eq!(objects["name"], "objects.hush.dev");
    assert_eq!(objects["sideEffects"], "None");
    assert_eq!(objects["failurePolicy"], "Ignore");
    assert_eq!(objects["timeoutSeconds"], 3);
    assert!(objects.get("reinvocationPolicy").is_none());
    assert_eq!(
        objects["rules"],
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
        "resources": ["secrets", "configmaps"], "scope": "Namespaced"}])
    );
    assert_eq!(objects["namespaceSelector"], hook["namespaceSelector"]);
    assert_eq!(
        objects["objectSelector"],
        json!({"matchExpressions": [{"key": "owner", "operator": "NotIn", "values": ["helm"]}]})
    );
    assert_eq!(objects["clientConfig"]["service"]["path"], "/objects");
    assert_eq!(objects["clientConfig"]["caBundle"], hook["clientConfig"]["caBundle"]);

    // Generated TLS: the caBundle is the CA of the Secret the Deployment mounts.
    let secret = r.one("Secret");
    assert_eq!(hook["clientConfig"]["caBundle"], secret["data"]["ca.crt"]);
    let pod = &r.one("Deployment")["spec"]["template"]["spec"];
    let tls_volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "tls").unwrap();
    assert_eq!(tls_volume["secret"]["secretName"], secret["metadata"]["name"]);

    // Pod Security "restricted", and no API access at all.
    assert_eq!(support::restricted::violations(pod), Vec::<String>::new());
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(webhook_container(&r)["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(r.one("ServiceAccount")["automountServiceAccountToken"], false);
    assert!(r.all("ClusterRole").is_empty() && r.all("ClusterRoleBinding").is_empty());

    // Two replicas kept apart, one of them always available.
    assert_eq!(r.one("Deployment")["spec"]["replicas"], 2);
    assert_eq!(r.one("PodDisruptionBudget")["spec"]["minAvailable"], 1);
    let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(anti["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        anti["podAffinityTerm"]["labelSelector"]["matchLabels"],
        r.one("Deployment")["spec"]["selector"]["matchLabels"]
    );

    // Network: in only on the webhook port; out only DNS and registries.
    let np = &r.one("NetworkPolicy")["spec"];
    assert_eq!(np["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["ingress"], json!([{"ports": [{"port": 8443, "protocol": "TCP"}]}]));
    let egress: BTreeSet<String> = np["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_array().unwrap().iter().map(|p| format!("{}/{}", p["port"], p["protocol"])))
        .collect();
    assert_eq!(egress, ["443/\"TCP\"", "53/\"TCP\"", "53/\"UDP\""].map(String::from).into());

    // Secret reads only behind the switch, and then `get` only.
    let r = render(&json!({"webhook": {"readImagePullSecrets": true}}));
    assert_eq!(r.one("ClusterRole")["rules"], json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]));
    assert_eq!(r.one("ClusterRoleBinding")["subjects"][0]["name"], r.one("ServiceAccount")["metadata"]["name"]);
    assert_eq!(r.one("Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"], true);
    assert!(args_of(webhook_container(&r)).contains(&"--read-image-pull-secrets".to_owned()));

    // ConfigMaps and Secrets that Pods take into their environment: behind their own switch,
    // `get` only, with the token and the egress to the API server.
    let r = render(&json!({"webhook": {"readReferencedObjects": true}}));
    assert_eq!(
        r.one("ClusterRole")["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get"]}])
    );
    assert_eq!(r.one("ClusterRoleBinding")["subjects"][0]["name"], r.one("ServiceAccount")["metadata"]["name"]);
    assert_eq!(r.one("Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"], true);
    let args = args_of(webhook_container(&r));
    assert!(
        args.contains(&"--read-referenced-objects".to_owned())
            && !args.iter().any(|a| a == "--read-image-pull-secrets")
    );
    assert!(r.one("NetworkPolicy")["spec"]["egress"].to_string().contains("6443"));

    // cert-manager: no caBundle from the chart; cainjector fills it from the serving Certificate.
    let r = render(&json!({"tls": {"mode": "certManager"}}));
    let mwc = r.one("MutatingWebhookConfiguration");
    assert!(mwc_hook(&r)["clientConfig"].get("caBundle").is_none());
    assert!(vwc_hook(&r)["clientConfig"].get("caBundle").is_none());
    let from = mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].as_str().unwrap();
    let vwc = r.one("ValidatingWebhookConfiguration");
    assert_eq!(vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"], from);
    let serving = r
        .all("Certificate")
        .into_iter()
        .find(|c| {
            format!("{}/{}", c["metadata"]["namespace"].as_str().unwrap(), c["metadata"]["name"].as_str().unwrap())
                == from
        })
        .unwrap_or_else(|| panic!("inject-ca-from {from} names no rendered Certificate"));
    let mounted = &r.one("Deployment")["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"];
    assert_eq!(&serving["spec"]["secretName"], mounted);
    let svc = format!("{}.{NAMESPACE}.svc", r.one("Service")["metadata"]["name"].as_str().unwrap());
    assert!(serving["spec"]["dnsNames"].as_array().unwrap().contains(&json!(svc)));
}

#[test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
fn every_annotation_has_a_documented_default_and_each_becomes_a_flag() {
    let r = render(&json!({}));
    let keys: BTreeSet<String> = r.values["webhook"]["defaults"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, readme_keys(), "values.yaml webhook.defaults vs webhook/README.md's table");
    let values = std::fs::read_to_string(root().join("charts/hush/values.yaml")).unwrap();
    // A key is documented when the comment block right above it has a `# --` line.
    let (mut documented, mut in_doc) = (BTreeSet::new(), false);
    for line in values.lines().map(str::trim) {
        if line.starts_with('#') {
            in_doc |= line.starts_with("# --");
            continue;
        }
        if in_doc && let Some((key, _)) = line.split_once(':') {
            documented.insert(key.to_owned());
        }
        in_doc = false;
    }
    assert!(
        keys.is_subset(&documented),
        "undocumented defaults: {:?}",
        keys.difference(&documented).collect::<Vec<_>>()
    );
    // Empty defaults are not passed; set ones are, each once.
    assert!(!args_of(webhook_container(&r)).iter().any(|a| a.starts_with("--default")));
    let set = json!({"webhook": {"defaults": {"role": "app", "vault-addr": "https://v:8200", "log-level": "debug"}}});
    let defaults: Vec<String> =
        args_of(webhook_container(&render(&set))).into_iter().filter(|a| a.starts_with("--default")).collect();
    assert_eq!(defaults, ["--default=log-level=debug", "--default=role=app", "--default=vault-addr=https://v:8200"]);
}

#[test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
fn guard_daemonset_holds_only_what_it_needs() {
    let r = render(&json!({"guard": {"enabled": true, "mode": "lsm"}}));
    let ns = r.one("Namespace");
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged");
    let ds = r.one("DaemonSet");
    assert_eq!(ds["metadata"]["namespace"], ns["metadata"]["name"]);
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert!(pod.get("hostNetwork").is_none() && pod.get("hostIPC").is_none());
    let c = &pod["containers"][0];
    assert_eq!(args_of(c)[..2], ["--mode=lsm", "--pin-root=/sys/fs/bpf/hush"]);
    // guard.podNames (on by default): the API token, and get/list/watch on Pods, nothing
    // else, bound to the guard's ServiceAccount; the Pods of its node, selected by NODE_NAME.
    let account =
        r.all("ServiceAccount").into_iter().find(|a| a["metadata"]["namespace"] == ns["metadata"]["name"]).unwrap();
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(account["automountServiceAccountToken"], false, "the token only where the Pod asks for it");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert!(args_of(c).contains(&"--kube-pod-names".to_owned()), "{:?}", args_of(c));
    let node_name = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "NODE_NAME").unwrap();
    assert_eq!(node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    let role = r.one("ClusterRole");
    assert_eq!(role["rules"], json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]));
    let binding = r.one("ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": ns["metadata"]["name"]}])
    );
    // Off: no token, no role, no flag.
    let off = render(&json!({"guard": {"enabled": true, "mode": "lsm", "podNames": {"enabled": false}}}));
    let off_pod = &off.one("DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(off_pod["automountServiceAccountToken"], false);
    assert!(off.all("ClusterRole").is_empty() && off.all("ClusterRoleBinding").is_empty());
    assert!(!args_of(&off_pod["containers"][0]).iter().any(|a| a == "--kube-pod-names"));
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"], "add": ["BPF", "PERFMON", "SYS_ADMIN", "KILL"]}));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    let host_paths: BTreeMap<String, String> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v["hostPath"]["path"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        ("bpffs", "/sys/fs/bpf"),
        ("cgroup", "/sys/fs/cgroup"),
        ("securityfs", "/sys/kernel/security"),
        ("tracefs", "/sys/kernel/tracing"),
    ];
    assert_eq!(host_paths, expected.map(|(a, b)| (a.to_owned(), b.to_owned())).into());
    for m in c["volumeMounts"].as_array().unwrap() {
        // Only the pins are written; everything else of the host is read-only.
        assert_eq!(m["readOnly"] == true, m["name"] != "bpffs", "{m}");
        assert_eq!(m["mountPath"], json!(host_paths[m["name"].as_str().unwrap()]), "{m}");
    }
    // Not "restricted", by necessity: which is why it has a namespace of its own.
    assert!(!support::restricted::violations(pod).is_empty());
    // tracepoint mode does not read securityfs, so it is not mounted.
    let r = render(&json!({"guard": {"enabled": true, "mode": "tracepoint"}}));
    assert!(!r.one("DaemonSet")["spec"]["template"]["spec"]["volumes"].to_string().contains("/sys/kernel/security"));
}

/// A port name or number of the webhook container resolved to its number.
fn container_port(container: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    let ports = container["ports"].as_array().unwrap();
    let found = ports.iter().find(|p| p["name"] == *port).unwrap_or_else(|| panic!("no port named {port}"));
    found["containerPort"].as_u64().unwrap() as u16
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Writes the rendered Secret / ConfigMap `data` into `dir` as the kubelet would mount them.
fn mount(data: &Value, dir: &Path, base64: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, value) in data.as_object().unwrap() {
        let text = value.as_str().unwrap();
        let bytes = if base64 {
            base64::engine::general_purpose::STANDARD.decode(text).unwrap()
        } else {
            text.as_bytes().to_vec()
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The rendered args with each volume's mount path replaced by where the test put its files.
fn localize(args: &[String], mounts: &[(String, PathBuf)], port: u16) -> Vec<String> {
    args.iter()
        .map(|a| {
            if let Some(listen) = a.strip_prefix("--listen=") {
                // Loopback instead of all interfaces; the port is what the chart says.
                assert_eq!(listen, format!("0.0.0.0:{port}"), "the webhook listens on its container port");
                return format!("--listen=127.0.0.1:{port}");
            }
            mounts.iter().fold(a.clone(), |a, (from, to)| a.replace(from.as_str(), to.to_str().unwrap()))
        })
        .collect()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The long flags `webhook --help` lists.
fn webhook_flags() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_webhook")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    help.split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches([',', '.', '`']).split('=').next().unwrap().to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
fn every_flag_the_chart_renders_is_one_the_webhook_has() {
    let flags = webhook_flags();
    let everything = json!({"images": {"injector": {"pullPolicy": "Always"}},
        "webhook": {"readImagePullSecrets": true, "namespaceDefaults": {"a": {"hush.dev/role": "a"}},
        "allowedVaultAddrs": ["https://v"], "insecureRegistries": ["r:5000"], "defaults": {"role": "x"}}});
    let rendered = args_of(webhook_container(&render(&everything)));
    assert!(rendered.len() >= 17, "{rendered:?}");
    for arg in rendered {
        let name = arg.strip_prefix("--").unwrap_or_else(|| panic!("{arg} is not a flag"));
        let name = name.split('=').next().unwrap();
        assert!(flags.contains(name), "the chart passes --{name}, which `webhook --help` does not list: {flags:?}");
    }
}

#[tokio::test]
#[ignore = "needs helm-python-sdk (HUSH_TEST_PYTHON)"]
async fn rendered_registration_and_the_webhooks_flags_agree() {
    // A free port as the container port, so that parallel tests do not collide; everything
    // else flows from the chart as rendered.
    let port = free_port();
    let values = json!({"webhook": {"port": port, "logLevel": "debug",
        "defaults": {"vault-addr": "https://vault.vault.svc:8200"},
        "namespaceDefaults": {"team-a": {"hush.dev/role": "team-a-role"}},
        "allowedVaultAddrs": ["https://vault.vault.svc"]}});
    let r = render(&values);
    let deployment = r.one("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = webhook_container(&r);

    // Service -> container port; MWC -> Service.
    let service = r.one("Service");
    let hook = mwc_hook(&r);
    let svc_ref = &hook["clientConfig"]["service"];
    assert_eq!(svc_ref["name"], service["metadata"]["name"]);
    assert_eq!(svc_ref["namespace"], service["metadata"]["namespace"]);
    let svc_port = service["spec"]["ports"].as_array().unwrap().iter().find(|p| p["port"] == svc_ref["port"]);
    let svc_port = svc_port.unwrap_or_else(|| panic!("the Service has no port {}", svc_ref["port"]));
    let target = container_port(container, &svc_port["targetPort"]);
    assert_eq!(target, port);
    let selector = service["spec"]["selector"].as_object().unwrap();
    let labels = pod_labels(deployment);
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)), "the Service selects the webhook Pods");

    // Mount the Secret and the ConfigMap where the rendered volumes say, under a temp dir.
    let dir = tempfile::tempdir().unwrap();
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().unwrap() {
        let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == m["name"]).unwrap();
        let local = dir.path().join(m["name"].as_str().unwrap());
        if let Some(secret) = volume.get("secret") {
            let s = r.all("Secret").into_iter().find(|s| s["metadata"]["name"] == secret["secretName"]).unwrap();
            mount(&s["data"], &local, true);
        } else {
            let c =
                r.all("ConfigMap").into_iter().find(|c| c["metadata"]["name"] == volume["configMap"]["name"]).unwrap();
            mount(&c["data"], &local, false);
        }
        mounts.push((m["mountPath"].as_str().unwrap().to_owned(), local));
    }
    let args = localize(&args_of(container), &mounts, port);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webhook"));
    cmd.args(&args).current_dir(dir.path()).stdout(Stdio::null()).stderr(Stdio::inherit());
    for e in container["env"].as_array().unwrap() {
        cmd.env(e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
    }
    let _child = Child(cmd.spawn().unwrap());

    // The API server's view: https://<service>.<namespace>.svc:<port><path>, trusting caBundle.
    let ca =
        base64::engine::general_purpose::STANDARD.decode(hook["clientConfig"]["caBundle"].as_str().unwrap()).unwrap();
    let host = format!("{}.{}.svc", svc_ref["name"].as_str().unwrap(), svc_ref["namespace"].as_str().unwrap());
    let client = support::client_for(&ca, &host, SocketAddr::from(([127, 0, 0, 1], target)));
    let url = |path: &str| format!("https://{host}:{target}{path}");
    wait_until_up(&client, &url("/healthz")).await;

    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["scheme"], "HTTPS", "{probe}");
        assert_eq!(container_port(container, &get["port"]), port, "{probe}");
        let status = client.get(url(get["path"].as_str().unwrap())).send().await.unwrap().status();
        assert_eq!(status, 200, "{probe} {}", get["path"]);
    }

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": "team-a"},
        "spec": {"containers": [{"name": "app", "image": "registry.test/app:1", "command": ["/app"],
            "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"}]}]}});
    let request = review("uid-chart", "team-a", &pod);
    let path = svc_ref["path"].as_str().unwrap();
    let answer = client.post(url(path)).body(request.to_string()).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    let resp = response(&answer, "uid-chart");
    assert_eq!(resp["allowed"], true, "{answer}");
    assert!(!patch_of(resp).0.is_empty(), "no patch: {answer}");
    let patched = apply(&request, resp);
    let init = &patched["spec"]["initContainers"][0];
    let injector_image = args.iter().find_map(|a| a.strip_prefix("--injector-image=")).unwrap();
    assert_eq!(init["image"], injector_image);
    assert_eq!(injector_image, r.values["images"]["injector"]["repository"].as_str().unwrap().to_owned() + ":0.1.0");
    let env = patched["spec"]["containers"][0]["env"].to_string();
    // From --default, and from the ConfigMap's namespace defaults.
    assert!(env.contains(r#""name":"VAULT_ADDR","value":"https://vault.vault.svc:8200""#), "{env}");
    assert!(env.contains(r#""name":"VAULT_ROLE","value":"team-a-role""#), "{env}");

    // The Secret/ConfigMap registration reaches the same binary on its own path: a Secret
    // holding a reference is allowed, unpatched, with warnings.
    let objects = &vwc_hook(&r)["clientConfig"]["service"];
    assert_eq!(
        (&objects["name"], &objects["namespace"], &objects["port"]),
        (&svc_ref["name"], &svc_ref["namespace"], &svc_ref["port"])
    );
    let mut request = review(
        "uid-secret",
        "team-a",
        &json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "team-a"},
        "data": {"password": base64::engine::general_purpose::STANDARD.encode("vault:secret/data/db#password")}}),
    );
    request["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Secret"});
    let answer = client.post(url(objects["path"].as_str().unwrap())).body(request.to_string()).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    let resp = response(&answer, "uid-secret");
    assert_eq!(resp["allowed"], true, "{answer}");
    assert!(resp.get("patch").is_none(), "{answer}");
    let warning = resp["warnings"][0].as_str().unwrap_or_else(|| panic!("no warning: {answer}"));
    assert!(warning.starts_with("Secret team-a/db: key `password` holds a Vault reference"), "{warning}");

    let metrics = client.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hush_webhook_admissions_total{result=\"Mutated\"} 1"), "{metrics}");
    assert!(metrics.contains("hush_webhook_object_reviews_total{result=\"Warned\"} 1"), "{metrics}");
}

fn pod_labels(deployment: &Value) -> serde_json::Map<String, Value> {
    deployment["spec"]["template"]["metadata"]["labels"].as_object().unwrap().clone()
}

async fn wait_until_up(client: &reqwest::Client, url: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(url).send().await {
            Ok(r) if r.status() == 200 => return,
            other => assert!(std::time::Instant::now() < deadline, "the webhook did not come up: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A consistency check, not a build (no docker daemon here): the Dockerfile's shim stage uses
/// the RUSTFLAGS, profile, package, target and dropped sections of `cargo xtask build-shim`, and the shim image is
/// `FROM scratch` with `/injector` where the webhook's `--injector-binary` default expects it.
#[test]
fn dockerfile_builds_the_shim_like_xtask() {
    let tools = std::fs::read_to_string(root().join("xtask/src/tools.rs")).unwrap();
    let decl = tools.split("pub const SHIM_RUSTFLAGS: &str =").nth(1).expect("SHIM_RUSTFLAGS in xtask/src/tools.rs");
    let xtask_flags = decl.split('"').nth(1).unwrap();
    let xtask_build = tools.split("fn build_static_shim").nth(1).unwrap().split("\n}\n").next().unwrap();
    let dockerfile = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let stages: BTreeMap<&str, &str> = dockerfile
        .split("\nFROM ")
        .skip(1)
        .filter_map(|s| {
            let header = s.lines().next()?;
            Some((header.rsplit(" AS ").next()?.trim(), s))
        })
        .collect();
    let build = stages["build-shim"];
    let env = build.lines().find_map(|l| l.strip_prefix("ENV RUSTFLAGS=")).expect("ENV RUSTFLAGS in build-shim");
    assert_eq!(env.trim_matches('"'), xtask_flags);
    for arg in ["--profile shim", "--package injector", "--target x86_64-unknown-linux-gnu", "--locked"] {
        assert!(build.contains(arg), "the Dockerfile's shim build lacks {arg}");
        for word in arg.split(' ') {
            let quoted = format!("\"{word}\"");
            assert!(
                xtask_build.contains(&quoted),
                "xtask's shim build lacks {quoted}: update the Dockerfile and this check"
            );
        }
    }
    assert!(build.contains("target/x86_64-unknown-linux-gnu/shim/injector"));
    let dropped = tools
        .split("pub const SHIM_DROPPED_SECTIONS: &[&str] = &[")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("SHIM_DROPPED_SECTIONS in xtask/src/tools.rs");
    let sections: Vec<&str> =
        dropped.split(',').map(|s| s.trim().trim_matches('"')).filter(|s| !s.is_empty()).collect();
    assert!(!sections.is_empty(), "no sections parsed from SHIM_DROPPED_SECTIONS");
    let emptied = tools
        .split("pub const SHIM_EMPTIED_SECTION: &str = ")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .expect("SHIM_EMPTIED_SECTION in xtask/src/tools.rs");
    assert!(
        build.contains(&format!("--update-section={emptied}=/tmp/eh_frame.terminator"))
            && build.contains("printf '\\0\\0\\0\\0' > /tmp/eh_frame.terminator"),
        "the Dockerfile's shim stage does not empty {emptied} to its zero terminator, as xtask does"
    );
    for section in sections {
        assert!(
            build.contains(&format!("--remove-section={section} ")),
            "the Dockerfile's shim stage keeps {section}, which xtask drops"
        );
    }
    let shim = stages["shim"];
    assert!(shim.starts_with("scratch AS shim"), "the shim image is FROM scratch");
    assert!(shim.contains("/out/injector /injector"));
    assert!(shim.contains("USER 65532:65532"));
    let main = std::fs::read_to_string(root().join("webhook/src/main.rs")).unwrap();
    assert!(
        main.contains("#[arg(long, default_value = \"/injector\")]\n    injector_binary"),
        "--injector-binary default"
    );
    assert!(stages["build-services"].contains("ENV HUSH_REQUIRE_BPF=1"), "a guard image always has its BPF programs");
    assert!(stages["webhook"].contains("USER 65532:65532"));
}

#[test]
#[ignore = "needs helm-python-sdk and kubernetes-validate (HUSH_TEST_PYTHON, HUSH_TEST_KUBERNETES_VALIDATE)"]
fn watched_namespace_defaults_read_one_configmap_by_name() {
    let r = render(&json!({"webhook": {"watchNamespaceDefaults": true}}));
    assert_lint_clean(&r, "watchNamespaceDefaults");
    validate_all(&r, "watchNamespaceDefaults");
    // The ConfigMap is rendered (empty defaults) so that it can be edited.
    let configmap = r.one("ConfigMap");
    let name = configmap["metadata"]["name"].as_str().unwrap();
    assert_eq!(configmap["data"]["namespace-defaults.json"], "{}");
    // The webhook watches it by name, instead of mounting it.
    let args = args_of(webhook_container(&r));
    assert!(args.contains(&format!("--namespace-defaults-configmap={NAMESPACE}/{name}")), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--namespace-defaults=")), "{args:?}");
    let pod = &r.one("Deployment")["spec"]["template"]["spec"];
    assert!(!pod["volumes"].to_string().contains("configMap"), "{}", pod["volumes"]);
    assert_eq!(pod["automountServiceAccountToken"], true);
    // get/list/watch on that one ConfigMap, nothing else; no cluster-wide role.
    let role = r.one("Role");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name],
            "verbs": ["get", "list", "watch"]}])
    );
    let binding = r.one("RoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], r.one("ServiceAccount")["metadata"]["name"]);
    assert!(r.all("ClusterRole").is_empty());
    // Egress to the API server.
    assert!(r.one("NetworkPolicy")["spec"]["egress"].to_string().contains("6443"));
}
