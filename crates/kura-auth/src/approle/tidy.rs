//! `tidy/secret-id`: removes expired secret IDs, secret IDs whose accessor is gone and accessor
//! entries whose secret ID is gone.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kura_logical::{Response, Result, StorageExt};
use kura_storage::TxnOp;

use super::secret_id::{accessor_key, AccessorEntry, SecretIdEntry};
use super::Inner;
use crate::util::now_nanos;

/// What one tidy pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TidyReport {
    /// Secret IDs examined.
    pub checked: usize,
    /// Expired secret IDs removed (with their accessors).
    pub expired: usize,
    /// Secret IDs removed because their accessor entry was missing.
    pub dangling_secret_ids: usize,
    /// Accessor entries removed because their secret ID was missing.
    pub dangling_accessors: usize,
}

/// Prefix pairs (secret IDs, accessors): global and cluster-local.
const PREFIXES: [(&str, &str); 2] = [
    ("secret_id/", "accessor/"),
    ("secret_id_local/", "accessor_local/"),
];

/// Starts a tidy in the background, as OpenBao does: 202 with a warning, or a warning that one
/// is already running.
pub(crate) fn start(inner: &Arc<Inner>) -> Response {
    if inner
        .tidy_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Response::default().warn("Tidy operation already in progress.");
    }
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        match tidy(&inner).await {
            Ok(r) => tracing::debug!(
                checked = r.checked,
                expired = r.expired,
                dangling_secret_ids = r.dangling_secret_ids,
                dangling_accessors = r.dangling_accessors,
                "approle: tidy of secret IDs done"
            ),
            Err(e) => tracing::warn!(error = %e, "approle: tidy of secret IDs failed"),
        }
        inner.tidy_running.store(false, Ordering::Release);
    });
    let mut resp = Response::default().warn(
        "Tidy operation successfully started. Any information from the operation will be printed to OpenBao's server logs.",
    );
    resp.status = Some(202);
    resp
}

/// Runs a tidy unless one is already running (`None` then).
pub(crate) async fn run_guarded(inner: &Inner) -> Result<Option<TidyReport>> {
    if inner
        .tidy_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Ok(None);
    }
    let r = tidy(inner).await;
    inner.tidy_running.store(false, Ordering::Release);
    r.map(Some)
}

/// One tidy pass over both prefix pairs.
pub(crate) async fn tidy(inner: &Inner) -> Result<TidyReport> {
    let mut report = TidyReport::default();
    let Some(key) = inner.salt(false).await? else {
        return Ok(report);
    };
    let now = now_nanos();
    for (secret_prefix, accessor_prefix) in PREFIXES {
        let mut live_accessors = HashSet::new();
        for role_dir in inner.storage.list(secret_prefix).await? {
            if !role_dir.ends_with('/') {
                continue;
            }
            let dir = format!("{secret_prefix}{role_dir}");
            for h in inner.storage.list(&dir).await? {
                if h.ends_with('/') {
                    continue;
                }
                report.checked += 1;
                let ekey = format!("{dir}{h}");
                let _guard = inner.secret_locks.lock(&h).await;
                let Some(entry) = inner.storage.get_json::<SecretIdEntry>(&ekey).await? else {
                    continue;
                };
                let akey = accessor_key(&key, accessor_prefix, &entry.secret_id_accessor)?;
                if inner.storage.get(&akey).await?.is_none() {
                    inner.storage.delete(&ekey).await?;
                    report.dangling_secret_ids += 1;
                } else if entry.expired(now) {
                    inner
                        .storage
                        .transaction(vec![
                            TxnOp::Delete { key: akey },
                            TxnOp::Delete { key: ekey },
                        ])
                        .await?;
                    report.expired += 1;
                } else {
                    live_accessors.insert(akey);
                }
            }
        }
        for a in inner.storage.list(accessor_prefix).await? {
            if a.ends_with('/') {
                continue;
            }
            let akey = format!("{accessor_prefix}{a}");
            if live_accessors.contains(&akey) {
                continue;
            }
            let Some(acc) = inner.storage.get_json::<AccessorEntry>(&akey).await? else {
                continue;
            };
            let _guard = inner.secret_locks.lock(&acc.secret_id_hmac).await;
            let ekey = format!(
                "{secret_prefix}{}/{}",
                acc.role_name_hmac, acc.secret_id_hmac
            );
            if inner.storage.get(&ekey).await?.is_none() {
                inner.storage.delete(&akey).await?;
                report.dangling_accessors += 1;
            }
        }
    }
    Ok(report)
}
