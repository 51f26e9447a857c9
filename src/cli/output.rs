//! Where command output goes, and `bao`'s ways of printing a secret, a map, a list or one
//! field in the `table` and `json` formats.

use std::io::{IsTerminal, Write};

use kura_client::Secret;
use serde_json::{Map, Value};

use super::format::{
    go_json, go_quote_list, go_value, header_for_map, human_duration_secs, human_duration_value,
    looks_like_duration, sort_keys, table_output, wrap_at_length_with_padding, HOPE_DELIM,
};

/// One output stream: the process's own, or a buffer (tests).
enum Sink {
    Stdout,
    Stderr,
    #[cfg_attr(not(test), allow(dead_code))]
    Buffer(Vec<u8>),
}

impl Sink {
    fn write_str(&mut self, s: &str) {
        // Output errors (a closed pipe) are not worth failing a command over.
        let _ = match self {
            Sink::Stdout => std::io::stdout().write_all(s.as_bytes()),
            Sink::Stderr => std::io::stderr().write_all(s.as_bytes()),
            Sink::Buffer(b) => b.write_all(s.as_bytes()),
        };
    }

    fn flush(&mut self) {
        let _ = match self {
            Sink::Stdout => std::io::stdout().flush(),
            Sink::Stderr => std::io::stderr().flush(),
            Sink::Buffer(_) => Ok(()),
        };
    }
}

/// The user interface of a command: standard output, standard error and the output format.
pub struct Ui {
    out: Sink,
    err: Sink,
    /// Output format: `table`, `json` or `raw`.
    pub format: String,
    /// Whether raw values get a trailing newline (only when writing to a terminal).
    raw_newline: bool,
}

impl Ui {
    /// A UI on the process's stdout and stderr.
    pub fn stdio() -> Ui {
        let tty = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        Ui {
            out: Sink::Stdout,
            err: Sink::Stderr,
            format: "table".into(),
            raw_newline: tty,
        }
    }

    /// A UI writing into memory, for tests.
    #[cfg(test)]
    pub fn buffered(format: &str) -> Ui {
        Ui {
            out: Sink::Buffer(Vec::new()),
            err: Sink::Buffer(Vec::new()),
            format: format.into(),
            raw_newline: false,
        }
    }

