//! Typed errors of the logical layer, mapped to HTTP status codes by the listener.

use kura_storage::StorageError;

/// An error from a backend or the core pipeline. Callers decide by variant, never by text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogicalError {
    /// Nothing at this path (404 with an empty error list).
    #[error("not found")]
    NotFound,
    /// Bad input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or insufficient token (403).
    #[error("permission denied")]
    PermissionDenied,
    /// No handler for this path (404 "unsupported path").
    #[error("unsupported path")]
    UnsupportedPath,
    /// The path exists but not for this operation (405).
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// The barrier is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// A storage error; `ReadOnly` means "forward this request to the active node".
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// An error with an explicit HTTP status and message.
    #[error("{message}")]
    Coded {
        /// HTTP status code.
        status: u16,
        /// Message placed in `errors`.
        message: String,
    },
    /// An internal failure (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl LogicalError {
    /// Shorthand for a 400 error.
    pub fn bad(msg: impl Into<String>) -> Self {
        LogicalError::BadRequest(msg.into())
    }

    /// True if this error means "this node may not write; forward to the active node".
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            LogicalError::Storage(StorageError::ReadOnly)
                | LogicalError::Storage(StorageError::NotLeader)
        )
    }

    /// The HTTP status code this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            LogicalError::NotFound | LogicalError::UnsupportedPath => 404,
            LogicalError::BadRequest(_) => 400,
            LogicalError::PermissionDenied => 403,
            LogicalError::UnsupportedOperation => 405,
            LogicalError::Sealed => 503,
            LogicalError::Storage(StorageError::ReadOnly | StorageError::NotLeader) => 503,
            LogicalError::Storage(StorageError::InvalidKey(_)) => 400,
            LogicalError::Storage(StorageError::ValueTooLarge { .. }) => 413,
            LogicalError::Storage(StorageError::Unavailable(_)) => 503,
            LogicalError::Storage(_) => 500,
            LogicalError::Coded { status, .. } => *status,
            LogicalError::Internal(_) => 500,
        }
    }

    /// The messages for the `errors` array (empty for a plain 404).
    pub fn messages(&self) -> Vec<String> {
        match self {
            LogicalError::NotFound => Vec::new(),
            LogicalError::Internal(_) => vec!["internal error".to_string()],
            other => vec![other.to_string()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_status_codes() {
        assert_eq!(LogicalError::NotFound.status(), 404);
        assert!(LogicalError::NotFound.messages().is_empty());
        assert_eq!(LogicalError::bad("x").status(), 400);
        assert_eq!(LogicalError::PermissionDenied.status(), 403);
        assert_eq!(LogicalError::Sealed.status(), 503);
        assert!(LogicalError::Storage(StorageError::ReadOnly).is_read_only());
        assert!(!LogicalError::bad("read-only").is_read_only());
        assert_eq!(
            LogicalError::Internal("secret detail".into()).messages(),
            vec!["internal error"]
        );
    }
}
