//! The reference parser never panics, and whatever it accepts round-trips through its
//! canonical text.
#![no_main]

use hush_contract::reference::{may_hold_reference, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
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
});
