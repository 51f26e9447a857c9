//! Kura's audit devices, as OpenBao 2.7 has them: the library the core calls to record one
//! JSON line per request and per response.
//!
//! - [`AuditBroker`] holds the enabled devices by path, built from `audit "file" "<path>" {}`
//!   blocks ([`DeviceSpec`]) at startup and on SIGHUP ([`AuditBroker::reload`]: removed blocks
//!   disable their device, new blocks enable one, kept devices reopen their files for log
//!   rotation). It fails closed: when devices are enabled and none can record an entry, the
//!   log call errs and the core refuses the request.
//! - Entries ([`RequestEntry`], [`ResponseEntry`]) have OpenBao's field names and shapes. Every
//!   sensitive string — tokens, accessors (unless `hmac_accessor = false`), every string in
//!   request and response data, wrapping tokens — is written as `hmac-sha256:<hex>`, keyed by
//!   the device's [`Salt`]; `log_raw = true` turns hashing off. [`AuditBroker::hash`] gives the
//!   same hash for `sys/audit-hash`.
//! - Devices: `file` with `file_path` a file, `stdout` or `discard`; options `log_raw`,
//!   `hmac_accessor`, `format` (`json`; `jsonx` is refused as OpenBao 2.7 refuses it),
//!   `prefix` (only with `allow_audit_log_prefixing`), `mode`, `elide_list_responses`.
//!
//! Salts are the caller's to keep: the core loads each device's salt from storage inside the
//! barrier (or makes one with [`Salt::generate`] and stores it) and passes it in the
//! [`DeviceSpec`], so hashes stay the same across restarts.

mod broker;
mod device;
mod error;
mod format;
mod salt;
mod types;

pub use broker::{AuditBroker, AuditDeviceInfo, AuditSettings, Changes, DeviceSpec, ReloadReport};
pub use device::normalize_path;
pub use error::AuditError;
pub use format::rfc3339_seconds;
pub use salt::{Salt, HMAC_PREFIX, SALT_LEN};
pub use types::{
    AuditAuth, AuditNamespace, AuditRequest, AuditResponse, AuditSecret, AuditWrapInfo,
    EntryResponse, Map, PolicyInfo, PolicyResults, RequestEntry, ResponseEntry,
};

#[cfg(test)]
mod tests;
