//! Raft autopilot on the active node: its configuration (`sys/storage/raft/autopilot/
//! configuration`, kept in the barrier), the health of every raft server
//! (`sys/storage/raft/autopilot/state`), server stabilisation (a node that asked to vote joins
//! as a learner and is promoted once it has been healthy for `server_stabilization_time`) and
//! dead-server cleanup (a server not heard from for `dead_server_last_contact_threshold` is
//! removed when `cleanup_dead_servers` is on and `min_quorum` allows).
//!
//! Also the standbys' heartbeats ("echoes"): each unsealed standby tells the active node who it
//! is every [`ECHO_INTERVAL`]; the active node keeps the last echo of each node for
//! [`ECHO_EXPIRY`] and lists them in `sys/ha-status` with `last_echo`. An echo also carries the
//! node's wish to vote, which is what server stabilisation promotes.
//!
//! The cluster plane supplies what it observes ([`ServerObservation`]); [`Autopilot::evaluate`]
//! turns that into the state and the membership changes to make. It is pure apart from the
//! "stable since" times it remembers, so it is tested without a cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use kura_logical::{FieldData, FieldSpec, FieldType, LogicalError, Map, Result, StorageExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::Core;
use crate::view::BarrierView;

/// Barrier key of the stored autopilot configuration.
pub const CONFIG_KEY: &str = "core/raft/autopilot/configuration";
/// How often a standby sends its echo to the active node.
pub const ECHO_INTERVAL: Duration = Duration::from_secs(1);
/// How long the active node keeps listing a node it no longer hears from: OpenBao drops a peer
/// from `sys/ha-status` 15 s after its last heartbeat (three of its 5 s intervals).
pub const ECHO_EXPIRY: Duration = Duration::from_secs(15);
/// How often the active node evaluates the cluster and acts on it.
pub const TICK: Duration = Duration::from_secs(1);

/// OpenBao's default `last_contact_threshold`.
pub const DEFAULT_LAST_CONTACT_THRESHOLD: Duration = Duration::from_secs(10);
/// OpenBao's default `dead_server_last_contact_threshold`.
pub const DEFAULT_DEAD_SERVER_LAST_CONTACT_THRESHOLD: Duration = Duration::from_secs(24 * 3600);
/// OpenBao's default `max_trailing_logs`.
pub const DEFAULT_MAX_TRAILING_LOGS: u64 = 1000;
/// OpenBao's default `server_stabilization_time`.
pub const DEFAULT_SERVER_STABILIZATION_TIME: Duration = Duration::from_secs(10);
/// The smallest `dead_server_last_contact_threshold` allowed with `cleanup_dead_servers`.
pub const MIN_DEAD_SERVER_THRESHOLD: Duration = Duration::from_secs(60);
/// The smallest `min_quorum` allowed with `cleanup_dead_servers`.
pub const MIN_QUORUM_FOR_CLEANUP: u64 = 3;

/// The autopilot configuration as stored: a field left at zero (or `None`) takes OpenBao's
/// default, as in OpenBao, where a zero value in an update means "unchanged".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfig {
    /// `cleanup_dead_servers`, once set.
    #[serde(default)]
    pub cleanup_dead_servers: Option<bool>,
    /// `last_contact_threshold` in milliseconds (0: default).
    #[serde(default)]
    pub last_contact_threshold_ms: u64,
    /// `dead_server_last_contact_threshold` in milliseconds (0: default).
    #[serde(default)]
    pub dead_server_last_contact_threshold_ms: u64,
    /// `max_trailing_logs` (0: default).
    #[serde(default)]
    pub max_trailing_logs: u64,
    /// `min_quorum`.
    #[serde(default)]
    pub min_quorum: u64,
    /// `server_stabilization_time` in milliseconds (0: default).
    #[serde(default)]
    pub server_stabilization_time_ms: u64,
}

