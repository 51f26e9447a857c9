//! `kv` commands. Like `bao`, each first asks `sys/internal/ui/mounts/<path>` which mount
//! holds the path and which KV version it runs, then builds the v1 or v2 API path.

use clap::{Args, Subcommand};
use kura_client::{Client, ClientError, Method, Secret, StatusCode};
use serde_json::{json, Map, Value};

use super::format::go_duration;
use super::kvargs::parse_kv_args;
use super::logical::write_output;
use super::output::{
    map_header, output_list, output_map, output_path, output_secret, print_map_field,
    print_secret_field, warnings_if_any, Ui,
};
use super::sys::client_or_report;
use super::{duration_arg, go_bool, kv_pair, sanitize_path, FormatOpts, HttpOpts, OutputOpts};

/// `kv` subcommands.
#[derive(Subcommand, Debug)]
pub enum KvCmd {
    /// Retrieve data.
    Get(KvGetArgs),
    /// Set or update data.
    Put(KvPutArgs),
    /// Set or update data without overwriting.
    Patch(KvPatchArgs),
    /// List data or secrets.
    List(KvListArgs),
    /// Delete versions.
    Delete(KvVersionsArgs),
    /// Undelete versions.
    Undelete(KvVersionsArgs),
    /// Permanently remove versions.
    Destroy(KvVersionsArgs),
    /// Roll back to a previous version.
    Rollback(KvRollbackArgs),
    /// Interact with key metadata.
    #[command(subcommand)]
    Metadata(KvMetadataCmd),
}

/// `kv metadata` subcommands.
#[derive(Subcommand, Debug)]
pub enum KvMetadataCmd {
    /// Retrieve key metadata.
    Get(KvMetaGetArgs),
    /// Set or update key settings.
    Put(KvMetaPutArgs),
    /// Delete all versions and metadata of a key.
    Delete(KvMetaDeleteArgs),
}

/// Options every `kv` command has: HTTP options and `-mount`.
#[derive(Args, Debug)]
pub struct KvCommon {
    #[command(flatten)]
    pub http: HttpOpts,
    /// Path where the KV engine is mounted; the argument is then the secret path.
    #[arg(long)]
    pub mount: Option<String>,
}

/// Arguments of `kv get`.
#[derive(Args, Debug)]
pub struct KvGetArgs {
    #[command(flatten)]
    pub common: KvCommon,
    #[command(flatten)]
    pub out: OutputOpts,
    /// Version to read.
    #[arg(long)]
    pub version: Option<i64>,
    /// KEY.
    pub path: Vec<String>,
}

/// Arguments of `kv put`.
#[derive(Args, Debug)]
pub struct KvPutArgs {
    #[command(flatten)]
    common: KvCommon,
    #[command(flatten)]
    out: OutputOpts,
    /// Check-and-set version.
    #[arg(long, allow_negative_numbers = true)]
    cas: Option<i64>,
    /// KEY, then K=V data.
    args: Vec<String>,
}

/// Arguments of `kv patch`.
#[derive(Args, Debug)]
pub struct KvPatchArgs {
    #[command(flatten)]
    common: KvCommon,
    #[command(flatten)]
    out: OutputOpts,
    /// Check-and-set version.
    #[arg(long, allow_negative_numbers = true)]
    cas: Option<i64>,
    /// "patch" (HTTP PATCH) or "rw" (read, then write).
    #[arg(long)]
    method: Option<String>,
    /// Key to remove from the data (repeatable).
    #[arg(long = "remove-data")]
    remove_data: Vec<String>,
    /// KEY, then K=V data.
    args: Vec<String>,
}

/// Arguments of `kv list`.
#[derive(Args, Debug)]
pub struct KvListArgs {
    #[command(flatten)]
    common: KvCommon,
    #[command(flatten)]
    fmt: FormatOpts,
    /// PATH.
    args: Vec<String>,
}

/// Arguments of `kv delete`, `kv undelete` and `kv destroy`.
#[derive(Args, Debug)]
pub struct KvVersionsArgs {
    #[command(flatten)]
    common: KvCommon,
    #[command(flatten)]
    out: OutputOpts,
    /// Version numbers (repeatable or comma-separated).
    #[arg(long)]
    versions: Vec<String>,
    /// KEY.
    args: Vec<String>,
}

