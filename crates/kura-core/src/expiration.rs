//! Token expiry: revokes tokens when their TTL runs out, on the active node. Expired tokens are
//! already refused at lookup; this task removes them (and their children) from storage on time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kura_logical::Result;
use tokio::sync::Notify;

use crate::token::TokenStore;
use crate::util::unix_now;

/// The expiration manager for tokens.
pub struct Expiration {
    queue: Mutex<BinaryHeap<Reverse<(i64, String)>>>,
    wake: Notify,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Expiration {
    /// Loads every expiring token and starts the revocation task.
    pub async fn start(tokens: Arc<TokenStore>) -> Result<Arc<Self>> {
        let mut heap = BinaryHeap::new();
        for (hash, at) in tokens.all_expiring().await? {
            heap.push(Reverse((at, hash)));
        }
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let exp = Arc::new(Expiration {
            queue: Mutex::new(heap),
            wake: Notify::new(),
            stop,
        });
        tokio::spawn(run(Arc::downgrade(&exp), tokens, stop_rx));
        Ok(exp)
    }

    /// Tracks a newly issued or renewed token expiring `ttl_secs` from now (0 = never).
    pub fn track_token(&self, hash: &str, ttl_secs: u64) {
        if ttl_secs == 0 {
            return;
        }
        let at = unix_now() + ttl_secs as i64;
        self.queue
            .lock()
            .expect("expiration lock")
            .push(Reverse((at, hash.to_string())));
        self.wake.notify_one();
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

    fn pop_due(&self, now: i64) -> Vec<String> {
        let mut q = self.queue.lock().expect("expiration lock");
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = q.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, hash))) = q.pop() {
                due.push(hash);
            }
        }
        due
    }
}

async fn run(
    exp: std::sync::Weak<Expiration>,
    tokens: Arc<TokenStore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Some(e) = exp.upgrade() else { return };
        if *stop.borrow() {
            return;
        }
        let now = unix_now();
        for hash in e.pop_due(now) {
            // Renewed tokens have a later expiry in storage: re-read before revoking.
            match tokens.lookup_hash(&hash).await {
                Ok(Some(_)) => {} // still valid (renewed); a later queue entry covers it
                Ok(None) => {
                    if let Err(err) = tokens.revoke_tree(&hash).await {
                        tracing::warn!(error = %err, "revoking an expired token failed; will retry");
                        e.queue
                            .lock()
                            .expect("expiration lock")
                            .push(Reverse((now + 5, hash)));
                    }
                }
                Err(err) => tracing::warn!(error = %err, "looking up an expiring token failed"),
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
