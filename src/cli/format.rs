//! Output formatting that reproduces `bao`'s: Go's `%v` rendering of values, Go's indented
//! JSON, the columnized key/value tables, minimum-raggedness text wrapping and Go durations.

use serde_json::{Map, Value};

/// Column delimiter used for secret tables; chosen because it never shows up in secrets.
pub const HOPE_DELIM: &str = "\u{2668}";

/// Maximum line width of wrapped help and warning text.
pub const MAX_LINE_LENGTH: usize = 78;

/// Renders a JSON value the way Go's `fmt.Sprintf("%v", v)` renders the decoded value:
/// `<nil>`, `[a b]`, `map[k:v]` (keys sorted), numbers as written.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", k, go_value(&m[k.as_str()])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Go's `strconv.Quote` for the strings the CLI quotes (policy names and the like).
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`; `[]` for none.
pub fn go_quote_list(list: Option<&[String]>) -> String {
    let items: Vec<String> = list
        .unwrap_or_default()
        .iter()
        .map(|s| go_quote(s))
        .collect();
    format!("[{}]", items.join(" "))
}

/// Sorts object keys recursively, as Go does when it marshals a `map[string]interface{}`.
pub fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sort_keys(&m[k.as_str()]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

fn json_escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_into(out: &mut String, v: &Value, depth: usize) {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        for _ in 0..d {
            out.push_str("  ");
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => json_escape_into(out, s),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json_into(out, item, depth + 1);
            }
            indent(out, depth);
            out.push(']');
        }
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                json_escape_into(out, k);
                out.push_str(": ");
                json_into(out, item, depth + 1);
            }
            indent(out, depth);
            out.push('}');
        }
    }
}

/// Go's `json.MarshalIndent(v, "", "  ")`: two-space indent, `<>&` escaped, keys in the
/// order held by `v` (sort maps first with [`sort_keys`]).
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    json_into(&mut out, v, 0);
    out
}

/// `columnize.Format` with `bao`'s settings: split each line on `delim`, trim the cells,
/// write `n/a` for empty cells, pad every column but the last, glue with four spaces.
pub fn columnize(lines: &[String], delim: &str) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            l.split(delim)
                .map(|c| {
                    let t = c.trim();
                    if t.is_empty() {
                        "n/a".to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            if i >= widths.len() {
                widths.push(w);
            } else if w > widths[i] {
                widths[i] = w;
            }
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == row.len() - 1 {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count();
                line.push_str(&" ".repeat(pad));
                line.push_str("    ");
            }
        }
        out.push(line);
    }
    out.join("\n")
}

/// `tableOutput`: the first line is the header; an underline of dashes is inserted after it.
pub fn table_output(lines: &[String], delim: &str) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let underline: Vec<String> = lines[0]
        .split(delim)
        .map(|h| "-".repeat(h.trim().len()))
        .collect();
    let mut all = Vec::with_capacity(lines.len() + 1);
    all.push(lines[0].clone());
    all.push(underline.join(delim));
    all.extend(lines[1..].iter().cloned());
    columnize(&all, delim)
}

/// Wraps text to `lim` columns with minimal raggedness (the algorithm of Go's
/// `github.com/kr/text`): newlines become spaces, words are split on single spaces.
pub fn wrap(s: &str, lim: usize) -> String {
    let text = s.trim().replace('\n', " ");
    let words: Vec<&str> = text.split(' ').collect();
    let n = words.len();
    // length[i][j]: length of words i..=j joined by single spaces.
    let len_of = |i: usize, j: usize| -> i64 {
        let chars: usize = words[i..=j].iter().map(|w| w.len()).sum();
        (chars + (j - i)) as i64
    };
    let lim = lim as i64;
    const PENALTY: i64 = 100_000;
    let mut cost = vec![i64::from(i32::MAX); n];
    let mut nbrk = vec![n; n];
    for i in (0..n).rev() {
        if len_of(i, n - 1) <= lim || i == n - 1 {
            cost[i] = 0;
            nbrk[i] = n;
        } else {
            for j in (i + 1)..n {
                let l = len_of(i, j - 1);
                let d = lim - l;
                let mut c = d * d + cost[j];
                if l > lim {
                    c += PENALTY;
                }
                if c < cost[i] {
                    cost[i] = c;
                    nbrk[i] = j;
                }
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..nbrk[i]].join(" "));
        i = nbrk[i];
    }
    lines.join("\n")
}

/// `wrapAtLengthWithPadding`: wraps to `78 - pad` and indents every line by `pad` spaces.
pub fn wrap_at_length_with_padding(s: &str, pad: usize) -> String {
    wrap(s, MAX_LINE_LENGTH - pad)
        .split('\n')
        .map(|l| format!("{}{}", " ".repeat(pad), l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `wrapAtLength`: wraps to 78 columns.
pub fn wrap_at_length(s: &str) -> String {
    wrap_at_length_with_padding(s, 0)
}

/// Pads a title with equal signs on both sides to about `total_len` characters.
pub fn pad_equal_signs(header: &str, total_len: usize) -> String {
    let mut eq = total_len as i64 - (header.len() as i64 + 2);
    if eq <= 0 {
        eq = 4;
    }
    if eq % 2 != 0 {
        eq += 1;
    }
    let side = "=".repeat((eq / 2) as usize);
    format!("{side} {header} {side}")
}

/// The `== Title ==` header sized for a key/value table of `data`.
pub fn header_for_map(header: &str, data: &Map<String, Value>) -> String {
    let max_key = data.keys().map(|k| k.len()).max().unwrap_or(0);
    pad_equal_signs(header, max_key + 4 + 5)
}

/// Go's `time.Time.String()` of an RFC 3339 timestamp: `2026-11-22 00:02:41.9 +0000 UTC`.
/// Anything that is not RFC 3339 is returned unchanged.
pub fn go_time_string(ts: &str) -> String {
    let Some((date, rest)) = ts.split_once('T') else {
        return ts.to_string();
    };
    let (clock, zone) = if let Some(c) = rest.strip_suffix('Z') {
        (c, "+0000 UTC".to_string())
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let off = rest[pos..].replace(':', "");
        (&rest[..pos], format!("{off} {off}"))
    } else {
        return ts.to_string();
    };
    let clock = match clock.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_string()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => clock.to_string(),
    };
    format!("{date} {clock} {zone}")
}

/// Go's `time.Duration.String()` for a number of nanoseconds.
pub fn go_duration(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let frac = |v: u128, digits: u32| -> String {
        // Fractional part of v / 10^digits without trailing zeros.
        let scale = 10u128.pow(digits);
        let f = v % scale;
        if f == 0 {
            return String::new();
        }
        let s = format!("{:0width$}", f, width = digits as usize);
        format!(".{}", s.trim_end_matches('0'))
    };
    let body = if u < 1_000_000_000 {
        let (div_digits, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "\u{b5}s")
        } else {
            (6, "ms")
        };
        let whole = u / 10u128.pow(div_digits);
        format!("{}{}{}", whole, frac(u, div_digits), unit)
    } else {
        let secs = u / 1_000_000_000;
        let f = frac(u, 9);
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            format!("{h}h{m}m{s}{f}s")
        } else if m > 0 {
            format!("{m}m{s}{f}s")
        } else {
            format!("{s}{f}s")
        }
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// `humanDuration`: Go's duration string without the trailing zero units (`768h`, `1m30s`).
pub fn human_duration_secs(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let mut s = go_duration(i128::from(secs) * 1_000_000_000);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m") {
        if idx > 0 {
            s = format!("{}{}", &s[..idx + 1], &s[idx + 3..]);
        }
    }
    s
}

/// `humanDurationInt`: integers become durations, anything else is left alone.
pub fn human_duration_value(v: &Value) -> Value {
    match v.as_i64() {
        Some(i) if v.is_number() => Value::String(human_duration_secs(i)),
        _ => v.clone(),
    }
}

/// Whether a key names a duration in seconds and should print as one.
pub fn looks_like_duration(k: &str) -> bool {
    k == "period"
        || k.ends_with("_period")
        || k == "ttl"
        || k.ends_with("_ttl")
        || k == "duration"
        || k.ends_with("_duration")
        || k == "lease_max"
        || k == "ttl_max"
}

/// Parses a duration the way `bao` flags do (`parseutil.ParseDurationSecond`): a bare
/// integer is seconds, `d` is days, otherwise Go syntax such as `1h30m` or `1.5s`.
/// Returns nanoseconds.
pub fn parse_duration(input: &str) -> Option<i128> {
    let s = input.trim();
    if s.is_empty() {
        return Some(0);
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(i128::from(n) * 1_000_000_000);
    }
    if let Some(days) = s.strip_suffix('d') {
        if let Ok(n) = days.parse::<i64>() {
            return Some(i128::from(n) * 86_400 * 1_000_000_000);
        }
    }
    parse_go_duration(s)
}

/// Go's `time.ParseDuration`.
pub fn parse_go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * mult;
    }
    let n = total.round() as i128;
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_value_rendering() {
        assert_eq!(go_value(&json!(null)), "<nil>");
        assert_eq!(go_value(&json!(["1", "2"])), "[1 2]");
        assert_eq!(
            go_value(&json!({"q": null, "a": [1, true]})),
            "map[a:[1 true] q:<nil>]"
        );
        assert_eq!(go_value(&json!(42)), "42");
        assert_eq!(go_value(&json!({})), "map[]");
    }

    #[test]
    fn go_quote_lists() {
        let v = vec!["default".to_string(), "a\"b".to_string()];
        assert_eq!(go_quote_list(Some(&v)), r#"["default" "a\"b"]"#);
        assert_eq!(go_quote_list(None), "[]");
    }

    #[test]
    fn go_json_matches_marshal_indent() {
        let v = sort_keys(&json!({"b": [1, {"z": "<&>"}], "a": {}, "c": [], "d": null}));
        assert_eq!(
            go_json(&v),
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    {\n      \"z\": \"\\u003c\\u0026\\u003e\"\n    }\n  ],\n  \"c\": [],\n  \"d\": null\n}"
        );
        assert_eq!(go_json(&json!("x\ny")), "\"x\\ny\"");
    }

    #[test]
    fn table_matches_bao() {
        let lines = vec![
            format!("Key{HOPE_DELIM}Value"),
            format!("token_duration {HOPE_DELIM} 768h"),
            format!("deletion_time {HOPE_DELIM} "),
            format!("a {HOPE_DELIM} hello\n"),
        ];
        assert_eq!(
            table_output(&lines, HOPE_DELIM),
            "Key               Value\n---               -----\ntoken_duration    768h\ndeletion_time     n/a\na                 hello"
        );
    }

    #[test]
    fn pipe_tables_pad_all_but_last_column() {
        let lines = vec![
            "Path | Type | Description".to_string(),
            "secret/ | kv | key/value secret storage".to_string(),
            "sys/ | system | ".to_string(),
        ];
        assert_eq!(
            table_output(&lines, "|"),
            "Path       Type      Description\n----       ----      -----------\nsecret/    kv        key/value secret storage\nsys/       system    n/a"
        );
    }

    #[test]
    fn wrap_is_minimum_raggedness() {
        // bao's own output for this sentence breaks before "of", not after it.
        let s = "It is possible to generate new unseal keys, provided you have a quorum of existing unseal keys shares. See \"bao operator rotate-keys\" for more information.";
        assert_eq!(
            wrap_at_length(s),
            "It is possible to generate new unseal keys, provided you have a quorum\nof existing unseal keys shares. See \"bao operator rotate-keys\" for more\ninformation."
        );
        assert_eq!(wrap_at_length_with_padding("* short", 2), "  * short");
    }

    #[test]
    fn equal_sign_headers() {
        assert_eq!(pad_equal_signs("Secret Path", 15), "= Secret Path =");
        let m: Map<String, Value> = serde_json::from_value(json!({"custom_metadata": 1})).unwrap();
        assert_eq!(header_for_map("Metadata", &m), "======= Metadata =======");
        let d: Map<String, Value> = serde_json::from_value(json!({"a": 1, "b": 2})).unwrap();
        assert_eq!(header_for_map("Data", &d), "== Data ==");
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(3600 * 1_000_000_000), "1h0m0s");
        assert_eq!(go_duration(90 * 1_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(-60 * 1_000_000_000), "-1m0s");
        assert_eq!(human_duration_secs(2_764_800), "768h");
        assert_eq!(human_duration_secs(3600), "1h");
        assert_eq!(human_duration_secs(3660), "1h1m");
        assert_eq!(human_duration_secs(90), "1m30s");
        assert_eq!(human_duration_secs(45), "45s");
        assert_eq!(human_duration_value(&json!("1h")), json!("1h"));
        assert_eq!(human_duration_value(&json!(60)), json!("1m"));
        assert!(looks_like_duration("creation_ttl"));
        assert!(!looks_like_duration("ttl_thing"));
    }

    #[test]
    fn go_time_strings() {
        assert_eq!(
            go_time_string("2026-11-22T00:02:41.90405746Z"),
            "2026-11-22 00:02:41.90405746 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2026-11-22T00:02:41.500Z"),
            "2026-11-22 00:02:41.5 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2026-11-22T01:02:41+01:00"),
            "2026-11-22 01:02:41 +0100 +0100"
        );
        assert_eq!(go_time_string("not a time"), "not a time");
    }

    #[test]
    fn duration_parsing() {
        let s = 1_000_000_000i128;
        assert_eq!(parse_duration("30"), Some(30 * s));
        assert_eq!(parse_duration("1h30m"), Some(5400 * s));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2d"), Some(172_800 * s));
        assert_eq!(parse_duration("-1"), Some(-s));
        assert_eq!(parse_duration(""), Some(0));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
