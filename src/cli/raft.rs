//! `operator raft`: join a raft cluster, list and remove its peers, save and restore
//! snapshots.

use clap::{Args, Subcommand};
use kura_client::Method;
use serde_json::{json, Map, Value};

use super::format::table_output;
use super::output::{output_json, output_map, Ui};
use super::sys::client_or_report;
use super::{check_args, FormatOpts, HttpOpts};

/// `operator raft` subcommands.
#[derive(Subcommand, Debug)]
pub enum RaftCmd {
    /// Join this node to the raft cluster whose leader serves the given API address.
    Join(JoinArgs),
    /// List the raft peers.
    ListPeers(ListPeersArgs),
    /// Remove a raft peer.
    RemovePeer(RemovePeerArgs),
    /// Save or restore a snapshot of the cluster's data.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Inspect and configure autopilot.
    #[command(subcommand)]
    Autopilot(AutopilotCmd),
}

/// `operator raft autopilot` subcommands.
#[derive(Subcommand, Debug)]
pub enum AutopilotCmd {
    /// Show the health of the raft servers as autopilot sees it.
    State(AutopilotReadArgs),
    /// Show the autopilot configuration.
    GetConfig(AutopilotReadArgs),
    /// Change the autopilot configuration.
    SetConfig(AutopilotSetArgs),
}

/// Arguments of `operator raft autopilot state|get-config`.
#[derive(Args, Debug)]
pub struct AutopilotReadArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Arguments of `operator raft autopilot set-config`.
#[derive(Args, Debug)]
pub struct AutopilotSetArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// Remove dead servers automatically.
    #[arg(long = "cleanup-dead-servers", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::go_bool)]
    cleanup_dead_servers: Option<bool>,
    /// Time without leader contact after which a server is unhealthy.
    #[arg(long = "last-contact-threshold")]
    last_contact_threshold: Option<String>,
    /// Time without leader contact after which a server is dead.
    #[arg(long = "dead-server-last-contact-threshold")]
    dead_server_last_contact_threshold: Option<String>,
    /// Log entries a server may trail the leader by and still be healthy.
    #[arg(long = "max-trailing-logs")]
    max_trailing_logs: Option<u64>,
    /// Fewest voters autopilot keeps when it removes dead servers.
    #[arg(long = "min-quorum")]
    min_quorum: Option<u64>,
    /// Time a new server must stay healthy before it may vote.
    #[arg(long = "server-stabilization-time")]
    server_stabilization_time: Option<String>,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// `operator raft snapshot` subcommands.
#[derive(Subcommand, Debug)]
pub enum SnapshotCmd {
    /// Save a snapshot of the cluster's data to a file.
    Save(SnapshotArgs),
    /// Restore the cluster's data from a snapshot file.
    Restore(SnapshotArgs),
}

/// Arguments of `operator raft snapshot save|restore`.
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// Restore a snapshot taken on another cluster (restore only).
    #[arg(long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::go_bool)]
    force: Option<bool>,
    /// The snapshot file.
    args: Vec<String>,
}

/// Arguments of `operator raft join`.
#[derive(Args, Debug)]
pub struct JoinArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Join as a non-voter.
    #[arg(long = "non-voter", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::go_bool)]
    non_voter: Option<bool>,
    /// Keep retrying the join.
    #[arg(long = "retry", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::go_bool)]
    retry: Option<bool>,
    /// The leader's API address.
    args: Vec<String>,
}

/// Arguments of `operator raft list-peers`.
#[derive(Args, Debug)]
pub struct ListPeersArgs {
    #[command(flatten)]
    http: HttpOpts,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Unexpected positional arguments (refused).
    args: Vec<String>,
}

/// Arguments of `operator raft remove-peer`.
#[derive(Args, Debug)]
pub struct RemovePeerArgs {
    #[command(flatten)]
    http: HttpOpts,
    /// The peer's node ID.
    args: Vec<String>,
}

/// Runs an `operator raft` subcommand.
pub async fn raft(ui: &mut Ui, cmd: RaftCmd) -> i32 {
    match cmd {
        RaftCmd::Join(a) => join(ui, a).await,
        RaftCmd::ListPeers(a) => list_peers(ui, a).await,
        RaftCmd::RemovePeer(a) => remove_peer(ui, a).await,
        RaftCmd::Snapshot(SnapshotCmd::Save(a)) => snapshot_save(ui, a).await,
        RaftCmd::Snapshot(SnapshotCmd::Restore(a)) => snapshot_restore(ui, a).await,
        RaftCmd::Autopilot(AutopilotCmd::State(a)) => autopilot_state(ui, a).await,
        RaftCmd::Autopilot(AutopilotCmd::GetConfig(a)) => autopilot_get_config(ui, a).await,
        RaftCmd::Autopilot(AutopilotCmd::SetConfig(a)) => autopilot_set_config(ui, a).await,
    }
}

