//! `status`, `operator`, `secrets`, `auth` and `policy` commands.

use std::io::Read;

use clap::{Args, Subcommand};
use kura_client::{Client, ClientError, Method};
use serde_json::{json, Map, Value};

use super::format::{columnize, go_duration, go_value, table_output, wrap_at_length};
use super::output::{output_json, output_map, Ui};
use super::{
    check_args, duration_arg, ensure_trailing_slash, go_bool, kv_pair, sanitize_path, split_list,
};
use super::{FormatOpts, HttpOpts};

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn n(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// Builds the client or prints why it cannot be built.
pub(crate) fn client_or_report(ui: &mut Ui, http: &HttpOpts) -> Option<Client> {
    match http.client() {
        Ok(c) => Some(c),
        Err(e) => {
            ui.error(&e);
            None
        }
    }
}

// ----- status -----

/// Arguments of `status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    out: super::OutputOpts,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// `status`: seal and HA status; exit code 2 when sealed.
pub async fn status(ui: &mut Ui, a: StatusArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    if !a.args.is_empty() {
        ui.error(&format!(
            "Too many arguments (expected 0, got {})",
            a.args.len()
        ));
        return 1;
    }
    let Some(mut client) = client_or_report(ui, &a.http) else {
        return 1;
    };
    client.set_namespace(None);
    let st = match client.seal_status().await {
        Ok(s) => s,
        Err(e) => {
            ui.error(&format!("Error checking seal status: {e}"));
            return 1;
        }
    };
    let code = output_seal_status(ui, &client, &st, a.out.field()).await;
    if b(&st, "sealed") {
        2
    } else {
        code
    }
}

/// `OutputSealStatus`: the seal status merged with `sys/leader`, as a table or JSON.
async fn output_seal_status(ui: &mut Ui, client: &Client, st: &Value, field: Option<&str>) -> i32 {
    let sealed = b(st, "sealed");
    let leader = match client.leader().await {
        Ok(l) => l,
        // A sealed HA node cannot answer sys/leader; bao shows HA as enabled then.
        Err(ClientError::Api(e)) if e.status == 503 && sealed => json!({"ha_enabled": true}),
        Err(e) => {
            ui.error(&format!("Error checking leader status: {e}"));
            return 1;
        }
    };
    let mut out = Map::new();
    out.insert("type".into(), json!(s(st, "type")));
    out.insert("initialized".into(), json!(b(st, "initialized")));
    out.insert("sealed".into(), json!(sealed));
    out.insert("t".into(), json!(n(st, "t")));
    out.insert("n".into(), json!(n(st, "n")));
    out.insert("progress".into(), json!(n(st, "progress")));
    out.insert("nonce".into(), json!(s(st, "nonce")));
    out.insert("version".into(), json!(s(st, "version")));
    out.insert("commit_date".into(), json!(s(st, "commit_date")));
    out.insert("migration".into(), json!(b(st, "migration")));
    for k in ["cluster_name", "cluster_id"] {
        if !s(st, k).is_empty() {
            out.insert(k.into(), json!(s(st, k)));
        }
    }
    out.insert("recovery_seal".into(), json!(b(st, "recovery_seal")));
    for k in ["recovery_seal_type", "storage_type"] {
        if !s(st, k).is_empty() {
            out.insert(k.into(), json!(s(st, k)));
        }
    }
    out.insert("build_date".into(), json!(s(st, "build_date")));
    if let Some(w) = st
        .get("warnings")
        .filter(|w| w.as_array().is_some_and(|a| !a.is_empty()))
    {
        out.insert("warnings".into(), w.clone());
    }
    let ha = b(&leader, "ha_enabled");
    out.insert("ha_enabled".into(), json!(ha));
    let is_self = b(&leader, "is_self");
    if is_self {
        out.insert("is_self".into(), json!(true));
    }
    let active_time = s(&leader, "active_time");
    let active_set = !active_time.is_empty() && !active_time.starts_with("0001-01-01");
    if active_set {
        out.insert("active_time".into(), json!(active_time));
    }
    for k in ["leader_address", "leader_cluster_address"] {
        if !s(&leader, k).is_empty() {
            out.insert(k.into(), json!(s(&leader, k)));
        }
    }
    for k in ["raft_committed_index", "raft_applied_index"] {
        if n(&leader, k) > 0 {
            out.insert(k.into(), json!(n(&leader, k)));
        }
    }
    if let Some(f) = field {
        // bao reports a missing field but still exits 0 here.
        return match out.get(f) {
            Some(v) => super::output::print_field_value(ui, Some(v.clone()), f, "seal status"),
            None => {
                ui.error(&format!(
                    "Field {} not present in seal status",
                    super::format::go_quote(f)
                ));
                0
            }
        };
    }
    if ui.format == "json" {
        return output_json(ui, &Value::Object(out));
    }
    if ui.format != "table" {
        ui.error(&format!("Invalid output format: {}", ui.format));
        return 1;
    }
    let mut rows = vec![
        "Key | Value".to_string(),
        format!("Seal Type | {}", s(st, "type")),
    ];
    let prefix = if b(st, "recovery_seal") {
        rows.push(format!(
            "Recovery Seal Type | {}",
            s(st, "recovery_seal_type")
        ));
        "Recovery "
    } else {
        ""
    };
    rows.push(format!("Initialized | {}", b(st, "initialized")));
    rows.push(format!("Sealed | {sealed}"));
    rows.push(format!("Total {prefix}Shares | {}", n(st, "n")));
    rows.push(format!("Threshold | {}", n(st, "t")));
    if sealed {
        rows.push(format!(
            "Unseal Progress | {}/{}",
            n(st, "progress"),
            n(st, "t")
        ));
        rows.push(format!("Unseal Nonce | {}", s(st, "nonce")));
    }
    if b(st, "migration") {
        rows.push("Seal Migration in Progress | true".to_string());
    }
    for (label, k) in [
        ("Version", "version"),
        ("Commit Date", "commit_date"),
        ("Storage Type", "storage_type"),
    ] {
        if !s(st, k).is_empty() {
            rows.push(format!("{label} | {}", s(st, k)));
        }
    }
    if !s(st, "cluster_name").is_empty() && !s(st, "cluster_id").is_empty() {
        rows.push(format!("Cluster Name | {}", s(st, "cluster_name")));
        rows.push(format!("Cluster ID | {}", s(st, "cluster_id")));
    }
    rows.push(format!("HA Enabled | {ha}"));
    if ha && !sealed {
        rows.push(format!(
            "HA Cluster | {}",
            s(&leader, "leader_cluster_address")
        ));
        rows.push(format!(
            "HA Mode | {}",
            if is_self { "active" } else { "standby" }
        ));
        if is_self && active_set {
            rows.push(format!("Active Since | {active_time}"));
        }
        if !is_self && !s(&leader, "leader_address").is_empty() {
            rows.push(format!(
                "Active Node Address | {}",
                s(&leader, "leader_address")
            ));
        }
    }
    for (label, k) in [
        ("Raft Committed Index", "raft_committed_index"),
        ("Raft Applied Index", "raft_applied_index"),
    ] {
        if n(&leader, k) > 0 {
            rows.push(format!("{label} | {}", n(&leader, k)));
        }
    }
    let text = table_output(&rows, "|");
    ui.output(&text);
    0
}

// ----- operator -----

/// `operator` subcommands.
#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Initialize a server.
    Init(InitArgs),
    /// Provide an unseal key share.
    Unseal(UnsealArgs),
    /// Seal the server.
    Seal(SealArgs),
    /// Print information about the encryption key.
    KeyStatus(KeyStatusArgs),
    /// Rotate the underlying encryption key.
    Rotate(KeyStatusArgs),
    /// Raft cluster operations (integrated storage).
    #[command(subcommand)]
    Raft(super::raft::RaftCmd),
    /// Make the active node give up leadership; it stays a standby.
    StepDown(SealArgs),
    /// List the nodes of the HA cluster.
    Members(MembersArgs),
}

