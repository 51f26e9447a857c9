//! Reading one file's items into a [`Config`].

use crate::error::{location, ConfigError};
use crate::keys::{self, KeyClass, KeyTable};
use crate::model::{
    AuditDeviceConfig, Config, ListenerConfig, RaftStorageConfig, RetryJoin, SealConfig,
    StorageConfig, DEFAULT_MAX_REQUEST_JSON_MEMORY, DEFAULT_MAX_REQUEST_JSON_STRINGS,
    DEFAULT_MAX_REQUEST_SIZE,
};
use crate::tree::{body_to_json, labeled_blocks, value_items, Item, Labeled, Val};
use crate::value::{stringify, At};
use serde_json::Value;

/// Parses the items of one file.
pub(crate) fn parse_file(items: &[Item], file: &str) -> Result<Config, ConfigError> {
    let mut parser = FileParser {
        file,
        warnings: Vec::new(),
    };
    let mut config = parser.top_level(items)?;
    config.files = vec![file.to_string()];
    config.warnings = parser.warnings;
    Ok(config)
}

struct FileParser<'a> {
    file: &'a str,
    warnings: Vec<String>,
}

const TOP: &str = "at top level";

impl<'a> FileParser<'a> {
    fn loc(&self, line: Option<usize>) -> String {
        location(self.file, line)
    }

    fn warn_unknown(&mut self, item: &Item, context: &str) {
        let loc = self.loc(item.line);
        self.warnings
            .push(format!("unknown option \"{}\" {context} ({loc})", item.key));
    }

    fn warn_not_acted_on(&mut self, item: &Item, context: &str) {
        let loc = self.loc(item.line);
        self.warnings.push(format!(
            "option \"{}\" {context} is accepted but not supported by Kura yet; it has no effect ({loc})",
            item.key
        ));
    }

    fn invalid(&self, line: Option<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    /// Walks a body: supported keys go to `handle`, the others are warned about. Keys that are
    /// known but not acted on also go to `handle` when `keep_not_acted_on` is set (so that they
    /// can be stored raw).
    fn walk<'i>(
        &mut self,
        items: &'i [Item],
        table: &KeyTable,
        context: &str,
        keep_not_acted_on: bool,
        mut handle: impl FnMut(&mut Self, &'i Item) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        for item in items {
            match table.classify(&item.key) {
                KeyClass::Supported => handle(self, item)?,
                KeyClass::NotActedOn => {
                    self.warn_not_acted_on(item, context);
                    if keep_not_acted_on {
                        handle(self, item)?;
                    }
                }
                KeyClass::Unknown => self.warn_unknown(item, context),
            }
        }
        Ok(())
    }

    /// Labeled blocks of an item; a plain value where a block is expected is an error.
    fn blocks(
        &self,
        item: &Item,
        labels: usize,
        context: &str,
    ) -> Result<Vec<Labeled>, ConfigError> {
        labeled_blocks(item, labels).ok_or_else(|| ConfigError::InvalidValue {
            file: self.file.to_string(),
            line: item.line,
            option: item.key.clone(),
            context: context.to_string(),
            message: "expected a block".to_string(),
        })
    }

