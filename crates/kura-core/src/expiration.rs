//! The expiration task: revokes tokens and leases when their time runs out, on the active node.
//! Expired tokens are already refused at lookup; this removes them (with their children,
//! cubbyholes and leases) from storage on time. Leases are revoked through their backend.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use kura_logical::Result;
use tokio::sync::Notify;

use crate::core::Core;
use crate::leases::LeaseStore;
use crate::token::TokenStore;
use crate::util::unix_now;

/// What expires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Token(String),
    Lease(String),
}

/// The expiration manager.
pub struct Expiration {
    queue: Mutex<BinaryHeap<Reverse<(i64, Item)>>>,
    wake: Notify,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Expiration {
    /// Loads every expiring token and lease and starts the task.
    pub(crate) async fn start(
        tokens: Arc<TokenStore>,
        leases: &LeaseStore,
        core: Weak<Core>,
    ) -> Result<Arc<Self>> {
        let mut heap = BinaryHeap::new();
        for (hash, at) in tokens.all_expiring().await? {
            heap.push(Reverse((at, Item::Token(hash))));
        }
        for (id, at) in leases.all().await? {
            heap.push(Reverse((at, Item::Lease(id))));
        }
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let exp = Arc::new(Expiration {
            queue: Mutex::new(heap),
            wake: Notify::new(),
            stop,
        });
        tokio::spawn(run(Arc::downgrade(&exp), tokens, core, stop_rx));
        Ok(exp)
    }

    /// A manager with no task: a read-serving standby's (the active node revokes).
    pub(crate) fn passive() -> Arc<Self> {
        Arc::new(Expiration {
            queue: Mutex::new(BinaryHeap::new()),
            wake: Notify::new(),
            stop: tokio::sync::watch::channel(false).0,
        })
    }

    fn push(&self, at: i64, item: Item) {
        self.queue
            .lock()
            .expect("expiration lock")
            .push(Reverse((at, item)));
        self.wake.notify_one();
    }

    /// Tracks a token expiring `ttl_secs` from now (0 = never).
    pub fn track_token(&self, hash: &str, ttl_secs: u64) {
        if ttl_secs > 0 {
            self.push(unix_now() + ttl_secs as i64, Item::Token(hash.to_string()));
        }
    }

    /// Tracks a lease expiring at `at` (Unix seconds).
    pub fn track_lease(&self, id: &str, at: i64) {
        self.push(at, Item::Lease(id.to_string()));
    }

    /// Stops the task (on seal).
    pub fn stop(&self) {
        self.stop.send_replace(true);
        self.wake.notify_one();
    }

    fn next_due(&self) -> Option<i64> {
        self.queue
            .lock()
            .expect("expiration lock")
            .peek()
            .map(|Reverse((at, _))| *at)
    }

    fn pop_due(&self, now: i64) -> Vec<Item> {
        let mut q = self.queue.lock().expect("expiration lock");
        let mut due = Vec::new();
        while q.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((_, item))) = q.pop() {
                due.push(item);
            }
        }
        due
    }
}

async fn expire(item: &Item, tokens: &TokenStore, core: &Weak<Core>) -> Result<()> {
    match item {
        // Renewed tokens have a later expiry in storage: re-read before revoking.
        Item::Token(hash) => match tokens.lookup_hash(hash).await? {
            Some(_) => Ok(()),
            None => tokens.revoke_tree(hash).await,
        },
        Item::Lease(id) => match core.upgrade() {
            Some(core) => core.expire_lease(id).await,
            None => Ok(()),
        },
    }
}

async fn run(
    exp: Weak<Expiration>,
    tokens: Arc<TokenStore>,
    core: Weak<Core>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Some(e) = exp.upgrade() else { return };
        if *stop.borrow() {
            return;
        }
        let now = unix_now();
        for item in e.pop_due(now) {
            if let Err(err) = expire(&item, &tokens, &core).await {
                tracing::warn!(error = %err, "expiring {item:?} failed; will retry");
                e.push(now + 5, item);
            }
        }
        let sleep = match e.next_due() {
            Some(at) => Duration::from_secs((at - unix_now()).clamp(0, 3600) as u64)
                .max(Duration::from_millis(200)),
            None => Duration::from_secs(3600),
        };
        let wake = e.wake.notified();
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake => {}
            _ = stop.changed() => {}
        }
    }
}
