use super::*;

fn parse(pairs: &[(&str, &str)]) -> Result<Annotations, AnnotationError> {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Annotations::parse(&map, Source::Pod)
}

#[test]
fn hardening_and_daemon_keys_become_shim_variables() {
    let a = parse(&[
        ("hush.dev/landlock", "ro:/usr;rw:/tmp;connect:5432"),
        ("hush.dev/capabilities", "NET_BIND_SERVICE"),
        ("hush.dev/clear-bounding-set", "true"),
        ("hush.dev/rotation", "exit"),
        ("hush.dev/restart-grace", "5s"),
        ("hush.dev/kv-poll-interval", "0"),
    ])
    .unwrap();
    let env = a.settings.env();
    for (name, value) in [
        ("HUSH_LANDLOCK", "ro:/usr;rw:/tmp;connect:5432"),
        ("HUSH_CAPABILITIES", "NET_BIND_SERVICE"),
        ("HUSH_CLEAR_BOUNDING_SET", "true"),
        ("HUSH_ROTATION", "exit"),
        ("HUSH_RESTART_GRACE", "5s"),
        ("HUSH_KV_POLL_INTERVAL", "0"),
    ] {
        assert!(env.contains(&(name, value.to_owned())), "{name}: {env:?}");
    }
    for (key, value, says) in [
        ("hush.dev/landlock", "ro:usr", "is not an absolute path"),
        ("hush.dev/landlock", "write:/tmp", "unknown item"),
        ("hush.dev/capabilities", "NET BIND", "not a capability"),
        ("hush.dev/rotation", "reboot", "`restart`, `exit`"),
        ("hush.dev/restart-grace", "soon", "duration"),
        ("hush.dev/kv-poll-interval", "often", "duration"),
    ] {
        let e = parse(&[(key, value)]).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(says), "{e}");
    }
}

