//! Durations as OpenBao writes and reads them.
//!
//! Parsing follows OpenBao's `parseutil.ParseDurationSecond`:
//! - an empty string is zero;
//! - a bare integer (`"30"`, or a JSON/HCL number) is a number of seconds;
//! - an integer followed by `d` (`"7d"`) is a number of days (whole days only, as in OpenBao);
//! - anything else is a Go duration string (`"1h0m0s"`, `"30m"`, `"1.5h"`, `"500ms"`, `"10us"`).
//!
//! Negative durations are rejected: `std::time::Duration` cannot hold them and no configuration
//! value Kura reads has a meaning for them. Values larger than Go's `time.Duration` (about 292
//! years) are rejected as overflow, as Go does.
//!
//! Formatting ([`format_duration`]) reproduces Go's `time.Duration.String()`: `"768h0m0s"`,
//! `"1h0m0s"`, `"30m0s"`, `"1.5s"`, `"500ms"`, `"0s"`.

use std::time::Duration;

/// Largest duration Go's `time.Duration` can hold, in nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not an integer, a day count or a Go duration string.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// The text names a unit Go does not know.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A number without a unit inside a Go duration string (`"1h30"`).
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// The duration is negative.
    #[error("negative duration {0:?} is not allowed")]
    Negative(String),
    /// The duration does not fit in Go's `time.Duration` (about 292 years).
    #[error("duration {0:?} is too large")]
    Overflow(String),
    /// The value is neither a string nor a number (a boolean, a list, an object).
    #[error("a duration must be a string or a number of seconds, not {0}")]
    WrongType(&'static str),
}

/// Parses a duration the way OpenBao's `parseutil.ParseDurationSecond` parses a string.
///
/// See the [module documentation](self) for the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return seconds(secs, s);
    }
    if let Some(days) = s.strip_suffix('d') {
        let days: i64 = days
            .parse()
            .map_err(|_| DurationError::Invalid(s.to_string()))?;
        if days < 0 {
            return Err(DurationError::Negative(s.to_string()));
        }
        let nanos = u128::from(days.unsigned_abs()) * 86_400 * NANOS_PER_SEC;
        return from_nanos(nanos, s);
    }
    parse_go_duration(s)
}

/// Parses a configuration value as a duration: strings as [`parse_duration`], integers as
/// seconds, and other numbers as whole seconds (the fraction is dropped, as OpenBao does).
/// `null` is zero.
pub fn parse_duration_value(value: &serde_json::Value) -> Result<Duration, DurationError> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(Duration::ZERO),
        Value::String(s) => parse_duration(s),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                seconds(i, &n.to_string())
            } else if let Some(u) = n.as_u64() {
                from_nanos(u128::from(u) * NANOS_PER_SEC, &n.to_string())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(DurationError::Invalid(n.to_string()));
                }
                if f < 0.0 {
                    return Err(DurationError::Negative(n.to_string()));
                }
                let whole = f.trunc();
                if whole > i64::MAX as f64 {
                    return Err(DurationError::Overflow(n.to_string()));
                }
                seconds(whole as i64, &n.to_string())
            }
        }
        Value::Bool(_) => Err(DurationError::WrongType("a boolean")),
        Value::Array(_) => Err(DurationError::WrongType("a list")),
        Value::Object(_) => Err(DurationError::WrongType("an object")),
    }
}