    fn top_level(&mut self, items: &[Item]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut storage: Vec<(String, Labeled)> = Vec::new();
        let mut backend: Vec<(String, Labeled)> = Vec::new();
        let mut ha_storage: Vec<(String, Labeled)> = Vec::new();
        let mut ha_backend: Vec<(String, Labeled)> = Vec::new();
        let mut seals = Vec::new();
        let file = self.file;

        self.walk(items, &keys::TOP_LEVEL, TOP, true, |p, item| {
            let at = At::new(file, TOP, item);
            match item.key.as_str() {
                "storage" | "backend" | "ha_storage" | "ha_backend" => {
                    let target = match item.key.as_str() {
                        "storage" => &mut storage,
                        "backend" => &mut backend,
                        "ha_storage" => &mut ha_storage,
                        _ => &mut ha_backend,
                    };
                    for block in p.blocks(item, 1, TOP)? {
                        target.push((item.key.clone(), block));
                    }
                }
                "listener" => {
                    for block in p.blocks(item, 1, TOP)? {
                        let listener = p.listener(block)?;
                        config.listeners.push(listener);
                    }
                }
                "seal" => {
                    for block in p.blocks(item, 1, TOP)? {
                        seals.push(p.seal(block)?);
                    }
                }
                "audit" => {
                    for block in p.blocks(item, 2, TOP)? {
                        let device = p.audit(block)?;
                        config.audit.push(device);
                    }
                }
                "api_addr" => config.api_addr = at.opt_string()?,
                "cluster_addr" => config.cluster_addr = at.opt_string()?,
                "cluster_name" => config.cluster_name = at.opt_string()?,
                "disable_clustering" => config.disable_clustering = at.bool()?,
                "ui" => config.ui = at.bool()?,
                "log_level" => config.log_level = at.opt_string()?.map(|s| s.trim().to_lowercase()),
                "log_format" => {
                    config.log_format = at.opt_string()?.map(|s| s.trim().to_lowercase())
                }
                "log_file" => config.log_file = at.opt_string()?,
                "pid_file" => config.pid_file = at.opt_string()?,
                "disable_mlock" => {
                    if !at.bool()? {
                        return Err(p.invalid(
                            item.line,
                            "disable_mlock = false asks for memory locking, which Kura (like \
                             OpenBao) does not support: remove the line and disable or encrypt \
                             swap instead",
                        ));
                    }
                    config.disable_mlock = true;
                    let loc = p.loc(item.line);
                    p.warnings.push(format!(
                        "option \"disable_mlock\" {TOP} has no effect: Kura never locks memory \
                         ({loc})"
                    ));
                }
                "default_lease_ttl" => config.default_lease_ttl = Some(at.duration()?),
                "max_lease_ttl" => config.max_lease_ttl = Some(at.duration()?),
                "default_max_request_duration" => {
                    config.default_max_request_duration = Some(at.duration()?)
                }
                "disable_standby_reads" => config.disable_standby_reads = at.bool()?,
                "unsafe_allow_api_audit_creation" => {
                    config.unsafe_allow_api_audit_creation = at.bool()?
                }
                "allow_audit_log_prefixing" => config.allow_audit_log_prefixing = at.bool()?,
                "raw_storage_endpoint" => config.raw_storage_endpoint = at.bool()?,
                "disable_cache" => config.disable_cache = at.bool()?,
                "cache_size" => {
                    let size = at.uint()?;
                    config.cache_size = (size != 0).then_some(size);
                }
                "plugin_directory" => config.plugin_directory = at.opt_string()?,
                "telemetry" => {
                    let Val::Body(body) = &item.value else {
                        return Err(at.err("expected a block"));
                    };
                    for entry in body {
                        if !keys::TELEMETRY.contains(&entry.key.as_str()) {
                            p.warn_unknown(entry, "in telemetry");
                        }
                    }
                    config.telemetry = Some(body_to_json(body));
                }
                // Known to OpenBao, not acted on by Kura: the warning has been given.
                _ => {}
            }
            Ok(())
        })?;

        if !storage.is_empty() && !backend.is_empty() {
            let line = backend[0].1.line;
            let loc = self.loc(line);
            self.warnings.push(format!(
                "option \"backend\" {TOP} is ignored because \"storage\" is set ({loc})"
            ));
        }
        if !ha_storage.is_empty() && !ha_backend.is_empty() {
            let line = ha_backend[0].1.line;
            let loc = self.loc(line);
            self.warnings.push(format!(
                "option \"ha_backend\" {TOP} is ignored because \"ha_storage\" is set ({loc})"
            ));
        }
        let storage = if storage.is_empty() { backend } else { storage };
        let ha_storage = if ha_storage.is_empty() {
            ha_backend
        } else {
            ha_storage
        };
        config.storage = self.single_storage(storage)?;
        config.ha_storage = self.single_storage(ha_storage)?;

        if seals.len() > 3 {
            return Err(self.invalid(None, "at most three \"seal\" blocks are permitted"));
        }
        config.seals = seals;
        Ok(config)
    }

    fn single_storage(
        &mut self,
        mut blocks: Vec<(String, Labeled)>,
    ) -> Result<Option<StorageConfig>, ConfigError> {
        if blocks.len() > 1 {
            let (name, second) = &blocks[1];
            return Err(self.invalid(
                second.line,
                format!("only one \"{name}\" block is permitted"),
            ));
        }
        match blocks.pop() {
            Some((name, block)) => Ok(Some(self.storage(&name, block)?)),
            None => Ok(None),
        }
    }

