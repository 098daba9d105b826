//! The reference parser never panics, whatever it accepts round-trips through its canonical
//! text, and `check` agrees with it. The key-template parser and the `VAULT_ENV_FROM_PATH`
//! list parser never panic either, and report offsets inside their input.
#![no_main]

use hush_contract::reference::{check, key, may_hold_reference, parse, parse_from_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
    // The webhook's allocation-free check gives parse's answer and error.
    assert_eq!(check(value), parse(value).as_ref().map(Option::is_some).map_err(Clone::clone));
    match parse(value) {
        Ok(None) => assert!(!may_hold_reference(value)),
        Ok(Some(template)) => {
            assert!(may_hold_reference(value));
            let canonical = template.to_bytes();
            assert_eq!(parse(&canonical), Ok(Some(template)));
        }
        Err(error) => {
            assert!(may_hold_reference(value));
            assert!(error.offset <= value.len());
        }
    }
    if let Ok(text) = std::str::from_utf8(value) {
        if let Ok(template) = key::parse(text) {
            assert_eq!(template.text(), text);
        }
        if let Err(error) = parse_from_path(text) {
            assert!(error.offset <= text.len());
        }
    }
});
