//! `read`, `write`, `list`, `delete` and `login`.

use clap::Args;
use kura_client::{Method, Secret, SecretAuth};
use serde_json::{Map, Value};

use super::format::{go_value, wrap_at_length};
use super::kvargs::{parse_kv_args, to_string_map};
use super::output::{output_list, output_map, output_secret, print_secret_field, Ui};
use super::sys::client_or_report;
use super::{go_bool, sanitize_path, FormatOpts, HttpOpts, OutputOpts};

/// Arguments of `read`.
#[derive(Args, Debug)]
pub struct ReadArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    out: OutputOpts,
    /// PATH, then optional K=V query parameters.
    args: Vec<String>,
}

/// Arguments of `write`.
#[derive(Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    out: OutputOpts,
    /// Allow the write with no data.
    #[arg(long, short = 'f', num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub force: Option<bool>,
    /// PATH, then K=V data.
    pub args: Vec<String>,
}

/// Arguments of `list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// PATH.
    args: Vec<String>,
}

/// Arguments of `delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    out: OutputOpts,
    /// PATH, then optional K=V query parameters.
    args: Vec<String>,
}

/// Turns parsed `K=V` data into query parameters (lists become repeated parameters).
fn query_pairs(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in data {
        match v {
            Value::Array(a) => out.extend(a.iter().map(|x| (k.clone(), go_value(x)))),
            Value::String(s) => out.push((k.clone(), s.clone())),
            other => out.push((k.clone(), go_value(other))),
        }
    }
    out
}

/// `read`.
pub async fn read(ui: &mut Ui, a: ReadArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    if a.args.is_empty() {
        ui.error("Not enough arguments (expected 1, got 0)");
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let path = sanitize_path(&a.args[0]);
    let mut stdin: Box<dyn std::io::Read> = if a.http.non_interactive() {
        Box::new(std::io::empty())
    } else {
        Box::new(std::io::stdin())
    };
    let data = match parse_kv_args(&a.args[1..], &mut stdin) {
        Ok(d) => d,
        Err(e) => {
            ui.error(&format!("Failed to parse K=V data: {e}"));
            return 1;
        }
    };
    let pairs = query_pairs(&data);
    let query: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if ui.format == "raw" {
        let resp = match client.request(Method::GET, &path, &query, None).await {
            Ok(r) => r,
            Err(e) => {
                ui.error(&format!("Error reading: {path}: {e}"));
                return 2;
            }
        };
        if !resp.is_success() {
            ui.error(&format!("Error reading: {path}: {}", resp.api_error()));
            return 2;
        }
        let bytes = resp.bytes();
        ui.raw_bytes(&bytes);
        ui.output("");
        return 0;
    }
    let secret = match client.read_with_query(&path, &query).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ui.error(&format!("No value found at {path}"));
            return 2;
        }
        Err(e) => {
            ui.error(&format!("Error reading {path}: {e}"));
            return 2;
        }
    };
    if let Some(f) = a.out.field() {
        return print_secret_field(ui, &secret, f);
    }
    output_secret(ui, &secret)
}

/// `handleWriteSecretOutput`: what `write` (and friends) print after a write.
pub(crate) fn write_output(
    ui: &mut Ui,
    path: &str,
    res: Result<Option<Secret>, kura_client::ClientError>,
    field: Option<&str>,
) -> i32 {
    let secret = match res {
        Ok(Some(s)) => s,
        Ok(None) => {
            if ui.is_table() {
                ui.info(&format!("Success! Data written to: {path}"));
            }
            return 0;
        }
        Err(e) => {
            ui.error(&format!("Error writing data to {path}: {e}"));
            return 2;
        }
    };
    if let Some(f) = field {
        return print_secret_field(ui, &secret, f);
    }
    output_secret(ui, &secret)
}

/// `write`.
pub async fn write(ui: &mut Ui, a: WriteArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    if a.args.is_empty() {
        ui.error("Not enough arguments (expected 1, got 0)");
        return 1;
    }
    if a.args.len() == 1 && !a.force.unwrap_or(false) {
        ui.error("Must supply data or use -force");
        return 1;
    }
    let path = sanitize_path(&a.args[0]);
    let data = match parse_kv_args(&a.args[1..], &mut std::io::stdin()) {
        Ok(d) => d,
        Err(e) => {
            ui.error(&format!("Failed to parse K=V data: {e}"));
            return 1;
        }
    };
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let res = client.write(&path, Some(Value::Object(data))).await;
    write_output(ui, &path, res, a.out.field())
}

