use super::*;
use proptest::prelude::*;

#[test]
fn names_are_unique_across_settings() {
    let mut envs: Vec<&str> =
        SETTINGS.iter().flat_map(|s| std::iter::once(s.env).chain(s.env_aliases.iter().copied())).collect();
    let n = envs.len();
    envs.sort_unstable();
    envs.dedup();
    assert_eq!(envs.len(), n, "a variable name belongs to two settings");
    let mut keys: Vec<String> = SETTINGS.iter().flat_map(|s| s.annotation_keys()).collect();
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "an annotation names two settings");
    for s in SETTINGS {
        assert!(s.env_aliases.iter().all(|a| !crate::env::STRIPPED_ONLY.contains(a)), "{}", s.env);
        assert!(crate::env::is_config_variable(s.env));
    }
}

#[test]
fn annotations_resolve_under_all_three_prefixes() {
    for (key, env) in [
        ("hush.dev/client-timeout", "VAULT_CLIENT_TIMEOUT"),
        ("vault.security.banzaicloud.io/vault-client-timeout", "VAULT_CLIENT_TIMEOUT"),
        ("secrets-webhook.security.bank-vaults.io/bao-client-timeout", "VAULT_CLIENT_TIMEOUT"),
        ("secrets-webhook.security.bank-vaults.io/vault-passthrough", "VAULT_ENV_PASSTHROUGH"),
        ("vault.security.banzaicloud.io/vault-env-from-path", "VAULT_ENV_FROM_PATH"),
        ("secrets-webhook.security.bank-vaults.io/bao-from-path", "VAULT_ENV_FROM_PATH"),
        ("secrets-webhook.security.bank-vaults.io/secret-init-delay", "VAULT_ENV_DELAY"),
        ("vault.security.banzaicloud.io/transit-key-id", "VAULT_TRANSIT_KEY_ID"),
        ("vault.security.banzaicloud.io/enable-json-log", "VAULT_JSON_LOG"),
    ] {
        let (prefix, rest) = Prefix::split(key).unwrap();
        assert_eq!(by_annotation(prefix, rest).map(|s| s.env), Some(env), "{key}");
    }
    assert_eq!(by_env("BAO_ADDR").map(|s| s.env), Some("VAULT_ADDR"));
    assert_eq!(by_env("SECRET_INIT_DAEMON").map(|s| s.env), Some("VAULT_ENV_DAEMON"));
    assert_eq!(by_env("DATABASE_URL"), None);
}

/// The mismatches of issue 11: each value is now refused by the one rule, so the webhook
/// refuses what the shim would refuse; and the Go spellings Bank-Vaults accepts are accepted.
#[test]
fn the_values_of_issue_11() {
    let refused = [
        (&VAULT_CLIENT_TIMEOUT, "0s", "more than zero"),
        (&HUSH_RESTART_GRACE, "0s", "more than zero"),
        (&HUSH_CAPABILITIES, "CAP_FLY", "not a capability"),
        (&VAULT_ADDR, "https://vaült.example:8200", "ASCII"),
        (&VAULT_PATH, "a/../b", "`..`"),
        (&VAULT_CLIENT_TIMEOUT, "30", "Go duration"),
        (&VAULT_SKIP_VERIFY, "yes", "boolean"),
    ];
    for (setting, value, says) in refused {
        let e = setting.check(value).unwrap_err();
        assert!(e.problem.contains(says), "{}={value}: {e}", setting.env);
    }
    assert_eq!(VAULT_CLIENT_TIMEOUT.check("1m30s"), Ok(Value::Duration(Some(Duration::from_secs(90)))));
    assert_eq!(VAULT_CLIENT_TIMEOUT.check("1m30s").unwrap().canonical(), "1m30s");
    assert_eq!(VAULT_ENV_DELAY.check("0"), Ok(Value::Duration(Some(Duration::ZERO))));
    assert_eq!(HUSH_KV_POLL_INTERVAL.check("0s"), Ok(Value::Duration(None)));
    assert_eq!(VAULT_SKIP_VERIFY.check("True"), Ok(Value::Bool(true)));
    assert_eq!(
        HUSH_CAPABILITIES.check("net_bind_service, CAP_CHOWN").unwrap().canonical(),
        "net_bind_service, CAP_CHOWN"
    );
    assert_eq!(VAULT_PATH.check("/auth/jwt/").unwrap().canonical(), "auth/jwt");
    assert_eq!(VAULT_LOG_LEVEL.check("DEBUG").unwrap().canonical(), "debug");
}

