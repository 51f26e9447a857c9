//! Durations as OpenBao policies accept them: integers are seconds, strings are either integer
//! seconds, whole days (`"2d"`) or Go duration strings (`"1h30m"`, `"1.5s"`, `"-5m"`).

use crate::syntax::Node;

/// Nanoseconds per unit suffix accepted in a Go duration string.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string (`time.ParseDuration`) into signed nanoseconds. The error text
/// is Go's, which OpenBao passes through to the client.
pub(crate) fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let mut value: u64 = 0;
        let start_len = s.len();
        while let Some(&c) = s.first() {
            if !c.is_ascii_digit() {
                break;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
            s = &s[1..];
        }
        let had_int = start_len != s.len();
        // Fraction part.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_frac = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let mut overflow = false;
            while let Some(&c) = s.first() {
                if !c.is_ascii_digit() {
                    break;
                }
                if !overflow {
                    match frac
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(c - b'0')))
                        .filter(|v| *v <= LIMIT)
                    {
                        Some(v) => {
                            frac = v;
                            scale *= 10.0;
                        }
                        None => overflow = true,
                    }
                }
                s = &s[1..];
            }
            had_frac = before != s.len();
        }
        if !had_int && !had_frac {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .iter()
            .position(|c| *c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {orig:?}"));
        }
        let unit_str = String::from_utf8_lossy(&s[..unit_len]).into_owned();
        s = &s[unit_len..];
        let unit = unit_nanos(&unit_str)
            .ok_or_else(|| format!("time: unknown unit {unit_str:?} in duration {orig:?}"))?;
        if value > LIMIT / unit {
            return Err(invalid());
        }
        value *= unit;
        if frac > 0 {
            value += (frac as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// Parses a duration value the way OpenBao's `ParseDurationSecond` does, into signed
/// nanoseconds. `None` input (no value) is zero.
pub(crate) fn parse_duration_second(node: &Node) -> Result<i64, String> {
    const SEC: i64 = 1_000_000_000;
    match node {
        Node::Null => Ok(0),
        Node::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.checked_mul(SEC)
                    .ok_or_else(|| "duration out of range".to_string())
            } else if let Some(f) = n.as_f64() {
                // Go converts the float to a whole number of seconds first.
                (f.trunc() as i64)
                    .checked_mul(SEC)
                    .ok_or_else(|| "duration out of range".to_string())
            } else {
                Err("could not parse duration from input".to_string())
            }
        }
        Node::String(s) => {
            if s.is_empty() {
                return Ok(0);
            }
            if let Ok(secs) = s.parse::<i64>() {
                return secs
                    .checked_mul(SEC)
                    .ok_or_else(|| "duration out of range".to_string());
            }
            if let Some(days) = s.strip_suffix('d') {
                let days: i64 = days
                    .parse()
                    .map_err(|_| format!("strconv.ParseInt: parsing {days:?}: invalid syntax"))?;
                return days
                    .checked_mul(86_400 * SEC)
                    .ok_or_else(|| "duration out of range".to_string());
            }
            parse_go_duration(s)
        }
        _ => Err("could not parse duration from input".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h"), Ok(3600 * S));
        assert_eq!(parse_go_duration("1h0m0s"), Ok(3600 * S));
        assert_eq!(parse_go_duration("30m"), Ok(1800 * S));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("1h30m10s"), Ok(5410 * S));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("2us"), Ok(2_000));
        assert_eq!(parse_go_duration("2µs"), Ok(2_000));
        assert_eq!(parse_go_duration("-5m"), Ok(-300 * S));
        assert_eq!(parse_go_duration("+5m"), Ok(300 * S));
        assert_eq!(parse_go_duration("0"), Ok(0));
    }

    #[test]
    fn go_duration_errors_use_go_text() {
        assert_eq!(
            parse_go_duration("abc"),
            Err(r#"time: invalid duration "abc""#.to_string())
        );
        assert_eq!(
            parse_go_duration("5"),
            Err(r#"time: missing unit in duration "5""#.to_string())
        );
        assert_eq!(
            parse_go_duration("5x"),
            Err(r#"time: unknown unit "x" in duration "5x""#.to_string())
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert!(parse_go_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn duration_second_forms() {
        let num = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => Node::Number(n),
            _ => unreachable!(),
        };
        assert_eq!(
            parse_duration_second(&num(serde_json::json!(60))),
            Ok(60 * S)
        );
        assert_eq!(parse_duration_second(&num(serde_json::json!(1.9))), Ok(S));
        assert_eq!(parse_duration_second(&Node::String("".into())), Ok(0));
        assert_eq!(
            parse_duration_second(&Node::String("90".into())),
            Ok(90 * S)
        );
        assert_eq!(
            parse_duration_second(&Node::String("2d".into())),
            Ok(2 * 86_400 * S)
        );
        assert_eq!(
            parse_duration_second(&Node::String("1h".into())),
            Ok(3600 * S)
        );
        assert_eq!(parse_duration_second(&Node::Null), Ok(0));
        assert!(parse_duration_second(&Node::Bool(true)).is_err());
        assert!(parse_duration_second(&Node::String("xd".into())).is_err());
    }
}
