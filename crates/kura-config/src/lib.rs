//! OpenBao server configuration files (HCL or JSON), read for Kura.
//!
//! [`load`] reads files and directories the way `bao server -config=...` does: a directory
//! contributes every `*.hcl` and `*.json` file in it (editor backups skipped), in alphabetical
//! order; several files merge as OpenBao merges them — later scalar values override earlier
//! ones, booleans such as `ui` are or-ed, lease TTLs take the maximum, `listener`, `seal` and
//! `audit` blocks accumulate, and `storage` / `ha_storage` / `telemetry` are replaced by a later
//! file (with a warning naming both files for storage). Within one file only one `storage`
//! block is allowed.
//!
//! Nothing is ignored silently: an option Kura does not know, or knows but does not act on yet,
//! yields a warning in [`Config::warnings`] that names the option and the file (and line, for
//! HCL). The tables of known keys live in [`keys`]. Malformed files and values of the wrong
//! type are [`ConfigError`]s naming the file, the line where known, and the option. Values are
//! read leniently, as OpenBao reads them: `"true"` and `1` are booleans, `"30"` is an integer,
//! durations are seconds or Go duration strings (see [`duration`]).
//!
//! HCL is parsed with `hcl-rs` (HCL 2 syntax). OpenBao uses HCL 1; the configurations OpenBao
//! documents parse the same in both. A file `hcl-rs` rejects is read again as HCL 1, which
//! accepts a few more spellings OpenBao users write: several items or nested blocks on one line,
//! commas between items, quoted keys. In strings, `${...}` is kept as text, as HCL 1 does.
//!
//! Environment variables are applied separately, with [`Config::apply_env`] (or
//! [`Config::apply_process_env`]), so that loading stays a pure function of the files.

#![warn(missing_docs)]

pub mod duration;
mod error;
mod hcl1;
pub mod keys;
mod model;
mod parse;
mod tree;
mod value;

pub use error::ConfigError;
pub use model::{
    AuditDeviceConfig, Config, ListenerConfig, RaftStorageConfig, RetryJoin, SealConfig,
    StorageConfig, DEFAULT_LEASE_TTL, DEFAULT_MAX_REQUEST_DURATION,
    DEFAULT_MAX_REQUEST_JSON_MEMORY, DEFAULT_MAX_REQUEST_JSON_STRINGS, DEFAULT_MAX_REQUEST_SIZE,
    DEFAULT_TCP_ADDRESS, DEFAULT_UNIX_ADDRESS,
};

use std::path::{Path, PathBuf};

/// The syntax of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HCL.
    Hcl,
    /// JSON.
    Json,
}

impl Format {
    /// The format a file name implies: `.json` is JSON, anything else HCL.
    pub fn from_path(path: &Path) -> Format {
        match path.extension() {
            Some(ext) if ext == "json" => Format::Json,
            _ => Format::Hcl,
        }
    }
}

/// Loads and merges configuration files and directories, in the order given.
///
/// A directory contributes its `*.hcl` and `*.json` files (not subdirectories, not editor
/// backups such as `x.hcl~` or `.#x.hcl`) in alphabetical order. A file named explicitly that
/// also lies in a directory named in `paths` is read once. A file is JSON when its name ends in
/// `.json`, or when its text starts with `{` (an HCL body cannot), else HCL.
///
/// Environment variables are not applied: call [`Config::apply_env`] afterwards.
pub fn load(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut notes = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let found = config_files_in(path)?;
            if found.is_empty() {
                notes.push(format!(
                    "no *.hcl or *.json configuration files in directory {}",
                    path.display()
                ));
            }
            files.extend(found);
        } else if !covered_by_directory(path, paths) {
            files.push(path.clone());
        }
    }

    let mut merged: Option<Config> = None;
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let name = path.display().to_string();
        let mut format = Format::from_path(path);
        if format == Format::Hcl && text.trim_start().starts_with('{') {
            format = Format::Json;
        }
        tracing::debug!(file = %name, ?format, "reading configuration file");
        let config = parse_one(&text, &name, format)?;
        merged = Some(match merged {
            None => config,
            Some(earlier) => earlier.merge(config),
        });
    }
    let mut config = merged.unwrap_or_default();
    config.warnings.extend(notes);
    config.finish()
}

/// Parses one configuration text; `name` is used in warnings and errors (a file name).
pub fn parse_str(text: &str, name: &str, format: Format) -> Result<Config, ConfigError> {
    parse_one(text, name, format)?.finish()
}

fn parse_one(text: &str, name: &str, format: Format) -> Result<Config, ConfigError> {
    let items = match format {
        Format::Hcl => tree::parse_hcl(text, name)?,
        Format::Json => tree::parse_json(text, name)?,
    };
    parse::parse_file(&items, name)
}

