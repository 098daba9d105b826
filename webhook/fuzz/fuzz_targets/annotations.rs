//! The annotation parser never panics; its errors name one of the annotations they were
//! given; what `--default` flags accept, a Pod accepts too, with the same meaning; and a set of
//! annotations over itself is itself.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webhook::annotations::{Annotations, BANK_VAULTS_PREFIX, PREFIX, Source};

/// Names after the prefix that the parser knows (Hush's and Bank-Vaults'), so that most
/// inputs reach a value parser instead of stopping at "unknown annotation".
const NAMES: &[&str] = &[
    "inject",
    "mutate",
    "vault-addr",
    "role",
    "vault-role",
    "auth-method",
    "vault-auth-method",
    "auth-path",
    "vault-path",
    "vault-namespace",
    "skip-verify",
    "vault-skip-verify",
    "tls-secret",
    "vault-tls-secret",
    "ignore-missing-secrets",
    "vault-ignore-missing-secrets",
    "env-passthrough",
    "vault-env-passthrough",
    "env-daemon",
    "vault-env-daemon",
    "json-log",
    "enable-json-log",
    "log-level",
    "client-timeout",
    "vault-client-timeout",
    "injector-image",
    "vault-env-image",
    "injector-image-pull-policy",
    "vault-env-image-pull-policy",
    "landlock",
    "capabilities",
    "clear-bounding-set",
    "rotation",
    "restart-grace",
    "kv-poll-interval",
    "command",
    "platform",
    "vault-env-from-path",
];

#[derive(Debug, Arbitrary)]
enum Name {
    Hush(u8),
    BankVaults(u8),
    Other(String),
}

impl Name {
    fn text(&self) -> String {
        let known = |i: &u8| NAMES[usize::from(*i) % NAMES.len()];
        match self {
            Name::Hush(i) => format!("{PREFIX}{}", known(i)),
            Name::BankVaults(i) => format!("{BANK_VAULTS_PREFIX}{}", known(i)),
            Name::Other(text) => text.clone(),
        }
    }
}

fuzz_target!(|entries: Vec<(Name, String)>| {
    let map: BTreeMap<String, String> = entries.iter().map(|(name, value)| (name.text(), value.clone())).collect();
    let as_pod = Annotations::parse(&map, Source::Pod);
    let as_defaults = Annotations::parse(&map, Source::Defaults);
    for result in [&as_pod, &as_defaults] {
        if let Err(error) = result {
            let message = error.to_string();
            assert!(map.keys().any(|name| message.contains(name.as_str())), "{message} names none of {map:?}");
        }
    }
    if let Ok(defaults) = &as_defaults {
        let pod = as_pod.as_ref().expect("a Pod accepts what the defaults accept");
        assert_eq!(pod, defaults);
    }
    if let Ok(pod) = &as_pod {
        assert_eq!(&pod.over(pod), pod);
        assert_eq!(&pod.over(&Annotations::default()), pod);
    }
});