/// The effective autopilot configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutopilotConfig {
    /// Remove dead servers automatically.
    pub cleanup_dead_servers: bool,
    /// A server not heard from for longer is unhealthy.
    pub last_contact_threshold: Duration,
    /// A server not heard from for longer is dead ("left").
    pub dead_server_last_contact_threshold: Duration,
    /// A server further behind the leader's log is unhealthy.
    pub max_trailing_logs: u64,
    /// Dead voters are removed only while at least this many voters remain.
    pub min_quorum: u64,
    /// How long a new server must stay healthy before it is promoted to voter.
    pub server_stabilization_time: Duration,
}

impl Default for AutopilotConfig {
    fn default() -> Self {
        StoredConfig::default().effective()
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn or_default(ms: u64, default: Duration) -> Duration {
    if ms == 0 {
        default
    } else {
        Duration::from_millis(ms)
    }
}

impl StoredConfig {
    /// The configuration in effect: OpenBao's defaults where nothing is set.
    pub fn effective(&self) -> AutopilotConfig {
        AutopilotConfig {
            cleanup_dead_servers: self.cleanup_dead_servers.unwrap_or(false),
            last_contact_threshold: or_default(
                self.last_contact_threshold_ms,
                DEFAULT_LAST_CONTACT_THRESHOLD,
            ),
            dead_server_last_contact_threshold: or_default(
                self.dead_server_last_contact_threshold_ms,
                DEFAULT_DEAD_SERVER_LAST_CONTACT_THRESHOLD,
            ),
            max_trailing_logs: if self.max_trailing_logs == 0 {
                DEFAULT_MAX_TRAILING_LOGS
            } else {
                self.max_trailing_logs
            },
            min_quorum: self.min_quorum,
            server_stabilization_time: or_default(
                self.server_stabilization_time_ms,
                DEFAULT_SERVER_STABILIZATION_TIME,
            ),
        }
    }

    /// Applies an update request's fields. Like OpenBao, a field that is absent or zero
    /// leaves the stored value as it is; the result is then validated as a whole.
    pub fn apply_update(&mut self, data: &Map) -> Result<()> {
        let fd = FieldData::new(data.clone(), Default::default(), update_fields());
        if let Some(b) = fd.opt_bool("cleanup_dead_servers")? {
            self.cleanup_dead_servers = Some(b);
        }
        for (name, slot) in [
            (
                "last_contact_threshold",
                &mut self.last_contact_threshold_ms,
            ),
            (
                "dead_server_last_contact_threshold",
                &mut self.dead_server_last_contact_threshold_ms,
            ),
            (
                "server_stabilization_time",
                &mut self.server_stabilization_time_ms,
            ),
        ] {
            if let Some(d) = duration_field(data, name)? {
                if !d.is_zero() {
                    *slot = ms(d).max(1);
                }
            }
        }
        for (name, slot) in [
            ("max_trailing_logs", &mut self.max_trailing_logs),
            ("min_quorum", &mut self.min_quorum),
        ] {
            if let Some(n) = uint_field(data, name)? {
                if n != 0 {
                    *slot = n;
                }
            }
        }
        self.effective().validate()
    }
}

fn update_fields() -> Vec<FieldSpec> {
    vec![
        FieldSpec::new("cleanup_dead_servers", FieldType::Bool, ""),
        FieldSpec::new("last_contact_threshold", FieldType::Duration, ""),
        FieldSpec::new(
            "dead_server_last_contact_threshold",
            FieldType::Duration,
            "",
        ),
        FieldSpec::new("max_trailing_logs", FieldType::Int, ""),
        FieldSpec::new("min_quorum", FieldType::Int, ""),
        FieldSpec::new("server_stabilization_time", FieldType::Duration, ""),
    ]
}

fn field_error(name: &str, detail: impl std::fmt::Display) -> LogicalError {
    LogicalError::bad(format!(
        "Field validation failed: error converting input for field {name:?}: {detail}"
    ))
}

/// A duration field: integer seconds or a Go duration string; negative values are refused
/// with OpenBao's message.
fn duration_field(data: &Map, name: &str) -> Result<Option<Duration>> {
    let Some(v) = data.get(name) else {
        return Ok(None);
    };
    let negative = match v {
        Value::Number(n) => n.as_f64().filter(|f| *f < 0.0).map(|f| format!("{f}")),
        Value::String(s) if s.trim().starts_with('-') => {
            let rest = s.trim().trim_start_matches('-');
            Some(match kura_config::duration::parse_duration(rest) {
                Ok(d) => format!("-{}", d.as_secs_f64()),
                Err(e) => return Err(field_error(name, e)),
            })
        }
        _ => None,
    };
    if let Some(n) = negative {
        return Err(field_error(
            name,
            format!("cannot provide negative value '{n}'"),
        ));
    }
    match v {
        Value::String(s) if !s.trim().is_empty() && s.trim().parse::<f64>().is_err() => {
            kura_config::duration::parse_duration(s.trim())
                .map(Some)
                .map_err(|e| field_error(name, e))
        }
        Value::String(s) if !s.trim().is_empty() => {
            let secs: f64 = s.trim().parse().unwrap_or(0.0);
            Ok(Some(Duration::from_secs_f64(secs)))
        }
        other => kura_logical::coerce_duration(name, other)
            .map(Some)
            .map_err(|e| field_error(name, e)),
    }
}

/// A non-negative integer field.
fn uint_field(data: &Map, name: &str) -> Result<Option<u64>> {
    let Some(v) = data.get(name) else {
        return Ok(None);
    };
    let n: i64 = match v {
        Value::Null => 0,
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| field_error(name, format!("cannot parse '{n}' as int")))?,
        Value::String(s) if s.trim().is_empty() => 0,
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| field_error(name, format!("cannot parse '{s}' as int")))?,
        Value::Bool(b) => *b as i64,
        other => return Err(field_error(name, format!("'{other}' expected type 'int'"))),
    };
    if n < 0 {
        return Err(field_error(
            name,
            format!("cannot provide negative value '{n}'"),
        ));
    }
    Ok(Some(n as u64))
}

