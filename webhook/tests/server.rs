//! The running `webhook` binary at its HTTPS boundary: endpoints, bad input, limits,
//! certificate reload without dropping requests, graceful shutdown, exit codes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Webhook, apply, response, review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn app_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "app:1", "command": ["/app"],
            "env": [{"name": "K", "value": "vault:secret/data/app#k"}]}]}
    })
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let webhook = Webhook::start(&[]);
    let client = webhook.client();
    for (path, want) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let response = client.get(webhook.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), want);
    }
    let r = review("u1", "default", &app_pod());
    let (status, answer) = webhook.post(&client, r.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(response(&answer, "u1")["allowed"], true);
    let metrics = webhook.metrics(&client).await;
    assert!(metrics.contains(r#"hush_webhook_admissions_total{result="Mutated"} 1"#), "{metrics}");
    assert!(metrics.contains("hush_webhook_admission_duration_seconds_count 1"), "{metrics}");
    assert!(metrics.contains("hush_webhook_registry_cache_hits_total 0"), "{metrics}");
    let mutated = webhook.await_log(r#""result":"mutated""#).await;
    let log = webhook.logs.lock().unwrap().join("\n");
    assert!(mutated, "{log}");
    assert!(!log.contains("secret/data/app"), "references must not be logged: {log}");
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_the_server_keeps_serving() {
    let webhook = Webhook::start(&[]);
    let client = webhook.client();

    let (status, body) = webhook.post(&client, "this is not json").await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("not an admission.k8s.io/v1 AdmissionReview"), "{body}");

    let (status, body) =
        webhook.post(&client, r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("no request"), "{body}");

    let (status, body) = webhook.post(&client, r#"{"request": 42}"#).await;
    assert_eq!(status, 400, "{body}");

    let mut wrong_kind =
        review("u2", "default", &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}));
    wrong_kind["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
    let (status, answer) = webhook.post(&client, wrong_kind.to_string()).await;
    assert_eq!(status, 200);
    let r = response(&answer, "u2");
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"].as_str().unwrap().contains("apps/v1/Deployment"), "{answer}");

    let bad_pod = review(
        "u3",
        "default",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nope"}}),
    );
    let (status, answer) = webhook.post(&client, bad_pod.to_string()).await;
    assert_eq!(status, 200);
    let r = response(&answer, "u3");
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"].as_str().unwrap().contains("not a valid Pod"), "{answer}");

    let mut bad_annotation = app_pod();
    bad_annotation["metadata"]["annotations"] = json!({"hush.dev/auth-method": "telepathy"});
    let (_, answer) = webhook.post(&client, review("u4", "default", &bad_annotation).to_string()).await;
    let r = response(&answer, "u4");
    assert_eq!(r["allowed"], false);
    assert!(r["status"]["message"].as_str().unwrap().contains("hush.dev/auth-method"), "{answer}");

    let mut update = review("u5", "default", &app_pod());
    update["request"]["operation"] = json!("UPDATE");
    let (_, answer) = webhook.post(&client, update.to_string()).await;
    let r = response(&answer, "u5");
    assert_eq!(r["allowed"], true);
    assert!(r.get("patch").is_none(), "{answer}");

    // A declared body over the limit is refused before it is read.
    let ca = webhook.certs.ca_pem.clone();
    let oversized = PendingRequest::open(&webhook, &ca, vec![b' '; 5 * 1024 * 1024]).await;
    let answer = oversized.response_without_body().await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let status = client.get(webhook.url("/mutate")).send().await.unwrap().status();
    assert_eq!(status, 405);
    let status = client.get(webhook.url("/nope")).send().await.unwrap().status();
    assert_eq!(status, 404);

    // Still serving, and the patch still applies.
    let r = review("u6", "default", &app_pod());
    let (status, answer) = webhook.post(&client, r.to_string()).await;
    assert_eq!(status, 200);
    let patched = apply(&r, response(&answer, "u6"));
    assert_eq!(patched["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", "/app"]));
    let metrics = webhook.metrics(&client).await;
    assert!(metrics.contains(r#"hush_webhook_admissions_total{result="Invalid"} 4"#), "{metrics}");
    assert!(metrics.contains(r#"hush_webhook_admissions_total{result="Denied"} 3"#), "{metrics}");
}

/// A raw TLS connection that has sent the headers of a POST /mutate but not its body yet.
struct PendingRequest {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    body: Vec<u8>,
}

impl PendingRequest {
    async fn open(webhook: &Webhook, ca_pem: &str, body: Vec<u8>) -> PendingRequest {
        let PendingRequest { mut stream, .. } = PendingRequest::open_raw(webhook, ca_pem).await;
        let head = format!(
            "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        PendingRequest { stream, body }
    }

    /// A TLS connection on which nothing has been sent yet.
    async fn open_raw(webhook: &Webhook, ca_pem: &str) -> PendingRequest {
        use rustls::pki_types::pem::PemObject;
        support::install_crypto();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(webhook.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = connector.connect(name, tcp).await.unwrap();
        PendingRequest { stream, body: Vec::new() }
    }

    async fn response_without_body(mut self) -> String {
        let mut out = Vec::new();
        let _ = self.stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn finish(mut self) -> String {
        self.stream.write_all(&self.body).await.unwrap();
        self.stream.flush().await.unwrap();
        let mut out = Vec::new();
        let _ = self.stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[tokio::test]
async fn a_new_certificate_is_used_without_dropping_requests_in_flight() {
    let webhook = Webhook::start(&[]);
    let old_ca = webhook.certs.ca_pem.clone();
    let r = review("reload", "default", &app_pod());
    let pending = PendingRequest::open(&webhook, &old_ca, r.to_string().into_bytes()).await;

    // Replace the pair (new CA); the webhook polls every 100 ms.
    let (new_ca, cert, key) = support::Certs::generate("localhost");
    let tmp = webhook.dir.path().join("new");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("tls.key"), key).unwrap();
    std::fs::write(tmp.join("tls.crt"), cert).unwrap();
    std::fs::rename(tmp.join("tls.key"), &webhook.certs.key).unwrap();
    std::fs::rename(tmp.join("tls.crt"), &webhook.certs.cert).unwrap();

    let fresh = support::client(&new_ca, webhook.addr);
    let mut served = false;
    for _ in 0..100 {
        if fresh.get(webhook.url("/healthz")).send().await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the new certificate was not picked up");
    let stale = support::client(&old_ca, webhook.addr);
    assert!(stale.get(webhook.url("/healthz")).send().await.is_err(), "the old certificate is still served");

    let answer = pending.finish().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""uid":"reload""#), "{answer}");
    assert!(webhook.await_log("reloaded the TLS certificate").await);

    // A broken file keeps the working certificate.
    std::fs::write(&webhook.certs.cert, "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(fresh.get(webhook.url("/healthz")).send().await.is_ok());
    assert!(webhook.await_log("keeping the old TLS certificate").await);
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_then_exits_zero() {
    let mut webhook = Webhook::start(&["--shutdown-grace", "10"]);
    let ca = webhook.certs.ca_pem.clone();
    let r = review("drain", "default", &app_pod());
    let pending = PendingRequest::open(&webhook, &ca, r.to_string().into_bytes()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    webhook.terminate();
    // No new connections once shutting down (the listener closes as soon as the signal is seen).
    assert_stops_accepting(&webhook).await;
    let answer = pending.finish().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""uid":"drain""#), "{answer}");
    let status = webhook.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

/// The API server keeps HTTP/1.1 connections to a webhook in a pool and does not retry a POST
/// whose connection closes under it: a rolling restart of the webhook failed admissions with
/// `EOF` on the real cluster (`cargo xtask e2e`) while the drain closed idle keep-alive
/// connections at SIGTERM. An idle HTTP/1.1 connection stays open through the drain, and the
/// next answer on it says `Connection: close`.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_answered_during_the_drain_then_closed() {
    let mut webhook = Webhook::start(&["--shutdown-grace", "10"]);
    let ca = webhook.certs.ca_pem.clone();
    let request = |uid: &str| {
        let body = review(uid, "default", &app_pod()).to_string();
        format!(
            "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let PendingRequest { stream: mut kept, .. } = PendingRequest::open_raw(&webhook, &ca).await;
    kept.write_all(request("before").as_bytes()).await.unwrap();
    let answer = read_one_answer(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#""uid":"before""#), "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("connection: close"), "{answer}");

    webhook.terminate();
    // Shutting down once new connections are refused.
    assert_stops_accepting(&webhook).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    kept.write_all(request("during").as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), kept.read_to_end(&mut rest)).await;
    let answer = String::from_utf8_lossy(&rest).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "the kept connection was closed under the client: {answer:?}");
    assert!(answer.contains(r#""uid":"during""#), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
    assert_eq!(webhook.wait(Duration::from_secs(15)).code(), Some(0));
}

/// Waits until the listener is closed (the webhook has seen SIGTERM), at most 5 s.
async fn assert_stops_accepting(webhook: &Webhook) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(webhook.addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("still accepting 5 s after SIGTERM");
}

/// Reads one HTTP/1.1 answer with a `content-length` body from a kept-alive stream.
async fn read_one_answer(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed before a whole answer: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("an answer with content-length");
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[test]
fn bad_configuration_exits_78_naming_the_input_and_bad_flags_exit_2() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_webhook"))
            .args(["--listen", "127.0.0.1:0", "--injector-image", "i"])
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = support::Certs::new(dir.path());
    let (cert, key) = (certs.cert.to_str().unwrap(), certs.key.to_str().unwrap());

    let (code, err) = run(&["--tls-cert", "/nonexistent/tls.crt", "--tls-key", key]);
    assert_eq!(code, Some(78));
    assert!(err.contains("/nonexistent/tls.crt"), "{err}");

    let (code, err) = run(&["--tls-cert", cert, "--tls-key", cert]);
    assert_eq!(code, Some(78));
    assert!(err.contains("private key") && err.contains("tls.crt"), "{err}");

    let (code, err) = run(&["--tls-cert", cert, "--tls-key", key, "--default", "auth-method=telepathy"]);
    assert_eq!(code, Some(78));
    assert!(err.contains("hush.dev/auth-method"), "{err}");

    let ns = dir.path().join("ns.json");
    std::fs::write(&ns, r#"{"team": {"hush.dev/rol": "x"}}"#).unwrap();
    let (code, err) = run(&["--tls-cert", cert, "--tls-key", key, "--namespace-defaults", ns.to_str().unwrap()]);
    assert_eq!(code, Some(78));
    assert!(err.contains("ns.json") && err.contains("team") && err.contains("hush.dev/rol"), "{err}");

    let (code, _) = run(&["--tls-cert", cert, "--tls-key", key, "--no-such-flag"]);
    assert_eq!(code, Some(2));
}

#[tokio::test]
async fn namespace_defaults_sit_between_the_pod_and_the_flags() {
    let webhook = Webhook::start_with(&["--namespace-defaults", "ns.json"], |dir| {
        std::fs::write(
            dir.join("ns.json"),
            r#"{"team-a": {"hush.dev/role": "team-a", "hush.dev/vault-addr": "https://team-a-vault:8200"}}"#,
        )
        .unwrap();
    });
    let client = webhook.client();
    let mut pod = app_pod();
    pod["metadata"]["annotations"] = json!({"hush.dev/role": "mine"});
    let r = review("ns", "team-a", &pod);
    let (_, answer) = webhook.post(&client, r.to_string()).await;
    assert_eq!(response(&answer, "ns")["allowed"], true, "{answer}");
    let patched = apply(&r, response(&answer, "ns"));
    let env = &patched["spec"]["containers"][0]["env"];
    assert!(env.as_array().unwrap().contains(&json!({"name": "VAULT_ROLE", "value": "mine"})), "{env}");
    assert!(
        env.as_array().unwrap().contains(&json!({"name": "VAULT_ADDR", "value": "https://team-a-vault:8200"})),
        "{env}"
    );
}

/// The role a Pod in `namespace` gets (from the namespace defaults; the Pod sets none).
async fn role_in(webhook: &Webhook, client: &reqwest::Client, uid: &str, namespace: &str) -> Value {
    let r = review(uid, namespace, &app_pod());
    let (_, answer) = webhook.post(client, r.to_string()).await;
    let patched = apply(&r, response(&answer, uid));
    let env = patched["spec"]["containers"][0]["env"].as_array().unwrap().clone();
    env.into_iter().find(|v| v["name"] == "VAULT_ROLE").map(|v| v["value"].clone()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_changed_namespace_defaults_file_is_used_and_a_bad_one_keeps_the_last_good() {
    let webhook = Webhook::start_with(&["--namespace-defaults", "ns.json"], |dir| {
        std::fs::write(dir.join("ns.json"), r#"{"team-a": {"hush.dev/role": "first"}}"#).unwrap();
    });
    let client = webhook.client();
    let file = webhook.dir.path().join("ns.json");
    assert_eq!(role_in(&webhook, &client, "u0", "team-a").await, json!("first"));

    // Written in place, as a ConfigMap volume's atomic symlink swap also looks to a reader.
    std::fs::write(&file, r#"{"team-a": {"hush.dev/role": "second"}, "team-b": {"hush.dev/role": "b"}}"#).unwrap();
    let mut seen = Vec::new();
    for i in 0..200 {
        let role = role_in(&webhook, &client, &format!("u{i}"), "team-a").await;
        seen.push(role.clone());
        if role == json!("second") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.last(), Some(&json!("second")), "the new file was never used: {seen:?}");
    // Every answer was one version or the other, never a mix.
    assert!(seen.iter().all(|r| *r == json!("first") || *r == json!("second")), "{seen:?}");
    assert_eq!(role_in(&webhook, &client, "b", "team-b").await, json!("b"));
    assert!(webhook.await_log("reloaded the namespace defaults").await);

    std::fs::write(&file, r#"{"team-a": {"hush.dev/rol": "typo"}}"#).unwrap();
    let rejected = webhook.await_log("keeping the old namespace defaults").await;
    let log = webhook.logs.lock().unwrap().join("\n");
    assert!(rejected, "{log}");
    assert!(log.contains("ns.json") && log.contains("hush.dev/rol"), "the error names the file and key: {log}");
    assert_eq!(role_in(&webhook, &client, "kept", "team-a").await, json!("second"));
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn_as_the_api_server_does() {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;

    let webhook = Webhook::start(&[]);
    support::install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(webhook.certs.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(webhook.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(connection);
    let r = review("h2", "default", &app_pod());
    let request = hyper::Request::post(webhook.url("/mutate"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(r.to_string())))
        .unwrap();
    let reply = sender.send_request(request).await.unwrap();
    assert_eq!(reply.version(), hyper::Version::HTTP_2);
    assert_eq!(reply.status(), 200);
    let body = reply.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let patched = apply(&r, response(&answer, "h2"));
    assert_eq!(patched["spec"]["containers"][0]["command"], json!(["/hush/injector", "--", "/app"]));
}
