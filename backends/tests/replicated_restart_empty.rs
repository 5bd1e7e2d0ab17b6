//! A node whose data directory was lost restarts empty under its old name and replica
//! id. Its CRDT counters start again at 0, so a write made before it has its history
//! back would take the dot of one of its lost ops, which the peer holds already and
//! ignores: acknowledged, never converging. These tests pin that it first hears every
//! peer (their logs bring its own ops back), continues after its highest dot and above
//! what the peer holds of its log, and that while a peer is down it refuses writes
//! with a clear error instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicated_support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pluto_backends::net::pki;
use pluto_backends::replicated::{AckMode, Node, NodeConfig, PeerConfig};
use pluto_backends::*;
use pluto_crdt::ReplicaId;
use replicated_support::{converge, msg, tls};
use tokio::net::TcpListener;

fn config(me: (&str, u16), dir: &Path, peer: (&str, u16, SocketAddr)) -> NodeConfig {
    let mut c = NodeConfig::new(me.0, me.1, dir);
    c.peers = vec![PeerConfig {
        name: peer.0.to_owned(),
        replica_id: peer.1,
        replication_addr: peer.2.to_string(),
    }];
    let holder = peer.0.to_owned();
    c.replicas_of = Arc::new(move |_| vec![holder.clone()]);
    c.ack = AckMode::Local;
    c.link_timeout = Duration::from_millis(800);
    c
}

struct Pair {
    pki: tempfile::TempDir,
    addr_a: SocketAddr,
    addr_b: SocketAddr,
    dir_a: tempfile::TempDir,
}

impl Pair {
    fn config_a(&self) -> NodeConfig {
        config(("ea", 1), self.dir_a.path(), ("eb", 2, self.addr_b))
    }

    fn config_b(&self, dir: &Path) -> NodeConfig {
        config(("eb", 2), dir, ("ea", 1, self.addr_a))
    }

    async fn start_a(&self) -> Node {
        let l = TcpListener::bind(self.addr_a).await.unwrap();
        Node::start(self.config_a(), tls(self.pki.path(), "ea"), l)
            .await
            .unwrap()
    }

    async fn start_b(&self, dir: &Path) -> Node {
        let l = TcpListener::bind(self.addr_b).await.unwrap();
        Node::start(self.config_b(dir), tls(self.pki.path(), "eb"), l)
            .await
            .unwrap()
    }
}

async fn pair() -> Pair {
    let pki = tempfile::tempdir().unwrap();
    pki::generate(pki.path(), &["ea".into(), "eb".into()], &[], false).unwrap();
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr_a, addr_b) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    drop((la, lb));
    Pair {
        pki,
        addr_a,
        addr_b,
        dir_a: tempfile::tempdir().unwrap(),
    }
}