    fn storage(&mut self, name: &str, block: Labeled) -> Result<StorageConfig, ConfigError> {
        let Some(kind) = block.labels.first() else {
            return Err(self.invalid(
                block.line,
                format!("{name} type must be given as a label: {name} \"<type>\" {{ ... }}"),
            ));
        };
        let kind = kind.to_lowercase();
        let context = format!("in {name} \"{kind}\"");
        let file = self.file;
        let mut storage = StorageConfig {
            kind: kind.clone(),
            file: file.to_string(),
            ..StorageConfig::default()
        };
        let mut redirect = None;
        let mut advertise = None;
        let mut rest = Vec::new();
        for item in &block.body {
            let at = At::new(file, &context, item);
            match item.key.as_str() {
                "redirect_addr" => redirect = at.opt_string()?,
                "advertise_addr" => advertise = at.opt_string()?,
                "cluster_addr" => storage.cluster_addr = at.opt_string()?,
                "disable_clustering" => storage.disable_clustering = at.bool()?,
                _ => rest.push(item.clone()),
            }
        }
        storage.redirect_addr = redirect.or(advertise);
        match keys::storage_backend(&kind) {
            Some(table) => {
                self.walk(&rest, table, &context, false, |_, _| Ok(()))?;
            }
            None => {
                let loc = self.loc(block.line);
                self.warnings.push(format!(
                    "{name} type \"{kind}\" is not supported by Kura; its options are not checked \
                     ({loc})"
                ));
            }
        }
        storage.options = body_to_json(&rest);
        if kind == "raft" {
            storage.raft = Some(self.raft(&rest, &context)?);
        }
        Ok(storage)
    }

    fn raft(&mut self, items: &[Item], context: &str) -> Result<RaftStorageConfig, ConfigError> {
        let file = self.file;
        let mut raft = RaftStorageConfig::default();
        let mut non_voter_line = None;
        for item in items {
            let at = At::new(file, context, item);
            match item.key.as_str() {
                "path" => raft.path = at.opt_string()?,
                "node_id" => raft.node_id = at.opt_string()?,
                "retry_join" => {
                    // OpenBao also accepts the list JSON-encoded in a string.
                    let bodies: Vec<Item> = match &item.value {
                        Val::Body(_) => vec![item.clone()],
                        Val::Scalar(Value::String(s)) => {
                            let parsed: Value = serde_json::from_str(s).map_err(|e| {
                                at.err(format!("expected retry_join blocks or a JSON list: {e}"))
                            })?;
                            value_items("retry_join", parsed, item.line)
                        }
                        Val::Scalar(_) => return Err(at.err("expected a retry_join block")),
                    };
                    for body in &bodies {
                        let Val::Body(inner) = &body.value else {
                            return Err(at.err("expected a retry_join block"));
                        };
                        raft.retry_join
                            .push(self.retry_join(inner, body.line, context)?);
                    }
                }
                "retry_join_as_non_voter" => {
                    raft.retry_join_as_non_voter = at.bool()?;
                    non_voter_line = item.line;
                }
                "performance_multiplier" => {
                    let v = at.int()?;
                    raft.performance_multiplier = u8::try_from(v)
                        .ok()
                        .filter(|v| *v <= 10)
                        .ok_or_else(|| at.err(format!("must be between 0 and 10, got {v}")))?;
                }
                "trailing_logs" => raft.trailing_logs = Some(at.uint()?),
                "snapshot_threshold" => raft.snapshot_threshold = Some(at.uint()?),
                "snapshot_interval" => raft.snapshot_interval = Some(at.duration()?),
                "max_entry_size" => raft.max_entry_size = Some(at.uint()?),
                _ => {}
            }
        }
        if raft.retry_join_as_non_voter && raft.retry_join.is_empty() {
            let loc = self.loc(non_voter_line);
            self.warnings.push(format!(
                "option \"retry_join_as_non_voter\" {context} has no effect without a retry_join \
                 block ({loc})"
            ));
        }
        Ok(raft)
    }