/// `list`.
pub async fn list(ui: &mut Ui, a: ListArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !super::check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let path = sanitize_path(&a.args[0]);
    let secret = match client.list(&path).await {
        Ok(s) => s,
        Err(e) => {
            ui.error(&format!("Error listing {path}: {e}"));
            return 2;
        }
    };
    if let Some(s) = &secret {
        if s.wrap_info.as_ref().is_some_and(|w| w.ttl != 0) {
            return output_secret(ui, s);
        }
    }
    let has_keys = secret
        .as_ref()
        .and_then(|s| s.get("keys"))
        .is_some_and(Value::is_array);
    if !ui.is_table() && (secret.as_ref().is_none_or(|s| s.data.is_none()) || !has_keys) {
        output_map(ui, &Map::new());
        return 2;
    }
    let Some(secret) = secret else {
        ui.error(&format!("No value found at {path}"));
        return 2;
    };
    if secret.data.is_none() {
        return output_secret(ui, &secret);
    }
    if !has_keys {
        ui.error(&format!("No entries found at {path}"));
        return 2;
    }
    output_list(ui, &secret)
}

/// `delete`.
pub async fn delete(ui: &mut Ui, a: DeleteArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    if a.args.is_empty() {
        ui.error("Not enough arguments (expected at least 1, got 0)");
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let path = sanitize_path(&a.args[0]);
    let data = match parse_kv_args(&a.args[1..], &mut std::io::stdin()) {
        Ok(d) => d,
        Err(e) => {
            ui.error(&format!("Failed to parse K=V data: {e}"));
            return 1;
        }
    };
    let pairs = query_pairs(&data);
    let query: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let res = match client.request(Method::DELETE, &path, &query, None).await {
        Ok(r) => r.into_logical(),
        Err(e) => Err(e),
    };
    match res {
        Ok(None) => {
            if ui.is_table() {
                ui.info(&format!("Success! Data deleted (if it existed) at: {path}"));
            }
            0
        }
        Ok(Some(s)) => match a.out.field() {
            Some(f) => print_secret_field(ui, &s, f),
            None => output_secret(ui, &s),
        },
        Err(e) => {
            ui.error(&format!("Error deleting {path}: {e}"));
            2
        }
    }
}

// ----- login -----

/// Arguments of `login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    out: OutputOpts,
    /// Auth method type: "token" (default) or "userpass".
    #[arg(long)]
    method: Option<String>,
    /// Path where the auth method is enabled (defaults to the type).
    #[arg(long)]
    path: Option<String>,
    /// Do not store the token in ~/.vault-token.
    #[arg(long = "no-store", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    no_store: Option<bool>,
    /// Do not print the token.
    #[arg(long = "no-print", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    no_print: Option<bool>,
    /// Print only the token, do not store it.
    #[arg(long = "token-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    token_only: Option<bool>,
    /// TOKEN, or K=V auth parameters.
    args: Vec<String>,
}

