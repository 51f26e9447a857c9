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
