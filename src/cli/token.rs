//! `token` commands: create, lookup, renew, revoke.

use clap::{Args, Subcommand};
use kura_client::{Method, Secret};
use serde_json::{json, Map, Value};

use super::format::go_duration;
use super::output::{output_secret, print_secret_field, Ui};
use super::sys::client_or_report;
use super::{duration_arg, go_bool, kv_pair, split_list, FormatOpts, HttpOpts, OutputOpts};

/// `token` subcommands.
// Parsed once per process; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a new token.
    Create(TokenCreateArgs),
    /// Display information about a token.
    Lookup(TokenLookupArgs),
    /// Renew a token lease.
    Renew(TokenRenewArgs),
    /// Revoke a token and its children.
    Revoke(TokenRevokeArgs),
}

/// Arguments of `token create`.
#[derive(Args, Debug)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    out: OutputOpts,
    /// Value for the token (requires sudo).
    #[arg(long)]
    id: Option<String>,
    /// Name associated with the token.
    #[arg(long = "display-name")]
    display_name: Option<String>,
    /// Initial TTL.
    #[arg(long, value_parser = duration_arg)]
    pub ttl: Option<i128>,
    /// Hard maximum lifetime.
    #[arg(long = "explicit-max-ttl", value_parser = duration_arg)]
    explicit_max_ttl: Option<i128>,
    /// Renewal period of a periodic token.
    #[arg(long, value_parser = duration_arg)]
    period: Option<i128>,
    /// Allow renewal (default true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub renewable: Option<bool>,
    /// Create the token with no parent.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub orphan: Option<bool>,
    /// Detach the "default" policy.
    #[arg(long = "no-default-policy", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    no_default_policy: Option<bool>,
    /// Number of uses (0 = unlimited).
    #[arg(long = "use-limit")]
    pub use_limit: Option<i64>,
    /// Role to create the token against.
    #[arg(long)]
    role: Option<String>,
    /// Token type: "service" or "batch".
    #[arg(long = "type")]
    token_type: Option<String>,
    /// Metadata `key=value` (repeatable).
    #[arg(long, value_parser = kv_pair)]
    pub metadata: Vec<(String, String)>,
    /// Policy to attach (repeatable or comma-separated).
    #[arg(long)]
    pub policy: Vec<String>,
    /// Entity alias to associate with (with -role).
    #[arg(long = "entity-alias")]
    entity_alias: Option<String>,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Arguments of `token lookup`.
#[derive(Args, Debug)]
pub struct TokenLookupArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    out: OutputOpts,
    /// Treat the argument as an accessor.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    accessor: Option<bool>,
    /// TOKEN or ACCESSOR.
    args: Vec<String>,
}

/// Arguments of `token renew`.
#[derive(Args, Debug)]
pub struct TokenRenewArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Treat the argument as an accessor.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    accessor: Option<bool>,
    /// Requested increment.
    #[arg(long, short = 'i', value_parser = duration_arg)]
    increment: Option<i128>,
    /// TOKEN.
    args: Vec<String>,
}

/// Arguments of `token revoke`.
#[derive(Args, Debug)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// Treat the argument as an accessor.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub accessor: Option<bool>,
    /// Revoke the token in use.
    #[arg(long = "self", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    self_: Option<bool>,
    /// "orphan" keeps the children; "path" revokes by creation path prefix.
    #[arg(long)]
    mode: Option<String>,
    /// TOKEN or ACCESSOR.
    pub args: Vec<String>,
}

/// Runs a `token` subcommand.
pub async fn run(ui: &mut Ui, cmd: TokenCmd) -> i32 {
    match cmd {
        TokenCmd::Create(a) => create(ui, a).await,
        TokenCmd::Lookup(a) => lookup(ui, a).await,
        TokenCmd::Renew(a) => renew(ui, a).await,
        TokenCmd::Revoke(a) => revoke(ui, a).await,
    }
}

