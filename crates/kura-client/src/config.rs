//! Client configuration and the environment variables it is read from.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ClientError;

/// Address used when no address is configured, as `bao` does.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// Reads `KURA_<name>`, then `BAO_<name>`, then `VAULT_<name>`; empty values count as unset.
pub fn read_env(name: &str) -> Option<String> {
    ["KURA_", "BAO_", "VAULT_"].iter().find_map(|prefix| {
        std::env::var(format!("{prefix}{name}"))
            .ok()
            .filter(|v| !v.is_empty())
    })
}

/// Which variable [`read_env`] took the value from (for error messages).
fn env_source(name: &str) -> String {
    ["KURA_", "BAO_", "VAULT_"]
        .iter()
        .map(|p| format!("{p}{name}"))
        .find(|v| std::env::var(v).is_ok_and(|x| !x.is_empty()))
        .unwrap_or_else(|| format!("VAULT_{name}"))
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The token file `bao login` writes: `~/.vault-token`.
pub fn default_token_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".vault-token"))
}

/// Everything needed to talk to a server. Its `Debug` output leaves the token out.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server address, e.g. `https://127.0.0.1:8200`.
    pub address: String,
    /// Token sent in `X-Vault-Token`.
    pub token: Option<String>,
    /// Namespace sent in `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// PEM file with the CA certificate(s) to trust.
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA certificates to trust.
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate for TLS client authentication.
    pub client_cert: Option<PathBuf>,
    /// PEM private key matching `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Name to verify the server certificate against (SNI), instead of the address host.
    pub tls_server_name: Option<String>,
    /// Accept any server certificate. Dangerous; for tests and bootstrapping only.
    pub skip_verify: bool,
    /// Overall timeout of one request, answer included.
    pub timeout: Duration,
    /// Do not follow a redirect (307) to the active node.
    pub disable_redirects: bool,
    /// Extra headers sent with every request.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("ca_cert", &self.ca_cert)
            .field("ca_path", &self.ca_path)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("tls_server_name", &self.tls_server_name)
            .field("skip_verify", &self.skip_verify)
            .field("timeout", &self.timeout)
            .field("disable_redirects", &self.disable_redirects)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            address: DEFAULT_ADDRESS.to_string(),
            token: None,
            namespace: None,
            ca_cert: None,
            ca_path: None,
            client_cert: None,
            client_key: None,
            tls_server_name: None,
            skip_verify: false,
            timeout: Duration::from_secs(60),
            disable_redirects: false,
            headers: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// Reads the configuration from the environment, like `bao` does:
    /// `*_ADDR`, `*_TOKEN` (falling back to `~/.vault-token`), `*_CACERT`, `*_CAPATH`,
    /// `*_CLIENT_CERT`, `*_CLIENT_KEY`, `*_TLS_SERVER_NAME`, `*_SKIP_VERIFY`, `*_NAMESPACE`,
    /// `*_CLIENT_TIMEOUT` and `*_DISABLE_REDIRECTS`, each looked up with the prefixes
    /// `KURA_`, `BAO_`, `VAULT_` in that order.
    pub fn from_env() -> Result<Self, ClientError> {
        let mut c = ClientConfig::default();
        if let Some(a) = read_env("ADDR") {
            c.address = a;
        }
        c.token = read_env("TOKEN").or_else(|| read_token_file().ok().flatten());
        c.namespace = read_env("NAMESPACE");
        c.ca_cert = read_env("CACERT").map(PathBuf::from);
        c.ca_path = read_env("CAPATH").map(PathBuf::from);
        c.client_cert = read_env("CLIENT_CERT").map(PathBuf::from);
        c.client_key = read_env("CLIENT_KEY").map(PathBuf::from);
        c.tls_server_name = read_env("TLS_SERVER_NAME");
        if let Some(v) = read_env("SKIP_VERIFY") {
            c.skip_verify = parse_go_bool(&v).ok_or_else(|| ClientError::InvalidEnv {
                var: env_source("SKIP_VERIFY"),
                value: v.clone(),
            })?;
        }
        if let Some(v) = read_env("DISABLE_REDIRECTS") {
            c.disable_redirects = parse_go_bool(&v).ok_or_else(|| ClientError::InvalidEnv {
                var: env_source("DISABLE_REDIRECTS"),
                value: v.clone(),
            })?;
        }
        if let Some(v) = read_env("CLIENT_TIMEOUT") {
            let secs = parse_timeout(&v).ok_or_else(|| ClientError::InvalidEnv {
                var: env_source("CLIENT_TIMEOUT"),
                value: v.clone(),
            })?;
            c.timeout = secs;
        }
        Ok(c)
    }
}

/// Reads the token stored by `login` in `~/.vault-token`; `Ok(None)` when there is none.
pub(crate) fn read_token_file() -> Result<Option<String>, ClientError> {
    let Some(path) = default_token_file() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let t = s.trim().to_string();
            Ok((!t.is_empty()).then_some(t))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ClientError::Io { path, source }),
    }
}

/// Accepts whole seconds ("30") or a simple Go-style duration ("30s", "2m", "1h").
fn parse_timeout(s: &str) -> Option<Duration> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        return None;
    };
    let v: f64 = num.parse().ok()?;
    (v >= 0.0).then(|| Duration::from_secs_f64(v * mult))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool() {
        assert_eq!(parse_go_bool("true"), Some(true));
        assert_eq!(parse_go_bool("1"), Some(true));
        assert_eq!(parse_go_bool("F"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_timeout("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("soon"), None);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let c = ClientConfig {
            token: Some("s.supersecret".into()),
            headers: vec![("X-Custom".into(), "hidden-value".into())],
            ..ClientConfig::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("supersecret"), "{d}");
        assert!(!d.contains("hidden-value"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
    }

    #[test]
    fn default_address_like_bao() {
        assert_eq!(ClientConfig::default().address, "https://127.0.0.1:8200");
    }
}

#[cfg(test)]
mod env_tests {
    use super::read_env;

    #[test]
    fn prefix_precedence_kura_then_bao_then_vault() {
        // A variable name no other test uses, so parallel tests cannot race on it.
        std::env::set_var("VAULT_KURATEST_PREC", "vault");
        assert_eq!(read_env("KURATEST_PREC").as_deref(), Some("vault"));
        std::env::set_var("BAO_KURATEST_PREC", "bao");
        assert_eq!(read_env("KURATEST_PREC").as_deref(), Some("bao"));
        std::env::set_var("KURA_KURATEST_PREC", "");
        assert_eq!(read_env("KURATEST_PREC").as_deref(), Some("bao"));
        std::env::set_var("KURA_KURATEST_PREC", "kura");
        assert_eq!(read_env("KURATEST_PREC").as_deref(), Some("kura"));
    }
}
