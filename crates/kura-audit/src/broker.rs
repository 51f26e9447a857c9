//! The audit broker: the set of enabled devices, fail-closed logging, reload.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use kura_config::AuditDeviceConfig;
use serde::{Deserialize, Serialize};

use crate::device::{normalize_path, parse_options, Device};
use crate::format;
use crate::salt::Salt;
use crate::types::{AuditRequest, AuditResponse};
use crate::AuditError;

/// A device to enable: its configuration block and its salt.
///
/// The caller owns the salt: it loads it from storage inside the barrier, or makes one with
/// [`Salt::generate`] and stores it, keyed by the device path. A device that is already
/// enabled keeps the salt it was built with.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// The `audit "<type>" "<path>" { ... }` block (or an API enable's parameters).
    pub config: AuditDeviceConfig,
    /// The device's salt.
    pub salt: Salt,
}

/// Server-wide settings that decide which device options are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// `allow_audit_log_prefixing`: devices may set `prefix`.
    pub allow_audit_log_prefixing: bool,
}

/// One device as `GET sys/audit` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDeviceInfo {
    /// Description (empty when unset).
    pub description: String,
    /// Not replicated.
    pub local: bool,
    /// Options as configured.
    pub options: BTreeMap<String, String>,
    /// Device path (`file/`).
    pub path: String,
    /// Device type (`file`).
    #[serde(rename = "type")]
    pub device_type: String,
}

/// What a configuration change did, by normalized device path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Devices created.
    pub added: Vec<String>,
    /// Devices removed (their blocks are gone). The caller may delete their salts.
    pub removed: Vec<String>,
    /// Declarative devices left as they were.
    pub kept: Vec<String>,
}

/// The outcome of [`AuditBroker::reload`].
#[derive(Debug)]
pub struct ReloadReport {
    /// The configuration change, or why the new configuration was refused (then nothing was
    /// added or removed).
    pub changes: Result<Changes, AuditError>,
    /// Devices whose file could not be reopened. They stay enabled and try again on their next
    /// write; until one succeeds, they fail.
    pub reopen_errors: Vec<(String, AuditError)>,
}

type DeviceMap = BTreeMap<String, Arc<Device>>;

/// The enabled audit devices.
///
/// Logging takes a snapshot of the device set (an `Arc` clone under a brief read lock), so a
/// reload never waits for writers and writers never see a half-applied reload. Writes are
/// short blocking appends (as OpenBao's): call the log methods from request tasks directly.
pub struct AuditBroker {
    devices: RwLock<Arc<DeviceMap>>,
    /// Serializes configuration changes.
    changes: Mutex<()>,
}

impl Default for AuditBroker {
    fn default() -> Self {
        Self::new()
    }
}

fn same_config(old: &AuditDeviceConfig, new: &AuditDeviceConfig) -> Result<(), String> {
    if old.kind != new.kind {
        return Err("type".into());
    }
    if old.description.as_deref().unwrap_or("") != new.description.as_deref().unwrap_or("") {
        return Err("description".into());
    }
    if old.local != new.local {
        return Err("local".into());
    }
    let names: BTreeSet<&String> = old.options.keys().chain(new.options.keys()).collect();
    for name in names {
        if old.options.get(name) != new.options.get(name) {
            return Err(format!("option {name}"));
        }
    }
    Ok(())
}

impl AuditBroker {
    /// A broker with no device: everything is allowed and nothing is recorded until devices
    /// are configured.
    pub fn new() -> Self {
        AuditBroker {
            devices: RwLock::new(Arc::new(BTreeMap::new())),
            changes: Mutex::new(()),
        }
    }