/// Reads `path` and returns its `data`, reporting errors as `what`.
async fn read_data(ui: &mut Ui, http: &HttpOpts, path: &str, what: &str) -> Option<Value> {
    let client = client_or_report(ui, http)?;
    match client.request(Method::GET, path, &[], None).await {
        Ok(r) if r.is_success() => Some(r.json().map(|b| b["data"].clone()).unwrap_or(Value::Null)),
        Ok(r) => {
            ui.error(&format!("{what}: {}", r.api_error()));
            None
        }
        Err(e) => {
            ui.error(&format!("{what}: {e}"));
            None
        }
    }
}

/// A JSON value as a table cell: strings bare, the rest as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn autopilot_state(ui: &mut Ui, a: AutopilotReadArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !check_args(ui, &a.args, 0, 0) {
        return 1;
    }
    let Some(d) = read_data(
        ui,
        &a.http,
        "sys/storage/raft/autopilot/state",
        "Error checking autopilot state",
    )
    .await
    else {
        return 2;
    };
    if ui.format == "json" {
        // The CLI prints the state with Go's field names, as `bao` does.
        let mut servers = Map::new();
        if let Some(m) = d["servers"].as_object() {
            for (name, s) in m {
                servers.insert(
                    name.clone(),
                    json!({
                        "ID": s["id"], "Name": s["name"], "Address": s["address"],
                        "NodeStatus": s["node_status"], "LastContact": s["last_contact"],
                        "LastTerm": s["last_term"], "LastIndex": s["last_index"],
                        "Healthy": s["healthy"], "StableSince": s["stable_since"],
                        "Status": s["status"], "Version": s["version"],
                        "UpgradeVersion": "", "NodeType": s["node_type"],
                    }),
                );
            }
        }
        let out = json!({
            "Healthy": d["healthy"],
            "FailureTolerance": d["failure_tolerance"],
            "Servers": servers,
            "Leader": d["leader"],
            "Voters": d["voters"],
            "NonVoters": d.get("non_voters").cloned().unwrap_or(Value::Null),
            "Upgrade": Value::Null,
            "OptimisticFailureTolerance": 0,
        });
        return output_json(ui, &out);
    }
    let mut lines = vec![
        format!("Healthy:|{}", cell(&d["healthy"])),
        format!("Failure Tolerance:|{}", cell(&d["failure_tolerance"])),
        format!("Leader:|{}", cell(&d["leader"])),
        "Voters:".to_string(),
    ];
    for v in d["voters"].as_array().into_iter().flatten() {
        lines.push(format!("   {}", cell(v)));
    }
    if let Some(nv) = d["non_voters"].as_array() {
        lines.push("Non Voters:".to_string());
        for v in nv {
            lines.push(format!("   {}", cell(v)));
        }
    }
    lines.push("Servers:".to_string());
    let mut out = super::format::columnize(&lines[..3], "|");
    out.push('\n');
    out.push_str(&lines[3..].join("\n"));
    for (name, s) in d["servers"].as_object().into_iter().flatten() {
        out.push_str(&format!("\n   {name}"));
        let rows = [
            ("Name:", &s["name"]),
            ("Address:", &s["address"]),
            ("Status:", &s["status"]),
            ("Node Status:", &s["node_status"]),
            ("Healthy:", &s["healthy"]),
            ("Last Contact:", &s["last_contact"]),
            ("Last Term:", &s["last_term"]),
            ("Last Index:", &s["last_index"]),
            ("Version:", &s["version"]),
            ("Node Type:", &s["node_type"]),
        ];
        for (k, v) in rows {
            out.push_str(&format!("\n      {k:<19}{}", cell(v)));
        }
    }
    ui.output(&out);
    0
}

async fn autopilot_get_config(ui: &mut Ui, a: AutopilotReadArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !check_args(ui, &a.args, 0, 0) {
        return 1;
    }
    let Some(d) = read_data(
        ui,
        &a.http,
        "sys/storage/raft/autopilot/configuration",
        "Error querying autopilot configuration",
    )
    .await
    else {
        return 2;
    };
    if ui.format == "json" {
        return output_json(ui, &d);
    }
    let rows = [
        ("Cleanup Dead Servers", "cleanup_dead_servers"),
        ("Last Contact Threshold", "last_contact_threshold"),
        (
            "Dead Server Last Contact Threshold",
            "dead_server_last_contact_threshold",
        ),
        ("Server Stabilization Time", "server_stabilization_time"),
        ("Min Quorum", "min_quorum"),
        ("Max Trailing Logs", "max_trailing_logs"),
    ];
    let mut lines = vec!["Key|Value".to_string()];
    for (label, key) in rows {
        lines.push(format!("{label}|{}", cell(&d[key])));
    }
    ui.output(&table_output(&lines, "|"));
    0
}