    fn retry_join(
        &mut self,
        items: &[Item],
        line: Option<usize>,
        storage_context: &str,
    ) -> Result<RetryJoin, ConfigError> {
        let context = format!("in retry_join {storage_context}");
        let file = self.file;
        let mut join = RetryJoin::default();
        self.walk(items, &keys::RAFT_RETRY_JOIN, &context, true, |_, item| {
            let at = At::new(file, &context, item);
            match item.key.as_str() {
                "leader_api_addr" => join.leader_api_addr = at.opt_string()?,
                "auto_join" => join.auto_join = at.opt_string()?,
                "auto_join_scheme" => {
                    let scheme = at.opt_string()?;
                    if let Some(s) = &scheme {
                        if s != "http" && s != "https" {
                            return Err(at.err(format!("must be \"http\" or \"https\", got {s:?}")));
                        }
                    }
                    join.auto_join_scheme = scheme;
                }
                "auto_join_port" => {
                    let port = at.int()?;
                    join.auto_join_port = Some(
                        u16::try_from(port)
                            .map_err(|_| at.err(format!("not a port number: {port}")))?,
                    );
                }
                "leader_tls_servername" => join.leader_tls_servername = at.opt_string()?,
                "leader_ca_cert_file" => join.leader_ca_cert_file = at.opt_string()?,
                "leader_client_cert_file" => join.leader_client_cert_file = at.opt_string()?,
                "leader_client_key_file" => join.leader_client_key_file = at.opt_string()?,
                "leader_ca_cert" => join.leader_ca_cert = at.opt_string()?,
                "leader_client_cert" => join.leader_client_cert = at.opt_string()?,
                "leader_client_key" => join.leader_client_key = at.opt_string()?,
                _ => {}
            }
            Ok(())
        })?;
        match (&join.leader_api_addr, &join.auto_join) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    line,
                    format!(
                    "retry_join {storage_context} sets both leader_api_addr and auto_join; use one"
                ),
                ))
            }
            (None, None) => {
                return Err(self.invalid(
                    line,
                    format!("retry_join {storage_context} needs leader_api_addr or auto_join"),
                ))
            }
            _ => {}
        }
        for (file_key, inline_key, file_value, inline_value) in [
            (
                "leader_ca_cert_file",
                "leader_ca_cert",
                &join.leader_ca_cert_file,
                &join.leader_ca_cert,
            ),
            (
                "leader_client_cert_file",
                "leader_client_cert",
                &join.leader_client_cert_file,
                &join.leader_client_cert,
            ),
            (
                "leader_client_key_file",
                "leader_client_key",
                &join.leader_client_key_file,
                &join.leader_client_key,
            ),
        ] {
            if file_value.is_some() && inline_value.is_some() {
                return Err(self.invalid(
                    line,
                    format!(
                        "retry_join {storage_context} sets both {file_key} and {inline_key}; use one"
                    ),
                ));
            }
        }
        Ok(join)
    }

    fn listener(&mut self, block: Labeled) -> Result<ListenerConfig, ConfigError> {
        let file = self.file;
        // A `type` key wins over the label, as in OpenBao.
        let mut kind = block.labels.first().cloned();
        for item in &block.body {
            if item.key == "type" {
                kind = At::new(file, "in listener", item).opt_string()?;
            }
        }
        let Some(kind) = kind.map(|k| k.to_lowercase()) else {
            return Err(self.invalid(block.line, "listener type must be specified"));
        };
        let table = match kind.as_str() {
            "tcp" => &keys::LISTENER_TCP,
            "unix" => &keys::LISTENER_UNIX,
            other => {
                return Err(self.invalid(
                    block.line,
                    format!("unsupported listener type {other:?} (expected \"tcp\" or \"unix\")"),
                ))
            }
        };
        let context = format!("in listener \"{kind}\"");
        let mut l = ListenerConfig::new(&kind);
        l.file = file.to_string();
        l.raw = body_to_json(&block.body);
        let mut min_version_line = None;
        self.walk(&block.body, table, &context, false, |p, item| {
            let at = At::new(file, &context, item);
            match item.key.as_str() {
                "address" => {
                    if let Some(address) = at.opt_string()? {
                        l.address = address;
                    }
                }
                "cluster_address" => l.cluster_address = at.opt_string()?,
                "tls_disable" => l.tls_disable = at.bool()?,
                "tls_cert_file" => l.tls_cert_file = at.opt_string()?,
                "tls_key_file" => l.tls_key_file = at.opt_string()?,
                "tls_client_ca_file" => l.tls_client_ca_file = at.opt_string()?,
                "tls_min_version" => {
                    if let Some(v) = at.opt_string()? {
                        check_tls_version(&at, &v)?;
                        l.tls_min_version = v;
                        min_version_line = item.line;
                    }
                }
                "tls_max_version" => {
                    if let Some(v) = at.opt_string()? {
                        check_tls_version(&at, &v)?;
                        if v == "tls10" || v == "tls11" {
                            return Err(at.err(format!(
                                "{v:?} is below TLS 1.2, which Kura does not support"
                            )));
                        }
                        l.tls_max_version = v;
                    }
                }
                "tls_require_and_verify_client_cert" => {
                    l.tls_require_and_verify_client_cert = at.bool()?
                }
                "tls_disable_client_certs" => l.tls_disable_client_certs = at.bool()?,
                "max_request_size" => {
                    l.max_request_size = nonzero_or(at.int()?, DEFAULT_MAX_REQUEST_SIZE)
                }
                "max_request_duration" => l.max_request_duration = at.duration()?,
                "max_request_json_memory" => {
                    l.max_request_json_memory =
                        nonzero_or(at.int()?, DEFAULT_MAX_REQUEST_JSON_MEMORY)
                }
                "max_request_json_strings" => {
                    l.max_request_json_strings =
                        nonzero_or(at.int()?, DEFAULT_MAX_REQUEST_JSON_STRINGS)
                }
                "x_forwarded_for_authorized_addrs" => {
                    let addrs = at.string_list()?;
                    for addr in &addrs {
                        if !is_ip_or_cidr(addr) {
                            return Err(at.err(format!("{addr:?} is not an IP address or CIDR")));
                        }
                    }
                    l.x_forwarded_for_authorized_addrs = addrs;
                }
                "x_forwarded_for_hop_skips" => l.x_forwarded_for_hop_skips = at.uint()?,
                "x_forwarded_for_reject_not_authorized" => {
                    l.x_forwarded_for_reject_not_authorized = at.bool()?
                }
                "x_forwarded_for_reject_not_present" => {
                    l.x_forwarded_for_reject_not_present = at.bool()?
                }
                "http_read_timeout" => l.http_read_timeout = at.duration()?,
                "http_read_header_timeout" => l.http_read_header_timeout = at.duration()?,
                "http_write_timeout" => l.http_write_timeout = at.duration()?,
                "http_idle_timeout" => l.http_idle_timeout = at.duration()?,
                "telemetry" => {
                    let Val::Body(body) = &item.value else {
                        return Err(at.err("expected a block"));
                    };
                    let inner = format!("in telemetry {context}");
                    p.walk(
                        body,
                        &keys::LISTENER_TELEMETRY,
                        &inner,
                        false,
                        |_, entry| {
                            if entry.key == "unauthenticated_metrics_access" {
                                l.unauthenticated_metrics_access =
                                    At::new(file, &inner, entry).bool()?;
                            }
                            Ok(())
                        },
                    )?;
                }
                "custom_response_headers" => match at.raw() {
                    Value::Object(map) => l.custom_response_headers = Some(map),
                    _ => return Err(at.err("expected a block of status codes to headers")),
                },
                "disable_unauthed_rekey_endpoints" => {
                    l.disable_unauthed_rekey_endpoints = at.bool()?
                }
                "disable_unauthed_generate_root_endpoints" => {
                    l.disable_unauthed_generate_root_endpoints = at.bool()?
                }
                "socket_mode" => l.socket_mode = at.opt_string()?,
                "socket_user" => l.socket_user = at.opt_string()?,
                "socket_group" => l.socket_group = at.opt_string()?,
                // `type` was read above.
                _ => {}
            }
            Ok(())
        })?;
        if l.tls_min_version == "tls10" || l.tls_min_version == "tls11" {
            let loc = self.loc(min_version_line);
            self.warnings.push(format!(
                "option \"tls_min_version\" {context} is {:?}, below TLS 1.2, which Kura does not \
                 support; using \"tls12\" ({loc})",
                l.tls_min_version
            ));
            l.tls_min_version = "tls12".to_string();
        }
        if tls_rank(&l.tls_min_version) > tls_rank(&l.tls_max_version) {
            return Err(self.invalid(
                block.line,
                format!(
                    "listener \"{kind}\": tls_min_version {:?} is above tls_max_version {:?}",
                    l.tls_min_version, l.tls_max_version
                ),
            ));
        }
        if kind == "unix" {
            l.tls_disable = true;
        }
        Ok(l)
    }

    fn seal(&mut self, block: Labeled) -> Result<SealConfig, ConfigError> {
        let Some(kind) = block.labels.first() else {
            return Err(self.invalid(
                block.line,
                "seal type must be given as a label: seal \"<type>\" { ... }",
            ));
        };
        let kind = kind.to_lowercase();
        let context = format!("in seal \"{kind}\"");
        let file = self.file;
        let mut seal = SealConfig {
            kind: kind.clone(),
            file: file.to_string(),
            ..SealConfig::default()
        };
        let mut rest = Vec::new();
        for item in &block.body {
            let at = At::new(file, &context, item);
            match item.key.as_str() {
                "disabled" => seal.disabled = at.bool()?,
                "name" => seal.name = at.opt_string()?,
                "priority" => seal.priority = Some(at.int()?),
                "purpose" => self.warn_not_acted_on(item, &context),
                _ => rest.push(item.clone()),
            }
        }
        match keys::seal(&kind) {
            Some(table) => self.walk(&rest, table, &context, false, |_, _| Ok(()))?,
            None => {
                let loc = self.loc(block.line);
                self.warnings.push(format!(
                    "seal type \"{kind}\" is not supported by Kura; its options are not checked \
                     ({loc})"
                ));
            }
        }
        seal.options = body_to_json(&rest)
            .into_iter()
            .map(|(k, v)| (k, stringify(&v)))
            .collect();
        Ok(seal)
    }

    fn audit(&mut self, block: Labeled) -> Result<AuditDeviceConfig, ConfigError> {
        let file = self.file;
        let mut kind = block.labels.first().cloned();
        let mut path = block.labels.get(1).cloned();
        for item in &block.body {
            let at = At::new(file, "in audit", item);
            match item.key.as_str() {
                "type" => kind = at.opt_string()?,
                "path" => path = at.opt_string()?,
                _ => {}
            }
        }
        let Some(kind) = kind else {
            return Err(self.invalid(block.line, "audit device type must be specified"));
        };
        let Some(path) = path else {
            return Err(self.invalid(block.line, "audit device path must be specified"));
        };
        let context = format!("in audit \"{kind}\" \"{path}\"");
        let mut device = AuditDeviceConfig {
            kind: kind.clone(),
            path: path.clone(),
            file: file.to_string(),
            ..AuditDeviceConfig::default()
        };
        let device_table = keys::audit_device(&kind);
        if device_table.is_none() {
            let loc = self.loc(block.line);
            self.warnings.push(format!(
                "audit device type \"{kind}\" {context} is not known to Kura; its options are not \
                 checked ({loc})"
            ));
        }
        self.walk(
            &block.body,
            &keys::AUDIT_BLOCK,
            &context,
            false,
            |p, item| {
                let at = At::new(file, &context, item);
                match item.key.as_str() {
                    "description" => device.description = at.opt_string()?,
                    "local" => device.local = at.bool()?,
                    "options" => {
                        let Val::Body(body) = &item.value else {
                            return Err(at.err("expected a block of options"));
                        };
                        let inner = format!("in options of audit \"{kind}\" \"{path}\"");
                        for entry in body {
                            let known = keys::AUDIT_COMMON_OPTIONS.contains(&entry.key.as_str())
                                || device_table
                                    .is_none_or(|t| t.supported.contains(&entry.key.as_str()));
                            if !known {
                                p.warn_unknown(entry, &inner);
                            }
                            let value = At::new(file, &inner, entry).raw();
                            device.options.insert(entry.key.clone(), stringify(&value));
                        }
                    }
                    _ => {}
                }
                Ok(())
            },
        )?;
        Ok(device)
    }
}