    fn snapshot(&self) -> Arc<DeviceMap> {
        self.devices
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn swap(&self, map: DeviceMap) {
        *self.devices.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
    }

    /// Makes the declarative devices match `specs` (the `audit` blocks of the configuration,
    /// in order): blocks with a new path are created (files opened now), devices whose block
    /// is gone are removed, unchanged ones are kept as they are. All or nothing: any error —
    /// a bad option, a file that cannot be opened, a changed block (OpenBao does not allow
    /// modifying an audit device), a path taken by an API-created device — leaves the set
    /// unchanged. At startup the caller should refuse to start on error, as OpenBao does.
    pub fn configure(
        &self,
        specs: Vec<DeviceSpec>,
        settings: AuditSettings,
    ) -> Result<Changes, AuditError> {
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.snapshot();
        let mut next: DeviceMap = BTreeMap::new();
        let mut changes = Changes::default();
        let mut seen = BTreeSet::new();
        for spec in specs {
            let path = normalize_path(&spec.config.path);
            if path.is_empty() {
                return Err(AuditError::EmptyPath);
            }
            if !seen.insert(path.clone()) {
                return Err(AuditError::DuplicatePath(path));
            }
            match current.get(&path) {
                Some(existing) if !existing.declarative => {
                    return Err(AuditError::CreatedByApi(path));
                }
                Some(existing) => {
                    same_config(&existing.config, &spec.config).map_err(|what| {
                        AuditError::Modified {
                            path: path.clone(),
                            what,
                        }
                    })?;
                    changes.kept.push(path.clone());
                    next.insert(path, existing.clone());
                }
                None => {
                    let device = Device::build(
                        path.clone(),
                        spec.config,
                        &spec.salt,
                        true,
                        settings.allow_audit_log_prefixing,
                    )?;
                    changes.added.push(path.clone());
                    next.insert(path, Arc::new(device));
                }
            }
        }
        for (path, device) in current.iter() {
            if !device.declarative {
                next.insert(path.clone(), device.clone());
            } else if !seen.contains(path) {
                changes.removed.push(path.clone());
            }
        }
        self.swap(next);
        for path in &changes.added {
            tracing::info!(path = %path, "enabled audit device");
        }
        for path in &changes.removed {
            tracing::info!(path = %path, "removed audit device");
        }
        Ok(changes)
    }

    /// SIGHUP: applies the new `audit` blocks ([`AuditBroker::configure`]) and reopens the
    /// files of every device that was already enabled (log rotation: after the old file was
    /// renamed, new lines go to a new file at `file_path`). The files are reopened even when
    /// the new configuration is refused, as OpenBao does.
    pub fn reload(&self, specs: Vec<DeviceSpec>, settings: AuditSettings) -> ReloadReport {
        let before = self.snapshot();
        let changes = self.configure(specs, settings);
        if let Err(e) = &changes {
            tracing::error!(error = %e, "audit configuration refused on reload; devices unchanged");
        }
        let after = self.snapshot();
        let mut reopen_errors = Vec::new();
        for (path, device) in after.iter() {
            // Devices added by this reload were just opened.
            if !before.contains_key(path) {
                continue;
            }
            if let Err(e) = device.reopen() {
                tracing::error!(path = %path, error = %e, "audit device could not reopen its file");
                reopen_errors.push((path.clone(), e));
            }
        }
        ReloadReport {
            changes,
            reopen_errors,
        }
    }

    /// Closes and reopens every file device's file. Failures are returned; those devices
    /// retry on their next write.
    pub fn reopen(&self) -> Vec<(String, AuditError)> {
        let mut errors = Vec::new();
        for (path, device) in self.snapshot().iter() {
            if let Err(e) = device.reopen() {
                tracing::error!(path = %path, error = %e, "audit device could not reopen its file");
                errors.push((path.clone(), e));
            }
        }
        errors
    }

    /// Checks a device's options without enabling it (for `PUT sys/audit/:path` before the
    /// salt is made).
    pub fn validate(
        &self,
        config: &AuditDeviceConfig,
        settings: AuditSettings,
    ) -> Result<(), AuditError> {
        let path = normalize_path(&config.path);
        if path.is_empty() {
            return Err(AuditError::EmptyPath);
        }
        parse_options(&path, config, settings.allow_audit_log_prefixing).map(|_| ())
    }

    /// Enables a device through the API (`PUT sys/audit/:path`, only when the server allows
    /// API audit creation). Such devices are not touched by [`AuditBroker::configure`].
    pub fn enable(&self, spec: DeviceSpec, settings: AuditSettings) -> Result<(), AuditError> {
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let path = normalize_path(&spec.config.path);
        if path.is_empty() {
            return Err(AuditError::EmptyPath);
        }
        let current = self.snapshot();
        if current.contains_key(&path) {
            return Err(AuditError::AlreadyEnabled(path));
        }
        let device = Device::build(
            path.clone(),
            spec.config,
            &spec.salt,
            false,
            settings.allow_audit_log_prefixing,
        )?;
        let mut next = (*current).clone();
        next.insert(path.clone(), Arc::new(device));
        self.swap(next);
        tracing::info!(path = %path, "enabled audit device");
        Ok(())
    }

    /// Disables an API-created device (`DELETE sys/audit/:path`). `Ok(false)` when nothing was
    /// enabled there; a device from the configuration file cannot be disabled this way.
    pub fn disable(&self, path: &str) -> Result<bool, AuditError> {
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let path = normalize_path(path);
        let current = self.snapshot();
        match current.get(&path) {
            None => Ok(false),
            Some(d) if d.declarative => Err(AuditError::Declarative(path)),
            Some(_) => {
                let mut next = (*current).clone();
                next.remove(&path);
                self.swap(next);
                tracing::info!(path = %path, "disabled audit device");
                Ok(true)
            }
        }
    }

    /// Removes every device (on seal). Nothing is audited until devices are configured again.
    pub fn clear(&self) {
        let _guard = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        self.swap(BTreeMap::new());
    }

    /// Number of enabled devices.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// True when no device is enabled.
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// True when a device is enabled at `path` (with or without the trailing slash).
    pub fn contains(&self, path: &str) -> bool {
        self.snapshot().contains_key(&normalize_path(path))
    }

    /// The enabled devices as `GET sys/audit` shows them, keyed by path (`file/`).
    pub fn list(&self) -> BTreeMap<String, AuditDeviceInfo> {
        self.snapshot()
            .iter()
            .map(|(path, d)| {
                (
                    path.clone(),
                    AuditDeviceInfo {
                        description: d.config.description.clone().unwrap_or_default(),
                        local: d.config.local,
                        options: d.config.options.clone(),
                        path: path.clone(),
                        device_type: d.config.kind.clone(),
                    },
                )
            })
            .collect()
    }

    /// `sys/audit-hash/:path`: the device's `hmac-sha256:<hex>` of `input`.
    pub fn hash(&self, path: &str, input: &str) -> Result<String, AuditError> {
        let path = normalize_path(path);
        self.snapshot()
            .get(&path)
            .map(|d| d.hash(input))
            .ok_or(AuditError::UnknownDevice(path))
    }

    /// Records the request entry on every device. Fail closed: `Err(NotRecorded)` when devices
    /// are enabled and none recorded it — the core must then refuse the request before doing
    /// anything. `Ok` when at least one device recorded it (each failure is logged), or when
    /// no device is enabled.
    pub fn log_request(&self, req: &AuditRequest) -> Result<(), AuditError> {
        let devices = self.snapshot();
        let time = format::now();
        Self::fan_out(&devices, "request", |d| d.log_request(req, &time))
    }

    /// Records the response entry on every device, with the same fail-closed rule as
    /// [`AuditBroker::log_request`]: on `Err` the core must not return the response (OpenBao
    /// answers 500).
    pub fn log_response(&self, req: &AuditRequest, resp: &AuditResponse) -> Result<(), AuditError> {
        let devices = self.snapshot();
        let time = format::now();
        Self::fan_out(&devices, "response", |d| d.log_response(req, resp, &time))
    }

    fn fan_out(
        devices: &DeviceMap,
        entry: &'static str,
        log: impl Fn(&Device) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        if devices.is_empty() {
            return Ok(());
        }
        let mut recorded = 0usize;
        let mut failures = Vec::new();
        for (path, device) in devices.iter() {
            match log(device) {
                Ok(()) => recorded += 1,
                Err(e) => {
                    tracing::error!(path = %path, error = %e, entry, "audit device failed to record an entry");
                    failures.push((path.clone(), e));
                }
            }
        }
        if recorded == 0 {
            Err(AuditError::NotRecorded { entry, failures })
        } else {
            Ok(())
        }
    }
}
