//! The HA state machine: one explicit enum, owned by one task, observed through a watch channel.

/// Where this node stands. Transitions are made only by the core's HA task (and seal/unseal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaState {
    /// Sealed (or not initialised): only seal endpoints work.
    Sealed,
    /// Unsealed, not the active node, not serving reads (forwards everything).
    Standby,
    /// Unsealed, not the active node, serving reads from local storage.
    ReadServingStandby,
    /// Unsealed and holding the HA lock (or running without HA): serves everything.
    Active,
}

impl HaState {
    /// True for both standby flavours.
    pub fn is_standby(self) -> bool {
        matches!(self, HaState::Standby | HaState::ReadServingStandby)
    }
}

use std::sync::Arc;
use std::time::Duration;

use kura_logical::{LogicalError, Result, Storage, StorageExt};
use kura_storage::HaLock;
use tokio::sync::watch;

use crate::cluster::{LeaderAdvertisement, IDENTITY_KEY, LEADER_PREFIX};
use crate::core::Core;
use crate::view::BarrierView;

/// How long an unseal waits for the node to settle as active or as a standby that knows the
/// active node, so that a node reporting itself unsealed can route every request.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed attempt to take the lock or to activate.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The running HA task: the only place that moves a node between standby and active.
pub(crate) struct HaTask {
    stop: watch::Sender<bool>,
    /// Asks the task to give the lock up (`sys/step-down`).
    step_down: Arc<tokio::sync::Notify>,
    handle: tokio::task::JoinHandle<()>,
}

/// After a step-down, how long a node leaves the lock to the others before it tries again.
const STEP_DOWN_HOLD_OFF: Duration = Duration::from_secs(10);

impl Core {
    /// Goes standby and starts the HA task.
    pub(crate) async fn start_ha(&self, lock: Arc<dyn HaLock>) -> Result<()> {
        // A standby needs the cluster identity to take part in raft and to forward.
        self.install_stored_identity().await?;
        self.standby
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.ha.send_replace(HaState::Standby);
        self.start_invalidation();
        self.serve_standby_reads().await;
        let (stop, stop_rx) = watch::channel(false);
        let step_down = Arc::new(tokio::sync::Notify::new());
        let handle = tokio::spawn(ha_loop(
            self.self_ref.clone(),
            lock,
            stop_rx,
            step_down.clone(),
        ));
        if let Some(old) = self.ha_task.lock().expect("ha task lock").replace(HaTask {
            stop,
            step_down,
            handle,
        }) {
            let _ = old.stop.send(true);
            old.handle.abort();
        }
        Ok(())
    }

    /// After an unseal with an HA lock: waits (bounded) until the node is active or knows the
    /// active node, so that a node reporting itself unsealed can route every request.
    pub(crate) async fn settle_ha(&self) {
        if self.ha_task.lock().expect("ha task lock").is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if self.current_state() == HaState::Active
                || self.leader_advertisement().await.is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::warn!("unsealed as a standby, but no active node is known yet");
    }

