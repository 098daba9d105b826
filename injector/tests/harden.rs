//! The hardened exec on the host kernel: core dumps, no-new-privs, capabilities and
//! Landlock, each checked from inside the application, with a control that shows the
//! check can fail.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use support::*;

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// The app's `/proc/self/status`, read by `cat` run through the shim.
fn app_status(env: &[(&str, &str)]) -> String {
    let out = run_shim(env, &["cat", "/proc/self/status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn core_dumps_are_off_and_no_new_privs_is_set() {
    let out = run_shim(&[], &["sh", "-c", "cat /proc/self/limits; cat /proc/self/coredump_filter"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let core = text.lines().find(|l| l.starts_with("Max core file size")).expect("limits listed");
    assert_eq!(core.split_whitespace().collect::<Vec<_>>()[4..6], ["1", "1"], "{core}");
    assert!(text.lines().any(|l| l == "00000000"), "coredump_filter cleared: {text}");
    assert_eq!(status_field(&app_status(&[]), "NoNewPrivs"), "1");
    // Control: the same command without the shim.
    let plain = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(status_field(&plain, "NoNewPrivs"), "0");
}

#[test]
fn capabilities_are_dropped_to_the_configured_set() {
    let all = status_field(&std::fs::read_to_string("/proc/self/status").unwrap(), "CapEff");
    assert_ne!(all, "0000000000000000", "the test runs with capabilities");
    let kept = app_status(&[]);
    assert_eq!(status_field(&kept, "CapEff"), all, "default: keep what the container had");
    assert_eq!(status_field(&kept, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&kept, "CapAmb"), "0000000000000000");

    let one = app_status(&[("HUSH_CAPABILITIES", "NET_BIND_SERVICE")]);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_field(&one, set), "0000000000000400", "{set}: only CAP_NET_BIND_SERVICE (bit 10)");
    }
    let none = app_status(&[("HUSH_CAPABILITIES", "none"), ("HUSH_CLEAR_BOUNDING_SET", "true")]);
    for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(status_field(&none, set), "0000000000000000", "{set}");
    }
    let bad = run_shim(&[("HUSH_CAPABILITIES", "CAP_FLY")], &["true"]);
    assert_eq!(bad.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HUSH_CAPABILITIES"));
}

#[test]
fn a_setuid_binary_cannot_raise_privileges() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = dir.path().join("setuid-id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let as_nobody = |program: &str, args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", program])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let id = id.to_str().unwrap();
    assert_eq!(as_nobody(id, &["-u"]), "0", "control: the setuid bit works for nobody without the shim");
    let shim = injector();
    assert_eq!(as_nobody(shim.to_str().unwrap(), &["--", id, "-u"]), "65534", "through the shim it does not");
}

#[test]
fn landlock_denies_a_subtree_and_allows_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, text) in [("secret/key", "do-not-read"), ("public/readme", "fine"), ("sa/token", "jwt")] {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::fs::write(root.join(path), text).unwrap();
    }
    let script = format!(
        "cat {0}/public/readme; echo; cat {0}/secret/key 2>/dev/null && echo LEAK; echo written > {0}/public/new && echo wrote; \
         cat {0}/sa/token 2>/dev/null && echo SA-LEAK; ls /usr >/dev/null && echo listed",
        root.display()
    );
    let policy = format!("deny:{}/secret", root.display());
    let sa = format!("{}/sa/token", root.display());
    let out = run_shim(&[("HUSH_LANDLOCK", &policy), ("HUSH_SA_TOKEN_PATH", &sa)], &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fine") && text.contains("wrote") && text.contains("listed"), "{text}");
    assert!(!text.contains("LEAK"), "the denied subtree and the token directory were readable: {text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fully enforced"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `sa-token` gives the token back; without any deny item nothing is restricted.
    let out = run_shim(&[("HUSH_LANDLOCK", "sa-token"), ("HUSH_SA_TOKEN_PATH", &sa)], &["cat", &sa]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "jwt");
}

#[test]
fn landlock_allow_lists_restrict_writes_and_tcp_connect() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("rw")).unwrap();
    std::fs::create_dir_all(root.join("ro")).unwrap();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (allowed.local_addr().unwrap().port(), other.local_addr().unwrap().port());
    let policy = format!("ro:/usr,/bin,/lib,/lib64,/etc,/proc,/dev,{0}/ro;rw:{0}/rw;connect:{a}", root.display());
    let script = format!(
        "echo x > {0}/rw/f && echo rw-ok; echo x > {0}/ro/f 2>/dev/null && echo RO-WRITTEN; \
         python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {a})); print(\"connect-ok\")'; \
         python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {b})); print(\"CONNECTED-OTHER\")' 2>/dev/null; true",
        root.display()
    );
    let out = run_shim(&[("HUSH_LANDLOCK", &policy)], &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("rw-ok") && text.contains("connect-ok"), "{text}");
    assert!(!text.contains("RO-WRITTEN") && !text.contains("CONNECTED-OTHER"), "{text}");
    drop((allowed, other));

    let bad = run_shim(&[("HUSH_LANDLOCK", "ro:relative")], &["true"]);
    assert_eq!(bad.status.code(), Some(78));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("HUSH_LANDLOCK") && err.contains("`relative` is not an absolute path"), "{err}");
    let missing = run_shim(&[("HUSH_LANDLOCK", "required;deny:/nonexistent/hush")], &["true"]);
    assert_eq!(missing.status.code(), Some(78), "{}", String::from_utf8_lossy(&missing.stderr));
}