/// `*.hcl` and `*.json` files directly in `dir`, sorted by name.
fn config_files_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_err = |source| ConfigError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        if path.is_dir() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let wanted = name.ends_with(".hcl") || name.ends_with(".json");
        if wanted && !is_editor_temp_file(name) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Backup and lock files of vim and emacs, which OpenBao also skips.
fn is_editor_temp_file(name: &str) -> bool {
    name.ends_with('~') || name.starts_with(".#") || (name.starts_with('#') && name.ends_with('#'))
}

/// Whether `file` would already be read through a directory in `paths`.
fn covered_by_directory(file: &Path, paths: &[PathBuf]) -> bool {
    let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if !(name.ends_with(".hcl") || name.ends_with(".json")) {
        return false;
    }
    let Ok(file) = std::path::absolute(file) else {
        return false;
    };
    let parent = file.parent();
    paths.iter().any(|p| {
        p.is_dir() && std::path::absolute(p).ok().as_deref() == parent && !is_editor_temp_file(name)
    })
}

impl Config {
    /// Merges a later file's configuration into this one, as OpenBao merges configuration
    /// files.
    pub fn merge(mut self, later: Config) -> Config {
        if let (Some(old), Some(new)) = (&self.storage, &later.storage) {
            self.warnings.push(format!(
                "storage \"{}\" ({}) is replaced by storage \"{}\" ({}): only one storage block \
                 is used",
                old.kind, old.file, new.kind, new.file
            ));
        }
        if let (Some(old), Some(new)) = (&self.ha_storage, &later.ha_storage) {
            self.warnings.push(format!(
                "ha_storage \"{}\" ({}) is replaced by ha_storage \"{}\" ({}): only one \
                 ha_storage block is used",
                old.kind, old.file, new.kind, new.file
            ));
        }
        fn later_wins<T>(earlier: &mut Option<T>, later: Option<T>) {
            if later.is_some() {
                *earlier = later;
            }
        }
        fn max<T: Ord>(earlier: &mut Option<T>, later: Option<T>) {
            if let Some(l) = later {
                match earlier {
                    Some(e) if *e >= l => {}
                    _ => *earlier = Some(l),
                }
            }
        }
        later_wins(&mut self.storage, later.storage);
        later_wins(&mut self.ha_storage, later.ha_storage);
        self.listeners.extend(later.listeners);
        self.seals.extend(later.seals);
        self.audit.extend(later.audit);
        later_wins(&mut self.api_addr, later.api_addr);
        later_wins(&mut self.cluster_addr, later.cluster_addr);
        later_wins(&mut self.cluster_name, later.cluster_name);
        self.disable_clustering |= later.disable_clustering;
        self.ui |= later.ui;
        later_wins(&mut self.log_level, later.log_level);
        later_wins(&mut self.log_format, later.log_format);
        later_wins(&mut self.log_file, later.log_file);
        later_wins(&mut self.pid_file, later.pid_file);
        self.disable_mlock |= later.disable_mlock;
        max(&mut self.default_lease_ttl, later.default_lease_ttl);
        max(&mut self.max_lease_ttl, later.max_lease_ttl);
        max(
            &mut self.default_max_request_duration,
            later.default_max_request_duration,
        );
        self.disable_standby_reads |= later.disable_standby_reads;
        self.unsafe_allow_api_audit_creation |= later.unsafe_allow_api_audit_creation;
        self.allow_audit_log_prefixing |= later.allow_audit_log_prefixing;
        self.raw_storage_endpoint |= later.raw_storage_endpoint;
        self.disable_cache |= later.disable_cache;
        later_wins(&mut self.cache_size, later.cache_size);
        later_wins(&mut self.plugin_directory, later.plugin_directory);
        later_wins(&mut self.telemetry, later.telemetry);
        self.files.extend(later.files);
        self.warnings.extend(later.warnings);
        self
    }

    /// Resolves cross-file defaults and checks what only the whole configuration can tell.
    fn finish(mut self) -> Result<Config, ConfigError> {
        let request_duration = self
            .default_max_request_duration
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_MAX_REQUEST_DURATION);
        for listener in &mut self.listeners {
            if listener.max_request_duration.is_zero() {
                listener.max_request_duration = request_duration;
            }
        }
        self.sync_storage_addresses();