/// The body `bao token create` sends (`api.TokenCreateRequest`).
fn create_body(a: &TokenCreateArgs, renewable: bool, token_type: &str) -> Value {
    let mut m = Map::new();
    if let Some(id) = a.id.as_deref().filter(|s| !s.is_empty()) {
        m.insert("id".into(), json!(id));
    }
    let policies = split_list(&a.policy);
    if !policies.is_empty() {
        m.insert("policies".into(), json!(policies));
    }
    if !a.metadata.is_empty() {
        let meta: Map<String, Value> = a
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        m.insert("meta".into(), Value::Object(meta));
    }
    m.insert("ttl".into(), json!(go_duration(a.ttl.unwrap_or(0))));
    m.insert(
        "explicit_max_ttl".into(),
        json!(go_duration(a.explicit_max_ttl.unwrap_or(0))),
    );
    m.insert("period".into(), json!(go_duration(a.period.unwrap_or(0))));
    if a.orphan.unwrap_or(false) {
        m.insert("no_parent".into(), json!(true));
    }
    if a.no_default_policy.unwrap_or(false) {
        m.insert("no_default_policy".into(), json!(true));
    }
    m.insert(
        "display_name".into(),
        json!(a.display_name.clone().unwrap_or_default()),
    );
    m.insert("num_uses".into(), json!(a.use_limit.unwrap_or(0)));
    m.insert("renewable".into(), json!(renewable));
    m.insert("type".into(), json!(token_type));
    m.insert(
        "entity_alias".into(),
        json!(a.entity_alias.clone().unwrap_or_default()),
    );
    Value::Object(m)
}