impl AutopilotConfig {
    /// OpenBao's checks of an update: cleanup needs a `min_quorum` of at least 3 and a dead
    /// threshold of at least a minute.
    pub fn validate(&self) -> Result<()> {
        if self.cleanup_dead_servers && self.min_quorum < MIN_QUORUM_FOR_CLEANUP {
            return Err(LogicalError::bad(format!(
                "min_quorum must be set when cleanup_dead_servers is set and it should at least be 3; cleanup_dead_servers: {}, min_quorum: {:#x}",
                self.cleanup_dead_servers, self.min_quorum
            )));
        }
        if self.cleanup_dead_servers
            && self.dead_server_last_contact_threshold < MIN_DEAD_SERVER_THRESHOLD
        {
            return Err(LogicalError::bad(format!(
                "dead_server_last_contact_threshold should not be set to less than 1m; received: {}",
                self.dead_server_last_contact_threshold.as_secs_f64()
            )));
        }
        Ok(())
    }

    /// The configuration as `sys/storage/raft/autopilot/configuration` answers it.
    pub fn to_api(&self) -> Value {
        json!({
            "cleanup_dead_servers": self.cleanup_dead_servers,
            "last_contact_threshold": fmt_duration(self.last_contact_threshold),
            "dead_server_last_contact_threshold":
                fmt_duration(self.dead_server_last_contact_threshold),
            "max_trailing_logs": self.max_trailing_logs,
            "min_quorum": self.min_quorum,
            "server_stabilization_time": fmt_duration(self.server_stabilization_time),
        })
    }
}

fn fmt_duration(d: Duration) -> String {
    kura_config::duration::format_duration(d)
}

/// What the cluster plane sees of one raft server, on the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerObservation {
    /// The node's name (`node_id`).
    pub name: String,
    /// Its cluster address (`host:port`).
    pub address: String,
    /// Whether it votes now.
    pub voter: bool,
    /// Whether it is this node, the leader.
    pub leader: bool,
    /// Time since it last answered the leader (zero for the leader itself).
    pub last_contact: Duration,
    /// Term of the last log entry known to be on it.
    pub last_term: u64,
    /// Index of the last log entry known to be on it.
    pub last_index: u64,
}

