//! Typed audit errors.
//!
//! No variant carries an entry's content: messages name devices, options and files, never a
//! token, a request body or a salt.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong when configuring audit devices or recording an entry.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The device type is not one Kura builds (only `file` is).
    #[error("audit device {path}: type \"{kind}\" is not supported (Kura supports \"file\")")]
    UnsupportedType {
        /// Device path.
        path: String,
        /// The type as configured.
        kind: String,
    },
    /// The device path is empty (or only slashes).
    #[error("audit device path must not be empty")]
    EmptyPath,
    /// Two configuration blocks declare the same device path.
    #[error("audit device path {0} is declared more than once")]
    DuplicatePath(String),
    /// A `file` device has neither `file_path` nor `path`.
    #[error("audit device {path}: file_path is required")]
    MissingFilePath {
        /// Device path.
        path: String,
    },
    /// `format = "jsonx"`: removed in OpenBao 2.x, and not built by Kura.
    #[error(
        "audit device {path}: jsonx formatting has been removed, consider switching to json by \
         omitting \"format\" or setting it to \"json\""
    )]
    JsonxRemoved {
        /// Device path.
        path: String,
    },
    /// `format` is neither `json` nor `jsonx`.
    #[error("audit device {path}: unknown format type \"{format}\"")]
    UnknownFormat {
        /// Device path.
        path: String,
        /// The format as configured.
        format: String,
    },
    /// An option has a value of the wrong shape (a boolean, an octal mode).
    #[error("audit device {path}: invalid value for option {option}: expected {expected}")]
    InvalidOption {
        /// Device path.
        path: String,
        /// Option name.
        option: String,
        /// What the option accepts.
        expected: &'static str,
    },
    /// `prefix` is set but the server configuration does not set `allow_audit_log_prefixing`.
    #[error("audit device {path}: audit log prefixing is not allowed")]
    PrefixNotAllowed {
        /// Device path.
        path: String,
    },
    /// The salt given for a device is empty.
    #[error("audit device {path}: the salt must not be empty")]
    EmptySalt {
        /// Device path.
        path: String,
    },
    /// A declarative device's block changed; OpenBao does not allow modifying audit devices.
    #[error(
        "modifications to audit devices are not allowed: audit device {path} differs from its \
         configuration ({what})"
    )]
    Modified {
        /// Device path.
        path: String,
        /// What differs (a field or option name, never a value).
        what: String,
    },
    /// An API enable on a path where a device already exists.
    #[error("path already in use")]
    AlreadyEnabled(String),
    /// A configuration block names the path of a device created through the API.
    #[error(
        "audit device in configuration (path: {0}) was already created by API; remove the API \
         audit device before attempting to create a duplicate configuration-based version"
    )]
    CreatedByApi(String),
    /// An API disable of a device that comes from the configuration file.
    #[error("cannot disable configuration-managed audit device")]
    Declarative(String),
    /// No device is enabled at this path.
    #[error("no audit device enabled at {0}")]
    UnknownDevice(String),
    /// A file device's file (or its directory) could not be opened for writing.
    #[error("audit device {path}: unable to open {} for writing: {source}", file.display())]
    Open {
        /// Device path.
        path: String,
        /// The file.
        file: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing an entry failed (after one reopen attempt for files).
    #[error("audit device {path}: write failed: {source}")]
    Write {
        /// Device path.
        path: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The entry could not be encoded as JSON.
    #[error("audit device {path}: could not encode the entry: {source}")]
    Encode {
        /// Device path.
        path: String,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The system random generator failed while making a salt.
    #[error("could not generate an audit salt: the system random generator failed")]
    Random,
    /// Fail closed: audit devices are enabled but none of them recorded the entry. The core
    /// must refuse the request (for a request entry) or fail it (for a response entry).
    #[error("no audit device could record the {entry} entry ({} device(s) failed)", failures.len())]
    NotRecorded {
        /// `"request"` or `"response"`.
        entry: &'static str,
        /// Each failed device with its error.
        failures: Vec<(String, AuditError)>,
    },
}