async fn create(ui: &mut Ui, a: TokenCreateArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    if !a.args.is_empty() {
        ui.error(&format!(
            "Too many arguments (expected 0, got {})",
            a.args.len()
        ));
        return 1;
    }
    let token_type = a
        .token_type
        .clone()
        .unwrap_or_else(|| "service".to_string());
    let mut renewable = a.renewable.unwrap_or(true);
    if token_type == "batch" {
        renewable = false;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let body = create_body(&a, renewable, &token_type);
    let role = a.role.as_deref().filter(|r| !r.is_empty());
    let secret = match client.create_token(body, role).await {
        Ok(s) => s,
        Err(e) => {
            ui.error(&format!("Error creating token: {e}"));
            return 2;
        }
    };
    if let Some(f) = a.out.field() {
        return print_secret_field(ui, &secret, f);
    }
    output_secret(ui, &secret)
}

async fn send_secret(
    client: &kura_client::Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Secret, kura_client::ClientError> {
    let resp = client.send_checked(method, path, body).await?;
    Ok(resp.secret()?.unwrap_or_default())
}

async fn lookup(ui: &mut Ui, a: TokenLookupArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    let accessor = a.accessor.unwrap_or(false);
    let n = a.args.len();
    if accessor && n < 1 {
        ui.error(&format!(
            "Not enough arguments with -accessor (expected 1, got {n})"
        ));
        return 1;
    }
    if accessor && n > 1 {
        ui.error(&format!(
            "Too many arguments with -accessor (expected 1, got {n})"
        ));
        return 1;
    }
    if n > 1 {
        ui.error(&format!("Too many arguments (expected 0-1, got {n})"));
        return 1;
    }
    let token = a
        .args
        .first()
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let res = if token.is_empty() {
        send_secret(&client, Method::GET, "auth/token/lookup-self", None).await
    } else if accessor {
        let body = json!({ "accessor": token });
        send_secret(
            &client,
            Method::POST,
            "auth/token/lookup-accessor",
            Some(body),
        )
        .await
    } else {
        let body = json!({ "token": token });
        send_secret(&client, Method::POST, "auth/token/lookup", Some(body)).await
    };
    match res {
        Ok(s) => match a.out.field() {
            Some(f) => print_secret_field(ui, &s, f),
            None => output_secret(ui, &s),
        },
        Err(e) => {
            ui.error(&format!("Error looking up token: {e}"));
            2
        }
    }
}

async fn renew(ui: &mut Ui, a: TokenRenewArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if a.args.len() > 1 {
        ui.error(&format!(
            "Too many arguments (expected 1, got {})",
            a.args.len()
        ));
        return 1;
    }
    let token = a
        .args
        .first()
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    // Whole seconds; increments under a second count as none.
    let inc = a.increment.unwrap_or(0) / 1_000_000_000;
    let inc = if inc < 1 { 0 } else { inc as i64 };
    let res = if token.is_empty() {
        let body = json!({ "increment": inc });
        send_secret(&client, Method::PUT, "auth/token/renew-self", Some(body)).await
    } else if a.accessor.unwrap_or(false) {
        let body = json!({ "accessor": token, "increment": inc });
        send_secret(
            &client,
            Method::PUT,
            "auth/token/renew-accessor",
            Some(body),
        )
        .await
    } else {
        let body = json!({ "token": token, "increment": inc });
        send_secret(&client, Method::PUT, "auth/token/renew", Some(body)).await
    };
    match res {
        Ok(s) => output_secret(ui, &s),
        Err(e) => {
            ui.error(&format!("Error renewing token: {e}"));
            2
        }
    }
}

async fn revoke(ui: &mut Ui, a: TokenRevokeArgs) -> i32 {
    let accessor = a.accessor.unwrap_or(false);
    let self_ = a.self_.unwrap_or(false);
    let mode = a.mode.clone().unwrap_or_default();
    let n = a.args.len();
    let token = a
        .args
        .first()
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    if !matches!(mode.as_str(), "" | "orphan" | "path") {
        ui.error(&format!("Invalid mode: {mode}"));
        return 1;
    }
    let problem = if self_ && n > 0 {
        Some(format!(
            "Too many arguments with -self (expected 0, got {n})"
        ))
    } else if !self_ && n > 1 {
        Some(format!("Too many arguments (expected 1 or -self, got {n})"))
    } else if !self_ && n < 1 {
        Some(format!(
            "Not enough arguments (expected 1 or -self, got {n})"
        ))
    } else if self_ && accessor {
        Some("Cannot use -self with -accessor!".to_string())
    } else if self_ && !mode.is_empty() {
        Some("Cannot use -self with -mode!".to_string())
    } else if accessor && mode == "orphan" {
        Some("Cannot use -accessor with -mode=orphan!".to_string())
    } else if accessor && mode == "path" {
        Some("Cannot use -accessor with -mode=path!".to_string())
    } else {
        None
    };
    if let Some(p) = problem {
        ui.error(&p);
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let (path, body) = match (accessor, self_, mode.as_str()) {
        (false, true, "") => ("auth/token/revoke-self".to_string(), None),
        (false, false, "") => (
            "auth/token/revoke".to_string(),
            Some(json!({ "token": token })),
        ),
        (false, false, "orphan") => (
            "auth/token/revoke-orphan".to_string(),
            Some(json!({ "token": token })),
        ),
        (false, false, "path") => (format!("sys/leases/revoke-prefix/{token}"), None),
        _ => (
            "auth/token/revoke-accessor".to_string(),
            Some(json!({ "accessor": token })),
        ),
    };
    match client.send_checked(Method::PUT, &path, body).await {
        Ok(_) => {
            ui.output("Success! Revoked token (if it existed)");
            0
        }
        Err(e) => {
            ui.error(&format!("Error revoking token: {e}"));
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: TokenCreateArgs,
    }

    #[test]
    fn create_body_like_go_client() {
        let w = Wrap::try_parse_from([
            "x",
            "--policy=a,b",
            "--policy",
            "c",
            "--ttl=1h",
            "--metadata=k=v",
            "--orphan",
            "--display-name=n",
        ])
        .unwrap();
        let body = create_body(&w.a, true, "service");
        assert_eq!(
            body,
            json!({"policies": ["a", "b", "c"], "meta": {"k": "v"}, "ttl": "1h0m0s",
                   "explicit_max_ttl": "0s", "period": "0s", "no_parent": true,
                   "display_name": "n", "num_uses": 0, "renewable": true, "type": "service",
                   "entity_alias": ""})
        );
    }
}
