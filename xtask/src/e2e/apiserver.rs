//! Checks that replaced stand-ins with this cluster's API server (issue 12 point 5):
//!
//! - namespace defaults from the ConfigMap the webhook watches through the API server
//!   (`webhook.watchNamespaceDefaults`, `--namespace-defaults-configmap`): a Pod relying on a
//!   namespace default runs with it, an edit reaches the next Pod without a restart, a bad
//!   edit is logged naming the ConfigMap and the last good defaults stay;
//! - the shim's kubernetes login as `injector/tests/auth.rs` checked it against a loopback
//!   TokenReview stand-in (removed there): no `VAULT_AUTH_METHOD` (kubernetes is the default),
//!   a token file ending in a newline, the token in no output; here the token comes from the
//!   API server (TokenRequest) and OpenBao has the API server review it (TokenReview).

use super::{APP_NS, Bao, HUSH_NS, Teller, kubectl_json, kubectl_ok, kubectl_stdin, pod};
use crate::cluster::{self, Cluster};
use crate::{cmd, images, tools};
use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// The key of the ConfigMap that holds the defaults (`webhook::kube::NAMESPACE_DEFAULTS_KEY`).
const KEY: &str = "namespace-defaults.json";
const WEBHOOK: &str = "app.kubernetes.io/component=webhook";

/// Both checks, for one call in `story` after `run_example` (the chart installed with
/// `webhook.watchNamespaceDefaults: true`; `password` is the secret's current value).
pub(super) fn checks(
    cluster: &Cluster,
    images: &images::Images,
    bao: &Bao,
    password: &str,
    t: &mut dyn Teller,
) -> Result<()> {
    namespace_defaults_from_the_configmap(cluster, images, password, t)?;
    t.lap("namespace defaults from a watched ConfigMap");
    shim_kubernetes_login_by_default(cluster, bao, password, t)?;
    t.lap("shim: default kubernetes login, TokenReview");
    Ok(())
}