    /// What was written to stdout (buffered UIs only).
    #[cfg(test)]
    pub fn stdout_text(&self) -> String {
        match &self.out {
            Sink::Buffer(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }

    /// What was written to stderr (buffered UIs only).
    #[cfg(test)]
    pub fn stderr_text(&self) -> String {
        match &self.err {
            Sink::Buffer(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }

    /// A line on stdout.
    pub fn output(&mut self, s: &str) {
        self.out.write_str(s);
        self.out.write_str("\n");
    }

    /// A line on stdout (`bao` distinguishes it from `output` only by colour).
    pub fn info(&mut self, s: &str) {
        self.output(s);
    }

    /// A line on stderr.
    pub fn error(&mut self, s: &str) {
        self.out.flush();
        self.err.write_str(s);
        self.err.write_str("\n");
    }

    /// A warning line on stderr.
    pub fn warn(&mut self, s: &str) {
        self.error(s);
    }

    /// Text on stdout without a newline unless stdout is a terminal (`PrintRaw`).
    pub fn raw(&mut self, s: &str) -> i32 {
        self.out.write_str(s);
        if self.raw_newline {
            self.out.write_str("\n");
        }
        0
    }

    /// Bytes on stdout as they are.
    pub fn raw_bytes(&mut self, b: &[u8]) {
        self.out.write_str(&String::from_utf8_lossy(b));
    }

    /// Text on stdout, no newline (prompts).
    pub fn prompt(&mut self, s: &str) {
        self.out.write_str(s);
        self.out.flush();
    }

    /// Whether the format is `table`.
    pub fn is_table(&self) -> bool {
        self.format == "table"
    }

    fn check_format(&mut self) -> bool {
        match self.format.as_str() {
            "table" | "json" => true,
            other => {
                let msg = format!("Invalid output format: {other}");
                self.error(&msg);
                false
            }
        }
    }
}

/// The JSON `bao -format=json` prints for a secret: Go field order, map keys sorted.
pub fn secret_json(secret: &Secret) -> Value {
    let mut v = serde_json::to_value(secret).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        if let Some(d) = obj.get_mut("data") {
            *d = sort_keys(d);
        }
        if let Some(auth) = obj.get_mut("auth").and_then(Value::as_object_mut) {
            if let Some(m) = auth.get_mut("metadata") {
                *m = sort_keys(m);
            }
        }
    }
    v
}

fn print_warnings(ui: &mut Ui, secret: &Secret) {
    if let Some(w) = secret.warnings.as_ref().filter(|w| !w.is_empty()) {
        ui.warn("WARNING! The following warnings were returned from OpenBao:\n");
        for warning in w {
            ui.warn(&wrap_at_length_with_padding(&format!("* {warning}"), 2));
            ui.warn("");
        }
    }
}

/// Prints the warnings of a secret (table format only), as `bao` does before its tables.
pub fn warnings_if_any(ui: &mut Ui, secret: &Secret) {
    print_warnings(ui, secret);
}

fn row(k: &str, v: &str) -> String {
    format!("{k} {HOPE_DELIM} {v}")
}

/// The key/value rows of a secret's table.
fn secret_table_rows(secret: &Secret) -> Vec<String> {
    let mut out = Vec::new();
    if secret.lease_duration > 0 {
        if !secret.lease_id.is_empty() {
            out.push(row("lease_id", &secret.lease_id));
            out.push(row(
                "lease_duration",
                &human_duration_secs(secret.lease_duration),
            ));
            out.push(row("lease_renewable", &secret.renewable.to_string()));
        } else {
            out.push(row(
                "refresh_interval",
                &human_duration_secs(secret.lease_duration),
            ));
        }
    }
    if let Some(auth) = &secret.auth {
        match auth.mfa_requirement.as_ref().filter(|m| !m.is_null()) {
            Some(mfa) => {
                let id = mfa.get("mfa_request_id").map(go_value).unwrap_or_default();
                out.push(row("mfa_request_id", &id));
            }
            None => {
                out.push(row("token", &auth.client_token));
                out.push(row("token_accessor", &auth.accessor));
                let dur = if auth.lease_duration == 0 {
                    "\u{221e}".to_string()
                } else {
                    human_duration_secs(auth.lease_duration)
                };
                out.push(row("token_duration", &dur));
                out.push(row("token_renewable", &auth.renewable.to_string()));
                out.push(row(
                    "token_policies",
                    &go_quote_list(auth.token_policies.as_deref()),
                ));
                out.push(row(
                    "identity_policies",
                    &go_quote_list(auth.identity_policies.as_deref()),
                ));
                out.push(row("policies", &go_quote_list(auth.policies.as_deref())));
                if let Some(meta) = &auth.metadata {
                    let mut keys: Vec<&String> = meta.keys().collect();
                    keys.sort();
                    for k in keys {
                        out.push(row(
                            &format!("token_meta_{k}"),
                            &go_value(&meta[k.as_str()]),
                        ));
                    }
                }
            }
        }
    }
    if let Some(w) = &secret.wrap_info {
        out.push(row("wrapping_token:", &w.token));
        out.push(row("wrapping_accessor:", &w.accessor));
        out.push(row("wrapping_token_ttl:", &human_duration_secs(w.ttl)));
        out.push(row(
            "wrapping_token_creation_time:",
            &super::format::go_time_string(&w.creation_time),
        ));
        out.push(row("wrapping_token_creation_path:", &w.creation_path));
        if !w.wrapped_accessor.is_empty() {
            out.push(row("wrapped_accessor:", &w.wrapped_accessor));
        }
    }
    if let Some(data) = &secret.data {
        out.extend(map_rows(data));
    }
    out
}

fn map_rows(data: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<&String> = data.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = &data[k.as_str()];
            let v = if looks_like_duration(k) {
                human_duration_value(v)
            } else {
                v.clone()
            };
            row(k, &go_value(&v))
        })
        .collect()
}

/// `OutputSecret`: the whole secret, as a table or as JSON.
pub fn output_secret(ui: &mut Ui, secret: &Secret) -> i32 {
    if !ui.check_format() {
        return 1;
    }
    if ui.format == "json" {
        let text = go_json(&secret_json(secret));
        ui.output(&text);
        return 0;
    }
    print_warnings(ui, secret);
    let rows = secret_table_rows(secret);
    if rows.is_empty() {
        return 0;
    }
    let mut lines = vec![format!("Key{HOPE_DELIM}Value")];
    lines.extend(rows);
    let text = table_output(&lines, HOPE_DELIM);
    ui.output(&text);
    0
}

/// `OutputData` of a map: a key/value table, or the map as JSON (keys sorted).
pub fn output_map(ui: &mut Ui, data: &Map<String, Value>) -> i32 {
    if !ui.check_format() {
        return 1;
    }
    if ui.format == "json" {
        let text = go_json(&sort_keys(&Value::Object(data.clone())));
        ui.output(&text);
        return 0;
    }
    let rows = map_rows(data);
    if rows.is_empty() {
        return 0;
    }
    let mut lines = vec![format!("Key{HOPE_DELIM}Value")];
    lines.extend(rows);
    let text = table_output(&lines, HOPE_DELIM);
    ui.output(&text);
    0
}

/// `OutputData` of an arbitrary value in JSON (struct-shaped values keep their order).
pub fn output_json(ui: &mut Ui, v: &Value) -> i32 {
    let text = go_json(v);
    ui.output(&text);
    0
}

/// `OutputList`: the `keys` of a LIST answer, sorted under a `Keys` header, or as JSON.
pub fn output_list(ui: &mut Ui, secret: &Secret) -> i32 {
    if !ui.check_format() {
        return 1;
    }
    let keys = secret.get("keys").cloned().unwrap_or(Value::Null);
    if ui.format == "json" {
        return output_json(ui, &sort_keys(&keys));
    }
    print_warnings(ui, secret);
    let Some(list) = keys.as_array() else {
        ui.error("error: table formatter cannot output list for this data type");
        return 1;
    };
    if list.is_empty() {
        return 0;
    }
    let mut names = Vec::with_capacity(list.len());
    for k in list {
        match k.as_str() {
            Some(s) => names.push(s.to_string()),
            None => {
                let msg = format!("Could not parse output: {} is not a string", go_value(k));
                ui.error(&msg);
                return 1;
            }
        }
    }
    names.sort();
    let mut lines = vec!["Keys".to_string()];
    lines.extend(names);
    let text = table_output(&lines, HOPE_DELIM);
    ui.output(&text);
    0
}

/// `RawField`: one field of a secret, looking in `auth`, `wrap_info` or the lease first.
pub fn raw_field(secret: &Secret, field: &str) -> Option<Value> {
    let data_field = || secret.get(field).cloned();
    if let Some(auth) = &secret.auth {
        let strs = |v: &Option<Vec<String>>| serde_json::to_value(v).unwrap_or(Value::Null);
        return match field {
            "token" => Some(Value::String(auth.client_token.clone())),
            "token_accessor" => Some(Value::String(auth.accessor.clone())),
            "token_duration" => Some(Value::from(auth.lease_duration)),
            "token_renewable" => Some(Value::Bool(auth.renewable)),
            "token_policies" => Some(strs(&auth.token_policies)),
            "identity_policies" => Some(strs(&auth.identity_policies)),
            "policies" => Some(strs(&auth.policies)),
            _ => data_field(),
        };
    }
    if let Some(w) = &secret.wrap_info {
        return match field {
            "wrapping_token" => Some(Value::String(w.token.clone())),
            "wrapping_accessor" => Some(Value::String(w.accessor.clone())),
            "wrapping_token_ttl" => Some(Value::from(w.ttl)),
            "wrapping_token_creation_time" => Some(Value::String(w.creation_time.clone())),
            "wrapping_token_creation_path" => Some(Value::String(w.creation_path.clone())),
            "wrapped_accessor" => Some(Value::String(w.wrapped_accessor.clone())),
            _ => data_field(),
        };
    }
    match field {
        "lease_duration" | "refresh_interval" => Some(Value::from(secret.lease_duration)),
        "lease_id" => Some(Value::String(secret.lease_id.clone())),
        "request_id" => Some(Value::String(secret.request_id.clone())),
        "renewable" => Some(Value::Bool(secret.renewable)),
        "data" => match secret.get("data") {
            Some(v) => Some(v.clone()),
            None => secret.data.clone().map(Value::Object),
        },
        _ => data_field(),
    }
}

/// `PrintRawField`: prints one value alone (`%v` for table, JSON for json).
pub fn print_field_value(ui: &mut Ui, val: Option<Value>, field: &str, what: &str) -> i32 {
    let val = match val {
        Some(v) if !v.is_null() => v,
        _ => {
            let msg = format!(
                "Field {} not present in {what}",
                super::format::go_quote(field)
            );
            ui.error(&msg);
            return 1;
        }
    };
    match ui.format.as_str() {
        "" | "table" | "raw" => {
            let s = go_value(&val);
            ui.raw(&s)
        }
        "json" => {
            let s = go_json(&sort_keys(&val));
            ui.raw(&s)
        }
        other => {
            let msg = format!("Invalid output format: {other}");
            ui.error(&msg);
            1
        }
    }
}

/// `PrintRawField` on a secret.
pub fn print_secret_field(ui: &mut Ui, secret: &Secret, field: &str) -> i32 {
    print_field_value(ui, raw_field(secret, field), field, "secret")
}

/// `PrintRawField` on a plain map.
pub fn print_map_field(ui: &mut Ui, map: &Map<String, Value>, field: &str) -> i32 {
    print_field_value(ui, map.get(field).cloned(), field, "map")
}

/// `outputPath`: the `= Title =` line, the path and a blank line.
pub fn output_path(ui: &mut Ui, path: &str, title: &str) {
    ui.info(&super::format::pad_equal_signs(title, path.len()));
    ui.info(path);
    ui.info("");
}

/// The `== Title ==` header over a map's table.
pub fn map_header(title: &str, data: &Map<String, Value>) -> String {
    header_for_map(title, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(v: Value) -> Secret {
        Secret::from_value(v).unwrap()
    }

    #[test]
    fn token_secret_table() {
        let s = secret(json!({"auth": {"client_token": "s.abc", "accessor": "acc",
            "policies": ["default"], "token_policies": ["default"], "metadata": {"b": "2", "a": "1"},
            "lease_duration": 2764800, "renewable": true}}));
        let mut ui = Ui::buffered("table");
        assert_eq!(output_secret(&mut ui, &s), 0);
        assert_eq!(
            ui.stdout_text(),
            "Key                  Value\n---                  -----\ntoken                s.abc\ntoken_accessor       acc\ntoken_duration       768h\ntoken_renewable      true\ntoken_policies       [\"default\"]\nidentity_policies    []\npolicies             [\"default\"]\ntoken_meta_a         1\ntoken_meta_b         2\n"
        );
    }

    #[test]
    fn data_table_with_lease_and_durations() {
        let s = secret(
            json!({"lease_duration": 2764800, "data": {"ttl": 3600, "b": ["1", "2"], "a": "x", "n": null}}),
        );
        let mut ui = Ui::buffered("table");
        output_secret(&mut ui, &s);
        assert_eq!(
            ui.stdout_text(),
            "Key                 Value\n---                 -----\nrefresh_interval    768h\na                   x\nb                   [1 2]\nn                   <nil>\nttl                 1h\n"
        );
    }

    #[test]
    fn json_secret_sorted_data_go_order() {
        let s = secret(
            json!({"request_id": "r", "data": {"z": 1, "a": {"y": 1, "b": 2}}, "warnings": null}),
        );
        let mut ui = Ui::buffered("json");
        output_secret(&mut ui, &s);
        assert_eq!(
            ui.stdout_text(),
            "{\n  \"request_id\": \"r\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,\n  \"renewable\": false,\n  \"data\": {\n    \"a\": {\n      \"b\": 2,\n      \"y\": 1\n    },\n    \"z\": 1\n  },\n  \"warnings\": null\n}\n"
        );
    }

    #[test]
    fn warnings_go_to_stderr() {
        let s = secret(json!({"data": {"k": "v"}, "warnings": ["careful"]}));
        let mut ui = Ui::buffered("table");
        output_secret(&mut ui, &s);
        assert_eq!(
            ui.stderr_text(),
            "WARNING! The following warnings were returned from OpenBao:\n\n  * careful\n\n"
        );
        assert!(ui.stdout_text().starts_with("Key    Value\n"));
    }

    #[test]
    fn list_table_and_json() {
        let s = secret(json!({"data": {"keys": ["b", "a/", "c"]}}));
        let mut ui = Ui::buffered("table");
        output_list(&mut ui, &s);
        assert_eq!(ui.stdout_text(), "Keys\n----\na/\nb\nc\n");
        let mut ui = Ui::buffered("json");
        output_list(&mut ui, &s);
        assert_eq!(ui.stdout_text(), "[\n  \"b\",\n  \"a/\",\n  \"c\"\n]\n");
    }

    #[test]
    fn fields() {
        let s = secret(
            json!({"lease_duration": 60, "data": {"data": {"a": "1"}, "x": null, "s": "v"}}),
        );
        let mut ui = Ui::buffered("table");
        assert_eq!(print_secret_field(&mut ui, &s, "s"), 0);
        assert_eq!(print_secret_field(&mut ui, &s, "data"), 0);
        assert_eq!(print_secret_field(&mut ui, &s, "lease_duration"), 0);
        assert_eq!(ui.stdout_text(), "vmap[a:1]60");
        assert_eq!(print_secret_field(&mut ui, &s, "x"), 1);
        assert_eq!(ui.stderr_text(), "Field \"x\" not present in secret\n");
        let mut ui = Ui::buffered("json");
        print_secret_field(&mut ui, &s, "data");
        assert_eq!(ui.stdout_text(), "{\n  \"a\": \"1\"\n}");
        let t = secret(json!({"auth": {"client_token": "tok", "policies": ["root"]}}));
        let mut ui = Ui::buffered("table");
        print_secret_field(&mut ui, &t, "token");
        print_secret_field(&mut ui, &t, "policies");
        assert_eq!(ui.stdout_text(), "tok[root]");
    }

    #[test]
    fn unknown_format_is_an_error() {
        let s = secret(json!({"data": {"k": "v"}}));
        let mut ui = Ui::buffered("yaml");
        assert_eq!(output_secret(&mut ui, &s), 1);
        assert_eq!(ui.stderr_text(), "Invalid output format: yaml\n");
    }
}