#[test]
fn native_keys_become_settings() {
    let a = parse(&[
        ("hush.dev/inject", "true"),
        ("hush.dev/vault-addr", "https://vault:8200"),
        ("hush.dev/role", "app"),
        ("hush.dev/auth-method", "jwt"),
        ("hush.dev/env-passthrough", "VAULT_ADDR, VAULT_ROLE"),
        ("hush.dev/client-timeout", "30s"),
        ("hush.dev/platform", "linux/arm64/v8"),
        ("hush.dev/command", r#"{"app":["/app","serve"]}"#),
        ("unrelated.io/x", "anything"),
    ])
    .unwrap();
    assert_eq!(a.inject, Some(true));
    assert_eq!(
        a.settings.env(),
        vec![
            ("VAULT_ADDR", "https://vault:8200".to_owned()),
            ("VAULT_ROLE", "app".to_owned()),
            ("VAULT_AUTH_METHOD", "jwt".to_owned()),
            ("VAULT_ENV_PASSTHROUGH", "VAULT_ADDR,VAULT_ROLE".to_owned()),
            ("VAULT_CLIENT_TIMEOUT", "30s".to_owned()),
        ]
    );
    assert_eq!(a.platform.unwrap().to_string(), "linux/arm64/v8");
    assert_eq!(a.command["app"], vec!["/app", "serve"]);
}

#[test]
fn bank_vaults_aliases_are_accepted_under_both_prefixes() {
    let a = parse(&[
        ("vault.security.banzaicloud.io/vault-addr", "https://vault:8200"),
        ("vault.security.banzaicloud.io/vault-role", "app"),
        ("vault.security.banzaicloud.io/vault-path", "kubernetes"),
        ("vault.security.banzaicloud.io/vault-skip-verify", "True"),
        ("vault.security.banzaicloud.io/vault-env-daemon", "1"),
        ("vault.security.banzaicloud.io/vault-env-image", "hush/injector:1"),
        ("vault.security.banzaicloud.io/vault-tls-secret", "vault-tls"),
        ("vault.security.banzaicloud.io/vault-env-from-path", "secret/data/a,secret/data/b"),
        ("vault.security.banzaicloud.io/transit-key-id", "mykey"),
    ])
    .unwrap();
    assert_eq!(a.settings.get("VAULT_PATH"), Some("kubernetes"));
    assert_eq!(a.settings.get("VAULT_SKIP_VERIFY"), Some("true"));
    assert_eq!(a.settings.get("VAULT_ENV_DAEMON"), Some("true"));
    assert_eq!(a.settings.get("VAULT_ENV_FROM_PATH"), Some("secret/data/a,secret/data/b"));
    assert_eq!(a.settings.get("VAULT_TRANSIT_KEY_ID"), Some("mykey"));
    assert_eq!(a.settings.injector_image.as_deref(), Some("hush/injector:1"));
    assert_eq!(a.settings.tls_secret.as_deref(), Some("vault-tls"));
    assert_eq!(parse(&[("vault.security.banzaicloud.io/mutate", "skip")]).unwrap().inject, Some(false));
    // Bank-Vaults reads only `skip`; other values leave the decision to the references.
    assert_eq!(parse(&[("vault.security.banzaicloud.io/mutate", "true")]).unwrap().inject, None);

    let c = parse(&[
        ("secrets-webhook.security.bank-vaults.io/provider", "bao"),
        ("secrets-webhook.security.bank-vaults.io/bao-addr", "https://bao:8200"),
        ("secrets-webhook.security.bank-vaults.io/bao-role", "app"),
        ("secrets-webhook.security.bank-vaults.io/bao-passthrough", "BAO_ADDR"),
        ("secrets-webhook.security.bank-vaults.io/secret-init-daemon", "true"),
        ("secrets-webhook.security.bank-vaults.io/secret-init-json-log", "true"),
        ("secrets-webhook.security.bank-vaults.io/bao-tls-secret", "bao-tls"),
        ("secrets-webhook.security.bank-vaults.io/mutate", "skip"),
    ])
    .unwrap();
    assert_eq!(c.settings.vault_addr(), Some("https://bao:8200"));
    assert_eq!(c.settings.get("VAULT_ROLE"), Some("app"));
    assert_eq!(c.settings.get("VAULT_ENV_PASSTHROUGH"), Some("BAO_ADDR"));
    assert_eq!(c.settings.get("VAULT_ENV_DAEMON"), Some("true"));
    assert_eq!(c.settings.get("VAULT_JSON_LOG"), Some("true"));
    assert_eq!(c.settings.tls_secret.as_deref(), Some("bao-tls"));
    assert_eq!(c.inject, Some(false));
    let e = parse(&[("secrets-webhook.security.bank-vaults.io/provider", "aws")]).unwrap_err().to_string();
    assert!(e.contains("secrets-webhook.security.bank-vaults.io/provider"), "{e}");
}

#[test]
fn errors_name_the_annotation() {
    let e = parse(&[("hush.dev/injct", "true")]).unwrap_err();
    assert_eq!(e.to_string(), "unknown annotation `hush.dev/injct`");
    let e = parse(&[("hush.dev/inject", "yes")]).unwrap_err();
    assert!(e.to_string().starts_with("annotation `hush.dev/inject` has an invalid value \"yes\""), "{e}");
    let e = parse(&[("vault.security.banzaicloud.io/vault-skip-verify", "maybe")]).unwrap_err();
    assert!(e.to_string().contains("vault.security.banzaicloud.io/vault-skip-verify"), "{e}");
    for (k, v) in [
        ("hush.dev/vault-addr", "vault:8200"),
        ("hush.dev/client-timeout", "30"),
        ("hush.dev/auth-method", "ldap"),
        ("hush.dev/env-passthrough", "A-B"),
        ("hush.dev/tls-secret", "Bad_Name"),
        ("hush.dev/command", r#"{"app":[]}"#),
        ("hush.dev/command", "[]"),
        ("hush.dev/platform", "amd64"),
        ("hush.dev/role", ""),
    ] {
        let e = parse(&[(k, v)]).unwrap_err();
        assert!(e.to_string().contains(k), "{k}={v}: {e}");
    }
}

/// Issue 11: each of these was admitted and then every container exited 78.
#[test]
fn what_the_shim_refuses_is_refused_at_admission() {
    for (k, v) in [
        ("hush.dev/client-timeout", "0s"),
        ("hush.dev/restart-grace", "0s"),
        ("hush.dev/capabilities", "CAP_FLY"),
        ("hush.dev/vault-addr", "https://vaült.example:8200"),
        ("hush.dev/auth-path", "a/../b"),
    ] {
        let e = parse(&[(k, v)]).unwrap_err().to_string();
        assert!(e.contains(k), "{k}={v}: {e}");
    }
    // And the Go duration Bank-Vaults documents is admitted (it was refused).
    let a = parse(&[("vault.security.banzaicloud.io/vault-client-timeout", "1m30s")]).unwrap();
    assert_eq!(a.settings.get("VAULT_CLIENT_TIMEOUT"), Some("1m30s"));
}

#[test]
fn native_and_alias_must_agree() {
    assert!(parse(&[("hush.dev/role", "a"), ("vault.security.banzaicloud.io/vault-role", "a")]).is_ok());
    assert!(
        parse(&[("hush.dev/skip-verify", "true"), ("vault.security.banzaicloud.io/vault-skip-verify", "1")]).is_ok()
    );
    assert!(parse(&[("hush.dev/inject", "true"), ("vault.security.banzaicloud.io/mutate", "yes")]).is_ok());
    let e = parse(&[("hush.dev/role", "a"), ("vault.security.banzaicloud.io/vault-role", "b")]).unwrap_err();
    assert!(matches!(e, AnnotationError::Conflict { .. }), "{e}");
    let e = parse(&[
        ("vault.security.banzaicloud.io/vault-role", "a"),
        ("secrets-webhook.security.bank-vaults.io/bao-role", "b"),
    ])
    .unwrap_err();
    assert!(matches!(e, AnnotationError::Conflict { .. }), "{e}");
}

/// Issue 11 point 2: every Bank-Vaults annotation has one outcome.
#[test]
fn bank_vaults_annotations_are_warned_about_or_refused_by_name() {
    let warned = [
        ("vault.security.banzaicloud.io/vault-agent", "false"),
        ("secrets-webhook.security.bank-vaults.io/bao-agent", "false"),
        ("vault.security.banzaicloud.io/run-as-non-root", "true"),
        ("vault.security.banzaicloud.io/run-as-user", "1000"),
        ("vault.security.banzaicloud.io/run-as-group", "1000"),
        ("vault.security.banzaicloud.io/readonly-root-fs", "true"),
        ("secrets-webhook.security.bank-vaults.io/psp-allow-privilege-escalation", "false"),
        ("vault.security.banzaicloud.io/vault-image", "hashicorp/vault:latest"),
        ("vault.security.banzaicloud.io/mutate-probes", "false"),
    ];
    for (k, v) in warned {
        let a = parse(&[(k, v)]).unwrap();
        assert!(a.refused.is_empty(), "{k}");
        assert!(matches!(a.warnings.as_slice(), [w] if w.contains(k)), "{k}: {:?}", a.warnings);
    }
    let refused = [
        ("vault.security.banzaicloud.io/vault-agent", "true"),
        ("vault.security.banzaicloud.io/vault-agent-configmap", "va-config"),
        ("vault.security.banzaicloud.io/vault-ct-configmap", "ct-config"),
        ("secrets-webhook.security.bank-vaults.io/bao-ct-configmap", "ct-config"),
        ("vault.security.banzaicloud.io/vault-configfile-path", "/vault/secrets"),
        ("vault.security.banzaicloud.io/mutate-probes", "true"),
        ("vault.security.banzaicloud.io/token-auth-mount", "token:vault-token"),
        ("secrets-webhook.security.bank-vaults.io/aws-region", "eu-west-1"),
        ("vault.security.banzaicloud.io/no-such-thing", "1"),
    ];
    for (k, v) in refused {
        let a = parse(&[(k, v)]).unwrap();
        assert!(matches!(a.refused.as_slice(), [r] if r.contains(k)), "{k}: {:?}", a.refused);
    }
}

/// Issue 11: a Bank-Vaults image cannot run `/injector install`.
#[test]
fn a_bank_vaults_injector_image_is_refused_naming_hush_injector_image() {
    for image in [
        "ghcr.io/bank-vaults/vault-env:v1.21.0",
        "ghcr.io/bank-vaults/secret-init:latest",
        "banzaicloud/vault-env:1.13.0",
        "registry.local:5000/mirror/vault-env@sha256:0123",
    ] {
        for key in [
            "vault.security.banzaicloud.io/vault-env-image",
            "secrets-webhook.security.bank-vaults.io/secret-init-image",
        ] {
            let e = parse(&[(key, image)]).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("hush.dev/injector-image"), "{e}");
        }
    }
    assert!(parse(&[("vault.security.banzaicloud.io/vault-env-image", "registry.local:5000/hush/injector:1")]).is_ok());
}

#[test]
fn command_is_for_pods_only() {
    let map = BTreeMap::from([("hush.dev/command".to_owned(), r#"{"a":["b"]}"#.to_owned())]);
    assert_eq!(
        Annotations::parse(&map, Source::Defaults).unwrap_err(),
        AnnotationError::PodOnly("hush.dev/command".into())
    );
}

#[test]
fn layers_stack_pod_over_namespace_over_flags() {
    let flags = parse(&[("hush.dev/vault-addr", "https://a"), ("hush.dev/role", "r0")]).unwrap();
    let ns = parse(&[("hush.dev/role", "r1"), ("hush.dev/json-log", "true")]).unwrap();
    let pod = parse(&[("hush.dev/json-log", "false")]).unwrap();
    let s = pod.over(&ns.over(&flags)).settings;
    assert_eq!(s.vault_addr(), Some("https://a"));
    assert_eq!(s.get("VAULT_ROLE"), Some("r1"));
    assert_eq!(s.get("VAULT_JSON_LOG"), Some("false"));
}
