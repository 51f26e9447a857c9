//! One audit device: its parsed options, its salt, and where its lines go.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use kura_config::AuditDeviceConfig;

use crate::format::{self, FormatOptions};
use crate::salt::{Hasher, Salt};
use crate::types::{AuditRequest, AuditResponse};
use crate::AuditError;

/// Default mode of an audit file.
pub(crate) const DEFAULT_MODE: u32 = 0o600;
/// Mode of directories Kura creates for an audit file.
const DIR_MODE: u32 = 0o700;

/// `path` in OpenBao's mount form: no leading slash, one trailing slash (`file/`).
pub fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// What a device's options say, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceOptions {
    /// Where lines go.
    pub target: Target,
    /// Formatting.
    pub format: FormatOptions,
    /// Written before each JSON line.
    pub prefix: String,
}

/// A file device's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The process's standard output (`file_path = "stdout"`).
    Stdout,
    /// Nothing (`file_path = "discard"`).
    Discard,
    /// A file; `mode` 0 leaves an existing file's mode alone.
    File { path: PathBuf, mode: u32 },
}

/// Parses and checks the options of a device block. `path` is the normalized device path.
pub(crate) fn parse_options(
    path: &str,
    config: &AuditDeviceConfig,
    allow_prefix: bool,
) -> Result<DeviceOptions, AuditError> {
    if config.kind != "file" {
        return Err(AuditError::UnsupportedType {
            path: path.to_string(),
            kind: config.kind.clone(),
        });
    }
    let opts = &config.options;
    let bool_opt = |name: &str, default: bool| -> Result<bool, AuditError> {
        match opts.get(name) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| AuditError::InvalidOption {
                path: path.to_string(),
                option: name.to_string(),
                expected: "a boolean",
            }),
        }
    };

    let file_path = opts
        .get("file_path")
        .or_else(|| opts.get("path"))
        .ok_or_else(|| AuditError::MissingFilePath {
            path: path.to_string(),
        })?;
    match opts.get("format").map(String::as_str) {
        None | Some("json") => {}
        Some("jsonx") => {
            return Err(AuditError::JsonxRemoved {
                path: path.to_string(),
            })
        }
        Some(other) => {
            return Err(AuditError::UnknownFormat {
                path: path.to_string(),
                format: other.to_string(),
            })
        }
    }
    let format = FormatOptions {
        hmac_accessor: bool_opt("hmac_accessor", true)?,
        raw: bool_opt("log_raw", false)?,
        elide_list_responses: bool_opt("elide_list_responses", false)?,
    };
    let mode = match opts.get("mode") {
        None => DEFAULT_MODE,
        Some(m) => u32::from_str_radix(m, 8).map_err(|_| AuditError::InvalidOption {
            path: path.to_string(),
            option: "mode".into(),
            expected: "an octal file mode such as 0600",
        })?,
    };
    let prefix = opts.get("prefix").cloned().unwrap_or_default();
    if !prefix.is_empty() && !allow_prefix {
        return Err(AuditError::PrefixNotAllowed {
            path: path.to_string(),
        });
    }
    let target = if file_path.eq_ignore_ascii_case("stdout") {
        Target::Stdout
    } else if file_path.eq_ignore_ascii_case("discard") {
        Target::Discard
    } else if file_path.is_empty() {
        return Err(AuditError::MissingFilePath {
            path: path.to_string(),
        });
    } else {
        Target::File {
            path: PathBuf::from(file_path),
            mode,
        }
    };
    Ok(DeviceOptions {
        target,
        format,
        prefix,
    })
}

/// Where a device writes.
enum Sink {
    Stdout,
    Discard,
    File(FileSink),
}

/// An append-only file, reopened on demand.
struct FileSink {
    path: PathBuf,
    mode: u32,
    file: Mutex<Option<File>>,
}

impl FileSink {
    fn lock(&self) -> MutexGuard<'_, Option<File>> {
        // A panic while holding the lock leaves at worst a closed or open handle: both fine.
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> io::Result<File> {
        open_append(&self.path, self.mode)
    }

