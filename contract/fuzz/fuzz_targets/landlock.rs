//! The Landlock policy parser never panics, and what it accepts names only absolute paths
//! without `.`/`..` and ports from 1 to 65535.
#![no_main]

use hush_contract::landlock::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(policy) = parse(text) {
        for path in policy.read_only.iter().chain(&policy.read_write).chain(&policy.deny) {
            assert!(path.is_absolute());
            assert!(
                !path.components().any(|c| matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir))
            );
        }
        for port in policy.connect.iter().chain(policy.bind.iter()).flatten() {
            assert!(*port >= 1);
        }
        assert!(!policy.off || (policy.read_only.is_empty() && policy.deny.is_empty() && policy.connect.is_none()));
    }
});
