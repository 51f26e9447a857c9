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