/// Namespace defaults from the watched ConfigMap. Needs the chart installed with
/// `webhook.watchNamespaceDefaults: true`, the example's namespace, ServiceAccount `app` and
/// OpenBao's role `shop` (after `run_example`); `password` is the secret's current value.
/// Leaves the ConfigMap as it found it.
fn namespace_defaults_from_the_configmap(
    cluster: &Cluster,
    images: &images::Images,
    password: &str,
    t: &mut dyn Teller,
) -> Result<()> {
    let deploys = kubectl_json(cluster, &["-n", HUSH_NS, "get", "deployments", "-l", WEBHOOK])?;
    let args = deploys["items"][0]["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    let reference = args
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--namespace-defaults-configmap="))
        .context("the webhook does not watch a namespace defaults ConfigMap (webhook.watchNamespaceDefaults)")?
        .to_owned();
    let (namespace, name) = reference.split_once('/').context("--namespace-defaults-configmap")?;
    let before = kubectl_json(cluster, &["-n", namespace, "get", "configmap", name])?["data"][KEY].clone();
    let set = |defaults: &str| -> Result<()> {
        let patch = json!({"data": {KEY: defaults}}).to_string();
        kubectl_ok(cluster, &["-n", namespace, "patch", "configmap", name, "--type=merge", "-p", &patch])
    };
    let result = check_defaults(cluster, images, password, &reference, &set, t);
    let restore = set(before.as_str().unwrap_or("{}"));
    result?;
    restore
}

fn check_defaults(
    cluster: &Cluster,
    images: &images::Images,
    password: &str,
    configmap: &str,
    set: &dyn Fn(&str) -> Result<()>,
    t: &mut dyn Teller,
) -> Result<()> {
    let reference = json!([{"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#password"}]);
    // No annotation at all: the role comes from the namespace default, the auth method is the
    // shim's default (kubernetes, with the token the kubelet projects).
    let plain = |name: &str, script: &str| pod(name, &images.app.reference(), json!({}), script, reference.clone());
    let role_of = |admitted: &Value| -> Option<String> {
        admitted["spec"]["containers"][0]["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == "VAULT_ROLE")
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    };
    let dry_run = || -> Result<Option<String>> {
        let out = kubectl_stdin(
            cluster,
            &["create", "--dry-run=server", "-o", "json"],
            &serde_json::to_vec(&plain("defaults-probe", "true"))?,
        )?;
        ensure!(out.status.success(), "admission failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(role_of(&serde_json::from_slice(&out.stdout)?))
    };
    // Two webhook replicas each watch: the new value must be seen by a run of Pods in a row.
    let sees = |what: &str, want: &str| -> Result<()> {
        let mut in_a_row = 0;
        let mut last = None;
        cluster::wait_for(what, Duration::from_secs(30), || {
            last = dry_run()?;
            in_a_row = if last.as_deref() == Some(want) { in_a_row + 1 } else { 0 };
            Ok(in_a_row >= 6)
        })
        .with_context(|| format!("the last Pod got VAULT_ROLE {last:?}, want {want:?}"))
    };

    set(&json!({APP_NS: {"hush.dev/role": "shop"}}).to_string())?;
    sees("the namespace default role shop", "shop")?;
    // A Pod that relies on it runs, logged in with it.
    let name = "defaulted";
    super::apply(
        cluster,
        &plain(name, "echo \"defaulted: DB_PASSWORD holds ${#DB_PASSWORD} characters\"; exec sleep 600"),
    )?;
    let logs = || cmd::stdout(cluster.kubectl().args(["-n", APP_NS, "logs", name, "-c", "app"]));
    let want = format!("DB_PASSWORD holds {} characters", password.len());
    let ran = cluster::wait_for("the Pod relying on the namespace default", Duration::from_secs(90), || {
        Ok(logs().unwrap_or_default().contains(&want))
    });
    let admitted = kubectl_json(cluster, &["-n", APP_NS, "get", "pod", name])?;
    kubectl_ok(cluster, &["-n", APP_NS, "delete", "pod", name, "--wait=false"])?;
    ran?;
    ensure!(role_of(&admitted).as_deref() == Some("shop"), "{name}: VAULT_ROLE {:?}", role_of(&admitted));
    ensure!(
        admitted["metadata"]["annotations"].get("hush.dev/role").is_none(),
        "{name} carries its own role annotation"
    );
    t.say(&format!(
        "namespace default role from ConfigMap {configmap}: Pod {APP_NS}/{name} (no annotations) ran: {want}"
    ));

    // An edit reaches the next Pod, without a restart of the webhook.
    let restarts = || -> Result<Value> {
        let pods = kubectl_json(cluster, &["-n", HUSH_NS, "get", "pods", "-l", WEBHOOK])?;
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| json!([p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"]]))
            .collect())
    };
    let webhook_pods = restarts()?;
    set(&json!({APP_NS: {"hush.dev/role": "shop-edited"}}).to_string())?;
    sees("the edited namespace default", "shop-edited")?;
    ensure!(restarts()? == webhook_pods, "the webhook Pods changed or restarted: {webhook_pods} -> {}", restarts()?);
    t.say(&format!(
        "ConfigMap edited: the next Pods get VAULT_ROLE shop-edited; webhook Pods unchanged {webhook_pods}"
    ));

    // A bad edit: logged naming the ConfigMap, never the value; the last good defaults stay.
    let marker = "bad-value-do-not-log";
    set(&json!({APP_NS: {"hush.dev/client-timeout": marker}}).to_string())?;
    let mut lines = Vec::new();
    cluster::wait_for("the webhook's log of the bad ConfigMap", Duration::from_secs(30), || {
        let log = cmd::stdout(cluster.kubectl().args(["-n", HUSH_NS, "logs", "-l", WEBHOOK, "--tail=-1", "--prefix"]))?;
        ensure!(!log.contains(marker), "a webhook logged the ConfigMap's value: {log}");
        lines = log
            .lines()
            .filter(|l| l.contains("keeping the old namespace defaults") && l.contains(configmap))
            .map(str::to_owned)
            .collect();
        Ok(lines.len() >= 2)
    })?;
    t.say(&format!("bad ConfigMap edit logged by both replicas, naming it: {}", lines[0]));
    ensure!(dry_run()?.as_deref() == Some("shop-edited"), "a bad edit changed the defaults");
    sees("the last good default after a bad edit", "shop-edited")?;
    t.say("after the bad edit the next Pods still get VAULT_ROLE shop-edited");
    Ok(())
}

/// The shim on this host logs in through OpenBao's kubernetes auth, which has the API server
/// review the token (TokenReview), with what the removed stand-in test of
/// `injector/tests/auth.rs` asked for: no `VAULT_AUTH_METHOD`, a custom auth mount
/// (`VAULT_PATH`), the token file ending in a newline (as the stand-in's did), and the token in
/// none of the shim's output, accepted or refused.
fn shim_kubernetes_login_by_default(cluster: &Cluster, bao: &Bao, password: &str, t: &mut dyn Teller) -> Result<()> {
    // A second kubernetes mount, so that VAULT_PATH is followed, not assumed.
    let mount = "kubernetes-e2e";
    let dir = tools::scratch("e2e-login")?;
    let reviewer = cmd::stdout(cluster.kubectl().args([
        "-n",
        "kube-system",
        "create",
        "token",
        "openbao-reviewer",
        "--duration=1h",
    ]))?;
    std::fs::write(dir.join("reviewer.jwt"), &reviewer)?;
    let _ = bao.run(&["auth", "disable", mount]);
    bao.run(&["auth", "enable", &format!("-path={mount}"), "kubernetes"])?;
    bao.run(&[
        "write",
        &format!("auth/{mount}/config"),
        &format!("kubernetes_host={}", cluster.server),
        &format!("kubernetes_ca_cert=@{}", cluster.ca.display()),
        &format!("token_reviewer_jwt=@{}", dir.join("reviewer.jwt").display()),
        "disable_local_ca_jwt=true",
    ])?;
    bao.run(&[
        "write",
        &format!("auth/{mount}/role/shop"),
        "bound_service_account_names=app",
        &format!("bound_service_account_namespaces={APP_NS}"),
        "token_policies=shop",
        "token_ttl=10m",
    ])?;
    let shim = tools::build_static_shim()?;
    let run = |account: &str| -> Result<(String, std::process::Output)> {
        let token = cmd::stdout(cluster.kubectl().args(["-n", APP_NS, "create", "token", account, "--duration=10m"]))?;
        let token = token.trim().to_owned();
        let file = dir.join(format!("{account}.jwt"));
        std::fs::write(&file, format!("{token}\n"))?;
        let out = Command::new(&shim)
            .args(["--", "/bin/sh", "-c", "echo \"DB_PASSWORD holds ${#DB_PASSWORD} characters\""])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_ROLE", "shop")
            .env("VAULT_PATH", mount)
            .env("HUSH_SA_TOKEN_PATH", &file)
            .env("DB_PASSWORD", "vault:secret/data/shop/db#password")
            .output()?;
        Ok((token, out))
    };
    let (token, out) = run("app")?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    t.say(&format!(
        "shim, no VAULT_AUTH_METHOD, VAULT_PATH={mount}, TokenRequest token of {APP_NS}/app: {}; {stdout}",
        out.status
    ));
    ensure!(out.status.success(), "the shim failed: {stderr}");
    ensure!(
        stdout == format!("DB_PASSWORD holds {} characters", password.len()),
        "the shim did not hand over the secret"
    );
    ensure!(!stderr.contains(&token) && !stdout.contains(&token), "the shim printed the token");
    let (token, out) = run("default")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    t.say(&format!(
        "the same with a token of {APP_NS}/default: {}; {}",
        out.status,
        stderr.lines().last().unwrap_or("").trim()
    ));
    ensure!(out.status.code() == Some(77), "a token of another ServiceAccount: exit {:?}, want 77", out.status.code());
    ensure!(out.stdout.is_empty() && !stderr.contains(&token), "the refused shim ran the app or printed the token");
    bao.run(&["auth", "disable", mount])
}

/// What `webhook/tests/registry.rs` checked against a loopback stand-in for the API server
/// (removed there), now with the real one, the chart's RBAC and the password-protected
/// registry: a pull Secret for another registry is skipped and the right one used; a Secret for
/// another registry alone, or one with a wrong password, is refused naming it; a Pod of another
/// namespace naming a Secret that exists only in `shop` is refused (the config cached for
/// `shop`'s login is not lent to it); a path in a Secret name is refused before any call; and
/// no password reaches the webhook's log. Needs the chart's RBAC in place (not during
/// `pull_secrets`, which deletes the binding for a while).
pub(super) fn pull_secret_cases(
    cluster: &Cluster,
    registry: &super::PrivateRegistry,
    t: &mut dyn Teller,
) -> Result<()> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let wrong = format!("wrong-{}", super::random_hex(8)?);
    let secret = |namespace: &str, name: &str, host: &str, password: &str| -> Result<()> {
        let auth = b64.encode(format!("{}:{password}", registry.user));
        let config = json!({"auths": {host: {"username": registry.user, "password": password, "auth": auth}}});
        super::apply(
            cluster,
            &json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                "metadata": {"name": name, "namespace": namespace},
                "data": {".dockerconfigjson": b64.encode(config.to_string())}}),
        )
    };
    secret(APP_NS, "regcred", &registry.addr, &registry.password)?;
    secret(APP_NS, "wrong", &registry.addr, &wrong)?;
    secret(APP_NS, "elsewhere", "other.example", &registry.password)?;
    let other_ns = "shop-tenant-b";
    super::apply(cluster, &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other_ns}}))?;

    let result = (|| -> Result<()> {
        let probe = |namespace: &str, secrets: &[&str]| -> Result<Vec<u8>> {
            let mut p = pod(
                "private-case",
                &registry.app,
                json!({"hush.dev/auth-method": "kubernetes", "hush.dev/role": "shop"}),
                "true",
                json!([{"name": "DB_PASSWORD", "value": "vault:secret/data/shop/db#password"}]),
            );
            p["metadata"]["namespace"] = json!(namespace);
            if namespace != APP_NS {
                p["spec"]["serviceAccountName"] = json!("default");
            }
            let container = &mut p["spec"]["containers"][0];
            container.as_object_mut().context("container")?.remove("command");
            container["args"] = json!(["-c", "true"]);
            p["spec"]["imagePullSecrets"] = json!(secrets.iter().map(|s| json!({"name": s})).collect::<Vec<_>>());
            Ok(serde_json::to_vec(&p)?)
        };
        let create = |body: &[u8]| kubectl_stdin(cluster, &["create", "--dry-run=server", "-o", "json"], body);
        let refused = |namespace: &str, secrets: &[&str], want: &[&str]| -> Result<String> {
            let mut err = String::new();
            // A new namespace's `default` ServiceAccount appears a moment after it.
            cluster::wait_for("the webhook's refusal", Duration::from_secs(30), || {
                let out = create(&probe(namespace, secrets)?)?;
                ensure!(!out.status.success(), "{namespace} {secrets:?}: admitted");
                err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                Ok(!err.contains("serviceaccount"))
            })?;
            for w in want {
                ensure!(err.contains(w), "{namespace} {secrets:?}: the refusal does not say {w:?}: {err}");
            }
            ensure!(!err.contains(&registry.password) && !err.contains(&wrong), "a password in the refusal: {err}");
            Ok(err)
        };

        let out = create(&probe(APP_NS, &["elsewhere", "regcred"])?)?;
        ensure!(out.status.success(), "elsewhere, regcred: {}", String::from_utf8_lossy(&out.stderr));
        let admitted: Value = serde_json::from_slice(&out.stdout)?;
        let argv = admitted["spec"]["containers"][0]["command"].to_string();
        ensure!(argv.contains("/bin/sh"), "elsewhere, regcred: the entrypoint was not found: {argv}");
        t.say(&format!(
            "pull Secrets [elsewhere, regcred]: the other registry's skipped, regcred's login used: {argv}"
        ));

        let host = &registry.addr;
        let err =
            refused(APP_NS, &["elsewhere"], &[&format!("no credentials for `{host}` in imagePullSecrets elsewhere")])?;
        t.say(&format!("pull Secret for another registry only: refused: {err}"));
        let err = refused(APP_NS, &["wrong"], &["with the credentials for", "from Secret `wrong`"])?;
        t.say(&format!("pull Secret with a wrong password: refused: {err}"));
        let err = refused(other_ns, &["regcred"], &[&format!("Secret {other_ns}/regcred does not exist")])?;
        t.say(&format!("another namespace naming shop's Secret: refused, the cached config not lent: {err}"));
        let err = refused(APP_NS, &["../../../api/v1/secrets"], &["is not a valid Secret name"])?;
        t.say(&format!("a path as a Secret name: refused by the webhook's name check: {err}"));

        let log = cmd::stdout(cluster.kubectl().args(["-n", HUSH_NS, "logs", "-l", WEBHOOK, "--tail=-1"]))?;
        ensure!(
            !log.contains(&registry.password) && !log.contains(&wrong),
            "a registry password is in the webhook's log"
        );
        t.say(&format!("no registry password in the webhook's log ({} lines)", log.lines().count()));

        // Without the chart's RBAC the API server answers kube's GET with a real 403. Every
        // ClusterRoleBinding of the webhook goes (webhook.readReferencedObjects grants `get`
        // on Secrets too), then comes back.
        secret(other_ns, "regcred", &registry.addr, &registry.password)?;
        let mut err = String::new();
        let forbidden = super::without_webhook_bindings(cluster, || {
            let out = create(&probe(other_ns, &["regcred"])?)?;
            err = if out.status.success() {
                "admitted".to_owned()
            } else {
                String::from_utf8_lossy(&out.stderr).trim().to_owned()
            };
            Ok(err.contains("may not read Secret") && err.contains("(HTTP 403)"))
        });
        forbidden.with_context(|| format!("the last answer: {err}"))?;
        t.say(&format!("without the ClusterRoleBinding: the API server's 403, named: {err}"));
        Ok(())
    })();
    let cleanup = kubectl_ok(cluster, &["-n", APP_NS, "delete", "secret", "regcred", "wrong", "elsewhere"])
        .and_then(|()| kubectl_ok(cluster, &["delete", "namespace", other_ns, "--wait=false"]));
    result?;
    cleanup
}
