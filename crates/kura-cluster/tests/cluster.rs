//! Multi-node raft clusters over real TLS sockets on loopback, all in one process: each node
//! has its own data directory, its own cluster port and its own copy of the cluster identity.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kura_cluster::{
    dial, ClusterError, ClusterIdentity, ClusterNode, ClusterNodeOptions, ClusterTls,
    MembershipError, ALPN_RAFT,
};
use kura_raft::RaftOptions;
use kura_storage::{Backend, StorageError, TxnOp};

const WAIT: Duration = Duration::from_secs(10);

/// A node's TLS: the identity goes through its serialized form, as a standby would load it
/// from the barrier.
fn tls_for(identity: &ClusterIdentity) -> Arc<ClusterTls> {
    let loaded = ClusterIdentity::from_bytes(&identity.to_bytes()).unwrap();
    Arc::new(ClusterTls::new(loaded).unwrap())
}

#[derive(Clone)]
struct Opts {
    trailing_logs: u64,
    /// Heartbeat interval and election timeout bounds, in ms; `None`: kura-raft's defaults.
    timing: Option<(u64, u64, u64)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            trailing_logs: kura_raft::DEFAULT_TRAILING_LOGS,
            timing: None,
        }
    }
}

/// Faster failure detection than kura-raft's defaults. openraft 0.9 makes a follower wait the
/// leader lease (= `election_timeout_max`) plus its own election timeout after the last
/// heartbeat before it campaigns: 200–400 ms gives 600–800 ms.
const FAST: (u64, u64, u64) = (75, 200, 400);

