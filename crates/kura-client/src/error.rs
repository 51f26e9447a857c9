//! Typed errors of the client.

use std::path::PathBuf;

/// An error answer from the server: a status code of 400 or more.
///
/// Its `Display` matches the text the Go API client (and so `bao`) prints, so CLI output
/// built on it reads the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP method of the request (`GET`, `PUT`, `LIST`, ...).
    pub method: String,
    /// Full URL of the request, query string included.
    pub url: String,
    /// HTTP status code of the answer.
    pub status: u16,
    /// The `errors` array of the JSON body, or the raw body when it was not JSON.
    pub errors: Vec<String>,
    /// True when the body could not be decoded as `{"errors": [...]}`.
    pub raw: bool,
    /// Namespace reported by the server in `X-Vault-Namespace`, if any.
    pub namespace: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.raw { "Raw Message" } else { "Errors" };
        write!(f, "Error making API request.\n\n")?;
        if let Some(ns) = self.namespace.as_deref() {
            if !ns.is_empty() && ns != "root/" {
                writeln!(f, "Namespace: {ns}")?;
            }
        }
        write!(
            f,
            "URL: {} {}\nCode: {}. {}:\n\n",
            self.method, self.url, self.status, kind
        )?;
        if self.raw && self.errors.len() == 1 {
            f.write_str(&self.errors[0])
        } else {
            for e in &self.errors {
                write!(f, "* {e}")?;
            }
            Ok(())
        }
    }
}

impl std::error::Error for ApiError {}

/// Everything that can go wrong while configuring the client or sending a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is not a usable `http://` or `https://` URL.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An environment variable holds a value that cannot be parsed.
    #[error("could not parse {var}: invalid value {value:?}")]
    InvalidEnv {
        /// Name of the variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// A header name or value given by the caller is not valid HTTP.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// A local file (CA certificate, client key, token file) could not be read.
    #[error("error reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("no usable {what} found in {}", path.display())]
    Pem {
        /// What was looked for ("certificate", "private key").
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the TLS configuration.
    #[error("failed to set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The request could not be sent or its answer could not be read
    /// (connection refused, TLS handshake failure, reset, ...).
    #[error("{method} \"{url}\": {message}")]
    Transport {
        /// Method in Go's spelling (`Get`, `Put`, ...), as Go's `url.Error` prints it.
        method: String,
        /// Full URL.
        url: String,
        /// The transport error, flattened to text (with its sources).
        message: String,
    },
    /// No complete answer arrived within the configured timeout.
    #[error("{method} \"{url}\": request timed out after {secs}s")]
    Timeout {
        /// Method in Go's spelling.
        method: String,
        /// Full URL.
        url: String,
        /// The timeout in seconds.
        secs: u64,
    },
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server answered with a success status but a body that is not the JSON expected.
    #[error("failed to decode response: {0}")]
    Decode(#[from] serde_json::Error),
}

impl ClientError {
    /// The HTTP status when the server answered with an error, `None` otherwise.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_display_matches_go_client() {
        let e = ApiError {
            method: "GET".into(),
            url: "http://127.0.0.1:8200/v1/secret/data/foo".into(),
            status: 403,
            errors: vec!["permission denied".into()],
            raw: false,
            namespace: None,
        };
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET http://127.0.0.1:8200/v1/secret/data/foo\nCode: 403. Errors:\n\n* permission denied"
        );
    }

    #[test]
    fn api_error_raw_and_namespace() {
        let e = ApiError {
            method: "PUT".into(),
            url: "http://x/v1/a".into(),
            status: 500,
            errors: vec!["<html>".into()],
            raw: true,
            namespace: Some("team/".into()),
        };
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nNamespace: team/\nURL: PUT http://x/v1/a\nCode: 500. Raw Message:\n\n<html>"
        );
        let root = ApiError {
            namespace: Some("root/".into()),
            ..e
        };
        assert!(!root.to_string().contains("Namespace:"));
    }
}