/// Formats a duration as Go's `time.Duration.String()` does: `"768h0m0s"`, `"1h0m0s"`,
/// `"30m0s"`, `"1m30s"`, `"1.5s"`, `"500ms"`, `"1.5µs"`, `"10ns"`, `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < NANOS_PER_SEC {
        // Go switches to a smaller unit below one second.
        return if nanos < 1_000 {
            format!("{nanos}ns")
        } else if nanos < 1_000_000 {
            format!("{}µs", fixed_point(nanos, 3))
        } else {
            format!("{}ms", fixed_point(nanos, 6))
        };
    }
    let total_secs = nanos / NANOS_PER_SEC;
    let frac = nanos % NANOS_PER_SEC;
    let hours = total_secs / 3600;
    let minutes = (total_secs / 60) % 60;
    let secs = total_secs % 60;
    let secs = fixed_point(secs * NANOS_PER_SEC + frac, 9);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / 10^digits` written with its fraction, trailing zeros (and a bare point) removed.
fn fixed_point(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let int = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

fn seconds(secs: i64, input: &str) -> Result<Duration, DurationError> {
    if secs < 0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    from_nanos(u128::from(secs.unsigned_abs()) * NANOS_PER_SEC, input)
}

fn from_nanos(nanos: u128, input: &str) -> Result<Duration, DurationError> {
    if nanos > MAX_NANOS {
        return Err(DurationError::Overflow(input.to_string()));
    }
    let secs = (nanos / NANOS_PER_SEC) as u64;
    let sub = (nanos % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, sub))
}

/// Nanoseconds in one of Go's duration units.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// Go's `time.ParseDuration`, restricted to non-negative results.
fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_digits = &s[..int_len];
        s = &s[int_len..];
        // Fraction.
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or point.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?;
        let int: u128 = if int_digits.is_empty() {
            0
        } else {
            // More than 39 digits cannot fit a u128; it is an overflow in any case.
            int_digits
                .parse()
                .map_err(|_| DurationError::Overflow(input.to_string()))?
        };
        let mut part = int
            .checked_mul(scale)
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        if !frac_digits.is_empty() {
            // Only the digits that can matter at nanosecond precision are kept.
            let kept = &frac_digits[..frac_digits.len().min(18)];
            let frac: u128 = kept.parse().map_err(|_| invalid())?;
            part += frac * scale / 10u128.pow(kept.len() as u32);
        }
        total = total
            .checked_add(part)
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow(input.to_string()));
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    from_nanos(total, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn integers_are_seconds() {
        assert_eq!(parse_duration("30").unwrap(), secs(30));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("+15").unwrap(), secs(15));
        assert_eq!(parse_duration("").unwrap(), Duration::ZERO);
    }

    #[test]
    fn go_strings() {
        assert_eq!(parse_duration("1h0m0s").unwrap(), secs(3600));
        assert_eq!(parse_duration("30m").unwrap(), secs(1800));
        assert_eq!(parse_duration("1.5h").unwrap(), secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse_duration("10µs").unwrap(), Duration::from_micros(10));
        assert_eq!(parse_duration("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse_duration("768h").unwrap(), secs(768 * 3600));
        assert_eq!(parse_duration("2h45m").unwrap(), secs(2 * 3600 + 45 * 60));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.s").unwrap(), secs(1));
        assert_eq!(parse_duration("-0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn days_as_in_parseutil() {
        assert_eq!(parse_duration("1d").unwrap(), secs(86_400));
        assert_eq!(parse_duration("30d").unwrap(), secs(30 * 86_400));
        // parseutil accepts only a whole number of days, alone.
        assert!(parse_duration("1.5d").is_err());
        assert!(parse_duration("1d2h").is_err());
        assert!(parse_duration("1h1d").is_err());
        assert!(matches!(
            parse_duration("-1d"),
            Err(DurationError::Negative(_))
        ));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            parse_duration("abc"),
            Err(DurationError::UnknownUnit { .. }) | Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("1h30"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("5x"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_duration("-5"),
            Err(DurationError::Negative(_))
        ));
        assert!(parse_duration(" 5s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration(".").is_err());
        assert!(parse_duration("-").is_err());
        assert!(matches!(
            parse_duration("3000000h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn values() {
        assert_eq!(parse_duration_value(&json!(30)).unwrap(), secs(30));
        assert_eq!(parse_duration_value(&json!("30s")).unwrap(), secs(30));
        assert_eq!(parse_duration_value(&json!("45")).unwrap(), secs(45));
        assert_eq!(parse_duration_value(&json!(1.9)).unwrap(), secs(1));
        assert_eq!(parse_duration_value(&json!(null)).unwrap(), Duration::ZERO);
        assert!(matches!(
            parse_duration_value(&json!(-3)),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_duration_value(&json!(true)),
            Err(DurationError::WrongType(_))
        ));
        assert!(matches!(
            parse_duration_value(&json!(["1s"])),
            Err(DurationError::WrongType(_))
        ));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(secs(768 * 3600)), "768h0m0s");
        assert_eq!(format_duration(secs(3600)), "1h0m0s");
        assert_eq!(format_duration(secs(1800)), "30m0s");
        assert_eq!(format_duration(secs(90)), "1m30s");
        assert_eq!(format_duration(secs(59)), "59s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(format_duration(Duration::from_nanos(10)), "10ns");
        assert_eq!(format_duration(Duration::new(3661, 1)), "1h1m1.000000001s");
        assert_eq!(format_duration(Duration::from_micros(2_500)), "2.5ms");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(nanos in 0u64..(i64::MAX as u64)) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn integer_seconds_round_trip(s in 0i64..9_000_000_000) {
            prop_assert_eq!(parse_duration(&s.to_string()).unwrap(), Duration::from_secs(s as u64));
            prop_assert_eq!(parse_duration_value(&json!(s)).unwrap(), Duration::from_secs(s as u64));
        }

        #[test]
        fn unit_sums_add_up(h in 0u64..10_000, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let want = Duration::from_secs(h * 3600 + m * 60 + s) + Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&text).unwrap(), want);
        }

        #[test]
        fn never_panics(text in "\\PC{0,12}") {
            let _ = parse_duration(&text);
        }
    }
}
