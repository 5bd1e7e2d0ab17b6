//! Figures, not assertions (ignored by default; run in release):
//! `cargo test -p pluto-backends --release --test replicated_throughput -- --ignored --nocapture`
//! Appends per second on one node (group commit: 1 vs 32 concurrent writers), and on a
//! pair of nodes with `ack = Replica` (each answer waits for the peer's fsync too).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pluto_backends::net::{NodeTls, pki};
use pluto_backends::replicated::{AckMode, Node, NodeConfig, PeerConfig, ReplicatedStore};
use pluto_backends::*;
use tokio::net::TcpListener;

async fn hammer(store: Arc<ReplicatedStore>, writers: usize, total: usize) -> f64 {
    let user = UserId::new("bench").unwrap();
    store.open_user(&user).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, user) = (store.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..total / writers {
                let body = Bytes::from(format!("Subject: {w}/{i}\r\n\r\n{}\r\n", "y".repeat(2000)));
                let m = NewMessage {
                    body,
                    flags: Flags::new(),
                    internal_date: None,
                };
                store
                    .append(&user, &MailboxName::inbox(), vec![m])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn appends_per_second() {
    for writers in [1, 32] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = NodeConfig::new("bench", 1, dir.path());
        c.ack = AckMode::Local;
        let store = ReplicatedStore::open(&c).unwrap();
        let rate = hammer(store, writers, 2000).await;
        println!("one node, ack=local, {writers} writers: {rate:.0} appends/s");
    }
    // Two nodes, ack = Replica.
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(pki_dir.path(), &["b1".into(), "b2".into()], &[], false).unwrap();
    let tls = |n: &str| {
        NodeTls::load(
            &pki_dir.path().join("ca.pem"),
            &pki_dir.path().join(format!("{n}.pem")),
            &pki_dir.path().join(format!("{n}-key.pem")),
        )
        .unwrap()
    };
    let (l1, l2) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (a1, a2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mk = |name: &str, id: u16, dir: &std::path::Path, peer: &str, pid: u16, addr: String| {
        let mut c = NodeConfig::new(name, id, dir);
        c.peers = vec![PeerConfig {
            name: peer.into(),
            replica_id: pid,
            replication_addr: addr,
        }];
        let p = peer.to_owned();
        c.replicas_of = Arc::new(move |_| vec![p.clone()]);
        c.ack_timeout = Duration::from_secs(5);
        c
    };
    let n1 = Node::start(
        mk("b1", 1, d1.path(), "b2", 2, a2.to_string()),
        tls("b1"),
        l1,
    )
    .await
    .unwrap();
    let n2 = Node::start(
        mk("b2", 2, d2.path(), "b1", 1, a1.to_string()),
        tls("b2"),
        l2,
    )
    .await
    .unwrap();
    for writers in [1, 32] {
        let rate = hammer(n1.store(), writers, 2000).await;
        println!("two nodes, ack=replica, {writers} writers: {rate:.0} appends/s");
    }
    println!("status at the end: {:?}", n1.status());
    n1.shutdown().await;
    n2.shutdown().await;
}