fn nonzero_or(value: i64, default: i64) -> i64 {
    if value == 0 {
        default
    } else {
        value
    }
}

fn tls_rank(version: &str) -> u8 {
    match version {
        "tls10" => 0,
        "tls11" => 1,
        "tls12" => 2,
        _ => 3,
    }
}

fn check_tls_version(at: &At<'_>, version: &str) -> Result<(), ConfigError> {
    match version {
        "tls10" | "tls11" | "tls12" | "tls13" => Ok(()),
        other => Err(at.err(format!(
            "{other:?} is not one of \"tls10\", \"tls11\", \"tls12\", \"tls13\""
        ))),
    }
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `::1/128`).
fn is_ip_or_cidr(text: &str) -> bool {
    use std::net::IpAddr;
    match text.split_once('/') {
        None => text.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(bits)) => bits <= 32,
            (Ok(IpAddr::V6(_)), Ok(bits)) => bits <= 128,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_check() {
        assert!(is_ip_or_cidr("10.0.0.1"));
        assert!(is_ip_or_cidr("10.0.0.0/8"));
        assert!(is_ip_or_cidr("::1"));
        assert!(is_ip_or_cidr("fd00::/8"));
        assert!(!is_ip_or_cidr("10.0.0.0/33"));
        assert!(!is_ip_or_cidr("example.com"));
        assert!(!is_ip_or_cidr("10.0.0.1/x"));
    }
}