/// A standby's heartbeat, sent to the active node every [`ECHO_INTERVAL`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    /// The node's raft name.
    pub node_id: String,
    /// Its API address.
    pub api_addr: String,
    /// Its cluster address.
    pub cluster_addr: String,
    /// The version it runs.
    pub version: String,
    /// Whether it wants to vote (false: `retry_join_as_non_voter` or `non_voter` join).
    pub voter: bool,
    /// Its last applied raft index.
    #[serde(default)]
    pub applied_index: u64,
}

/// The echoes the active node has received, newest per node, forgotten after
/// [`ECHO_EXPIRY`]. Bounded by the number of nodes that hold the cluster identity.
#[derive(Debug, Default)]
pub struct EchoTable {
    entries: Mutex<HashMap<String, (Echo, SystemTime)>>,
}

/// Most nodes remembered (a defence against a confused peer inventing names).
const MAX_ECHO_NODES: usize = 1024;

impl EchoTable {
    /// Records `echo`, received now.
    pub fn record(&self, echo: Echo) {
        let now = SystemTime::now();
        let mut entries = self.entries.lock().expect("echo table");
        entries.retain(|_, (_, at)| now.duration_since(*at).unwrap_or_default() < ECHO_EXPIRY);
        if entries.len() >= MAX_ECHO_NODES && !entries.contains_key(&echo.node_id) {
            return;
        }
        entries.insert(echo.node_id.clone(), (echo, now));
    }

    /// The echoes heard within [`ECHO_EXPIRY`], sorted by node name.
    pub fn fresh(&self) -> Vec<(Echo, SystemTime)> {
        let now = SystemTime::now();
        let entries = self.entries.lock().expect("echo table");
        let mut v: Vec<(Echo, SystemTime)> = entries
            .values()
            .filter(|(_, at)| now.duration_since(*at).unwrap_or_default() < ECHO_EXPIRY)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.0.node_id.cmp(&b.0.node_id));
        v
    }

    /// Whether `node_id` last said it wants to vote (`None`: not heard from lately).
    pub fn wants_vote(&self, node_id: &str) -> Option<bool> {
        self.fresh()
            .into_iter()
            .find(|(e, _)| e.node_id == node_id)
            .map(|(e, _)| e.voter)
    }
}

/// One server in the autopilot state.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    /// What was observed.
    pub obs: ServerObservation,
    /// `alive`, or `left` once not heard from for the dead-server threshold.
    pub node_status: &'static str,
    /// Healthy by the thresholds.
    pub healthy: bool,
    /// Since when its health has not changed.
    pub stable_since: SystemTime,
    /// Whether it wants to vote (`node_type`).
    pub wants_vote: bool,
    /// The version it reported.
    pub version: String,
}

/// The whole autopilot state, and what autopilot decided to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AutopilotState {
    /// Every server healthy.
    pub healthy: bool,
    /// How many voters may fail without losing quorum.
    pub failure_tolerance: u64,
    /// The leader's name.
    pub leader: String,
    /// The servers by name.
    pub servers: BTreeMap<String, ServerState>,
    /// Learners to promote to voter now (server stabilisation).
    pub promote: Vec<String>,
    /// Dead servers to remove now (dead-server cleanup).
    pub remove: Vec<String>,
}

impl AutopilotState {
    /// The state as `sys/storage/raft/autopilot/state` answers it.
    pub fn to_api(&self) -> Value {
        let mut servers = serde_json::Map::new();
        let mut voters = Vec::new();
        let mut non_voters = Vec::new();
        for (name, s) in &self.servers {
            if s.obs.voter {
                voters.push(name.clone());
            } else {
                non_voters.push(name.clone());
            }
            let status = if s.obs.leader {
                "leader"
            } else if s.obs.voter {
                "voter"
            } else {
                "non-voter"
            };
            servers.insert(
                name.clone(),
                json!({
                    "id": name,
                    "name": name,
                    "address": s.obs.address,
                    "node_status": s.node_status,
                    "last_contact": fmt_duration(s.obs.last_contact),
                    "last_term": s.obs.last_term,
                    "last_index": s.obs.last_index,
                    "healthy": s.healthy,
                    "stable_since": crate::util::rfc3339(s.stable_since),
                    "status": status,
                    "version": s.version,
                    "node_type": if s.wants_vote || s.obs.voter { "voter" } else { "non-voter" },
                }),
            );
        }
        let mut v = json!({
            "healthy": self.healthy,
            "failure_tolerance": self.failure_tolerance,
            "leader": self.leader,
            "servers": servers,
            "voters": voters,
        });
        if !non_voters.is_empty() {
            v["non_voters"] = json!(non_voters);
        }
        v
    }
}