fn str_list(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// The token method: checks the token with `lookup-self` and describes it like a login.
async fn token_login(
    ui: &mut Ui,
    http: &HttpOpts,
    config: &Map<String, Value>,
) -> Result<Secret, String> {
    let get = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
    let lookup = match get("lookup") {
        Some(l) => {
            go_bool(&l).map_err(|e| format!("Failed to parse \"lookup\" as boolean: {e}"))?
        }
        None => true,
    };
    let token = match get("token") {
        Some(t) => t,
        None => super::read_secret_input(ui, "Token (will be hidden): ", true).map_err(|e| {
            format!(
                "An error occurred attempting to ask for a token. The raw error message is shown \
                 below, but usually this is because you attempted to pipe a value into the command \
                 or you are executing outside of a terminal (tty). If you want to pipe the value, \
                 pass \"-\" as the argument to read from stdin. The raw error was: {e}"
            )
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(
            "a token must be passed to auth, please view the help for more information".into(),
        );
    }
    if !lookup {
        return Ok(Secret {
            auth: Some(SecretAuth {
                client_token: token,
                ..SecretAuth::default()
            }),
            ..Secret::default()
        });
    }
    let mut config = http.plain_client()?.config().clone();
    config.token = Some(token);
    let client = kura_client::Client::new(config).map_err(|e| e.to_string())?;
    let secret = client
        .lookup_self()
        .await
        .map_err(|e| format!("error looking up token: {e}"))?
        .ok_or("empty response from lookup-self")?;
    let data = secret.data.clone().unwrap_or_default();
    let policies = str_list(data.get("policies"));
    let metadata = match data.get("meta") {
        Some(Value::Object(m)) => Some(m.clone()),
        _ => None,
    };
    Ok(Secret {
        auth: Some(SecretAuth {
            client_token: data
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            accessor: data
                .get("accessor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            policies: policies.clone(),
            token_policies: policies,
            identity_policies: str_list(data.get("identity_policies")),
            metadata,
            lease_duration: data.get("ttl").and_then(Value::as_i64).unwrap_or(0),
            renewable: data
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ..SecretAuth::default()
        }),
        ..Secret::default()
    })
}

/// The userpass method: `auth/<path>/login/<username>` with a password.
async fn userpass_login(
    ui: &mut Ui,
    http: &HttpOpts,
    config: &Map<String, Value>,
    mount: &str,
) -> Result<Secret, String> {
    let get = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
    let username = get("username").ok_or("'username' must be specified")?;
    let password = match get("password") {
        Some(p) => p,
        None => super::read_secret_input(ui, "Password (will be hidden): ", true)
            .map_err(|e| format!("error reading password: {e}"))?,
    };
    let mut cfg = http.plain_client()?.config().clone();
    cfg.token = None;
    let client = kura_client::Client::new(cfg).map_err(|e| e.to_string())?;
    let path = format!("auth/{}/login/{username}", mount.trim_matches('/'));
    let body = serde_json::json!({ "password": password });
    client
        .write(&path, Some(body))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "empty response from credential provider".to_string())
}

/// Writes the token where `bao` keeps it: `~/.vault-token`, mode 0600.
fn store_token(token: &str) -> Result<(), String> {
    let path = kura_client::default_token_file().ok_or("HOME is not set")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut f, token.as_bytes()).map_err(|e| e.to_string())
}

/// `login`.
pub async fn login(ui: &mut Ui, a: LoginArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    let token_only = a.token_only.unwrap_or(false);
    let mut no_store = a.no_store.unwrap_or(false);
    let no_print = a.no_print.unwrap_or(false);
    let mut field = a.out.field().map(str::to_string);
    if token_only {
        no_store = true;
        field = Some("token".into());
    }
    if no_store && no_print {
        ui.error(&wrap_at_length(
            "-no-store and -no-print cannot be used together",
        ));
        return 1;
    }
    let method = sanitize_path(a.method.as_deref().unwrap_or("token"));
    let method = if method.is_empty() {
        "token".to_string()
    } else {
        method
    };
    let mount = a
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| super::ensure_trailing_slash(&method));
    if method != "token" && method != "userpass" {
        ui.error(&wrap_at_length(&format!(
            "Unknown auth method: {method}. Use \"bao auth list\" to see the complete list of auth \
             methods. Additionally, some auth methods are only available via the HTTP API."
        )));
        return 1;
    }
    let mut args = a.args.clone();
    if method == "token" && !args.is_empty() && !args[0].contains('=') {
        args[0] = format!("token={}", args[0]);
    }
    let mut stdin: Box<dyn std::io::Read> = if a.http.non_interactive() {
        Box::new(std::io::empty())
    } else {
        Box::new(std::io::stdin())
    };
    let config = match parse_kv_args(&args, &mut stdin) {
        Ok(c) => to_string_map(&c),
        Err(e) => {
            ui.error(&format!("Error parsing configuration: {e}"));
            return 1;
        }
    };
    let res = if method == "token" {
        token_login(ui, &a.http, &config).await
    } else {
        userpass_login(ui, &a.http, &config, &mount).await
    };
    let secret = match res {
        Ok(s) => s,
        Err(e) => {
            ui.error(&format!("Error authenticating: {e}"));
            return 2;
        }
    };
    let Some(auth) = secret.auth.as_ref() else {
        ui.error(&wrap_at_length(
            "Vault returned a secret, but the secret has no authentication information attached. \
             This should never happen and is likely a bug.",
        ));
        return 2;
    };
    if !no_store {
        if let Err(e) = store_token(&auth.client_token) {
            ui.error(&format!("Error storing token: {e}"));
            ui.error(&(wrap_at_length(
                "Authentication was successful, but the token was not persisted. The resulting \
                 token is shown below for your records.",
            ) + "\n"));
            output_secret(ui, &secret);
            return 2;
        }
        if kura_client::read_env("TOKEN").is_some() {
            ui.warn(&(wrap_at_length(
                "WARNING! The BAO_TOKEN environment variable is set! The value of this variable \
                 will take precedence; if this is unwanted please unset BAO_TOKEN or update its \
                 value accordingly.",
            ) + "\n"));
        }
    } else if !token_only {
        ui.warn(&(wrap_at_length(
            "The token was not stored in token helper. Set the BAO_TOKEN environment variable or \
             pass the token below with each request to Vault.",
        ) + "\n"));
    }
    if no_print {
        return 0;
    }
    if let Some(f) = field.as_deref() {
        return print_secret_field(ui, &secret, f);
    }
    if ui.is_table() {
        ui.output(&(wrap_at_length(
            "Success! You are now authenticated. The token information displayed below is already \
             stored in the token helper. You do NOT need to run \"bao login\" again. Future \
             OpenBao requests will automatically use this token.",
        ) + "\n"));
    }
    output_secret(ui, &secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_pairs_repeat_lists() {
        let m: Map<String, Value> =
            serde_json::from_value(json!({"a": "1", "b": ["x", "y"]})).unwrap();
        assert_eq!(
            query_pairs(&m),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x".to_string()),
                ("b".to_string(), "y".to_string())
            ]
        );
    }

    #[test]
    fn write_output_messages() {
        let mut ui = Ui::buffered("table");
        assert_eq!(write_output(&mut ui, "secret/x", Ok(None), None), 0);
        assert_eq!(ui.stdout_text(), "Success! Data written to: secret/x\n");
        let mut ui = Ui::buffered("json");
        assert_eq!(write_output(&mut ui, "secret/x", Ok(None), None), 0);
        assert_eq!(ui.stdout_text(), "");
    }
}