/// Arguments of `kv rollback`.
#[derive(Args, Debug)]
pub struct KvRollbackArgs {
    #[command(flatten)]
    common: KvCommon,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Version to make current again.
    #[arg(long, allow_negative_numbers = true)]
    version: Option<i64>,
    /// KEY.
    args: Vec<String>,
}

/// Arguments of `kv metadata get`.
#[derive(Args, Debug)]
pub struct KvMetaGetArgs {
    #[command(flatten)]
    common: KvCommon,
    #[command(flatten)]
    fmt: FormatOpts,
    /// KEY.
    args: Vec<String>,
}

/// Arguments of `kv metadata put`.
#[derive(Args, Debug)]
pub struct KvMetaPutArgs {
    #[command(flatten)]
    common: KvCommon,
    #[command(flatten)]
    fmt: FormatOpts,
    /// Number of versions to keep.
    #[arg(long = "max-versions", allow_negative_numbers = true)]
    max_versions: Option<i64>,
    /// Require check-and-set on writes.
    #[arg(long = "cas-required", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    cas_required: Option<bool>,
    /// Time after which a version is deleted.
    #[arg(long = "delete-version-after", value_parser = duration_arg, allow_negative_numbers = true)]
    delete_version_after: Option<i128>,
    /// Custom metadata `key=value` (repeatable).
    #[arg(long = "custom-metadata", value_parser = kv_pair)]
    custom_metadata: Vec<(String, String)>,
    /// KEY.
    args: Vec<String>,
}

/// Arguments of `kv metadata delete`.
#[derive(Args, Debug)]
pub struct KvMetaDeleteArgs {
    #[command(flatten)]
    common: KvCommon,
    /// KEY.
    args: Vec<String>,
}

/// Runs a `kv` subcommand.
pub async fn run(ui: &mut Ui, cmd: KvCmd) -> i32 {
    match cmd {
        KvCmd::Get(a) => get(ui, a).await,
        KvCmd::Put(a) => put(ui, a).await,
        KvCmd::Patch(a) => patch(ui, a).await,
        KvCmd::List(a) => list(ui, a).await,
        KvCmd::Delete(a) => versions(ui, a, VersionsOp::Delete).await,
        KvCmd::Undelete(a) => versions(ui, a, VersionsOp::Undelete).await,
        KvCmd::Destroy(a) => versions(ui, a, VersionsOp::Destroy).await,
        KvCmd::Rollback(a) => rollback(ui, a).await,
        KvCmd::Metadata(KvMetadataCmd::Get(a)) => meta_get(ui, a).await,
        KvCmd::Metadata(KvMetadataCmd::Put(a)) => meta_put(ui, a).await,
        KvCmd::Metadata(KvMetadataCmd::Delete(a)) => meta_delete(ui, a).await,
    }
}