/// Autopilot's memory: since when each server's health has been what it is.
#[derive(Debug, Default)]
pub struct Autopilot {
    stable: Mutex<HashMap<String, (bool, SystemTime)>>,
}

impl Autopilot {
    /// A fresh autopilot (nothing known yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what was remembered (on a change of leader).
    pub fn reset(&self) {
        self.stable.lock().expect("autopilot").clear();
    }

    /// Evaluates the observed servers under `cfg` at `now`: health, stability, and the
    /// promotions and removals to make. `wants_vote` and `version` give what each node said
    /// in its last echo (`None`: not heard from).
    pub fn evaluate(
        &self,
        cfg: &AutopilotConfig,
        observed: &[ServerObservation],
        echo_of: impl Fn(&str) -> Option<(bool, String)>,
        now: SystemTime,
    ) -> AutopilotState {
        let leader = observed.iter().find(|s| s.leader);
        let (leader_term, leader_index) = leader
            .map(|l| (l.last_term, l.last_index))
            .unwrap_or_default();
        let mut stable = self.stable.lock().expect("autopilot");
        stable.retain(|name, _| observed.iter().any(|s| &s.name == name));
        let mut servers = BTreeMap::new();
        for obs in observed {
            let dead = !obs.leader && obs.last_contact > cfg.dead_server_last_contact_threshold;
            let trailing = leader_index > cfg.max_trailing_logs
                && obs.last_index < leader_index - cfg.max_trailing_logs;
            let healthy = !dead
                && obs.last_contact <= cfg.last_contact_threshold
                && obs.last_term == leader_term
                && !trailing;
            let entry = stable.entry(obs.name.clone()).or_insert((healthy, now));
            if entry.0 != healthy {
                *entry = (healthy, now);
            }
            let (wants_vote, version) = match echo_of(&obs.name) {
                Some((v, version)) => (v, version),
                None if obs.leader => (true, crate::VERSION.to_string()),
                None => (obs.voter, String::new()),
            };
            servers.insert(
                obs.name.clone(),
                ServerState {
                    obs: obs.clone(),
                    node_status: if dead { "left" } else { "alive" },
                    healthy,
                    stable_since: entry.1,
                    wants_vote,
                    version,
                },
            );
        }
        drop(stable);
        let voters: Vec<&ServerState> = servers.values().filter(|s| s.obs.voter).collect();
        let healthy_voters = voters.iter().filter(|s| s.healthy).count() as u64;
        let quorum = voters.len() as u64 / 2 + 1;
        let failure_tolerance = healthy_voters.saturating_sub(quorum);
        let healthy = servers.values().all(|s| s.healthy);
        // Server stabilisation: learners that want to vote and have been healthy long enough.
        let promote = servers
            .values()
            .filter(|s| !s.obs.voter && s.wants_vote && s.healthy)
            .filter(|s| {
                now.duration_since(s.stable_since).unwrap_or_default()
                    >= cfg.server_stabilization_time
            })
            .map(|s| s.obs.name.clone())
            .collect();
        // Dead-server cleanup: every dead learner; dead voters while at least min_quorum
        // voters remain and no more than a minority is removed.
        let mut remove = Vec::new();
        if cfg.cleanup_dead_servers {
            for s in servers.values().filter(|s| s.node_status == "left") {
                if !s.obs.voter {
                    remove.push(s.obs.name.clone());
                }
            }
            let mut remaining = voters.len() as u64;
            let mut max_removal = remaining.saturating_sub(1) / 2;
            for s in voters.iter().filter(|s| s.node_status == "left") {
                if max_removal == 0 {
                    tracing::info!(node = %s.obs.name, "autopilot: not removing a dead voter: removing a majority is not safe");
                    break;
                }
                if remaining - 1 < cfg.min_quorum {
                    tracing::info!(node = %s.obs.name, min_quorum = cfg.min_quorum, "autopilot: not removing a dead voter: fewer voters than min_quorum would remain");
                    continue;
                }
                remove.push(s.obs.name.clone());
                remaining -= 1;
                max_removal -= 1;
            }
        }
        AutopilotState {
            healthy,
            failure_tolerance,
            leader: leader.map(|l| l.name.clone()).unwrap_or_default(),
            servers,
            promote,
            remove,
        }
    }
}

