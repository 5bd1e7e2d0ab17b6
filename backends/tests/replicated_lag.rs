//! Replication lag, as a figure (ignored by default; run in release):
//! `cargo test -p pluto-backends --release --test replicated_lag -- --ignored --nocapture`
//!
//! Two nodes over mutual TLS on loopback, `ack = Local` at the origin so that the answer
//! does not wait for the peer. Writers append continuously; for each message the lag is
//! the time from the origin's answer to the moment the peer shows it (the peer exposes
//! nothing before it is durable there, and UIDs are the same on both replicas).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use pluto_backends::net::{NodeTls, pki};
use pluto_backends::replicated::{AckMode, Node, NodeConfig, PeerConfig};
use pluto_backends::*;
use tokio::net::TcpListener;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn lag_from_answer_to_durable_at_the_peer() {
    let seconds: u64 = std::env::var("PLUTO_LAG_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let writers: usize = std::env::var("PLUTO_LAG_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(pki_dir.path(), &["o".into(), "p".into()], &[], false).unwrap();
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
        c.ack = AckMode::Local;
        c
    };
    let origin = Node::start(mk("o", 1, d1.path(), "p", 2, a2.to_string()), tls("o"), l1)
        .await
        .unwrap();
    let peer = Node::start(mk("p", 2, d2.path(), "o", 1, a1.to_string()), tls("p"), l2)
        .await
        .unwrap();
    let user = UserId::new("lag").unwrap();
    let inbox = MailboxName::inbox();
    origin.store().open_user(&user).await.unwrap();
    assert!(peer.wait_caught_up(Duration::from_secs(10)).await);
    // Wait until the user exists on the peer, then watch its INBOX.
    let peer_store = peer.store();
    let start = Instant::now();
    while peer_store.select(&user, &inbox).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the user never reached the peer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let mut feed = peer_store.watch(&user, &inbox).await.unwrap();
    let watcher = {
        let (store, user, inbox, seen) = (
            peer_store.clone(),
            user.clone(),
            inbox.clone(),
            seen.clone(),
        );
        tokio::spawn(async move {
            let mut since = ModSeq(0);
            while let Some(_modseq) = feed.next().await {
                let now = Instant::now();
                if let Ok(changes) = store.changes_since(&user, &inbox, since).await {
                    let (highest, updated) = match changes {
                        Changes::Delta {
                            highest_modseq,
                            updated,
                            ..
                        } => (highest_modseq, updated),
                        Changes::Snapshot(s) => (s.highest_modseq, s.messages),
                    };
                    let mut seen = seen.lock().unwrap();
                    for m in updated {
                        seen.entry(m.uid.get()).or_insert(now);
                    }
                    since = highest;
                }
            }
        })
    };
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, user, inbox, answered) = (
            origin.store(),
            user.clone(),
            inbox.clone(),
            answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < stop_at {
                i += 1;
                let body = Bytes::from(format!("Subject: {w}/{i}\r\n\r\n{}\r\n", "z".repeat(4000)));
                let m = NewMessage {
                    body,
                    flags: Flags::new(),
                    internal_date: None,
                };
                let outcome = store.append(&user, &inbox, vec![m]).await.unwrap();
                let now = Instant::now();
                answered.lock().unwrap().insert(outcome.uids[0].get(), now);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Let the peer drain, then compare.
    let total = answered.lock().unwrap().len();
    let drain = Instant::now();
    while seen.lock().unwrap().len() < total && drain.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    let answered = answered.lock().unwrap().clone();
    let seen = seen.lock().unwrap().clone();
    let mut lags: Vec<Duration> = answered
        .iter()
        .filter_map(|(uid, t0)| seen.get(uid).map(|t1| t1.saturating_duration_since(*t0)))
        .collect();
    lags.sort();
    println!(
        "{} appends in {seconds} s with {writers} writers ({:.0}/s); {} seen at the peer; lag p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        total,
        total as f64 / seconds as f64,
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        percentile(&lags, 0.999),
        lags.last().copied().unwrap_or_default()
    );
    assert_eq!(lags.len(), total, "every append reached the peer");
    origin.shutdown().await;
    peer.shutdown().await;
}