async fn start_node(
    dir: &Path,
    name: &str,
    identity: &ClusterIdentity,
    bind: SocketAddr,
    initialize: bool,
    opts: &Opts,
) -> ClusterNode {
    let mut raft = RaftOptions::new(dir.join(name), name);
    raft.initialize = initialize;
    raft.api_addr = format!("https://{name}.example:8200");
    raft.trailing_logs = opts.trailing_logs;
    if let Some((hb, min, max)) = opts.timing {
        raft.heartbeat_interval = Duration::from_millis(hb);
        raft.election_timeout_min = Duration::from_millis(min);
        raft.election_timeout_max = Duration::from_millis(max);
    }
    ClusterNode::start(ClusterNodeOptions::new(raft, bind), tls_for(identity))
        .await
        .unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Node 1 initialises, nodes 2 and 3 join it as voters.
async fn three_nodes(dir: &Path, identity: &ClusterIdentity, opts: &Opts) -> Vec<ClusterNode> {
    let n1 = start_node(dir, "n1", identity, any_port(), true, opts).await;
    assert!(n1.backend().is_leader());
    let seed = n1.me().cluster_addr.clone();
    let mut nodes = vec![n1];
    for name in ["n2", "n3"] {
        let n = start_node(dir, name, identity, any_port(), false, opts).await;
        let reply = n.join(&seed, true, WAIT).await.unwrap();
        assert!(reply.voter);
        assert!(reply.members.values().any(|m| m.name == name));
        nodes.push(n);
    }
    nodes
}

async fn put(node: &ClusterNode, key: &str, value: &[u8]) -> Result<u64, StorageError> {
    node.backend()
        .write(vec![TxnOp::Put {
            key: key.into(),
            value: value.to_vec(),
        }])
        .await
}

async fn wait_index(node: &ClusterNode, index: u64) {
    node.backend()
        .indexed()
        .unwrap()
        .wait_for_index(index, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{} did not apply {index}: {e}", node.me().name));
}

/// The node among `nodes` that leads, once exactly one does.
async fn leader_of(nodes: &[&ClusterNode]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let leaders: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].backend().is_leader())
            .collect();
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(
            Instant::now() < deadline,
            "no single leader among the nodes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shuts the leader down and measures the time until a surviving node accepts a write.
async fn fail_over(nodes: &mut Vec<ClusterNode>, key: &str) -> (Duration, ClusterNode, u64) {
    let refs: Vec<&ClusterNode> = nodes.iter().collect();
    let li = leader_of(&refs).await;
    let old = nodes.remove(li);
    let start = Instant::now();
    old.shutdown().await.unwrap();
    loop {
        for n in nodes.iter() {
            if n.backend().is_leader() {
                if let Ok(index) = put(n, key, b"after").await {
                    return (start.elapsed(), old, index);
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no surviving node accepted a write"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_fail_over_and_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ClusterIdentity::generate().unwrap();
    let opts = Opts {
        timing: Some(FAST),
        ..Opts::default()
    };
    let mut nodes = three_nodes(dir.path(), &identity, &opts).await;

    // Membership as every node sees it.
    for n in &nodes {
        n.backend()
            .raft()
            .wait(Some(WAIT))
            .metrics(
                |m| m.membership_config.membership().voter_ids().count() == 3,
                "3 voters",
            )
            .await
            .unwrap();
    }
    let peers = nodes[2].peers();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| p.voter));
    assert_eq!(peers.iter().filter(|p| p.leader).count(), 1);
    assert!(peers.iter().find(|p| p.leader).unwrap().node.name == "n1");
    assert_eq!(
        peers
            .iter()
            .find(|p| p.node.name == "n2")
            .unwrap()
            .node
            .api_addr,
        "https://n2.example:8200"
    );

    // A write on the leader is readable on every node.
    let index = put(&nodes[0], "secret/a", b"one").await.unwrap();
    for n in &nodes {
        wait_index(n, index).await;
        assert_eq!(n.backend().get("secret/a").await.unwrap().unwrap(), b"one");
    }
    // Followers refuse writes.
    assert!(matches!(
        put(&nodes[1], "secret/b", b"x").await,
        Err(StorageError::NotLeader)
    ));
    // Joining again changes nothing.
    let again = nodes[1]
        .join(&nodes[0].me().cluster_addr, true, WAIT)
        .await
        .unwrap();
    assert_eq!(again.members.len(), 3);

    // The leader goes away: a new one is elected and takes writes.
    let (took, old, index) = fail_over(&mut nodes, "secret/after").await;
    println!("failover: {} ms", took.as_millis());
    assert!(took < Duration::from_secs(2), "failover took {took:?}");
    for n in &nodes {
        wait_index(n, index).await;
        assert_eq!(n.backend().get("secret/a").await.unwrap().unwrap(), b"one");
        assert_eq!(
            n.backend().get("secret/after").await.unwrap().unwrap(),
            b"after"
        );
    }
    let more = put(
        &nodes[leader_of(&[&nodes[0], &nodes[1]]).await],
        "secret/more",
        b"m",
    )
    .await
    .unwrap();

    // The old leader restarts on its old port and catches up as a follower.
    let bind = old.local_addr();
    let name = old.me().name.clone();
    drop(old);
    let back = start_node(dir.path(), &name, &identity, bind, false, &opts).await;
    wait_index(&back, more).await;
    assert_eq!(
        back.backend().get("secret/more").await.unwrap().unwrap(),
        b"m"
    );
    assert!(!back.backend().is_leader());
    nodes.push(back);
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_follower_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ClusterIdentity::generate().unwrap();
    // No trailing logs: once the leader snapshots, the follower's missing entries are gone.
    let opts = Opts {
        trailing_logs: 0,
        ..Opts::default()
    };
    let mut nodes = three_nodes(dir.path(), &identity, &opts).await;
    let index = put(&nodes[0], "doomed", b"soon gone").await.unwrap();
    wait_index(&nodes[2], index).await;

    let n3 = nodes.pop().unwrap();
    let bind = n3.local_addr();
    n3.shutdown().await.unwrap();
    drop(n3);
    assert!(nodes[0].backend().is_leader());

    let leader = &nodes[0];
    let mut last = 0;
    for i in 0..50 {
        last = put(
            leader,
            &format!("bulk/{i:03}"),
            format!("value {i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    leader.backend().delete("doomed").await.unwrap();
    let snap = leader.backend().snapshot(WAIT).await.unwrap().unwrap();
    assert!(snap.index > last);
    // The leader purges the log behind the snapshot.
    leader
        .backend()
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= snap.index),
            "log purged",
        )
        .await
        .unwrap();

    let n3 = start_node(dir.path(), "n3", &identity, bind, false, &opts).await;
    // Log entries up to the snapshot are gone: only a snapshot can bring n3 up to date.
    n3.backend()
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= snap.index),
            "snapshot installed",
        )
        .await
        .unwrap();
    wait_index(&n3, snap.index).await;
    for i in [0, 17, 49] {
        assert_eq!(
            n3.backend()
                .get(&format!("bulk/{i:03}"))
                .await
                .unwrap()
                .unwrap(),
            format!("value {i}").as_bytes()
        );
    }
    assert_eq!(n3.backend().get("doomed").await.unwrap(), None);
    assert_eq!(n3.backend().list("bulk/").await.unwrap().len(), 50);
    // And it keeps following after the snapshot.
    let index = put(&nodes[0], "later", b"l").await.unwrap();
    wait_index(&n3, index).await;
    assert_eq!(n3.backend().get("later").await.unwrap().unwrap(), b"l");
    nodes.push(n3);
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_are_refused_and_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ClusterIdentity::generate().unwrap();
    let n1 = start_node(
        dir.path(),
        "n1",
        &identity,
        any_port(),
        true,
        &Opts::default(),
    )
    .await;
    let addr = n1.me().cluster_addr.clone();

    // A TLS client with another identity gets no raft answer.
    let stranger_tls = ClusterTls::new(ClusterIdentity::generate().unwrap()).unwrap();
    match dial(&stranger_tls, &addr, ALPN_RAFT, WAIT, 1 << 20).await {
        Err(e) => assert!(
            matches!(e, kura_cluster::DialError::Handshake { .. }),
            "{e}"
        ),
        Ok((mut s, _)) => {
            let _ = s.send_flush(b"\x02{}").await;
            assert!(!matches!(s.recv().await, Ok(Some(_))));
        }
    }

    // A node with another identity cannot join.
    let other = ClusterIdentity::generate().unwrap();
    let intruder = start_node(
        dir.path(),
        "intruder",
        &other,
        any_port(),
        false,
        &Opts::default(),
    )
    .await;
    let err = intruder
        .join(&addr, true, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Call(_)), "{err}");
    assert_eq!(n1.peers().len(), 1);

    // A node with the identity but a name already taken is refused by the leader.
    let mut raft = RaftOptions::new(dir.path().join("dup"), "n1");
    raft.initialize = false;
    let dup = ClusterNode::start(
        ClusterNodeOptions::new(raft, any_port()),
        tls_for(&identity),
    )
    .await
    .unwrap();
    let err = dup.join(&addr, true, WAIT).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::Membership(MembershipError::NameTaken { ref name, .. }) if name == "n1"),
        "{err}"
    );
    assert_eq!(n1.peers().len(), 1);
    for n in [n1, intruder, dup] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_voters_and_peer_removal() {
    let dir = tempfile::tempdir().unwrap();
    let identity = ClusterIdentity::generate().unwrap();
    let nodes = three_nodes(dir.path(), &identity, &Opts::default()).await;

    // A non-voter joins through a follower (which points it at the leader) and gets the data.
    let n4 = start_node(
        dir.path(),
        "n4",
        &identity,
        any_port(),
        false,
        &Opts::default(),
    )
    .await;
    let reply = n4
        .join(&nodes[1].me().cluster_addr, false, WAIT)
        .await
        .unwrap();
    assert!(!reply.voter);
    assert_eq!(reply.leader, nodes[0].backend().node_id());
    let index = put(&nodes[0], "k", b"v").await.unwrap();
    wait_index(&n4, index).await;
    assert_eq!(n4.backend().get("k").await.unwrap().unwrap(), b"v");
    let peers = nodes[0].peers();
    assert_eq!(peers.len(), 4);
    assert!(!peers.iter().find(|p| p.node.name == "n4").unwrap().voter);

    // Removal asked of a follower is carried out by the leader.
    nodes[2].remove_peer("n4", WAIT).await.unwrap();
    nodes[1].remove_peer("n3", WAIT).await.unwrap();
    let mut names: Vec<String> = nodes[0].peers().into_iter().map(|p| p.node.name).collect();
    names.sort();
    assert_eq!(names, ["n1", "n2"]);
    let err = nodes[0].remove_peer("n3", WAIT).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::Membership(MembershipError::PeerNotFound(ref n)) if n == "n3"),
        "{err}"
    );
    // Two voters left: writes still commit (on both).
    let index = put(&nodes[0], "k2", b"v2").await.unwrap();
    wait_index(&nodes[1], index).await;
    // The removed voter no longer receives the log.
    assert!(nodes[2]
        .backend()
        .indexed()
        .unwrap()
        .wait_for_index(index, Duration::from_millis(500))
        .await
        .is_err());
    for n in nodes.iter().chain([&n4]) {
        n.shutdown().await.unwrap();
    }
}