    /// Appends `line`; on failure closes the file, reopens it once and retries (the file may
    /// have been rotated or removed).
    fn write(&self, line: &[u8]) -> io::Result<()> {
        let mut guard = self.lock();
        if let Some(f) = guard.as_mut() {
            if f.write_all(line).is_ok() {
                return Ok(());
            }
            *guard = None;
        }
        let mut f = self.open()?;
        f.write_all(line)?;
        *guard = Some(f);
        Ok(())
    }

    /// Closes and reopens the file (SIGHUP / log rotation). On failure the device keeps no
    /// handle and retries on its next write.
    fn reopen(&self) -> io::Result<()> {
        let mut guard = self.lock();
        *guard = None;
        *guard = Some(self.open()?);
        Ok(())
    }
}

/// Opens `path` for appending, creating it (and missing parent directories, mode 0700) when
/// absent, and sets `mode` on regular files (0 leaves the mode alone).
fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(parent)?;
        }
    }
    let create_mode = if mode == 0 { DEFAULT_MODE } else { mode };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(create_mode)
        .open(path)?;
    if mode != 0 {
        // Only regular files: never chmod a device such as /dev/stdout or /dev/null.
        let meta = file.metadata()?;
        if meta.file_type().is_file() && meta.permissions().mode() & 0o7777 != mode {
            file.set_permissions(Permissions::from_mode(mode))?;
        }
    }
    Ok(file)
}

/// An enabled audit device.
pub(crate) struct Device {
    /// Normalized path (`file/`).
    pub path: String,
    /// The block it was made from (for `sys/audit` and to detect modifications).
    pub config: AuditDeviceConfig,
    /// Made from the configuration file (removed when its block goes) rather than the API.
    pub declarative: bool,
    format: FormatOptions,
    prefix: String,
    hasher: Hasher,
    sink: Sink,
}

impl Device {
    /// Builds a device and, for files, opens the file now so a bad path is reported at
    /// configuration time, as OpenBao's sanity check does.
    pub(crate) fn build(
        path: String,
        config: AuditDeviceConfig,
        salt: &Salt,
        declarative: bool,
        allow_prefix: bool,
    ) -> Result<Device, AuditError> {
        let opts = parse_options(&path, &config, allow_prefix)?;
        if salt.is_empty() {
            return Err(AuditError::EmptySalt { path });
        }
        let sink = match opts.target {
            Target::Stdout => Sink::Stdout,
            Target::Discard => Sink::Discard,
            Target::File { path: file, mode } => {
                let f = open_append(&file, mode).map_err(|source| AuditError::Open {
                    path: path.clone(),
                    file: file.clone(),
                    source,
                })?;
                Sink::File(FileSink {
                    path: file,
                    mode,
                    file: Mutex::new(Some(f)),
                })
            }
        };
        Ok(Device {
            path,
            config,
            declarative,
            format: opts.format,
            prefix: opts.prefix,
            hasher: Hasher::new(salt),
            sink,
        })
    }

    /// The device's hash of `input` (`sys/audit-hash`); raw devices hash too.
    pub(crate) fn hash(&self, input: &str) -> String {
        self.hasher.hash(input)
    }

    /// Writes the request entry.
    pub(crate) fn log_request(&self, req: &AuditRequest, time: &str) -> Result<(), AuditError> {
        if matches!(self.sink, Sink::Discard) {
            return Ok(());
        }
        let entry = format::request_entry(req, &self.hasher, &self.format, time);
        self.emit(format::line(&self.prefix, &entry))
    }

    /// Writes the response entry.
    pub(crate) fn log_response(
        &self,
        req: &AuditRequest,
        resp: &AuditResponse,
        time: &str,
    ) -> Result<(), AuditError> {
        if matches!(self.sink, Sink::Discard) {
            return Ok(());
        }
        let entry = format::response_entry(req, resp, &self.hasher, &self.format, time);
        self.emit(format::line(&self.prefix, &entry))
    }