    /// `sys/step-down`: the active node gives up the HA lock and stays a standby; another node
    /// becomes active. Returns once this node is no longer active (bounded). Without HA, or on
    /// a node that is not active, nothing happens.
    pub async fn step_down(&self) -> Result<()> {
        let notify = match self.ha_task.lock().expect("ha task lock").as_ref() {
            Some(task) => task.step_down.clone(),
            None => return Ok(()),
        };
        if self.current_state() != HaState::Active {
            return Ok(());
        }
        let mut state = self.ha_state();
        notify.notify_one();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            state.wait_for(|s| *s != HaState::Active),
        )
        .await;
        Ok(())
    }

    /// Stops the HA task (before sealing).
    pub(crate) async fn stop_ha(&self) {
        let task = self.ha_task.lock().expect("ha task lock").take();
        if let Some(task) = task {
            let _ = task.stop.send(true);
            let _ = task.handle.await;
        }
    }

    /// Reads the cluster identity from the barrier and hands it to the cluster plane.
    pub(crate) async fn install_stored_identity(&self) -> Result<bool> {
        let Some(plane) = self.cluster_plane() else {
            return Ok(false);
        };
        let view = BarrierView::new(self.barrier.clone(), "");
        match view.get(IDENTITY_KEY).await? {
            Some(bytes) => {
                let bytes: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(bytes);
                plane
                    .install_identity(&bytes)
                    .map_err(|e| LogicalError::Internal(e.to_string()))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// On becoming active: makes sure the cluster identity exists (generating it on the first
    /// activation of a new cluster) and advertises this node at `core/leader/<uuid>`.
    pub(crate) async fn advertise(&self) -> Result<()> {
        let view = BarrierView::new(self.barrier.clone(), "");
        if let Some(plane) = self.cluster_plane() {
            if !self.install_stored_identity().await? {
                let identity = plane
                    .generate_identity()
                    .map_err(|e| LogicalError::Internal(e.to_string()))?;
                view.put(IDENTITY_KEY, identity.to_vec()).await?;
                plane
                    .install_identity(&identity)
                    .map_err(|e| LogicalError::Internal(e.to_string()))?;
                tracing::info!("generated the cluster identity");
            }
        }
        let now = crate::util::rfc3339(std::time::SystemTime::now());
        let ad = LeaderAdvertisement {
            api_addr: self.config.api_addr.clone().unwrap_or_default(),
            cluster_addr: self.config.cluster_addr.clone().unwrap_or_default(),
            active_time: now.clone(),
        };
        view.put_json(&format!("{LEADER_PREFIX}{}", self.node_uuid), &ad)
            .await?;
        // Entries of earlier active nodes are stale now.
        for old in view.list(LEADER_PREFIX).await? {
            if old != self.node_uuid {
                let _ = view.delete(&format!("{LEADER_PREFIX}{old}")).await;
            }
        }
        *self.active_time.write().expect("active time lock") = Some(now);
        Ok(())
    }

    /// The active node's advertisement, read through the barrier; `None` when this node is
    /// the active one, when no node holds the lock, or when sealed.
    pub async fn leader_advertisement(&self) -> Option<LeaderAdvertisement> {
        let lock = self.physical.ha_lock()?;
        let holder = lock.holder().await.ok()??;
        let uuid = String::from_utf8(holder).ok()?;
        if uuid == self.node_uuid || self.barrier.is_sealed() {
            return None;
        }
        if let Some((cached, ad)) = self.leader_cache.lock().expect("leader cache").clone() {
            if cached == uuid {
                return Some(ad);
            }
        }
        let view = BarrierView::new(self.barrier.clone(), "");
        let ad: LeaderAdvertisement = view
            .get_json(&format!("{LEADER_PREFIX}{uuid}"))
            .await
            .ok()??;
        *self.leader_cache.lock().expect("leader cache") = Some((uuid, ad.clone()));
        Some(ad)
    }

    /// When this node last became active, while it is.
    pub fn active_time(&self) -> Option<String> {
        if self.current_state() != HaState::Active {
            return None;
        }
        self.active_time.read().expect("active time lock").clone()
    }
}

/// Waits until `lost` reads `true` (or its sender is gone).
async fn wait_lost(lost: &mut watch::Receiver<bool>) {
    while !*lost.borrow_and_update() {
        if lost.changed().await.is_err() {
            return;
        }
    }
}

/// The HA task: takes the lock, activates, waits for the loss of the lock, steps back to
/// standby, and again — until stopped (on seal).
async fn ha_loop(
    core: std::sync::Weak<Core>,
    lock: Arc<dyn HaLock>,
    mut stop: watch::Receiver<bool>,
    step_down: Arc<tokio::sync::Notify>,
) {
    let uuid = match core.upgrade() {
        Some(c) => c.node_uuid.clone(),
        None => return,
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let acquired = tokio::select! {
            r = lock.acquire(uuid.clone().into_bytes()) => r,
            _ = stop.changed() => return,
        };
        let guard = match acquired {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "taking the HA lock failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let Some(c) = core.upgrade() else { return };
        {
            let _state = c.state_lock.lock().await;
            if *stop.borrow() {
                return;
            }
            // Writes are this node's from now on.
            c.barrier.set_read_only(false);
            let activated = match c.advertise().await {
                Ok(()) => c.activate().await,
                Err(e) => Err(e),
            };
            if let Err(e) = activated {
                tracing::error!(error = %e, "becoming active failed; stepping back");
                c.deactivate().await;
                let _ = lock.release().await;
                drop(_state);
                drop(c);
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            tracing::info!("this node is now the active node");
        }
        drop(c);
        let mut lost = guard.lost;
        let stepping_down = tokio::select! {
            _ = wait_lost(&mut lost) => false,
            _ = step_down.notified() => true,
            _ = stop.changed() => return,
        };
        let Some(c) = core.upgrade() else { return };
        let state = c.state_lock.lock().await;
        if stepping_down {
            tracing::info!("stepping down: this node is now a standby");
        } else {
            tracing::warn!("leadership lost: this node is now a standby");
        }
        c.deactivate().await;
        drop(state);
        drop(c);
        if stepping_down {
            match lock.step_down().await {
                Ok(true) => {
                    // Leave the lock to the others for a while, unless one takes it sooner.
                    let others = async {
                        loop {
                            if let Ok(Some(h)) = lock.holder().await {
                                if h != uuid.as_bytes() {
                                    return;
                                }
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::time::timeout(STEP_DOWN_HOLD_OFF, others) => {}
                        _ = stop.changed() => return,
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "step-down: giving up the lock failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use kura_storage::{Backend, InmemBackend, LockGuard, TxnOp};

    use super::*;
    use crate::CoreConfig;

    /// An HA lock whose leadership the test hands out and takes away.
    struct TestLock {
        leader: watch::Sender<bool>,
        held: Mutex<Option<(Vec<u8>, watch::Sender<bool>)>>,
    }

    #[async_trait]
    impl HaLock for TestLock {
        async fn acquire(&self, value: Vec<u8>) -> kura_storage::Result<LockGuard> {
            let mut rx = self.leader.subscribe();
            while !*rx.borrow_and_update() {
                rx.changed().await.expect("leader channel");
            }
            let (lost, lost_rx) = watch::channel(false);
            *self.held.lock().unwrap() = Some((value, lost));
            Ok(LockGuard { lost: lost_rx })
        }
        async fn release(&self) -> kura_storage::Result<()> {
            if let Some((_, lost)) = self.held.lock().unwrap().take() {
                lost.send_replace(true);
            }
            Ok(())
        }
        async fn holder(&self) -> kura_storage::Result<Option<Vec<u8>>> {
            Ok(self.held.lock().unwrap().as_ref().map(|(v, _)| v.clone()))
        }
    }

    impl TestLock {
        /// Takes leadership away, as raft does when another node is elected.
        fn lose(&self) {
            self.leader.send_replace(false);
            if let Some((_, lost)) = self.held.lock().unwrap().take() {
                lost.send_replace(true);
            }
        }
    }

    struct HaBackend {
        inner: InmemBackend,
        lock: Arc<TestLock>,
    }

    #[async_trait]
    impl Backend for HaBackend {
        async fn get(&self, key: &str) -> kura_storage::Result<Option<Vec<u8>>> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, value: Vec<u8>) -> kura_storage::Result<()> {
            self.inner.put(key, value).await
        }
        async fn delete(&self, key: &str) -> kura_storage::Result<()> {
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> kura_storage::Result<Vec<String>> {
            self.inner.list(prefix).await
        }
        async fn transaction(&self, ops: Vec<TxnOp>) -> kura_storage::Result<()> {
            self.inner.transaction(ops).await
        }
        fn name(&self) -> &'static str {
            "test-ha"
        }
        fn ha_lock(&self) -> Option<Arc<dyn HaLock>> {
            Some(self.lock.clone())
        }
    }

    async fn wait_state(core: &Core, want: HaState) {
        let mut rx = core.ha_state();
        tokio::time::timeout(Duration::from_secs(5), async {
            while *rx.borrow_and_update() != want {
                rx.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("state did not become {want:?}"));
    }

    #[tokio::test]
    async fn leadership_changes_move_the_node_between_standby_and_active() {
        let (leader, _) = watch::channel(false);
        let lock = Arc::new(TestLock {
            leader,
            held: Mutex::new(None),
        });
        let physical = Arc::new(HaBackend {
            inner: InmemBackend::new(),
            lock: lock.clone(),
        });
        let config = CoreConfig {
            api_addr: Some("http://127.0.0.1:8200".into()),
            disable_standby_reads: true,
            ..CoreConfig::default()
        };
        let core = Core::new(config, physical, BTreeMap::new());
        let init = core.initialize(1, 1).await.unwrap();

        // Not the lock holder: unsealed, standby; no runtime, requests refused.
        let unseal = {
            let core = core.clone();
            let keys = init.keys.clone();
            tokio::spawn(async move { core.unseal_with_keys(&keys).await })
        };
        wait_state(&core, HaState::Standby).await;
        assert!(!core.is_sealed());
        assert!(core.runtime().is_none());

        // Leadership arrives: active, advertised at core/leader/<uuid>.
        lock.leader.send_replace(true);
        wait_state(&core, HaState::Active).await;
        unseal.await.unwrap().unwrap();
        assert!(core.runtime().is_some());
        let view = BarrierView::new(core.barrier.clone(), "");
        let ad: LeaderAdvertisement = view
            .get_json(&format!("{LEADER_PREFIX}{}", core.node_uuid))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ad.api_addr, "http://127.0.0.1:8200");
        assert!(core.active_time().is_some());
        // This node leads, so it knows no other active node.
        assert!(core.leader_advertisement().await.is_none());

        // Leadership lost: back to standby, runtime dropped, still unsealed.
        lock.lose();
        wait_state(&core, HaState::Standby).await;
        assert!(core.runtime().is_none());
        assert!(!core.is_sealed());

        // Another node (another UUID) takes the lock and advertises itself: the standby finds it.
        let other = LeaderAdvertisement {
            api_addr: "http://10.0.0.2:8200".into(),
            cluster_addr: "https://10.0.0.2:8201".into(),
            active_time: String::new(),
        };
        // (Written as the other node would: a standby's own barrier refuses writes.)
        assert!(view
            .put("probe", b"x".to_vec())
            .await
            .unwrap_err()
            .is_read_only());
        core.barrier.set_read_only(false);
        view.put_json(&format!("{LEADER_PREFIX}other"), &other)
            .await
            .unwrap();
        core.barrier.set_read_only(true);
        let (lost, _) = watch::channel(false);
        *lock.held.lock().unwrap() = Some((b"other".to_vec(), lost));
        assert_eq!(core.leader_advertisement().await, Some(other));
        lock.held.lock().unwrap().take();

        // Regained: active again.
        lock.leader.send_replace(true);
        wait_state(&core, HaState::Active).await;
        assert!(core.runtime().is_some());

        // Sealing stops the HA task.
        core.seal().await.unwrap();
        assert_eq!(core.current_state(), HaState::Sealed);
        assert!(core.ha_task.lock().unwrap().is_none());
    }
}
