//! The shim under faults, against a real OpenBao of its own: a server that comes up late,
//! a sealed one, connections cut mid-request, answers slower than the deadline, a revoked
//! token. Each ends with the documented exit code and no secret in any output.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn a_server_that_comes_up_within_the_deadline_is_waited_for() {
    let port = free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let shim = std::thread::spawn(move || {
        run_shim(
            &[
                ("VAULT_ADDR", &addr),
                ("VAULT_TOKEN", "root"),
                ("VAULT_CLIENT_TIMEOUT", "30s"),
                // Exists as soon as a dev server is up: the type of the default `secret/` mount.
                ("MOUNT_TYPE", "vault:sys/mounts/secret#type"),
            ],
            &["env", "-0"],
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    let _bao = OwnBao::start_on(port);
    let out = shim.join().unwrap();
    assert_eq!(get(&environ(&out), "MOUNT_TYPE"), "kv");
    assert!(String::from_utf8_lossy(&out.stderr).contains("retrying"), "it retried while the server was down");
}

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn a_sealed_server_is_unavailable_past_the_deadline() {
    let bao = OwnBao::start();
    bao.run(&["kv", "put", "secret/app", "password=sealed-pw"]);
    bao.run(&["operator", "seal"]);
    let started = Instant::now();
    let out = run_shim(
        &[
            ("VAULT_ADDR", &bao.addr),
            ("VAULT_TOKEN", "root"),
            ("VAULT_CLIENT_TIMEOUT", "2s"),
            ("P", "vault:secret/data/app#password"),
        ],
        &["echo", "started"],
    );
    let log = assert_no_secret(&out, &["sealed-pw", "started"]);
    assert_eq!(out.status.code(), Some(69), "{log}");
    assert!(log.contains("HTTP 503") && log.contains("sealed"), "{log}");
    assert!(log.matches("retrying in").count() >= 3, "it retried before giving up: {log}");
    assert!(started.elapsed() < Duration::from_secs(5), "and stopped at the deadline");
}

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn a_revoked_token_is_refused() {
    let bao = OwnBao::start();
    bao.run(&["kv", "put", "secret/app", "password=revoked-pw"]);
    let token = String::from_utf8(bao.cli(&["token", "create", "-field=token", "-policy=default"]).stdout).unwrap();
    bao.run(&["token", "revoke", token.trim()]);
    let out = run_shim(
        &[("VAULT_ADDR", &bao.addr), ("VAULT_TOKEN", token.trim()), ("P", "vault:secret/data/app#password")],
        &["echo", "started"],
    );
    let log = assert_no_secret(&out, &["revoked-pw", "started", token.trim()]);
    assert_eq!(out.status.code(), Some(77), "{log}");
    assert!(log.contains("permission denied"), "{log}");
}

/// A TCP proxy to `upstream` that cuts the first `cut` connections after reading the
/// request, and delays every answer by `delay`.
fn proxy(upstream: String, cut: usize, delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming().take(50) {
            let Ok(mut client) = client else { continue };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let mut request = vec![0u8; 64 * 1024];
                let Ok(len) = client.read(&mut request) else { return };
                if n < cut {
                    return; // dropped mid-request: no answer at all
                }
                std::thread::sleep(delay);
                let Ok(mut server) = TcpStream::connect(&upstream) else { return };
                let _ = server.write_all(&request[..len]);
                let mut answer = Vec::new();
                let _ = server.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 8192];
                while let Ok(n) = server.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    answer.extend_from_slice(&buf[..n]);
                }
                let _ = client.write_all(&answer);
            });
        }
    });
    (port, seen)
}

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn connections_cut_mid_request_are_retried() {
    let bao = OwnBao::start();
    bao.run(&["kv", "put", "secret/app", "password=cut-pw"]);
    let upstream = bao.addr.trim_start_matches("http://").to_owned();
    let (port, seen) = proxy(upstream, 2, Duration::ZERO);
    let out = run_shim(
        &[
            ("VAULT_ADDR", &format!("http://127.0.0.1:{port}")),
            ("VAULT_TOKEN", "root"),
            ("P", "vault:secret/data/app#password"),
        ],
        &["env", "-0"],
    );
    assert_eq!(get(&environ(&out), "P"), "cut-pw");
    assert!(seen.load(Ordering::SeqCst) >= 3, "two cut connections, then one that worked");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("cut-pw"), "{log}");
}

#[test]
#[ignore = "needs OpenBao: run through `cargo xtask test`"]
fn answers_slower_than_the_deadline_are_unavailable() {
    let bao = OwnBao::start();
    bao.run(&["kv", "put", "secret/app", "password=slow-pw"]);
    let upstream = bao.addr.trim_start_matches("http://").to_owned();
    let (port, _) = proxy(upstream, 0, Duration::from_secs(5));
    let started = Instant::now();
    let out = run_shim(
        &[
            ("VAULT_ADDR", &format!("http://127.0.0.1:{port}")),
            ("VAULT_TOKEN", "root"),
            ("VAULT_CLIENT_TIMEOUT", "2s"),
            ("P", "vault:secret/data/app#password"),
        ],
        &["echo", "started"],
    );
    let log = assert_no_secret(&out, &["slow-pw", "started"]);
    assert_eq!(out.status.code(), Some(69), "{log}");
    assert!(started.elapsed() < Duration::from_secs(4), "the deadline held: {:?}", started.elapsed());
}