impl Core {
    /// The stored autopilot configuration (defaults when none is stored).
    pub async fn autopilot_stored_config(&self) -> Result<StoredConfig> {
        let view = BarrierView::new(self.barrier.clone(), "");
        Ok(view.get_json(CONFIG_KEY).await?.unwrap_or_default())
    }

    /// The autopilot configuration in effect.
    pub async fn autopilot_config(&self) -> Result<AutopilotConfig> {
        Ok(self.autopilot_stored_config().await?.effective())
    }

    /// `sys/storage/raft/autopilot/configuration` (update).
    pub(crate) async fn set_autopilot_config(&self, data: &Map) -> Result<()> {
        self.raft_plane().ok_or_else(|| {
            LogicalError::bad("raft storage is not in use: autopilot is not available")
        })?;
        let mut stored = self.autopilot_stored_config().await?;
        stored.apply_update(data)?;
        let view = BarrierView::new(self.barrier.clone(), "");
        view.put_json(CONFIG_KEY, &stored).await
    }

    /// `sys/storage/raft/autopilot/state`: evaluated now (on the active node).
    pub(crate) async fn autopilot_state(&self) -> Result<Value> {
        let plane = self.raft_plane().ok_or_else(|| {
            LogicalError::bad("raft storage is not in use: autopilot is not available")
        })?;
        let cfg = self.autopilot_config().await?;
        let state = plane
            .autopilot_evaluate(&cfg)
            .ok_or_else(|| LogicalError::Coded {
                status: 503,
                message: "autopilot is not running on this node".into(),
            })?;
        Ok(state.to_api())
    }