/// Go's `path.Clean` (lexical).
fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Join`: joins the non-empty elements and cleans the result.
fn path_join(parts: &[&str]) -> String {
    let nonempty: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if nonempty.is_empty() {
        return String::new();
    }
    path_clean(&nonempty.join("/"))
}

/// `addPrefixToKVPath`: inserts `data/`, `metadata/`, ... after the mount path.
fn add_prefix_to_kv_path(path: &str, mount_path: &str, api_prefix: &str) -> String {
    if path == mount_path || path == mount_path.trim_end_matches('/') {
        return path_join(&[mount_path, api_prefix]);
    }
    let mut mount = mount_path.to_string();
    let mut suffix = path
        .strip_prefix(mount.as_str())
        .unwrap_or(path)
        .to_string();
    loop {
        if suffix != path {
            break;
        }
        // The mount path may carry namespace segments the given path lacks.
        let mut split = mount.splitn(2, '/');
        let _ = split.next();
        let Some(rest) = split.next().filter(|r| !r.is_empty()) else {
            break;
        };
        mount = rest.trim_end_matches('/').to_string();
        suffix = suffix
            .strip_prefix(mount.as_str())
            .unwrap_or(&suffix)
            .to_string();
    }
    path_join(&[&mount, api_prefix, &suffix])
}

/// The mount path and KV version of a path, from `sys/internal/ui/mounts/<path>`.
async fn kv_preflight(client: &Client, path: &str) -> Result<(String, u8), ClientError> {
    let resp = client
        .request(
            Method::GET,
            &format!("sys/internal/ui/mounts/{path}"),
            &[],
            None,
        )
        .await?;
    if resp.status == StatusCode::NOT_FOUND {
        return Ok((String::new(), 1));
    }
    let secret = resp.error_for_status()?.secret()?.unwrap_or_default();
    let mount = secret
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = secret
        .get("options")
        .and_then(|o| o.get("version"))
        .and_then(Value::as_str)
        .map_or(1, |v| if v == "2" { 2 } else { 1 });
    Ok((mount, version))
}

/// What the preflight tells a command.
struct KvTarget {
    client: Client,
    mount_path: String,
    /// The argument path, joined with the mount for `-mount` syntax on v2.
    partial: String,
    v2: bool,
    mount_flag: bool,
}

impl KvTarget {
    /// The API path of a v1 secret, or of a v2 secret under `prefix`.
    fn full_path(&self, prefix: &str) -> String {
        if self.v2 {
            add_prefix_to_kv_path(&self.partial, &self.mount_path, prefix)
        } else if self.mount_flag {
            path_join(&[&self.mount_path, &self.partial])
        } else {
            self.partial.clone()
        }
    }
}

/// Runs the preflight; prints the error and returns `None` when it fails.
async fn resolve(ui: &mut Ui, common: &KvCommon, arg: &str, sanitize: bool) -> Option<KvTarget> {
    let client = client_or_report(ui, &common.http)?;
    let plain = match common.http.plain_client() {
        Ok(c) => c,
        Err(e) => {
            ui.error(&e);
            return None;
        }
    };
    let mut partial = if sanitize {
        sanitize_path(arg)
    } else {
        arg.strip_prefix('/').unwrap_or(arg).to_string()
    };
    let mount_flag = common.mount.as_deref().is_some_and(|m| !m.is_empty());
    let probe = if mount_flag {
        sanitize_path(common.mount.as_deref().unwrap_or_default())
    } else {
        partial.clone()
    };
    let (mount_path, version) = match kv_preflight(&plain, &probe).await {
        Ok(r) => r,
        Err(e) => {
            ui.error(&e.to_string());
            return None;
        }
    };
    let v2 = version == 2;
    if mount_flag && v2 {
        partial = path_join(&[&mount_path, &partial]);
    }
    Some(KvTarget {
        client,
        mount_path,
        partial,
        v2,
        mount_flag,
    })
}

/// Reads a version for `kv rollback` and its metadata, reporting what is missing as bao does.
async fn rollback_pre_read(
    ui: &mut Ui,
    client: &Client,
    full: &str,
    version: Option<i64>,
) -> Option<(Secret, Map<String, Value>)> {
    let secret = match kv_read(client, full, version).await {
        Ok(Some(s)) if s.data.is_some() => s,
        Ok(_) => {
            ui.error(&format!("No value found at {full}"));
            return None;
        }
        Err(e) => {
            ui.error(&format!("Error doing pre-read at {full}: {e}"));
            return None;
        }
    };
    let Some(Value::Object(meta)) = secret.get("metadata").cloned() else {
        ui.error(&format!(
            "No metadata found at {full}; rollback only works on existing data"
        ));
        return None;
    };
    Some((secret, meta))
}

/// `kvReadRequest`: a GET with the logical 404 semantics.
async fn kv_read(
    client: &Client,
    path: &str,
    version: Option<i64>,
) -> Result<Option<Secret>, ClientError> {
    let v = version.map(|v| v.to_string());
    let query: Vec<(&str, &str)> = v.iter().map(|v| ("version", v.as_str())).collect();
    client.read_with_query(path, &query).await
}

async fn get(ui: &mut Ui, a: KvGetArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    if !super::check_args(ui, &a.path, 1, 1) {
        return 1;
    }
    let Some(t) = resolve(ui, &a.common, &a.path[0], false).await else {
        return 2;
    };
    let full = t.full_path("data");
    let version = if t.v2 {
        a.version.filter(|v| *v > 0)
    } else {
        None
    };
    let secret = match kv_read(&t.client, &full, version).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ui.error(&format!("No value found at {full}"));
            return 2;
        }
        Err(e) => {
            ui.error(&format!("Error reading {full}: {e}"));
            return 2;
        }
    };
    if let Some(field) = a.out.field() {
        if !t.v2 {
            return print_secret_field(ui, &secret, field);
        }
        return match secret.get("data").filter(|d| !d.is_null()) {
            Some(data) => {
                let map = data.as_object().cloned().unwrap_or_default();
                if field == "data" && !map.contains_key("data") {
                    print_secret_field(ui, &secret, field)
                } else {
                    print_map_field(ui, &map, field)
                }
            }
            None => {
                ui.error(&format!("No data found at {full}"));
                2
            }
        };
    }
    if secret.wrap_info.is_some() || !ui.is_table() {
        return output_secret(ui, &secret);
    }
    warnings_if_any(ui, &secret);
    if t.v2 {
        output_path(ui, &full, "Secret Path");
    }
    if let Some(Value::Object(meta)) = secret.get("metadata") {
        let meta = meta.clone();
        ui.info(&map_header("Metadata", &meta));
        output_map(ui, &meta);
        ui.info("");
    }
    let data = if t.v2 {
        match secret.get("data") {
            Some(Value::Object(d)) => Some(d.clone()),
            _ => None,
        }
    } else {
        secret.data.clone()
    };
    if let Some(d) = data {
        ui.info(&map_header("Data", &d));
        output_map(ui, &d);
    }
    0
}

/// What `kv put`, `kv patch` and `kv rollback` print after a v2 write.
fn kv_write_output(ui: &mut Ui, full: &str, secret: Secret, field: Option<&str>) -> i32 {
    if let Some(f) = field {
        return print_secret_field(ui, &secret, f);
    }
    if secret.wrap_info.as_ref().is_some_and(|w| w.ttl != 0) {
        return output_secret(ui, &secret);
    }
    if ui.is_table() {
        output_path(ui, full, "Secret Path");
        let meta = secret.data.clone().unwrap_or_default();
        ui.info(&map_header("Metadata", &meta));
        return output_map(ui, &meta);
    }
    output_secret(ui, &secret)
}

async fn put(ui: &mut Ui, a: KvPutArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    match a.args.len() {
        0 => {
            ui.error("Not enough arguments (expected >1, got 0)");
            return 1;
        }
        1 => {
            ui.error("Must supply data");
            return 1;
        }
        _ => {}
    }
    if client_or_report(ui, &a.common.http).is_none() {
        return 2;
    }
    let data = match parse_kv_args(&a.args[1..], &mut std::io::stdin()) {
        Ok(d) => d,
        Err(e) => {
            ui.error(&format!("Failed to parse K=V data: {e}"));
            return 1;
        }
    };
    let Some(t) = resolve(ui, &a.common, &a.args[0], true).await else {
        return 2;
    };
    let full = t.full_path("data");
    let body = if t.v2 {
        let mut options = Map::new();
        if let Some(cas) = a.cas.filter(|c| *c > -1) {
            options.insert("cas".into(), json!(cas));
        }
        json!({"data": data, "options": options})
    } else {
        Value::Object(data)
    };
    let secret = match t.client.write(&full, Some(body)).await {
        Ok(Some(s)) => s,
        other => return write_output(ui, &full, other, None),
    };
    kv_write_output(ui, &full, secret, a.out.field())
}

async fn patch(ui: &mut Ui, a: KvPatchArgs) -> i32 {
    ui.format = a.out.fmt.resolve();
    if a.args.is_empty() {
        ui.error("Not enough arguments (expected >1, got 0)");
        return 1;
    }
    if a.remove_data.is_empty() && a.args.len() == 1 {
        ui.error("Must supply data");
        return 1;
    }
    if client_or_report(ui, &a.common.http).is_none() {
        return 2;
    }
    let mut data = match parse_kv_args(&a.args[1..], &mut std::io::stdin()) {
        Ok(d) => d,
        Err(e) => {
            ui.error(&format!("Failed to parse K=V data: {e}"));
            return 1;
        }
    };
    let Some(t) = resolve(ui, &a.common, &a.args[0], true).await else {
        return 2;
    };
    if !t.v2 {
        ui.error("K/V engine mount must be version 2 for patch support");
        return 2;
    }
    let full = t.full_path("data");
    for k in super::split_list(&a.remove_data) {
        data.insert(k, Value::Null);
    }
    let method = a.method.as_deref().unwrap_or("");
    let res = match method {
        "rw" => read_then_write(ui, &t.client, &full, data).await,
        "patch" | "" => {
            let mut options = Map::new();
            if let Some(cas) = a.cas.filter(|c| *c > 0) {
                options.insert("cas".into(), json!(cas));
            }
            let body = json!({"data": data.clone(), "options": options});
            match t.client.patch(&full, body).await {
                Ok(s) => Ok(s),
                Err(ClientError::Api(e)) if method.is_empty() && e.status == 405 => {
                    read_then_write(ui, &t.client, &full, data).await
                }
                Err(ClientError::Api(e)) if method.is_empty() && e.status == 403 => {
                    ui.warn(&format!(
                        "Data was written to {full} but we recommend that you add the \"patch\" capability to your ACL policy in order to use HTTP PATCH in the future."
                    ));
                    read_then_write(ui, &t.client, &full, data).await
                }
                Err(e) => {
                    ui.error(&format!("Error writing data to {full}: {e}"));
                    Err(2)
                }
            }
        }
        other => {
            ui.error(&format!(
                "Unsupported method provided to -method flag: {other}"
            ));
            return 2;
        }
    };
    match res {
        Err(code) => code,
        Ok(None) => {
            if ui.is_table() {
                ui.info(&format!("Success! Data written to: {full}"));
            }
            0
        }
        Ok(Some(secret)) => kv_write_output(ui, &full, secret, a.out.field()),
    }
}

/// The `-method=rw` patch: read the current version, merge, write with check-and-set.
async fn read_then_write(
    ui: &mut Ui,
    client: &Client,
    full: &str,
    new_data: Map<String, Value>,
) -> Result<Option<Secret>, i32> {
    let secret = match kv_read(client, full, None).await {
        Ok(Some(s)) if s.data.is_some() => s,
        Ok(_) => {
            ui.error(&format!("No value found at {full}"));
            return Err(2);
        }
        Err(e) => {
            ui.error(&format!("Error doing pre-read at {full}: {e}"));
            return Err(2);
        }
    };
    let Some(Value::Object(meta)) = secret.get("metadata").cloned() else {
        ui.error(&format!(
            "No metadata found at {full}; patch only works on existing data"
        ));
        return Err(2);
    };
    let Some(Value::Object(mut data)) = secret.get("data").cloned() else {
        ui.error(&format!(
            "No data found at {full}; patch only works on existing data"
        ));
        return Err(2);
    };
    data.extend(new_data);
    let body = json!({"data": data, "options": {"cas": meta.get("version").cloned().unwrap_or(Value::Null)}});
    client.write(full, Some(body)).await.map_err(|e| {
        ui.error(&format!("Error writing data to {full}: {e}"));
        2
    })
}

async fn list(ui: &mut Ui, a: KvListArgs) -> i32 {
    ui.format = a.fmt.resolve();
    let mut args = a.args.clone();
    if args.is_empty() {
        if a.common.mount.as_deref().is_none_or(str::is_empty) {
            ui.error("Not enough arguments (expected 1, got 0)");
            return 1;
        }
        args.push(String::new());
    }
    if args.len() > 1 {
        ui.error(&format!(
            "Too many arguments (expected 1, got {})",
            args.len()
        ));
        return 1;
    }
    let Some(t) = resolve(ui, &a.common, &args[0], true).await else {
        return 2;
    };
    let full = t.full_path("metadata");
    let secret = match t.client.list(&full).await {
        Ok(s) => s,
        Err(e) => {
            ui.error(&format!("Error listing {full}: {e}"));
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
    let Some(secret) = secret.filter(|s| s.data.is_some()) else {
        ui.error(&format!("No value found at {full}"));
        return 2;
    };
    if !has_keys {
        ui.error(&format!("No entries found at {full}"));
        return 2;
    }
    output_list(ui, &secret)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum VersionsOp {
    Delete,
    Undelete,
    Destroy,
}

async fn versions(ui: &mut Ui, a: KvVersionsArgs, op: VersionsOp) -> i32 {
    ui.format = a.out.fmt.resolve();
    if !super::check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let versions = super::split_list(&a.versions);
    if op != VersionsOp::Delete && versions.is_empty() {
        let what = if op == VersionsOp::Undelete {
            "undelete"
        } else {
            "destroy"
        };
        ui.error(&format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {what}."
        ));
        return 1;
    }
    let Some(t) = resolve(ui, &a.common, &a.args[0], true).await else {
        return 2;
    };
    match op {
        VersionsOp::Delete => {
            let full = t.full_path("data");
            let res = if t.v2 && !versions.is_empty() {
                let p = t.full_path("delete");
                t.client
                    .write(&p, Some(json!({ "versions": versions })))
                    .await
            } else {
                t.client.delete(&full).await
            };
            match res {
                Ok(None) => {
                    if ui.is_table() {
                        ui.info(&format!("Success! Data deleted (if it existed) at: {full}"));
                    }
                    0
                }
                Ok(Some(s)) => match a.out.field() {
                    Some(f) => print_secret_field(ui, &s, f),
                    None => output_secret(ui, &s),
                },
                Err(e) => {
                    ui.error(&format!("Error deleting {full}: {e}"));
                    2
                }
            }
        }
        VersionsOp::Undelete | VersionsOp::Destroy => {
            if !t.v2 {
                let what = if op == VersionsOp::Undelete {
                    "Undelete"
                } else {
                    "Destroy"
                };
                ui.error(&format!("{what} not supported on KV Version 1"));
                return 1;
            }
            let prefix = if op == VersionsOp::Undelete {
                "undelete"
            } else {
                "destroy"
            };
            let p = t.full_path(prefix);
            let res = t
                .client
                .write(&p, Some(json!({ "versions": versions })))
                .await;
            write_output(ui, &p, res, None)
        }
    }
}

async fn rollback(ui: &mut Ui, a: KvRollbackArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if a.args.len() != 1 {
        ui.error(&format!(
            "Invalid number of arguments (expected 1, got {})",
            a.args.len()
        ));
        return 1;
    }
    let Some(version) = a.version else {
        ui.error("Version flag must be specified");
        return 1;
    };
    if version <= 0 {
        ui.error(&format!("Invalid value {version} for the version flag"));
        return 1;
    }
    let Some(t) = resolve(ui, &a.common, &a.args[0], true).await else {
        return 2;
    };
    if !t.v2 {
        ui.error("K/V engine mount must be version 2 for rollback support");
        return 2;
    }
    let full = t.full_path("data");
    let Some((_, meta)) = rollback_pre_read(ui, &t.client, &full, None).await else {
        return 2;
    };
    let cas = meta.get("version").cloned().unwrap_or(Value::Null);
    let Some((old, old_meta)) = rollback_pre_read(ui, &t.client, &full, Some(version)).await else {
        return 2;
    };
    if old_meta
        .get("deletion_time")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        ui.error("Cannot roll back to a version that has been deleted");
        return 2;
    }
    if old_meta
        .get("destroyed")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        ui.error("Cannot roll back to a version that has been destroyed");
        return 2;
    }
    let Some(Value::Object(data)) = old.get("data").cloned() else {
        ui.error(&format!(
            "No data found at {full}; rollback only works on existing data"
        ));
        return 2;
    };
    let body = json!({"data": data, "options": {"cas": cas}});
    match t.client.write(&full, Some(body)).await {
        Ok(Some(s)) => output_secret(ui, &s),
        Ok(None) => {
            if ui.is_table() {
                ui.info(&format!("Success! Data written to: {full}"));
            }
            0
        }
        Err(e) => {
            ui.error(&format!("Error writing data to {full}: {e}"));
            2
        }
    }
}

async fn meta_get(ui: &mut Ui, a: KvMetaGetArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !super::check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(t) = resolve(ui, &a.common, &a.args[0], true).await else {
        return 2;
    };
    if !t.v2 {
        ui.error("Metadata not supported on KV Version 1");
        return 1;
    }
    let full = t.full_path("metadata");
    let mut secret = match t.client.read(&full).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            ui.error(&format!("No value found at {full}"));
            return 2;
        }
        Err(e) => {
            ui.error(&format!("Error reading {full}: {e}"));
            return 2;
        }
    };
    if secret.wrap_info.is_some() || !ui.is_table() {
        return output_secret(ui, &secret);
    }
    let versions = match secret.data.as_mut().and_then(|d| d.remove("versions")) {
        Some(Value::Object(v)) => v,
        _ => {
            ui.error(&format!("No value found at {full}"));
            output_secret(ui, &secret);
            return 2;
        }
    };
    output_path(ui, &full, "Metadata Path");
    let data = secret.data.clone().unwrap_or_default();
    ui.info(&map_header("Metadata", &data));
    output_secret(ui, &secret);
    let mut nums = Vec::new();
    for k in versions.keys() {
        match k.parse::<i64>() {
            Ok(n) => nums.push(n),
            Err(_) => {
                ui.error(&format!("Error parsing version {k}"));
                return 2;
            }
        }
    }
    nums.sort_unstable();
    for n in nums {
        let v = versions[&n.to_string()]
            .as_object()
            .cloned()
            .unwrap_or_default();
        ui.info(&format!("\n{}", map_header(&format!("Version {n}"), &v)));
        output_map(ui, &v);
    }
    0
}

async fn meta_put(ui: &mut Ui, a: KvMetaPutArgs) -> i32 {
    ui.format = a.fmt.resolve();
    if !super::check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(t) = resolve(ui, &a.common, &a.args[0], true).await else {
        return 2;
    };
    if !t.v2 {
        ui.error("Metadata not supported on KV Version 1");
        return 1;
    }
    let full = t.full_path("metadata");
    let mut data = Map::new();
    if let Some(m) = a.max_versions.filter(|m| *m >= 0) {
        data.insert("max_versions".into(), json!(m));
    }
    if let Some(d) = a.delete_version_after.filter(|d| *d >= 0) {
        data.insert("delete_version_after".into(), json!(go_duration(d)));
    }
    if let Some(c) = a.cas_required {
        data.insert("cas_required".into(), json!(c));
    }
    if !a.custom_metadata.is_empty() {
        let m: Map<String, Value> = a
            .custom_metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        data.insert("custom_metadata".into(), Value::Object(m));
    }
    let res = t.client.write(&full, Some(Value::Object(data))).await;
    write_output(ui, &full, res, None)
}

async fn meta_delete(ui: &mut Ui, a: KvMetaDeleteArgs) -> i32 {
    if !super::check_args(ui, &a.args, 1, 1) {
        return 1;
    }
    let Some(t) = resolve(ui, &a.common, &a.args[0], true).await else {
        return 2;
    };
    if !t.v2 {
        ui.error("Metadata not supported on KV Version 1");
        return 1;
    }
    let full = t.full_path("metadata");
    if let Err(e) = t.client.delete(&full).await {
        ui.error(&format!("Error deleting {full}: {e}"));
        return 2;
    }
    ui.info(&format!("Success! Data deleted (if it existed) at: {full}"));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_semantics() {
        assert_eq!(path_join(&["secret/", "data"]), "secret/data");
        assert_eq!(path_join(&["secret/", "data", "/foo/"]), "secret/data/foo");
        assert_eq!(path_clean("a//b/./c/.."), "a/b");
        assert_eq!(path_join(&["", ""]), "");
    }

    #[test]
    fn kv_prefixes() {
        assert_eq!(
            add_prefix_to_kv_path("secret/foo", "secret/", "data"),
            "secret/data/foo"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret", "secret/", "metadata"),
            "secret/metadata"
        );
        assert_eq!(
            add_prefix_to_kv_path("secret/a/b", "secret/", "delete"),
            "secret/delete/a/b"
        );
        // A namespaced mount path ("ns1/secret/") with a path relative to the namespace.
        assert_eq!(
            add_prefix_to_kv_path("secret/foo", "ns1/secret/", "data"),
            "secret/data/foo"
        );
    }
}
