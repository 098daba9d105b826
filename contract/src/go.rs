//! Go's spellings of booleans and durations, as Bank-Vaults parses its annotations and
//! variables: `strconv.ParseBool` and `time.ParseDuration` (Go's `src/strconv/atob.go` and
//! `src/time/format.go`). Bank-Vaults reads booleans and durations with these
//! (`bank-vaults/vault-secrets-webhook` `pkg/webhook/config.go`: `strconv.ParseBool(val)`,
//! `time.ParseDuration(val)`; `bank-vaults/vault-env` `main.go` and `bank-vaults/secret-init`
//! `pkg/common/config.go`: `cast.ToBool`, `cast.ToDuration`, which call the same functions).

use std::time::Duration;

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`, nothing else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Why a text is not a Go duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or a unit Go does not know.
    #[error("expected a Go duration such as `500ms`, `30s`, `1m30s` or `1.5h`")]
    Syntax,
    /// Below zero: no setting of the shim takes a negative duration.
    #[error("a negative duration is not allowed")]
    Negative,
    /// Larger than Go's `time.Duration` (about 292 years).
    #[error("the duration is too large")]
    Overflow,
}

/// Go's `time.ParseDuration`, for the non-negative durations the shim's settings take.
/// Accepts what Go accepts (`0`, `1m30s`, `1.5h`, `300ms`, `2h45m`, `1µs`, `+5s`), refuses
/// what Go refuses (`30`, `1d`, ``, `.s`), and refuses negative values (`-0s` is zero, as in Go).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Syntax);
    }
    // Nanoseconds; Go's limit is i64::MAX nanoseconds.
    const MAX: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(digits);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after) => {
                let n = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::Syntax);
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => return Err(DurationError::Syntax),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            // More than 39 digits cannot fit; Go reports an overflow too.
            int_part.parse::<u128>().map_err(|_| DurationError::Overflow)?
        };
        let mut value = int.checked_mul(scale).ok_or(DurationError::Overflow)?;
        if value > MAX {
            return Err(DurationError::Overflow);
        }
        // The fraction, as Go does: digits beyond what fits are dropped.
        let mut frac: u128 = 0;
        let mut frac_scale: u128 = 1;
        for b in frac_part.bytes() {
            if frac_scale > MAX {
                break;
            }
            frac = frac * 10 + u128::from(b - b'0');
            frac_scale *= 10;
        }
        value += frac * scale / frac_scale;
        total = total.checked_add(value).filter(|t| *t <= MAX).ok_or(DurationError::Overflow)?;
        rest = next;
    }
    if negative && total != 0 {
        return Err(DurationError::Negative);
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// A duration as Go's `time.Duration.String` would write it, for values this crate wrote:
/// whole units only (`1h2m3s`, `500ms`, `0s`), so that [`parse_duration`] reads it back exactly.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if !nanos.is_multiple_of(1_000_000_000) {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}us", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn booleans_as_go_spells_them() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["yes", "no", "on", "off", "tRUE", "", " true", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_as_go_parses_them() {
        // Cases from Go's src/time/time_test.go parseDurationTests (non-negative ones).
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1478s", Duration::from_secs(1478)),
            ("-0", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("-0s", Duration::ZERO),
            ("5.0s", Duration::from_secs(5)),
            ("5.6s", Duration::from_millis(5600)),
            ("5.s", Duration::from_secs(5)),
            (".5s", Duration::from_millis(500)),
            ("1.0s", Duration::from_secs(1)),
            ("1.004s", Duration::from_millis(1004)),
            ("100.00100s", Duration::from_millis(100_001)),
            ("10ns", Duration::from_nanos(10)),
            ("11us", Duration::from_micros(11)),
            ("12\u{b5}s", Duration::from_micros(12)),
            ("12\u{3bc}s", Duration::from_micros(12)),
            ("13ms", Duration::from_millis(13)),
            ("14s", Duration::from_secs(14)),
            ("15m", Duration::from_secs(900)),
            ("16h", Duration::from_secs(16 * 3600)),
            ("3h30m", Duration::from_secs(12600)),
            ("10.5s4m", Duration::from_millis(250_500)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("39h9m14.425s", Duration::from_millis(140_954_425)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("0s", Duration::ZERO),
            ("9223372036s854ms775us807ns", Duration::new(9_223_372_036, 854_775_807)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
        for bad in ["", "3", "-", "s", ".", "-.", ".s", "+.s", "1d", "30 s", "1s ", "3000000h", "9223372036854775808ns"]
        {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("-5s"), Err(DurationError::Negative));
        assert_eq!(parse_duration("3000000h"), Err(DurationError::Overflow));
    }

    proptest! {
        #[test]
        fn formatted_durations_read_back(nanos in 0u64..(i64::MAX as u64)) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
        }
    }
}
