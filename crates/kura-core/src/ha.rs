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
    handle: tokio::task::JoinHandle<()>,
}

impl Core {
    /// Goes standby, starts the HA task and waits (bounded) until the node is active or knows
    /// the active node.
    pub(crate) async fn start_ha(&self, lock: Arc<dyn HaLock>) -> Result<()> {
        // A standby needs the cluster identity to take part in raft and to forward.
        self.install_stored_identity().await?;
        self.standby
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.ha.send_replace(HaState::Standby);
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(ha_loop(self.self_ref.clone(), lock, stop_rx));
        if let Some(old) = self
            .ha_task
            .lock()
            .expect("ha task lock")
            .replace(HaTask { stop, handle })
        {
            let _ = old.stop.send(true);
            old.handle.abort();
        }
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if self.current_state() == HaState::Active
                || self.leader_advertisement().await.is_some()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tracing::warn!("unsealed as a standby, but no active node is known yet");
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
    async fn advertise(&self) -> Result<()> {
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
            let activated = match c.advertise().await {
                Ok(()) => c.activate().await,
                Err(e) => Err(e),
            };
            if let Err(e) = activated {
                tracing::error!(error = %e, "becoming active failed; stepping back");
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
        tokio::select! {
            _ = wait_lost(&mut lost) => {}
            _ = stop.changed() => return,
        }
        let Some(c) = core.upgrade() else { return };
        let _state = c.state_lock.lock().await;
        tracing::warn!("leadership lost: this node is now a standby");
        c.deactivate().await;
    }
}