/// Arguments of `operator members`.
#[derive(Args, Debug)]
pub struct MembersArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Arguments of `operator init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Print the initialization status (exit code 2 when not initialized).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    status: Option<bool>,
    /// Number of key shares to split the root key into.
    #[arg(long = "key-shares", short = 'n')]
    key_shares: Option<i64>,
    /// Number of key shares required to reconstruct the root key.
    #[arg(long = "key-threshold", short = 't')]
    key_threshold: Option<i64>,
    /// Recovery key shares (auto-unseal only).
    #[arg(long = "recovery-shares")]
    recovery_shares: Option<i64>,
    /// Recovery key threshold (auto-unseal only).
    #[arg(long = "recovery-threshold")]
    recovery_threshold: Option<i64>,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Arguments of `operator unseal`.
#[derive(Args, Debug)]
pub struct UnsealArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Discard any previously entered keys.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    reset: Option<bool>,
    /// Share provided for a seal migration.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    migrate: Option<bool>,
    /// The unseal key (prompted for when absent).
    args: Vec<String>,
}

/// Arguments of `operator seal`.
#[derive(Args, Debug)]
pub struct SealArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Arguments of `operator key-status` and `operator rotate`.
#[derive(Args, Debug)]
pub struct KeyStatusArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Runs an `operator` subcommand.
pub async fn operator(ui: &mut Ui, cmd: OperatorCmd) -> i32 {
    match cmd {
        OperatorCmd::Init(a) => init(ui, a).await,
        OperatorCmd::Unseal(a) => unseal(ui, a).await,
        OperatorCmd::Seal(a) => seal(ui, a).await,
        OperatorCmd::KeyStatus(a) => key_status(ui, a, false).await,
        OperatorCmd::Rotate(a) => key_status(ui, a, true).await,
        OperatorCmd::Raft(c) => super::raft::raft(ui, c).await,
        OperatorCmd::StepDown(a) => step_down(ui, a).await,
        OperatorCmd::Members(a) => members(ui, a).await,
    }
}

async fn init(ui: &mut Ui, a: InitArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !a.args.is_empty() {
        ui.error(&format!(
            "Too many arguments (expected 0, got {})",
            a.args.len()
        ));
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let st = match client.seal_status().await {
        Ok(s) => s,
        Err(e) => {
            ui.error(&e.to_string());
            return 2;
        }
    };
    if a.status.unwrap_or(false) {
        let inited = match client.init_status().await {
            Ok(i) => i,
            Err(e) => {
                ui.error(&format!("Error checking init status: {e}"));
                return 1;
            }
        };
        if ui.format == "table" {
            ui.output(if inited {
                "Vault is initialized"
            } else {
                "Vault is not initialized"
            });
        } else {
            output_json(ui, &json!({ "Initialized": inited }));
        }
        return if inited { 0 } else { 2 };
    }
    let mut shares = a.key_shares.unwrap_or(0);
    let mut threshold = a.key_threshold.unwrap_or(0);
    let mut rshares = a.recovery_shares.unwrap_or(0);
    let mut rthreshold = a.recovery_threshold.unwrap_or(0);
    if b(&st, "recovery_seal") {
        if rshares == 0 {
            rshares = 5;
        }
        if rthreshold == 0 {
            rthreshold = 3;
        }
    } else {
        if shares == 0 {
            shares = 5;
        }
        if threshold == 0 {
            threshold = 3;
        }
    }
    let req = json!({
        "secret_shares": shares,
        "secret_threshold": threshold,
        "stored_shares": 0,
        "pgp_keys": null,
        "recovery_shares": rshares,
        "recovery_threshold": rthreshold,
        "recovery_pgp_keys": null,
        "root_token_pgp_key": "",
    });
    let resp = match client.init(req).await {
        Ok(r) => r,
        Err(e) => {
            ui.error(&format!("Error initializing: {e}"));
            return 2;
        }
    };
    let strs = |k: &str| -> Vec<String> {
        resp.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let keys = strs("keys");
    let keys_b64 = strs("keys_base64");
    let rkeys = strs("recovery_keys");
    let rkeys_b64 = strs("recovery_keys_base64");
    let root = s(&resp, "root_token");
    if ui.format != "table" {
        let (us, ut) = if keys.is_empty() {
            (1, 1)
        } else {
            (shares, threshold)
        };
        let mut m = Map::new();
        m.insert("unseal_keys_b64".into(), json!(keys_b64));
        m.insert("unseal_keys_hex".into(), json!(keys));
        m.insert("unseal_shares".into(), json!(us));
        m.insert("unseal_threshold".into(), json!(ut));
        m.insert("recovery_keys_b64".into(), json!(rkeys_b64));
        m.insert("recovery_keys_hex".into(), json!(rkeys));
        m.insert("recovery_keys_shares".into(), json!(rshares));
        m.insert("recovery_keys_threshold".into(), json!(rthreshold));
        m.insert("root_token".into(), json!(root));
        return output_json(ui, &Value::Object(m));
    }
    for (i, k) in keys.iter().enumerate() {
        let shown = if keys_b64.len() == keys.len() {
            &keys_b64[i]
        } else {
            k
        };
        ui.output(&format!("Unseal Key {}: {shown}", i + 1));
    }
    for (i, k) in rkeys.iter().enumerate() {
        let shown = if rkeys_b64.len() == rkeys.len() {
            &rkeys_b64[i]
        } else {
            k
        };
        ui.output(&format!("Recovery Key {}: {shown}", i + 1));
    }
    ui.output("");
    ui.output(&format!("Initial Root Token: {root}"));
    if !keys.is_empty() {
        ui.output("");
        ui.output(&wrap_at_length(&format!(
            "Vault initialized with {shares} key shares and a key threshold of {threshold}. Please \
             securely distribute the key shares printed above. When the Vault is re-sealed, \
             restarted, or stopped, you must supply at least {threshold} of these keys to unseal it \
             before it can start servicing requests."
        )));
        ui.output("");
        ui.output(&wrap_at_length(&format!(
            "Vault does not store the generated root key. Without at least {threshold} keys to \
             reconstruct the root key, Vault will remain permanently sealed!"
        )));
        ui.output("");
        ui.output(&wrap_at_length(
            "It is possible to generate new unseal keys, provided you have a quorum of existing \
             unseal keys shares. See \"bao operator rotate-keys\" for more information.",
        ));
    } else {
        ui.output("");
        ui.output("Success! Vault is initialized");
    }
    if !rkeys.is_empty() {
        ui.output("");
        ui.output(&wrap_at_length(&format!(
            "Recovery key initialized with {rshares} key shares and a key threshold of {rthreshold}. \
             Please securely distribute the key shares printed above."
        )));
    }
    0
}

async fn unseal(ui: &mut Ui, a: UnsealArgs) -> i32 {
    ui.format = a.fmt.resolve();
    let mut key = match a.args.len() {
        0 => String::new(),
        1 => a.args[0].trim().to_string(),
        n => {
            ui.error(&format!("Too many arguments (expected 1, got {n})"));
            return 1;
        }
    };
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    if a.reset.unwrap_or(false) {
        return match client.unseal_reset().await {
            Ok(st) => output_seal_status(ui, &client, &st, None).await,
            Err(e) => {
                ui.error(&format!("Error resetting unseal process: {e}"));
                2
            }
        };
    }
    if key.is_empty() {
        if a.http.non_interactive() {
            ui.error(&wrap_at_length(
                "Refusing to read from stdin with -non-interactive specified; specify unseal key as an argument to this command",
            ));
            return 1;
        }
        match super::read_secret_input(ui, "Unseal Key (will be hidden): ", false) {
            Ok(k) => key = k,
            Err(e) => {
                ui.error(&wrap_at_length(&format!(
                    "An error occurred attempting to ask for an unseal key. The raw error message \
                     is shown below, but usually this is because you attempted to pipe a value \
                     into the unseal command or you are executing outside of a terminal (tty). You \
                     should run the unseal command from a terminal for maximum security. If this \
                     is not an option, the unseal key can be provided as the first argument to the \
                     unseal command. The raw error was:\n\n{e}"
                )));
                return 1;
            }
        }
    }
    let body = json!({"key": key, "reset": false, "migrate": a.migrate.unwrap_or(false)});
    let resp = client
        .send_checked(kura_client::Method::PUT, "sys/unseal", Some(body))
        .await;
    match resp {
        Ok(r) => {
            let st = r.json().cloned().unwrap_or(Value::Null);
            output_seal_status(ui, &client, &st, None).await
        }
        Err(e) => {
            ui.error(&format!("Error unsealing: {e}"));
            2
        }
    }
}

async fn seal(ui: &mut Ui, a: SealArgs) -> i32 {
    if !a.args.is_empty() {
        ui.error(&format!(
            "Too many arguments (expected 0, got {})",
            a.args.len()
        ));
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    match client.seal().await {
        Ok(()) => {
            ui.output("Success! Vault is sealed.");
            0
        }
        Err(e) => {
            ui.error(&format!("Error sealing: {e}"));
            2
        }
    }
}

async fn step_down(ui: &mut Ui, a: SealArgs) -> i32 {
    if !check_args(ui, &a.args, 0, 0) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    match client
        .request(Method::PUT, "sys/step-down", &[], None)
        .await
    {
        Ok(r) if r.is_success() => {
            ui.output(&format!("Success! Stepped down: {}", client.address()));
            0
        }
        Ok(r) => {
            ui.error(&format!("Error stepping down: {}", r.api_error()));
            2
        }
        Err(e) => {
            ui.error(&format!("Error stepping down: {e}"));
            2
        }
    }
}

async fn members(ui: &mut Ui, a: MembersArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !check_args(ui, &a.args, 0, 0) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let body = match client
        .request(Method::GET, "sys/ha-status", &[], None)
        .await
    {
        Ok(r) if r.is_success() => r.json().cloned().unwrap_or(Value::Null),
        Ok(r) => {
            ui.error(&format!("Error retrieving HA status: {}", r.api_error()));
            return 2;
        }
        Err(e) => {
            ui.error(&format!("Error retrieving HA status: {e}"));
            return 2;
        }
    };
    if ui.format == "json" {
        return output_json(ui, &body);
    }
    let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
    let mut lines =
        vec!["Host Name|API Address|Cluster Address|Active Node|Version|Last Echo".to_string()];
    for n in nodes {
        let text = |k: &str| n[k].as_str().unwrap_or("").to_string();
        let echo = match &n["last_echo"] {
            Value::String(s) => s.clone(),
            _ => "n/a".to_string(),
        };
        lines.push(format!(
            "{}|{}|{}|{}|{}|{}",
            text("hostname"),
            text("api_address"),
            text("cluster_address"),
            n["active_node"].as_bool().unwrap_or(false),
            text("version"),
            echo,
        ));
    }
    ui.output(&super::format::table_output(&lines, "|"));
    0
}

/// Formats an RFC 3339 UTC time the way Go's `time.RFC822` does: `02 Jan 06 15:04 UTC`.
fn rfc822(ts: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts = (|| {
        let year = ts.get(2..4)?;
        let month: usize = ts.get(5..7)?.parse().ok()?;
        let day = ts.get(8..10)?;
        let hm = ts.get(11..16)?;
        Some(format!(
            "{day} {} {year} {hm} UTC",
            MONTHS.get(month.checked_sub(1)?)?
        ))
    })();
    parts.unwrap_or_else(|| ts.to_string())
}

fn key_status_text(d: &Map<String, Value>) -> String {
    let get = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
    let install = get("install_time");
    columnize(
        &[
            format!("Key Term | {}", go_value(&get("term"))),
            format!(
                "Install Time | {}",
                rfc822(install.as_str().unwrap_or_default())
            ),
            format!("Encryption Count | {}", go_value(&get("encryptions"))),
        ],
        "|",
    )
}

fn key_status_json(d: &Map<String, Value>) -> Value {
    json!({
        "term": d.get("term").cloned().unwrap_or(json!(0)),
        "install_time": d.get("install_time").cloned().unwrap_or(json!("")),
        "encryptions": d.get("encryptions").cloned().unwrap_or(json!(0)),
    })
}

async fn key_status(ui: &mut Ui, a: KeyStatusArgs, rotate: bool) -> i32 {
    ui.format = a.fmt.resolve();
    if !a.args.is_empty() {
        ui.error(&format!(
            "Too many arguments (expected 0, got {})",
            a.args.len()
        ));
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    if rotate {
        if let Err(e) = client.rotate().await {
            ui.error(&format!("Error rotating key: {e}"));
            return 2;
        }
    }
    let d = match client.key_status().await {
        Ok(d) => d,
        Err(e) => {
            ui.error(&format!("Error reading key status: {e}"));
            return 2;
        }
    };
    match ui.format.as_str() {
        "table" => {
            if rotate {
                ui.output("Success! Rotated key");
                ui.output("");
            }
            let t = key_status_text(&d);
            ui.output(&t);
            0
        }
        "json" => output_json(ui, &key_status_json(&d)),
        other => {
            ui.error(&format!("Invalid output format: {other}"));
            1
        }
    }
}

// ----- secrets / auth -----

/// `secrets` subcommands.
#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Enable a secrets engine.
    Enable(EnableArgs),
    /// Disable a secrets engine.
    Disable(DisableArgs),
    /// List enabled secrets engines.
    List(MountListArgs),
    /// Tune a secrets engine configuration.
    Tune(TuneArgs),
}

/// `auth` subcommands.
// Parsed once per process; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Enable an auth method.
    Enable(EnableArgs),
    /// Disable an auth method.
    Disable(DisableArgs),
    /// List enabled auth methods.
    List(MountListArgs),
}

/// Mount settings that `enable` and `tune` both accept.
#[derive(Args, Debug)]
pub struct MountTunables {
    /// Visibility in the UI listing endpoint.
    #[arg(long = "listing-visibility")]
    listing_visibility: Option<String>,
    /// Semantic version of the plugin.
    #[arg(long = "plugin-version")]
    plugin_version: Option<String>,
    /// Request keys not HMAC'd by audit devices (repeatable).
    #[arg(long = "audit-non-hmac-request-keys")]
    audit_non_hmac_request_keys: Vec<String>,
    /// Response keys not HMAC'd by audit devices (repeatable).
    #[arg(long = "audit-non-hmac-response-keys")]
    audit_non_hmac_response_keys: Vec<String>,
    /// Request headers passed to the plugin (repeatable).
    #[arg(long = "passthrough-request-headers")]
    passthrough_request_headers: Vec<String>,
    /// Response headers the plugin may set (repeatable).
    #[arg(long = "allowed-response-headers")]
    allowed_response_headers: Vec<String>,
}

impl MountTunables {
    /// Adds the settings that were given to a mount `config` object.
    fn insert_into(&self, c: &mut Map<String, Value>) {
        let lists = [
            (
                "audit_non_hmac_request_keys",
                &self.audit_non_hmac_request_keys,
            ),
            (
                "audit_non_hmac_response_keys",
                &self.audit_non_hmac_response_keys,
            ),
            (
                "passthrough_request_headers",
                &self.passthrough_request_headers,
            ),
            ("allowed_response_headers", &self.allowed_response_headers),
        ];
        for (k, v) in lists {
            if !v.is_empty() {
                c.insert(k.into(), json!(split_list(v)));
            }
        }
        if let Some(v) = &self.listing_visibility {
            c.insert("listing_visibility".into(), json!(v));
        }
        if let Some(v) = &self.plugin_version {
            c.insert("plugin_version".into(), json!(v));
        }
    }
}

/// Arguments of `secrets enable` and `auth enable`.
#[derive(Args, Debug)]
pub struct EnableArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// Human-friendly description.
    #[arg(long)]
    description: Option<String>,
    /// Path of the mount (defaults to the type).
    #[arg(long)]
    path: Option<String>,
    /// Default lease TTL.
    #[arg(long = "default-lease-ttl", value_parser = duration_arg)]
    default_lease_ttl: Option<i128>,
    /// Maximum lease TTL.
    #[arg(long = "max-lease-ttl", value_parser = duration_arg)]
    max_lease_ttl: Option<i128>,
    /// Mount option `key=value` (repeatable).
    #[arg(long, value_parser = kv_pair)]
    options: Vec<(String, String)>,
    /// Engine version (sets the `version` option).
    #[arg(long)]
    version: Option<i64>,
    /// Name of the plugin (with type "plugin").
    #[arg(long = "plugin-name")]
    plugin_name: Option<String>,
    /// Forced token type of an auth mount.
    #[arg(long = "token-type")]
    token_type: Option<String>,
    #[command(flatten)]
    tunables: MountTunables,
    /// Disable caching.
    #[arg(long = "force-no-cache", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    force_no_cache: Option<bool>,
    /// Local-only mount.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    local: Option<bool>,
    /// Seal-wrap critical values.
    #[arg(long = "seal-wrap", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    seal_wrap: Option<bool>,
    /// Allow access to external entropy.
    #[arg(long = "external-entropy-access", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    external_entropy_access: Option<bool>,
    /// The engine or method TYPE.
    args: Vec<String>,
}

impl EnableArgs {
    fn options(&self) -> Option<Map<String, Value>> {
        let mut m: Map<String, Value> = self
            .options
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if let Some(v) = self.version.filter(|v| *v > 0) {
            m.insert("version".into(), Value::String(v.to_string()));
        }
        (!m.is_empty() || !self.options.is_empty()).then_some(m)
    }

    fn config(&self, auth: bool) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert(
            "default_lease_ttl".into(),
            json!(go_duration(self.default_lease_ttl.unwrap_or(0))),
        );
        c.insert(
            "max_lease_ttl".into(),
            json!(go_duration(self.max_lease_ttl.unwrap_or(0))),
        );
        if !auth {
            c.insert(
                "force_no_cache".into(),
                json!(self.force_no_cache.unwrap_or(false)),
            );
        }
        self.tunables.insert_into(&mut c);
        if auth {
            if let Some(v) = &self.token_type {
                c.insert("token_type".into(), json!(v));
            }
        }
        c
    }
}

/// Arguments of `secrets disable` and `auth disable`.
#[derive(Args, Debug)]
pub struct DisableArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// The PATH of the mount.
    args: Vec<String>,
}

/// Arguments of `secrets list` and `auth list`.
#[derive(Args, Debug)]
pub struct MountListArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Print detailed information.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    detailed: Option<bool>,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Arguments of `secrets tune`.
#[derive(Args, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// New description.
    #[arg(long)]
    description: Option<String>,
    /// Default lease TTL.
    #[arg(long = "default-lease-ttl", value_parser = duration_arg)]
    default_lease_ttl: Option<i128>,
    /// Maximum lease TTL.
    #[arg(long = "max-lease-ttl", value_parser = duration_arg)]
    max_lease_ttl: Option<i128>,
    /// Mount option `key=value` (repeatable).
    #[arg(long, value_parser = kv_pair)]
    options: Vec<(String, String)>,
    /// Engine version (sets the `version` option).
    #[arg(long)]
    version: Option<i64>,
    #[command(flatten)]
    tunables: MountTunables,
    /// The PATH of the mount.
    args: Vec<String>,
}

/// Runs a `secrets` subcommand.
pub async fn secrets(ui: &mut Ui, cmd: SecretsCmd) -> i32 {
    match cmd {
        SecretsCmd::Enable(a) => enable(ui, a, false).await,
        SecretsCmd::Disable(a) => disable(ui, a, false).await,
        SecretsCmd::List(a) => mount_list(ui, a, false).await,
        SecretsCmd::Tune(a) => tune(ui, a).await,
    }
}

/// Runs an `auth` subcommand.
pub async fn auth(ui: &mut Ui, cmd: AuthCmd) -> i32 {
    match cmd {
        AuthCmd::Enable(a) => enable(ui, a, true).await,
        AuthCmd::Disable(a) => disable(ui, a, true).await,
        AuthCmd::List(a) => mount_list(ui, a, true).await,
    }
}

async fn enable(ui: &mut Ui, a: EnableArgs, auth: bool) -> i32 {
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let mut kind = a.args[0].trim().to_string();
    let plugin_name = a.plugin_name.clone().unwrap_or_default();
    if kind == "plugin" {
        kind = plugin_name.clone();
    }
    let mut path = a.path.clone().unwrap_or_default();
    if path.is_empty() {
        path = if kind == "plugin" {
            plugin_name.clone()
        } else {
            kind.clone()
        };
    }
    let path = ensure_trailing_slash(&path);
    let mut body = Map::new();
    body.insert("type".into(), json!(kind));
    body.insert(
        "description".into(),
        json!(a.description.clone().unwrap_or_default()),
    );
    body.insert("config".into(), Value::Object(a.config(auth)));
    body.insert("local".into(), json!(a.local.unwrap_or(false)));
    body.insert("seal_wrap".into(), json!(a.seal_wrap.unwrap_or(false)));
    body.insert(
        "external_entropy_access".into(),
        json!(a.external_entropy_access.unwrap_or(false)),
    );
    body.insert(
        "options".into(),
        a.options().map(Value::Object).unwrap_or(Value::Null),
    );
    let res = if auth {
        client.enable_auth(&path, Value::Object(body)).await
    } else {
        client.mount(&path, Value::Object(body)).await
    };
    if let Err(e) = res {
        if auth {
            ui.error(&format!("Error enabling {kind} auth: {e}"));
        } else {
            ui.error(&format!("Error enabling: {e}"));
        }
        return 2;
    }
    let mut thing = if auth {
        format!("{kind} auth method")
    } else {
        format!("{kind} secrets engine")
    };
    if kind == "plugin" {
        thing = format!("{plugin_name} plugin");
    }
    if let Some(v) = a
        .tunables
        .plugin_version
        .as_deref()
        .filter(|v| !v.is_empty())
    {
        thing.push_str(&format!(" version {v}"));
    }
    if auth {
        ui.output(&format!("Success! Enabled {thing} at: {path}"));
    } else {
        ui.output(&format!("Success! Enabled the {thing} at: {path}"));
    }
    0
}

async fn disable(ui: &mut Ui, a: DisableArgs, auth: bool) -> i32 {
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let path = ensure_trailing_slash(&sanitize_path(&a.args[0]));
    let res = if auth {
        client.disable_auth(&path).await
    } else {
        client.unmount(&path).await
    };
    match (res, auth) {
        (Ok(()), false) => {
            ui.output(&format!(
                "Success! Disabled the secrets engine (if it existed) at: {path}"
            ));
            0
        }
        (Ok(()), true) => {
            ui.output(&format!(
                "Success! Disabled the auth method (if it existed) at: {path}"
            ));
            0
        }
        (Err(e), false) => {
            ui.error(&format!("Error disabling secrets engine at {path}: {e}"));
            2
        }
        (Err(e), true) => {
            ui.error(&format!("Error disabling auth method at {path}: {e}"));
            2
        }
    }
}

/// The JSON `bao` prints for one mount (`api.MountOutput`): fixed field order, `omitempty`
/// config fields left out when empty.
fn mount_output(m: &Value) -> Value {
    let cfg = m.get("config").cloned().unwrap_or(Value::Null);
    let mut c = Map::new();
    c.insert(
        "default_lease_ttl".into(),
        json!(n(&cfg, "default_lease_ttl")),
    );
    c.insert("max_lease_ttl".into(), json!(n(&cfg, "max_lease_ttl")));
    c.insert("force_no_cache".into(), json!(b(&cfg, "force_no_cache")));
    for k in [
        "audit_non_hmac_request_keys",
        "audit_non_hmac_response_keys",
        "listing_visibility",
        "passthrough_request_headers",
        "allowed_response_headers",
        "token_type",
        "allowed_managed_keys",
        "user_lockout_config",
        "plugin_name",
    ] {
        let v = cfg.get(k).cloned().unwrap_or(Value::Null);
        let empty = match &v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if !empty {
            c.insert(k.into(), super::format::sort_keys(&v));
        }
    }
    let options = match m.get("options") {
        Some(Value::Object(o)) => super::format::sort_keys(&Value::Object(o.clone())),
        _ => Value::Null,
    };
    let mut out = Map::new();
    out.insert("uuid".into(), json!(s(m, "uuid")));
    out.insert("type".into(), json!(s(m, "type")));
    out.insert("description".into(), json!(s(m, "description")));
    out.insert("accessor".into(), json!(s(m, "accessor")));
    out.insert("config".into(), Value::Object(c));
    out.insert("options".into(), options);
    out.insert("local".into(), json!(b(m, "local")));
    out.insert("seal_wrap".into(), json!(b(m, "seal_wrap")));
    out.insert(
        "external_entropy_access".into(),
        json!(b(m, "external_entropy_access")),
    );
    out.insert("plugin_version".into(), json!(s(m, "plugin_version")));
    out.insert(
        "running_plugin_version".into(),
        json!(s(m, "running_plugin_version")),
    );
    out.insert("running_sha256".into(), json!(s(m, "running_sha256")));
    out.insert(
        "deprecation_status".into(),
        json!(s(m, "deprecation_status")),
    );
    Value::Object(out)
}

fn go_string_map(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(o)) => go_value(&Value::Object(o.clone())),
        _ => "map[]".to_string(),
    }
}

fn mount_table(mounts: &Map<String, Value>, auth: bool, detailed: bool) -> String {
    let mut paths: Vec<&String> = mounts.keys().collect();
    paths.sort();
    let mut rows = Vec::new();
    if !detailed {
        rows.push(if auth {
            "Path | Type | Accessor | Description | Version".to_string()
        } else {
            "Path | Type | Accessor | Description".to_string()
        });
        for p in paths {
            let m = &mounts[p.as_str()];
            if auth {
                rows.push(format!(
                    "{p} | {} | {} | {} | {}",
                    s(m, "type"),
                    s(m, "accessor"),
                    s(m, "description"),
                    s(m, "plugin_version")
                ));
            } else {
                rows.push(format!(
                    "{p} | {} | {} | {}",
                    s(m, "type"),
                    s(m, "accessor"),
                    s(m, "description")
                ));
            }
        }
        return table_output(&rows, "|");
    }
    let third = if auth { "Token Type" } else { "Force No Cache" };
    rows.push(format!(
        "Path | Plugin | Accessor | Default TTL | Max TTL | {third} | Replication | Seal Wrap | \
         External Entropy Access | Options | Description | UUID | Version | Running Version | \
         Running SHA256 | Deprecation Status"
    ));
    for p in paths {
        let m = &mounts[p.as_str()];
        let cfg = m.get("config").cloned().unwrap_or(Value::Null);
        let kind = s(m, "type");
        let ttl = |k: &str| -> String {
            if kind == "system" || kind == "cubbyhole" {
                String::new()
            } else if n(&cfg, k) != 0 {
                n(&cfg, k).to_string()
            } else {
                "system".to_string()
            }
        };
        let plugin = if kind == "plugin" {
            s(&cfg, "plugin_name")
        } else {
            kind.clone()
        };
        let third_val = if auth {
            s(&cfg, "token_type")
        } else {
            b(&cfg, "force_no_cache").to_string()
        };
        rows.push(format!(
            "{p} | {plugin} | {} | {} | {} | {third_val} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}",
            s(m, "accessor"),
            ttl("default_lease_ttl"),
            ttl("max_lease_ttl"),
            if b(m, "local") { "local" } else { "replicated" },
            b(m, "seal_wrap"),
            b(m, "external_entropy_access"),
            go_string_map(m.get("options")),
            s(m, "description"),
            s(m, "uuid"),
            s(m, "plugin_version"),
            s(m, "running_plugin_version"),
            s(m, "running_sha256"),
            s(m, "deprecation_status"),
        ));
    }
    table_output(&rows, "|")
}

async fn mount_list(ui: &mut Ui, a: MountListArgs, auth: bool) -> i32 {
    ui.format = a.fmt.resolve();
    if !a.args.is_empty() {
        ui.error(&format!(
            "Too many arguments (expected 0, got {})",
            a.args.len()
        ));
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let res = if auth {
        client.auth_methods().await
    } else {
        client.mounts().await
    };
    let mounts = match res {
        Ok(m) => m,
        Err(e) => {
            if auth {
                ui.error(&format!("Error listing enabled authentications: {e}"));
            } else {
                ui.error(&format!("Error listing secrets engines: {e}"));
            }
            return 2;
        }
    };
    match ui.format.as_str() {
        "table" => {
            let t = mount_table(&mounts, auth, a.detailed.unwrap_or(false));
            ui.output(&t);
            0
        }
        "json" => {
            let mut paths: Vec<&String> = mounts.keys().collect();
            paths.sort();
            let mut out = Map::new();
            for p in paths {
                out.insert(p.clone(), mount_output(&mounts[p.as_str()]));
            }
            output_json(ui, &Value::Object(out))
        }
        other => {
            ui.error(&format!("Invalid output format: {other}"));
            1
        }
    }
}

async fn tune(ui: &mut Ui, a: TuneArgs) -> i32 {
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let path = ensure_trailing_slash(&sanitize_path(&a.args[0]));
    let ttl = |d: Option<i128>| match d.unwrap_or(0) {
        0 => String::new(),
        x if x < 0 => "system".to_string(),
        x => go_duration(x),
    };
    let mut options: Map<String, Value> = a
        .options
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Some(v) = a.version.filter(|v| *v > 0) {
        options.insert("version".into(), Value::String(v.to_string()));
    }
    let mut c = Map::new();
    c.insert(
        "options".into(),
        if options.is_empty() {
            Value::Null
        } else {
            Value::Object(options)
        },
    );
    c.insert("default_lease_ttl".into(), json!(ttl(a.default_lease_ttl)));
    if let Some(d) = &a.description {
        c.insert("description".into(), json!(d));
    }
    c.insert("max_lease_ttl".into(), json!(ttl(a.max_lease_ttl)));
    a.tunables.insert_into(&mut c);
    match client.tune_mount(&path, Value::Object(c)).await {
        Ok(()) => {
            ui.output(&format!("Success! Tuned the secrets engine at: {path}"));
            0
        }
        Err(e) => {
            ui.error(&format!("Error tuning secrets engine {path}: {e}"));
            2
        }
    }
}

// ----- policy -----

/// `policy` subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Print the contents of a policy.
    Read(PolicyArgs),
    /// Upload a policy from a file or stdin.
    Write(PolicyPlainArgs),
    /// List the names of the installed policies.
    List(PolicyArgs),
    /// Delete a policy by name.
    Delete(PolicyPlainArgs),
}

/// Arguments of `policy read` and `policy list`.
#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Positional arguments (NAME for read).
    args: Vec<String>,
}

/// Arguments of `policy write` and `policy delete`.
#[derive(Args, Debug)]
pub struct PolicyPlainArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// NAME, and PATH (or `-`) for write.
    args: Vec<String>,
}

/// Runs a `policy` subcommand.
pub async fn policy(ui: &mut Ui, cmd: PolicyCmd) -> i32 {
    match cmd {
        PolicyCmd::Read(a) => policy_read(ui, a).await,
        PolicyCmd::Write(a) => policy_write(ui, a).await,
        PolicyCmd::List(a) => policy_list(ui, a).await,
        PolicyCmd::Delete(a) => policy_delete(ui, a).await,
    }
}

async fn policy_read(ui: &mut Ui, a: PolicyArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let name = a.args[0].trim().to_lowercase();
    let rules = match client.policy(&name).await {
        Ok(Some(r)) if !r.is_empty() => r,
        Ok(_) => {
            ui.error(&format!("No policy named: {name}"));
            return 2;
        }
        Err(e) => {
            ui.error(&format!("Error reading policy named {name}: {e}"));
            return 2;
        }
    };
    match ui.format.as_str() {
        "table" => {
            ui.output(rules.trim());
            0
        }
        _ => {
            let mut m = Map::new();
            m.insert("policy".into(), json!(rules));
            output_map(ui, &m)
        }
    }
}

async fn policy_write(ui: &mut Ui, a: PolicyPlainArgs) -> i32 {
    if !check_args(ui, &a.args, 2, 2) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let name = a.args[0].clone();
    let formatted = name.to_lowercase().trim().to_string();
    let path = a.args[1].trim();
    let mut rules = String::new();
    if path == "-" {
        if let Err(e) = std::io::stdin().read_to_string(&mut rules) {
            ui.error(&format!("Error reading policy: {e}"));
            return 2;
        }
    } else {
        match std::fs::read(path) {
            Ok(b) => rules = String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                let reason = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                    _ => e.to_string(),
                };
                ui.error(&format!("Error opening policy file: open {path}: {reason}"));
                return 2;
            }
        }
    }
    if let Err(e) = client.put_policy(&formatted, &rules).await {
        ui.error(&format!("Error uploading policy: {e}"));
        return 2;
    }
    if name != formatted {
        ui.warn(&format!(
            "Policy name was converted from \"{name}\" to \"{formatted}\""
        ));
    }
    ui.output(&format!("Success! Uploaded policy: {formatted}"));
    0
}

async fn policy_list(ui: &mut Ui, a: PolicyArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !a.args.is_empty() {
        ui.error(&format!(
            "Too many arguments (expected 0, got {})",
            a.args.len()
        ));
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let policies = match client.policies().await {
        Ok(p) => p,
        Err(e) => {
            ui.error(&format!("Error listing policies: {e}"));
            return 2;
        }
    };
    match ui.format.as_str() {
        "table" => {
            for p in &policies {
                ui.output(p);
            }
            0
        }
        "json" => output_json(ui, &json!(policies)),
        other => {
            ui.error(&format!("Invalid output format: {other}"));
            1
        }
    }
}

async fn policy_delete(ui: &mut Ui, a: PolicyPlainArgs) -> i32 {
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let name = a.args[0].trim().to_lowercase();
    match client.delete_policy(&name).await {
        Ok(()) => {
            ui.output(&format!("Success! Deleted policy: {name}"));
            0
        }
        Err(e) => {
            ui.error(&format!("Error deleting {name}: {e}"));
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc822_like_go() {
        assert_eq!(
            rfc822("2026-11-21T23:19:44.890401567Z"),
            "21 Nov 26 23:19 UTC"
        );
        assert_eq!(rfc822("garbage"), "garbage");
    }

    #[test]
    fn key_status_table() {
        let d: Map<String, Value> = serde_json::from_value(json!({
            "term": 1, "install_time": "2026-11-21T23:19:44.890401567Z", "encryptions": 44
        }))
        .unwrap();
        assert_eq!(
            key_status_text(&d),
            "Key Term            1\nInstall Time        21 Nov 26 23:19 UTC\nEncryption Count    44"
        );
    }

    #[test]
    fn mount_json_shape() {
        let m = json!({"type": "kv", "accessor": "kv_1", "uuid": "u", "description": "d",
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false,
                       "passthrough_request_headers": [], "token_type": "default-service"},
            "options": {"version": "2"}, "local": false, "seal_wrap": false,
            "external_entropy_access": false, "extra": 1});
        let out = mount_output(&m);
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(
            keys[..5],
            ["uuid", "type", "description", "accessor", "config"]
        );
        let cfg = out["config"].as_object().unwrap();
        assert!(!cfg.contains_key("passthrough_request_headers"));
        assert_eq!(cfg["token_type"], json!("default-service"));
        assert!(out.get("extra").is_none());
    }

    #[test]
    fn mount_tables() {
        let mounts: Map<String, Value> = serde_json::from_value(json!({
            "sys/": {"type": "system", "accessor": "system_1", "description": "sys", "config": {}},
            "secret/": {"type": "kv", "accessor": "kv_1", "description": "", "options": {"version": "2"},
                         "config": {"default_lease_ttl": 0}}
        }))
        .unwrap();
        assert_eq!(
            mount_table(&mounts, false, false),
            "Path       Type      Accessor    Description\n----       ----      --------    -----------\nsecret/    kv        kv_1        n/a\nsys/       system    system_1    sys"
        );
        let detailed = mount_table(&mounts, false, true);
        assert!(detailed.contains("map[version:2]"));
        assert!(detailed.lines().nth(2).unwrap().contains("system"));
    }
}
