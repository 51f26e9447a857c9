//! The invalidation manager: how a read-serving standby keeps up with writes made on the active
//! node.
//!
//! The storage reports every key it applies, in commit order, with its index (raft: the log
//! index; see [`kura_storage::WriteNotifier`]). The manager queues the keys in a fair-share
//! queue keyed by namespace — one namespace with a flood of writes cannot starve the others,
//! and order is kept within each — and hands each key to its owner, found by the longest
//! storage prefix:
//!
//! - the core owns the mount and auth tables (the router is rebuilt: backends start, stop or
//!   are retuned), policies, tokens, the keyring (reloaded; a keyring that no longer opens
//!   seals the node), and the leader entries;
//! - each mount's backend owns its prefix and gets [`LogicalBackend::invalidate`] with the key
//!   relative to it, bounded by [`ENGINE_DEADLINE`].
//!
//! Only once every key of a batch has been handed over does the manager publish the batch's
//! index as *invalidated*: a request that brings `X-Vault-Index` waits for that index, so it
//! never reads anything older than what its client has seen.
//!
//! [`LogicalBackend::invalidate`]: kura_logical::LogicalBackend::invalidate

use std::collections::{HashMap, VecDeque};
use std::sync::Weak;
use std::time::Duration;

use kura_barrier::{KEYRING_PATH, ROOT_KEY_PATH, UPGRADE_PREFIX};
use tokio::sync::broadcast;

use crate::core::Core;
use crate::ha::HaState;
use crate::mounts::{AUTH_TABLE_KEY, MOUNT_TABLE_KEY};

/// How long an engine's `invalidate` may take before the manager moves on.
pub const ENGINE_DEADLINE: Duration = Duration::from_secs(2);

/// The namespace a storage key belongs to: keys under `namespaces/<id>/` belong to that
/// namespace, everything else to the root namespace.
pub fn namespace_of(key: &str) -> &str {
    key.strip_prefix("namespaces/")
        .and_then(|rest| rest.split('/').next())
        .filter(|id| !id.is_empty())
        .unwrap_or("")
}

/// A fair-share queue of keys: one FIFO per namespace, served round-robin, so a namespace with
/// many pending keys gets one turn per round like every other.
#[derive(Debug, Default)]
pub struct FairQueue {
    queues: HashMap<String, VecDeque<String>>,
    /// Namespaces with pending keys, in service order.
    ring: VecDeque<String>,
}

impl FairQueue {
    /// Queues `key` behind the earlier keys of its namespace.
    pub fn push(&mut self, key: String) {
        let ns = namespace_of(&key).to_string();
        let queue = self.queues.entry(ns.clone()).or_default();
        if queue.is_empty() {
            self.ring.push_back(ns);
        }
        queue.push_back(key);
    }

    /// The next key: the oldest of the namespace whose turn it is.
    pub fn pop(&mut self) -> Option<String> {
        let ns = self.ring.pop_front()?;
        let queue = self.queues.get_mut(&ns)?;
        let key = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&ns);
        } else {
            self.ring.push_back(ns);
        }
        key
    }

    /// Keys waiting.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// Who owns a storage key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Owner<'a> {
    /// The mount or auth table.
    MountTables,
    /// The barrier keyring (or what a root rekey leaves behind).
    Keyring,
    /// A policy, by name.
    Policy(&'a str),
    /// A token entry, by hash.
    Token(&'a str),
    /// An active node's advertisement.
    Leader,
    /// A mount's storage: its prefix and the key relative to it.
    Mount(&'a str, &'a str),
    /// Nobody on a standby (leases, audit hashes, ...).
    Nobody,
}

/// Finds the owner of `key`.
pub(crate) fn owner_of(key: &str) -> Owner<'_> {
    if key == MOUNT_TABLE_KEY || key == AUTH_TABLE_KEY {
        return Owner::MountTables;
    }
    if key == KEYRING_PATH || key == ROOT_KEY_PATH || key.starts_with(UPGRADE_PREFIX) {
        return Owner::Keyring;
    }
    if key.starts_with(crate::cluster::LEADER_PREFIX) {
        return Owner::Leader;
    }
    if let Some(name) = key.strip_prefix("sys/policy/") {
        return Owner::Policy(name);
    }
    if let Some(hash) = key.strip_prefix("sys/token/id/") {
        return Owner::Token(hash);
    }
    for top in ["logical/", "auth/"] {
        if let Some(rest) = key.strip_prefix(top) {
            if let Some((uuid, relative)) = rest.split_once('/') {
                let prefix_len = top.len() + uuid.len() + 1;
                return Owner::Mount(&key[..prefix_len], relative);
            }
        }
    }
    // The token store's other keys (accessors, roles, parents) are read from storage.
    Owner::Nobody
}