/// b writes three messages, a holds them and b's log; b loses its data directory.
async fn b_writes_then_loses_its_data(pair: &Pair) -> (Node, UserId, u64, Vec<Uid>) {
    let na = pair.start_a().await;
    let dir_b = tempfile::tempdir().unwrap();
    let nb = pair.start_b(dir_b.path()).await;
    assert!(na.wait_caught_up(Duration::from_secs(20)).await);
    assert!(nb.wait_caught_up(Duration::from_secs(20)).await);
    let user = UserId::new("erin").unwrap();
    let inbox = MailboxName::inbox();
    nb.store().open_user(&user).await.unwrap();
    let mut uids = Vec::new();
    for i in 0..3 {
        let out = nb
            .store()
            .append(&user, &inbox, vec![msg(&format!("before {i}"))])
            .await
            .unwrap();
        uids.extend(out.uids);
    }
    converge(&[na.store(), nb.store()], &user, Duration::from_secs(20)).await;
    // a holds b's whole log.
    let deadline = Instant::now() + Duration::from_secs(20);
    while nb.status().peers.iter().any(|p| p.ops_behind > 0) {
        assert!(Instant::now() < deadline, "a never acknowledged b's log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let head = nb.status().log_head;
    nb.shutdown().await;
    drop(dir_b);
    (na, user, head, uids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_an_empty_data_dir_recovers_its_history_before_it_writes() {
    let pair = pair().await;
    let (na, user, old_head, old_uids) = b_writes_then_loses_its_data(&pair).await;
    let inbox = MailboxName::inbox();
    let own_before = na.store().version(&user).await.unwrap().get(ReplicaId(2));
    assert!(own_before >= 4, "b made INBOX and three appends");

    // b comes back on an empty data directory, under its old id.
    let dir_b = tempfile::tempdir().unwrap();
    let nb = pair.start_b(dir_b.path()).await;
    assert!(
        nb.wait_caught_up(Duration::from_secs(30)).await,
        "{:?}",
        nb.status()
    );
    assert!(!nb.store().recovering());
    // Its own ops came back from a: it continues after its highest dot.
    let own = nb.store().version(&user).await.unwrap().get(ReplicaId(2));
    assert_eq!(own, own_before);
    let out = nb
        .store()
        .append(&user, &inbox, vec![msg("after the loss")])
        .await
        .unwrap();
    assert!(out.uids.iter().all(|u| old_uids.iter().all(|o| u > o)));
    assert!(nb.store().version(&user).await.unwrap().get(ReplicaId(2)) > own_before);
    // Its log continues above what a holds of it: a's cursor skips nothing new.
    assert!(
        nb.status().log_head > old_head,
        "{} <= {old_head}",
        nb.status().log_head
    );
    let seen = converge(&[na.store(), nb.store()], &user, Duration::from_secs(20)).await;
    assert_eq!(seen.messages(), 4);
    assert!(
        seen.bodies().contains(&msg("after the loss").body),
        "the write after the loss reached a"
    );

    // And it survives a restart of both, reconnecting from the saved cursors.
    nb.shutdown().await;
    na.shutdown().await;
    let na = pair.start_a().await;
    let nb = pair.start_b(dir_b.path()).await;
    assert!(nb.wait_caught_up(Duration::from_secs(30)).await);
    assert!(!nb.store().recovering());
    nb.store()
        .append(&user, &inbox, vec![msg("after both restarted")])
        .await
        .unwrap();
    let seen = converge(&[na.store(), nb.store()], &user, Duration::from_secs(20)).await;
    assert_eq!(seen.messages(), 5);
    nb.shutdown().await;
    na.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_empty_refuses_writes_while_its_peer_is_down() {
    let pair = pair().await;
    let (na, user, _, _) = b_writes_then_loses_its_data(&pair).await;
    let inbox = MailboxName::inbox();
    na.kill().await;

    let dir_b = tempfile::tempdir().unwrap();
    let nb = pair.start_b(dir_b.path()).await;
    assert!(nb.store().recovering());
    let err = nb
        .store()
        .append(&user, &inbox, vec![msg("too early")])
        .await
        .expect_err("a node that may lack its history must not write");
    assert!(
        matches!(&err, StoreError::Unavailable(why) if why.contains("recovering its history")),
        "{err}"
    );
    assert!(nb.store().open_user(&user).await.is_err());
    assert!(!nb.status().caught_up);

    // a comes back: b recovers, then writes.
    let na = pair.start_a().await;
    assert!(nb.wait_caught_up(Duration::from_secs(30)).await);
    nb.store()
        .append(&user, &inbox, vec![msg("once recovered")])
        .await
        .unwrap();
    let seen = converge(&[na.store(), nb.store()], &user, Duration::from_secs(20)).await;
    assert_eq!(seen.messages(), 4);
    assert!(!seen.bodies().contains(&msg("too early").body));
    nb.shutdown().await;
    na.shutdown().await;
}

/// A node with the marker (it once heard its peers) restarts as before: it takes
/// writes while its peer is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_with_its_data_writes_while_its_peer_is_down() {
    let pair = pair().await;
    let na = pair.start_a().await;
    let dir_b = tempfile::tempdir().unwrap();
    let nb = pair.start_b(dir_b.path()).await;
    assert!(nb.wait_caught_up(Duration::from_secs(20)).await);
    nb.shutdown().await;
    na.kill().await;
    let nb = pair.start_b(dir_b.path()).await;
    assert!(!nb.store().recovering());
    let user = UserId::new("frank").unwrap();
    nb.store().open_user(&user).await.unwrap();
    nb.store()
        .append(&user, &MailboxName::inbox(), vec![msg("peer down")])
        .await
        .unwrap();
    nb.shutdown().await;
}