async fn autopilot_set_config(ui: &mut Ui, a: AutopilotSetArgs) -> i32 {
    if !check_args(ui, &a.args, 0, 0) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let mut body = Map::new();
    if let Some(b) = a.cleanup_dead_servers {
        body.insert("cleanup_dead_servers".into(), json!(b));
    }
    for (k, v) in [
        ("last_contact_threshold", &a.last_contact_threshold),
        (
            "dead_server_last_contact_threshold",
            &a.dead_server_last_contact_threshold,
        ),
        ("server_stabilization_time", &a.server_stabilization_time),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [
        ("max_trailing_logs", a.max_trailing_logs),
        ("min_quorum", a.min_quorum),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    match client
        .request(
            Method::PUT,
            "sys/storage/raft/autopilot/configuration",
            &[],
            Some(Value::Object(body)),
        )
        .await
    {
        Ok(r) if r.is_success() => 0,
        Ok(r) => {
            ui.error(&r.api_error().to_string());
            2
        }
        Err(e) => {
            ui.error(&e.to_string());
            2
        }
    }
}

async fn snapshot_save(ui: &mut Ui, a: SnapshotArgs) -> i32 {
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let resp = match client
        .request(Method::GET, "sys/storage/raft/snapshot", &[], None)
        .await
    {
        Ok(r) if r.is_success() => r,
        Ok(r) => {
            ui.error(&format!("Error taking the snapshot: {}", r.api_error()));
            return 2;
        }
        Err(e) => {
            ui.error(&format!("Error taking the snapshot: {e}"));
            return 2;
        }
    };
    if let Err(e) = write_private(&a.args[0], &resp.bytes()) {
        ui.error(&format!("Error writing the snapshot file: {e}"));
        return 1;
    }
    0
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

async fn snapshot_restore(ui: &mut Ui, a: SnapshotArgs) -> i32 {
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let data = match std::fs::read(&a.args[0]) {
        Ok(d) => d,
        Err(e) => {
            ui.error(&format!("Error opening the snapshot file: {e}"));
            return 1;
        }
    };
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let path = if a.force.unwrap_or(false) {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    match client
        .request_bytes(
            Method::POST,
            path,
            &[],
            Some(data.into()),
            "application/octet-stream",
            &[],
        )
        .await
    {
        Ok(r) if r.is_success() => 0,
        Ok(r) => {
            ui.error(&format!("Error installing the snapshot: {}", r.api_error()));
            2
        }
        Err(e) => {
            ui.error(&format!("Error installing the snapshot: {e}"));
            2
        }
    }
}

async fn join(ui: &mut Ui, a: JoinArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let body = json!({
        "leader_api_addr": a.args[0],
        "non_voter": a.non_voter.unwrap_or(false),
        "retry": a.retry.unwrap_or(false),
    });
    match client
        .request(Method::PUT, "sys/storage/raft/join", &[], Some(body))
        .await
    {
        Ok(r) if r.is_success() => {
            let joined = r.json().and_then(|v| v.get("joined")).cloned();
            let mut m = Map::new();
            m.insert("Joined".into(), joined.unwrap_or(Value::Bool(true)));
            output_map(ui, &m)
        }
        Ok(r) => {
            ui.error(&format!(
                "Error joining the node to the Raft cluster: {}",
                r.api_error()
            ));
            2
        }
        Err(e) => {
            ui.error(&format!("Error joining the node to the Raft cluster: {e}"));
            2
        }
    }
}

async fn list_peers(ui: &mut Ui, a: ListPeersArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !check_args(ui, &a.args, 0, 0) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    let resp = match client
        .request(Method::GET, "sys/storage/raft/configuration", &[], None)
        .await
    {
        Ok(r) if r.is_success() => r,
        Ok(r) => {
            ui.error(&format!(
                "Error reading the raft cluster configuration: {}",
                r.api_error()
            ));
            return 2;
        }
        Err(e) => {
            ui.error(&format!(
                "Error reading the raft cluster configuration: {e}"
            ));
            return 2;
        }
    };
    let body = resp.json().cloned().unwrap_or(Value::Null);
    if ui.format == "json" {
        return output_json(ui, &body);
    }
    let servers = body["data"]["config"]["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut lines = vec!["Node|Address|State|Voter".to_string()];
    for s in servers {
        lines.push(format!(
            "{}|{}|{}|{}",
            s["node_id"].as_str().unwrap_or(""),
            s["address"].as_str().unwrap_or(""),
            if s["leader"] == true {
                "leader"
            } else {
                "follower"
            },
            s["voter"].as_bool().unwrap_or(false),
        ));
    }
    ui.output(&table_output(&lines, "|"));
    0
}

async fn remove_peer(ui: &mut Ui, a: RemovePeerArgs) -> i32 {
    if !check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(client) = client_or_report(ui, &a.http) else {
        return 2;
    };
    match client
        .request(
            Method::PUT,
            "sys/storage/raft/remove-peer",
            &[],
            Some(json!({ "server_id": a.args[0] })),
        )
        .await
    {
        Ok(r) if r.is_success() => {
            ui.output("Peer removed successfully!");
            0
        }
        Ok(r) => {
            ui.error(&format!(
                "Error removing the peer from raft cluster: {}",
                r.api_error()
            ));
            2
        }
        Err(e) => {
            ui.error(&format!("Error removing the peer from raft cluster: {e}"));
            2
        }
    }
}