/// Found by webhook/tests/contract.rs: `hush.dev/role: " "` was admitted, and the shim, which
/// reads values without surrounding blanks, found no role.
#[test]
fn blank_values_are_empty_values() {
    assert_eq!(VAULT_ROLE.check(" ").unwrap_err().problem, "the value is empty");
    assert_eq!(VAULT_ROLE.check(" app ").unwrap().canonical(), "app");
    assert_eq!(VAULT_ENV_PASSTHROUGH.check(" "), Ok(Value::List(vec![])));
}

#[test]
fn secrets_are_never_quoted() {
    let e = VAULT_TOKEN.check("").unwrap_err();
    assert_eq!(e.problem, "the value is empty");
    assert!(VAULT_TOKEN.check("s.hunter2\u{7}").is_ok(), "a token is taken as is");
}

fn value_for(grammar: Grammar) -> BoxedStrategy<String> {
    let any = "\\PC{0,12}".boxed();
    match grammar {
        G::Bool => prop_oneof![Just("true".to_owned()), Just("0".to_owned()), Just("T".to_owned()), any].boxed(),
        G::Duration(_) => {
            prop_oneof!["[0-9]{1,4}(ns|us|ms|s|m|h)", "[0-9]{1,3}m[0-9]{1,2}s", Just("0".to_owned()), any].boxed()
        }
        G::Count { .. } => prop_oneof!["[0-9]{1,4}", any].boxed(),
        G::Addr => prop_oneof!["https?://[a-z0-9.\\-]{1,12}(:[0-9]{1,5})?(/[a-z]{0,4})?", any].boxed(),
        G::MountPath | G::VaultPaths => prop_oneof!["/?[a-z.]{1,5}(/[a-z.]{1,5}){0,3}/?(,[a-z]{1,4})?", any].boxed(),
        G::Capabilities => prop_oneof!["(cap_)?(CHOWN|NET_BIND_SERVICE|FLY|kill)(, ?(SYS_ADMIN|bpf))?", any].boxed(),
        G::EnvNames => prop_oneof!["[A-Z_]{1,5}(, ?[A-Za-z0-9_\\-]{0,5}){0,3}", any].boxed(),
        G::OneOf { words, .. } => {
            prop_oneof![proptest::sample::select(words.to_vec()).prop_map(str::to_owned), any].boxed()
        }
        G::Landlock => prop_oneof!["(ro|rw|deny):/[a-z]{1,4}(;connect:[0-9]{1,5})?", any].boxed(),
        G::Text | G::Secret | G::File => any,
    }
}

proptest! {
    /// What a check accepts, its canonical spelling gives back unchanged: the webhook writes
    /// the canonical value, and the shim's check of it is the same check.
    #[test]
    fn canonical_values_check_to_themselves(index in 0..SETTINGS.len(), seed in any::<u64>()) {
        let setting = SETTINGS[index];
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            Default::default(),
            proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &{
                let mut s = [0u8; 32];
                s[..8].copy_from_slice(&seed.to_le_bytes());
                s
            }),
        );
        let value = value_for(setting.grammar).new_tree(&mut runner).unwrap().current();
        if let Ok(checked) = setting.check(&value) {
            let canonical = checked.canonical();
            prop_assert_eq!(setting.check(&canonical), Ok(checked), "{}={:?} -> {:?}", setting.env, value, canonical);
        }
    }
}

use proptest::strategy::ValueTree;