    /// One round of autopilot on the active node: evaluate, then promote stable learners and
    /// remove dead servers. Does nothing on other nodes.
    pub async fn autopilot_tick(&self) {
        if self.current_state() != crate::HaState::Active {
            return;
        }
        let Some(plane) = self.raft_plane() else {
            return;
        };
        let cfg = match self.autopilot_config().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "autopilot: configuration not readable");
                return;
            }
        };
        let Some(state) = plane.autopilot_evaluate(&cfg) else {
            return;
        };
        for name in &state.promote {
            tracing::info!(node = %name, "autopilot: promoting a stable server to voter");
            if let Err(e) = plane.promote_peer(name).await {
                tracing::warn!(node = %name, error = %e, "autopilot: promotion failed");
            }
        }
        for name in &state.remove {
            tracing::info!(node = %name, "autopilot: removing a dead server");
            if let Err(e) = plane.remove_peer(name).await {
                tracing::warn!(node = %name, error = %e, "autopilot: removal failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(v: Value) -> Result<StoredConfig> {
        let mut s = StoredConfig::default();
        s.apply_update(v.as_object().unwrap())?;
        Ok(s)
    }

    #[test]
    fn defaults_match_openbao() {
        let c = AutopilotConfig::default();
        assert_eq!(
            c.to_api(),
            json!({
                "cleanup_dead_servers": false,
                "last_contact_threshold": "10s",
                "dead_server_last_contact_threshold": "24h0m0s",
                "max_trailing_logs": 1000,
                "min_quorum": 0,
                "server_stabilization_time": "10s",
            })
        );
    }

    #[test]
    fn cleanup_needs_min_quorum_of_three() {
        let e = update(json!({"cleanup_dead_servers": true})).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.messages()[0],
            "min_quorum must be set when cleanup_dead_servers is set and it should at least be 3; cleanup_dead_servers: true, min_quorum: 0x0"
        );
        let e = update(json!({"cleanup_dead_servers": true, "min_quorum": 2})).unwrap_err();
        assert!(e.messages()[0].ends_with("min_quorum: 0x2"), "{e}");
        update(json!({"cleanup_dead_servers": true, "min_quorum": 3})).unwrap();
    }

    #[test]
    fn cleanup_needs_a_dead_threshold_of_a_minute() {
        let e = update(json!({
            "cleanup_dead_servers": true, "min_quorum": 3,
            "dead_server_last_contact_threshold": "10s"
        }))
        .unwrap_err();
        assert_eq!(
            e.messages()[0],
            "dead_server_last_contact_threshold should not be set to less than 1m; received: 10"
        );
        // Without cleanup, a short threshold is accepted (as in OpenBao).
        let s = update(json!({"dead_server_last_contact_threshold": "30s"})).unwrap();
        assert_eq!(
            s.effective().dead_server_last_contact_threshold,
            Duration::from_secs(30)
        );
        update(json!({
            "cleanup_dead_servers": true, "min_quorum": 3,
            "dead_server_last_contact_threshold": "1m"
        }))
        .unwrap();
    }

    #[test]
    fn zero_and_absent_fields_leave_values_unchanged() {
        let mut s = update(json!({"server_stabilization_time": "3s", "min_quorum": 4})).unwrap();
        s.apply_update(
            json!({"server_stabilization_time": "0s", "last_contact_threshold": 0})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let c = s.effective();
        assert_eq!(c.server_stabilization_time, Duration::from_secs(3));
        assert_eq!(c.last_contact_threshold, DEFAULT_LAST_CONTACT_THRESHOLD);
        assert_eq!(c.min_quorum, 4);
        // Integers are seconds.
        let s = update(json!({"last_contact_threshold": 5})).unwrap();
        assert_eq!(s.effective().last_contact_threshold, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_are_refused_with_openbao_messages() {
        let e = update(json!({"last_contact_threshold": "-1s"})).unwrap_err();
        assert_eq!(
            e.messages()[0],
            "Field validation failed: error converting input for field \"last_contact_threshold\": cannot provide negative value '-1'"
        );
        let e = update(json!({"last_contact_threshold": "abc"})).unwrap_err();
        assert!(e.messages()[0].starts_with(
            "Field validation failed: error converting input for field \"last_contact_threshold\""
        ));
        assert!(update(json!({"min_quorum": -1})).is_err());
        assert!(update(json!({"cleanup_dead_servers": "maybe"})).is_err());
    }

    fn obs(
        name: &str,
        voter: bool,
        leader: bool,
        contact_ms: u64,
        index: u64,
    ) -> ServerObservation {
        ServerObservation {
            name: name.into(),
            address: format!("{name}:8201"),
            voter,
            leader,
            last_contact: Duration::from_millis(contact_ms),
            last_term: 2,
            last_index: index,
        }
    }

    #[test]
    fn stabilisation_promotes_a_healthy_learner_after_the_stabilisation_time() {
        let ap = Autopilot::new();
        let cfg = AutopilotConfig::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let servers = [obs("a", true, true, 0, 10), obs("b", false, false, 50, 10)];
        let wants = |_: &str| Some((true, "v".to_string()));
        let s = ap.evaluate(&cfg, &servers, wants, t0);
        assert!(s.promote.is_empty());
        assert_eq!(s.servers["b"].stable_since, t0);
        let s = ap.evaluate(&cfg, &servers, wants, t0 + Duration::from_secs(9));
        assert!(s.promote.is_empty());
        let s = ap.evaluate(&cfg, &servers, wants, t0 + Duration::from_secs(10));
        assert_eq!(s.promote, vec!["b".to_string()]);
        // A non-voter by choice is never promoted.
        let s = ap.evaluate(
            &cfg,
            &servers,
            |_: &str| Some((false, String::new())),
            t0 + Duration::from_secs(60),
        );
        assert!(s.promote.is_empty());
        assert_eq!(s.to_api()["non_voters"], json!(["b"]));
        // An unhealthy spell restarts the clock.
        let late = [
            obs("a", true, true, 0, 10),
            obs("b", false, false, 20_000, 10),
        ];
        let s = ap.evaluate(&cfg, &late, wants, t0 + Duration::from_secs(61));
        assert!(!s.servers["b"].healthy);
        assert!(s.promote.is_empty());
        let s = ap.evaluate(&cfg, &servers, wants, t0 + Duration::from_secs(62));
        assert!(s.promote.is_empty());
        assert_eq!(s.servers["b"].stable_since, t0 + Duration::from_secs(62));
    }

    #[test]
    fn dead_servers_are_removed_only_with_cleanup_and_enough_voters() {
        let ap = Autopilot::new();
        let now = SystemTime::now();
        let mut cfg = AutopilotConfig {
            dead_server_last_contact_threshold: Duration::from_secs(60),
            min_quorum: 3,
            ..AutopilotConfig::default()
        };
        let four = [
            obs("a", true, true, 0, 10),
            obs("b", true, false, 100, 10),
            obs("c", true, false, 100, 10),
            obs("d", true, false, 61_000, 10),
        ];
        let s = ap.evaluate(&cfg, &four, |_: &str| None, now);
        assert_eq!(s.servers["d"].node_status, "left");
        assert!(!s.healthy);
        assert_eq!(s.failure_tolerance, 0);
        assert!(s.remove.is_empty(), "cleanup is off");
        cfg.cleanup_dead_servers = true;
        let s = ap.evaluate(&cfg, &four, |_: &str| None, now);
        assert_eq!(s.remove, vec!["d".to_string()]);
        // Three voters, one dead: removing it would leave fewer than min_quorum.
        let three = &four[1..];
        let mut three = three.to_vec();
        three[0].leader = true;
        three[0].last_contact = Duration::ZERO;
        let s = ap.evaluate(&cfg, &three, |_: &str| None, now);
        assert!(s.remove.is_empty());
        // A dead learner goes regardless of min_quorum.
        let with_learner = [
            obs("a", true, true, 0, 10),
            obs("e", false, false, 3_600_000, 10),
        ];
        let s = ap.evaluate(&cfg, &with_learner, |_: &str| None, now);
        assert_eq!(s.remove, vec!["e".to_string()]);
    }

    #[test]
    fn failure_tolerance_and_trailing_logs() {
        let ap = Autopilot::new();
        let cfg = AutopilotConfig {
            max_trailing_logs: 5,
            ..AutopilotConfig::default()
        };
        let servers = [
            obs("a", true, true, 0, 100),
            obs("b", true, false, 10, 99),
            obs("c", true, false, 10, 90),
        ];
        let s = ap.evaluate(&cfg, &servers, |_: &str| None, SystemTime::now());
        assert!(s.servers["b"].healthy);
        assert!(!s.servers["c"].healthy, "10 entries behind");
        assert_eq!(s.failure_tolerance, 0);
        assert_eq!(s.leader, "a");
        let api = s.to_api();
        assert_eq!(api["servers"]["a"]["status"], "leader");
        assert_eq!(api["servers"]["b"]["last_contact"], "10ms");
        assert_eq!(api["voters"], json!(["a", "b", "c"]));
    }

    #[test]
    fn echo_table_keeps_the_newest_echo_per_node() {
        let t = EchoTable::default();
        let e = |voter| Echo {
            node_id: "n2".into(),
            api_addr: "http://x".into(),
            cluster_addr: "https://x".into(),
            version: "v".into(),
            voter,
            applied_index: 1,
        };
        t.record(e(true));
        t.record(e(false));
        assert_eq!(t.fresh().len(), 1);
        assert_eq!(t.wants_vote("n2"), Some(false));
        assert_eq!(t.wants_vote("n3"), None);
    }
}