/// The running manager.
pub(crate) struct InvalidationTask {
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for InvalidationTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Core {
    /// Starts following the storage's writes (unsealed, with an HA lock and a write notifier).
    pub(crate) fn start_invalidation(&self) {
        let Some(notifier) = self.physical.write_notifier() else {
            return;
        };
        let rx = notifier.subscribe();
        self.invalidated.send_replace(self.applied_index());
        let handle = tokio::spawn(run(self.self_ref.clone(), rx));
        *self.invalidation.lock().expect("invalidation lock") = Some(InvalidationTask { handle });
    }

    /// Stops following writes (on seal).
    pub(crate) fn stop_invalidation(&self) {
        self.invalidation.lock().expect("invalidation lock").take();
    }

    /// The highest storage index whose writes this node has fully taken in: on the active
    /// node the applied index, on a standby the index up to which caches are invalidated.
    pub fn consistent_index(&self) -> u64 {
        if self.current_state().is_standby() {
            *self.invalidated.borrow()
        } else {
            // Every write this node acknowledged is at or below the storage's own index.
            self.physical.indexed().map_or(0, |i| i.storage_index())
        }
    }

    /// Waits (at most `timeout`) until this node has taken in every write up to `index`;
    /// false if it has not by then.
    pub async fn wait_consistent(&self, index: u64, timeout: Duration) -> bool {
        if self.consistent_index() >= index {
            return true;
        }
        let mut rx = self.invalidated.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|i| *i >= index)).await;
        matches!(reached, Ok(Ok(_))) || self.consistent_index() >= index
    }

    /// Hands one key to its owner (read-serving standby only).
    async fn invalidate_key(&self, key: &str) {
        let Some(rt) = self.runtime() else {
            return;
        };
        match owner_of(key) {
            Owner::MountTables => {
                if let Err(e) = self.reload_mounts_on_standby(&rt).await {
                    tracing::error!(error = %e, "reloading the mount tables on a standby failed");
                }
            }
            Owner::Keyring => {
                if let Err(e) = self.barrier.reload_keyring().await {
                    tracing::error!(error = %e, "the keyring no longer opens: sealing this standby");
                    if let Some(core) = self.self_ref.upgrade() {
                        tokio::spawn(async move {
                            let _ = core.seal().await;
                        });
                    }
                }
            }
            Owner::Policy(name) => rt.policies.invalidate(name),
            Owner::Token(hash) => rt.tokens.invalidate(hash),
            Owner::Leader => {
                *self.leader_cache.lock().expect("leader cache lock") = None;
            }
            Owner::Mount(prefix, relative) => {
                let router = rt.router();
                let mounted = router
                    .all()
                    .iter()
                    .find(|m| m.entry.storage_prefix() == prefix)
                    .cloned();
                if let Some(m) = mounted {
                    if tokio::time::timeout(ENGINE_DEADLINE, m.backend.invalidate(relative))
                        .await
                        .is_err()
                    {
                        tracing::warn!(mount = %m.entry.path, key = %relative, "an engine's invalidation ran past its deadline");
                    }
                }
            }
            Owner::Nobody => {}
        }
    }

    /// Everything may have changed (the notifications were lost): rebuild the standby's state.
    async fn invalidate_everything(&self) {
        if self.current_state() != HaState::ReadServingStandby {
            return;
        }
        let _state = self.state_lock.lock().await;
        if self.current_state() != HaState::ReadServingStandby {
            return;
        }
        tracing::warn!("write notifications were lost: rebuilding the standby's state");
        if let Err(e) = self.barrier.reload_keyring().await {
            tracing::error!(error = %e, "reloading the keyring failed");
        }
        self.drop_runtime().await;
        self.serve_standby_reads().await;
    }
}

async fn run(core: Weak<Core>, mut rx: broadcast::Receiver<kura_storage::WriteBatch>) {
    let mut queue = FairQueue::default();
    loop {
        let msg = rx.recv().await;
        let Some(core) = core.upgrade() else { return };
        let (index, reset) = match msg {
            Ok(batch) => {
                if core.current_state() == HaState::ReadServingStandby {
                    for key in batch.keys {
                        queue.push(key);
                    }
                }
                (batch.index, batch.reset)
            }
            Err(broadcast::error::RecvError::Lagged(_)) => (core.applied_index(), true),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if reset {
            while queue.pop().is_some() {}
            core.invalidate_everything().await;
        }
        while let Some(key) = queue.pop() {
            core.invalidate_key(&key).await;
        }
        core.invalidated.send_if_modified(|cur| {
            if index > *cur {
                *cur = index;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_queue_serves_namespaces_in_turn_and_keeps_order_within_one() {
        let mut q = FairQueue::default();
        for i in 0..5 {
            q.push(format!("namespaces/noisy/k{i}"));
        }
        q.push("logical/abc/quiet".into());
        q.push("namespaces/other/x".into());
        assert_eq!(q.len(), 7);
        let order: Vec<String> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            vec![
                "namespaces/noisy/k0",
                "logical/abc/quiet",
                "namespaces/other/x",
                "namespaces/noisy/k1",
                "namespaces/noisy/k2",
                "namespaces/noisy/k3",
                "namespaces/noisy/k4",
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn owners_by_longest_prefix() {
        assert_eq!(owner_of("core/mounts"), Owner::MountTables);
        assert_eq!(owner_of("core/auth"), Owner::MountTables);
        assert_eq!(owner_of("core/keyring"), Owner::Keyring);
        assert_eq!(owner_of("core/upgrade/3"), Owner::Keyring);
        assert_eq!(owner_of("sys/policy/dev"), Owner::Policy("dev"));
        assert_eq!(owner_of("sys/token/id/abc"), Owner::Token("abc"));
        assert_eq!(owner_of("sys/token/accessor/abc"), Owner::Nobody);
        assert_eq!(
            owner_of("logical/1234/data/app"),
            Owner::Mount("logical/1234/", "data/app")
        );
        assert_eq!(
            owner_of("auth/99/role/x"),
            Owner::Mount("auth/99/", "role/x")
        );
        assert_eq!(owner_of("sys/expire/id/x"), Owner::Nobody);
        assert_eq!(namespace_of("namespaces/ns1/logical/x"), "ns1");
        assert_eq!(namespace_of("logical/x"), "");
    }
}