        let files = self.files.join(", ");
        let invalid = |message: String| ConfigError::Invalid {
            file: files.clone(),
            line: None,
            message,
        };
        if let [a, b] = self.seals.as_slice() {
            if a.disabled && b.disabled {
                return Err(invalid(
                    "seals: two seals provided but both are disabled".to_string(),
                ));
            }
            if !a.disabled && !b.disabled {
                return Err(invalid(
                    "seals: two seals provided but neither is disabled".to_string(),
                ));
            }
        }
        let mut paths = std::collections::HashSet::new();
        for device in &self.audit {
            let path = device.path.trim_end_matches('/');
            if !paths.insert(path.to_string()) {
                return Err(invalid(format!(
                    "audit path \"{}\" is declared more than once ({})",
                    device.path, device.file
                )));
            }
        }
        let default_ttl = self.default_lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
        let max_ttl = self.max_lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
        if !default_ttl.is_zero() && !max_ttl.is_zero() && default_ttl > max_ttl {
            return Err(invalid(format!(
                "default_lease_ttl ({}) cannot be larger than max_lease_ttl ({})",
                duration::format_duration(default_ttl),
                duration::format_duration(max_ttl)
            )));
        }
        Ok(self)
    }

    /// Top-level `api_addr`, `cluster_addr` and `disable_clustering` override the storage
    /// blocks' own, as in OpenBao.
    fn sync_storage_addresses(&mut self) {
        let api = self.api_addr.clone();
        let cluster = self.cluster_addr.clone();
        let disable = self.disable_clustering;
        for storage in [&mut self.storage, &mut self.ha_storage]
            .into_iter()
            .flatten()
        {
            if api.is_some() {
                storage.redirect_addr.clone_from(&api);
            }
            if cluster.is_some() {
                storage.cluster_addr.clone_from(&cluster);
            }
            storage.disable_clustering |= disable;
        }
    }

    /// Applies OpenBao's environment overrides, reading variables through `lookup`.
    ///
    /// Each setting has a `BAO_` and a `VAULT_` name. As in OpenBao 2.7.2 (checked against
    /// `bao server`), the `BAO_` variable wins when it is set at all — even set to the empty
    /// string, in which case the `VAULT_` one is not consulted — and an empty value overrides
    /// nothing. A non-empty value overrides the file:
    /// - `BAO_API_ADDR` / `VAULT_API_ADDR` → `api_addr`;
    /// - `BAO_CLUSTER_ADDR` / `VAULT_CLUSTER_ADDR` → `cluster_addr`;
    /// - `BAO_RAFT_PATH` / `VAULT_RAFT_PATH` → raft `path`;
    /// - `BAO_RAFT_NODE_ID` / `VAULT_RAFT_NODE_ID` → raft `node_id`;
    /// - `BAO_RAFT_RETRY_JOIN_AS_NON_VOTER` / `VAULT_...` (any non-empty value) → raft
    ///   `retry_join_as_non_voter = true`;
    /// - `BAO_PG_CONNECTION_URL` / `VAULT_PG_CONNECTION_URL` → postgresql `connection_url`.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        let get = |name: &str| -> Option<String> {
            let value = match lookup(&format!("BAO_{name}")) {
                Some(v) => v,
                None => lookup(&format!("VAULT_{name}"))?,
            };
            (!value.is_empty()).then_some(value)
        };
        if let Some(v) = get("API_ADDR") {
            self.api_addr = Some(v);
        }
        if let Some(v) = get("CLUSTER_ADDR") {
            self.cluster_addr = Some(v);
        }
        let raft_path = get("RAFT_PATH");
        let raft_node_id = get("RAFT_NODE_ID");
        let non_voter = get("RAFT_RETRY_JOIN_AS_NON_VOTER").is_some();
        let pg_url = get("PG_CONNECTION_URL");
        for storage in [&mut self.storage, &mut self.ha_storage]
            .into_iter()
            .flatten()
        {
            if let Some(raft) = storage.raft.as_mut() {
                if let Some(path) = &raft_path {
                    raft.path = Some(path.clone());
                    storage
                        .options
                        .insert("path".to_string(), path.clone().into());
                }
                if let Some(id) = &raft_node_id {
                    raft.node_id = Some(id.clone());
                    storage
                        .options
                        .insert("node_id".to_string(), id.clone().into());
                }
                if non_voter {
                    raft.retry_join_as_non_voter = true;
                }
            }
            if storage.kind == "postgresql" {
                if let Some(url) = &pg_url {
                    storage
                        .options
                        .insert("connection_url".to_string(), url.clone().into());
                }
            }
        }
        self.sync_storage_addresses();
    }

    /// [`Config::apply_env`] with the process environment.
    pub fn apply_process_env(&mut self) {
        self.apply_env(|name| std::env::var(name).ok());
    }

    /// Emits every warning through `tracing` at WARN level.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
    }

    /// The request time limit of a listener (its own, else `default_max_request_duration`,
    /// else 90 s). After [`load`] this is simply `listener.max_request_duration`.
    pub fn max_request_duration(&self, listener: &ListenerConfig) -> std::time::Duration {
        if !listener.max_request_duration.is_zero() {
            return listener.max_request_duration;
        }
        self.default_max_request_duration
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_MAX_REQUEST_DURATION)
    }
}

#[cfg(test)]
mod tests;