/// Failover times of `rounds` fresh 3-node clusters: shut the leader down, time the first
/// write accepted by a survivor. Returns them sorted.
async fn measure_failover(opts: &Opts, rounds: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let identity = ClusterIdentity::generate().unwrap();
        let mut nodes = three_nodes(dir.path(), &identity, opts).await;
        // Let the followers see some heartbeats, as in a cluster that has been running.
        let index = put(&nodes[0], "warm", b"up").await.unwrap();
        for n in &nodes {
            wait_index(n, index).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (took, _old, _) = fail_over(&mut nodes, "after").await;
        times.push(took);
        for n in &nodes {
            n.shutdown().await.unwrap();
        }
    }
    times.sort();
    times
}

fn report(label: &str, times: &[Duration]) -> Duration {
    let median = times[times.len() / 2];
    println!(
        "failover {label}: median of {} = {} ms (min {} ms, max {} ms)",
        times.len(),
        median.as_millis(),
        times[0].as_millis(),
        times[times.len() - 1].as_millis()
    );
    median
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_time_median() {
    let opts = Opts {
        timing: Some(FAST),
        ..Opts::default()
    };
    let times = measure_failover(&opts, 5).await;
    let median = report("75/200-400 ms", &times);
    assert!(
        median < Duration::from_millis(1500),
        "median failover {median:?}"
    );
}

/// The figures for the report: `cargo test -p kura-cluster --test cluster failover_profiles
/// -- --ignored --nocapture --test-threads=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: ten failovers per timing profile"]
async fn failover_profiles() {
    for (label, timing) in [
        ("kura-raft defaults 100/500-1000 ms", None),
        ("100/300-500 ms", Some((100, 300, 500))),
        ("75/200-400 ms", Some(FAST)),
        ("50/150-300 ms", Some((50, 150, 300))),
    ] {
        let opts = Opts {
            timing,
            ..Opts::default()
        };
        report(label, &measure_failover(&opts, 10).await);
    }
}

/// openraft 0.9 replicates snapshots with `full_snapshot` (streamed); the chunked
/// `install_snapshot` RPC is served as well. Drive it directly: the leader's snapshot, in two
/// chunks, to a node that has nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunked_snapshot_rpc_installs_on_a_fresh_node() {
    use kura_raft::RaftTransport;
    use openraft::network::RPCOption;
    use openraft::raft::InstallSnapshotRequest;
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let identity = ClusterIdentity::generate().unwrap();
    let n1 = start_node(
        dir.path(),
        "n1",
        &identity,
        any_port(),
        true,
        &Opts::default(),
    )
    .await;
    for i in 0..20 {
        put(&n1, &format!("c/{i:02}"), &[i as u8; 3000])
            .await
            .unwrap();
    }
    let last = n1.backend().snapshot(WAIT).await.unwrap().unwrap();
    let snapshot = n1.backend().raft().get_snapshot().await.unwrap().unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(last));
    let mut data = Vec::new();
    let mut file = snapshot.snapshot;
    file.read_to_end(&mut data).await.unwrap();
    assert!(data.len() > 60_000);

    let fresh = start_node(
        dir.path(),
        "n2",
        &identity,
        any_port(),
        false,
        &Opts::default(),
    )
    .await;
    let vote = n1.backend().metrics().borrow().vote;
    let mid = data.len() / 2;
    for (offset, chunk, done) in [(0, &data[..mid], false), (mid, &data[mid..], true)] {
        let resp = n1
            .transport()
            .install_snapshot(
                fresh.backend().node_id(),
                fresh.me(),
                InstallSnapshotRequest {
                    vote,
                    meta: snapshot.meta.clone(),
                    offset: offset as u64,
                    data: chunk.to_vec(),
                    done,
                },
                RPCOption::new(WAIT),
            )
            .await
            .unwrap();
        // The first chunk is answered with the receiver's vote from before it saw the leader;
        // the last one after the snapshot is installed under the leader's vote.
        if done {
            assert_eq!(resp.vote, vote);
        }
    }
    wait_index(&fresh, last.index).await;
    assert_eq!(fresh.backend().list("c/").await.unwrap().len(), 20);
    assert_eq!(
        fresh.backend().get("c/07").await.unwrap().unwrap(),
        vec![7u8; 3000]
    );
    fresh.shutdown().await.unwrap();
    n1.shutdown().await.unwrap();
}
