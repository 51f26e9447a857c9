//! Small helpers every backend needs the same way: OpenBao's timestamp format, list answers and
//! the warning about undeclared request fields.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{FieldData, Map, Operation, Response};

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats Unix nanoseconds as Go's `time.RFC3339Nano` in UTC: `2018-03-22T02:24:06.945319214Z`,
/// trailing zeros of the fraction dropped, no fraction on a whole second.
pub fn rfc3339_nanos(nanos: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)) else {
        return String::new();
    };
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let frac = t.nanosecond();
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `{"keys": [...]}`, or `None` (404) when there are no keys, as OpenBao answers a list.
pub fn list_response(keys: Vec<String>) -> Option<Response> {
    if keys.is_empty() {
        return None;
    }
    let mut data = Map::new();
    data.insert(
        "keys".into(),
        Value::Array(keys.into_iter().map(Value::String).collect()),
    );
    Some(Response::with_data(data))
}

/// Adds OpenBao's warning about request fields the path does not declare, when there is a
/// response to carry it (a 204 carries nothing, and a response with an explicit status is
/// rendered before the framework adds the warning, as in OpenBao).
pub fn warn_unknown(resp: Option<Response>, fields: &FieldData, op: Operation) -> Option<Response> {
    let mut resp = resp?;
    if resp.status.is_some() {
        return Some(resp);
    }
    let mut unknown = fields.unknown_fields();
    if op == Operation::List {
        unknown.retain(|k| k != "list");
    }
    if !unknown.is_empty() {
        unknown.sort();
        resp.warnings.push(format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            unknown.join(" ")
        ));
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nanos(1_521_685_446_945_319_214),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            rfc3339_nanos(1_521_685_446_100_000_000),
            "2018-03-22T02:24:06.1Z"
        );
        assert!(list_response(Vec::new()).is_none());
        assert_eq!(
            list_response(vec!["a".into()]).unwrap().data.unwrap()["keys"],
            serde_json::json!(["a"])
        );
    }
}