    fn emit(&self, line: Result<Vec<u8>, serde_json::Error>) -> Result<(), AuditError> {
        let line = line.map_err(|source| AuditError::Encode {
            path: self.path.clone(),
            source,
        })?;
        let written = match &self.sink {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&line).and_then(|()| out.flush())
            }
            Sink::File(f) => f.write(&line),
        };
        written.map_err(|source| AuditError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// Closes and reopens a file device's file; nothing for stdout and discard.
    pub(crate) fn reopen(&self) -> Result<(), AuditError> {
        match &self.sink {
            Sink::File(f) => f.reopen().map_err(|source| AuditError::Open {
                path: self.path.clone(),
                file: f.path.clone(),
                source,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(options: &[(&str, &str)]) -> AuditDeviceConfig {
        AuditDeviceConfig {
            kind: "file".into(),
            path: "file".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        }
    }

    #[test]
    fn paths_are_normalized_to_mount_form() {
        assert_eq!(normalize_path("to-stdout"), "to-stdout/");
        assert_eq!(normalize_path("/a/b/"), "a/b/");
        assert_eq!(normalize_path("//"), "");
    }

    #[test]
    fn options_parse_with_openbao_defaults() {
        let o = parse_options("f/", &config(&[("file_path", "/x/a.log")]), false).unwrap();
        assert_eq!(
            o.target,
            Target::File {
                path: "/x/a.log".into(),
                mode: 0o600
            }
        );
        assert!(o.format.hmac_accessor && !o.format.raw && !o.format.elide_list_responses);

        let o = parse_options(
            "f/",
            &config(&[
                ("path", "STDOUT"),
                ("log_raw", "t"),
                ("hmac_accessor", "0"),
                ("elide_list_responses", "True"),
                ("format", "json"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(o.target, Target::Stdout);
        assert!(o.format.raw && !o.format.hmac_accessor && o.format.elide_list_responses);

        let o = parse_options(
            "f/",
            &config(&[("file_path", "Discard"), ("mode", "0640")]),
            false,
        )
        .unwrap();
        assert_eq!(o.target, Target::Discard);
        let o = parse_options(
            "f/",
            &config(&[("file_path", "/a"), ("mode", "0644")]),
            false,
        )
        .unwrap();
        assert_eq!(
            o.target,
            Target::File {
                path: "/a".into(),
                mode: 0o644
            }
        );
    }

    #[test]
    fn bad_options_are_refused_with_typed_errors() {
        let err = |opts: &[(&str, &str)]| parse_options("f/", &config(opts), false).unwrap_err();
        assert!(matches!(err(&[]), AuditError::MissingFilePath { .. }));
        assert!(matches!(
            err(&[("file_path", "/a"), ("format", "jsonx")]),
            AuditError::JsonxRemoved { .. }
        ));
        let jsonx = err(&[("file_path", "/a"), ("format", "jsonx")]).to_string();
        assert!(
            jsonx.contains("jsonx formatting has been removed"),
            "{jsonx}"
        );
        assert!(matches!(
            err(&[("file_path", "/a"), ("format", "yaml")]),
            AuditError::UnknownFormat { .. }
        ));
        assert!(matches!(
            err(&[("file_path", "/a"), ("mode", "abc")]),
            AuditError::InvalidOption { .. }
        ));
        assert!(matches!(
            err(&[("file_path", "/a"), ("mode", "0980")]),
            AuditError::InvalidOption { .. }
        ));
        assert!(matches!(
            err(&[("file_path", "/a"), ("log_raw", "yes")]),
            AuditError::InvalidOption { .. }
        ));
        assert!(matches!(
            err(&[("file_path", "/a"), ("prefix", "P")]),
            AuditError::PrefixNotAllowed { .. }
        ));
        assert!(
            parse_options("f/", &config(&[("file_path", "/a"), ("prefix", "P")]), true).is_ok()
        );
        let mut syslog = config(&[]);
        syslog.kind = "syslog".into();
        assert!(matches!(
            parse_options("f/", &syslog, false),
            Err(AuditError::UnsupportedType { .. })
        ));
    }

    #[test]
    fn files_get_the_configured_mode_and_missing_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/deeper/audit.log");
        let f = open_append(&file, 0o640).unwrap();
        drop(f);
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        let dmeta = std::fs::metadata(file.parent().unwrap()).unwrap();
        assert_eq!(dmeta.permissions().mode() & 0o777, DIR_MODE);

        // an existing file is brought to the configured mode ...
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        drop(open_append(&file, 0o600).unwrap());
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        // ... unless the mode is 0000
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        drop(open_append(&file, 0).unwrap());
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    }
}
