//! Quotas across replicas (issue 15): two gateways write for the same user onto two
//! different replicas of it — gw1 onto the owner worker, gw2 (which cannot reach any
//! worker's Store service) onto the storage node — by LMTP and by APPEND at once, each
//! writer until it is refused over quota. How far the user's usage can pass the limit:
//!
//! - replication up (`cluster.ack = "replica"`, every write acknowledged by the other
//!   replica before its answer): by at most one message per gateway beyond the first —
//!   each gateway makes one write of a user at a time, and a write counts everything
//!   acknowledged before it began;
//! - replication cut between the two replicas: each side admits up to the limit on its
//!   own, so after the heal the usage is at most the limit plus, for each further side,
//!   what it lacked of the limit when the link was cut (plus the first bound).
//!
//! Either way, once the replicas have converged every further write is refused on both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pluto_cluster_tests::cluster::{Cluster, Gateway, Spec, USER_PASSWORD, metric_at};
use pluto_cluster_tests::mail::{self, message};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// How a writer reaches the cluster.
#[derive(Clone, Copy, Debug)]
enum Via {
    Lmtp(SocketAddr),
    Imap(SocketAddr),
}

/// What one write got.
#[derive(Debug, PartialEq)]
enum Outcome {
    Stored,
    OverQuota,
}

/// One LMTP reply line (the last line of a multi-line reply).
async fn lmtp_reply(c: &mut BufReader<TcpStream>) -> Result<String, String> {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(60), c.read_line(&mut line))
            .await
            .map_err(|_| "LMTP reply timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("LMTP connection closed".into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.trim_end().to_owned());
        }
    }
}

async fn lmtp_connect(addr: SocketAddr) -> Result<BufReader<TcpStream>, String> {
    let mut c = BufReader::new(TcpStream::connect(addr).await.map_err(|e| e.to_string())?);
    lmtp_reply(&mut c).await?;
    c.get_mut()
        .write_all(b"LHLO quota.test\r\n")
        .await
        .map_err(|e| e.to_string())?;
    lmtp_reply(&mut c).await?;
    Ok(c)
}

/// One pipelined LMTP transaction for `user`.
async fn lmtp_deliver(
    c: &mut BufReader<TcpStream>,
    user: &str,
    id: &str,
) -> Result<Outcome, String> {
    let head = format!("MAIL FROM:<q@example.net>\r\nRCPT TO:<{user}@example.org>\r\nDATA\r\n");
    c.get_mut()
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    for expect in ["250", "250", "354"] {
        let r = lmtp_reply(c).await?;
        if !r.starts_with(expect) {
            return Err(format!("{id}: {r}"));
        }
    }
    let mut body = message(id, 300);
    body.extend_from_slice(b".\r\n");
    c.get_mut()
        .write_all(&body)
        .await
        .map_err(|e| e.to_string())?;
    let r = lmtp_reply(c).await?;
    if r.starts_with("250 ") {
        Ok(Outcome::Stored)
    } else if r.starts_with("552 5.2.2") {
        Ok(Outcome::OverQuota)
    } else {
        Err(format!("{id}: {r}"))
    }
}

async fn imap_append(client: &mut mail::Client, id: &str) -> Result<Outcome, String> {
    let r = client
        .try_append_plus("INBOX", "", &message(id, 300))
        .await
        .map_err(|e| e.to_string())?;
    if r.ok() {
        Ok(Outcome::Stored)
    } else if r.no() && r.code().as_deref() == Some("OVERQUOTA") {
        Ok(Outcome::OverQuota)
    } else {
        Err(format!("{id}: {}", r.tagged))
    }
}

/// Writes messages for `user` through `via` until one is refused over quota; how many
/// were stored. Every writer of a round starts at the barrier.
async fn fill(via: Via, user: String, name: String, start: Arc<Barrier>) -> Result<u64, String> {
    let mut stored = 0;
    match via {
        Via::Lmtp(addr) => {
            let mut c = lmtp_connect(addr).await?;
            start.wait().await;
            loop {
                let id = format!("{user}-{name}-{stored}");
                match lmtp_deliver(&mut c, &user, &id).await? {
                    Outcome::Stored => stored += 1,
                    Outcome::OverQuota => return Ok(stored),
                }
            }
        }
        Via::Imap(addr) => {
            let mut c = mail::login(addr, &user, USER_PASSWORD)
                .await
                .map_err(|e| e.to_string())?;
            start.wait().await;
            loop {
                let id = format!("{user}-{name}-{stored}");
                match imap_append(&mut c, &id).await? {
                    Outcome::Stored => stored += 1,
                    Outcome::OverQuota => return Ok(stored),
                }
            }
        }
    }
}

/// Two writers (LMTP and APPEND) per gateway, all at once; the messages each stored.
async fn fill_from_both(cluster: &Cluster, gw2: &Gateway, user: &str) -> Vec<(String, u64)> {
    let writers = [
        ("gw1-lmtp", Via::Lmtp(cluster.lmtp)),
        ("gw1-imap", Via::Imap(cluster.imap)),
        ("gw2-lmtp", Via::Lmtp(gw2.lmtp)),
        ("gw2-imap", Via::Imap(gw2.imap)),
    ];
    let start = Arc::new(Barrier::new(writers.len()));
    let tasks: Vec<_> = writers
        .iter()
        .map(|(name, via)| {
            tokio::spawn(fill(
                *via,
                user.to_owned(),
                (*name).to_owned(),
                start.clone(),
            ))
        })
        .collect();
    let mut stored = Vec::new();
    for ((name, _), task) in writers.iter().zip(tasks) {
        match task.await.unwrap() {
            Ok(n) => stored.push(((*name).to_owned(), n)),
            Err(e) => panic!("{user} {name}: {e}\n{}", cluster.logs()),
        }
    }
    stored
}

/// After convergence: one more message is refused through each gateway, both ways.
async fn refused_everywhere(cluster: &Cluster, gw2: &Gateway, user: &str) {
    for (gw, lmtp, imap) in [
        ("gw1", cluster.lmtp, cluster.imap),
        ("gw2", gw2.lmtp, gw2.imap),
    ] {
        let mut c = lmtp_connect(lmtp).await.unwrap();
        let id = format!("{user}-{gw}-after");
        assert_eq!(
            lmtp_deliver(&mut c, user, &id).await,
            Ok(Outcome::OverQuota),
            "{user} by LMTP through {gw}"
        );
        let mut c = mail::login(imap, user, USER_PASSWORD).await.unwrap();
        assert_eq!(
            imap_append(&mut c, &id).await,
            Ok(Outcome::OverQuota),
            "{user} by APPEND through {gw}"
        );
    }
}

/// The writes answered after the local write alone, over every node.
async fn local_only_acks(cluster: &Cluster) -> f64 {
    // Nodes publish it once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut total = 0.0;
    for node in &cluster.nodes {
        total += cluster
            .metric(&node.name, "pluto_writes_acked_locally_only_total")
            .await
            .unwrap_or(0.0);
    }
    total
}

/// A gateway's delivery metrics.
#[derive(Debug)]
struct DeliveryMetrics {
    delivered: u64,
    over_quota: u64,
    bytes: u64,
    /// Recipients in the latency histogram.
    timed: u64,
}

impl DeliveryMetrics {
    async fn read(addr: SocketAddr) -> DeliveryMetrics {
        let get =
            |name: &'static str| async move { metric_at(addr, name).await.unwrap_or(0.0) as u64 };
        DeliveryMetrics {
            delivered: get("pluto_deliveries_total{result=\"delivered\"}").await,
            over_quota: get("pluto_deliveries_total{result=\"over_quota\"}").await,
            bytes: get("pluto_delivered_bytes_total").await,
            timed: get("pluto_delivery_seconds_count").await,
        }
    }
}

/// gw2: every worker's Store service out of its reach, so it serves every user from
/// the storage node while gw1 serves them from their owner worker.
async fn second_gateway(cluster: &Cluster) -> Gateway {
    let workers = cluster.workers();
    let workers: Vec<&str> = workers.iter().map(String::as_str).collect();
    let config = cluster.config_blind_to(&workers, "gw2.toml");
    cluster.start_gateway("gw2", &config).await
}

const LIMIT: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_on_two_replicas_pass_the_limit_by_at_most_one_per_gateway() {
    let cluster = Cluster::start(Spec {
        quota_messages: Some(LIMIT),
        // Every write waits for the other replica (no answer on the local write alone,
        // which is the partition case below).
        ack_timeout_ms: 30_000,
        rpc_timeout_ms: 40_000,
        ..Spec::default()
    })
    .await;
    let gw2 = second_gateway(&cluster).await;
    // One write in flight per gateway beyond the first.
    let bound = LIMIT + (2 - 1);
    let users = Spec::default().users;
    let mut overshoots = Vec::new();
    // Per gateway: (LMTP copies stored, LMTP copies refused over quota).
    let mut lmtp = [(0u64, 0u64); 2];
    for user in &users {
        let stored = fill_from_both(&cluster, &gw2, user).await;
        for (i, gw) in ["gw1-lmtp", "gw2-lmtp"].iter().enumerate() {
            let n = stored.iter().find(|(w, _)| w == gw).map_or(0, |(_, n)| *n);
            // Its writer's last one, and refused_everywhere's below.
            lmtp[i].0 += n;
            lmtp[i].1 += 2;
        }
        let total: u64 = stored.iter().map(|(_, n)| n).sum();
        // Nothing stored was lost, nothing stored twice, and both replicas agree.
        cluster.wait_usage(user, total).await;
        assert!(
            total >= LIMIT,
            "{user}: refused before the limit: {stored:?}\n{}",
            cluster.logs()
        );
        assert!(
            total <= bound,
            "{user}: {total} messages stored under a limit of {LIMIT}: {stored:?}"
        );
        // Both gateways wrote, onto different replicas.
        assert!(
            stored.iter().any(|(w, n)| w.starts_with("gw1") && *n > 0)
                && stored.iter().any(|(w, n)| w.starts_with("gw2") && *n > 0),
            "{user}: {stored:?}"
        );
        refused_everywhere(&cluster, &gw2, user).await;
        overshoots.push(total - LIMIT);
    }
    assert_eq!(
        local_only_acks(&cluster).await,
        0.0,
        "a write was answered without the other replica: not the case measured here"
    );
    // Each gateway's delivery metrics count its own LMTP recipients, by result.
    for (addr, (delivered, over)) in [cluster.gateway_metrics, gw2.metrics].into_iter().zip(lmtp) {
        let m = DeliveryMetrics::read(addr).await;
        assert_eq!((m.delivered, m.over_quota), (delivered, over), "{m:?}");
        assert_eq!(m.timed, delivered + over, "{m:?}");
        // Every message is at least 300 bytes (trace headers are not counted).
        assert!(m.bytes >= 300 * delivered, "{m:?}");
    }
    println!(
        "limit {LIMIT} messages, 2 gateways x (LMTP + APPEND) on two replicas: overshoot per user {overshoots:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_replicas_cut_apart_each_side_fills_to_the_limit_then_both_refuse() {
    let cluster = Cluster::start(Spec {
        quota_messages: Some(LIMIT),
        ack_timeout_ms: 1000,
        ..Spec::default()
    })
    .await;
    let gw2 = second_gateway(&cluster).await;
    let user = "user1";
    let owner = cluster.replicas_of(user)[0].clone();
    // Two messages before the cut, seen by both replicas.
    let base = 2;
    let mut c = mail::login(cluster.imap, user, USER_PASSWORD)
        .await
        .unwrap();
    for i in 0..base {
        assert_eq!(
            imap_append(&mut c, &format!("{user}-base-{i}")).await,
            Ok(Outcome::Stored)
        );
    }
    cluster.wait_usage(user, base).await;
    let local_before = local_only_acks(&cluster).await;

    cluster.partition(&owner, "storage1");
    let stored = fill_from_both(&cluster, &gw2, user).await;
    let side = |gw: &str| -> u64 {
        stored
            .iter()
            .filter(|(w, _)| w.starts_with(gw))
            .map(|(_, n)| n)
            .sum()
    };
    // Each side took what it lacked of the limit, unaware of the other.
    assert_eq!(
        (side("gw1"), side("gw2")),
        (LIMIT - base, LIMIT - base),
        "{stored:?}"
    );
    let local_only = local_only_acks(&cluster).await - local_before;
    assert!(
        local_only >= (2 * (LIMIT - base)) as f64,
        "every write during the cut was answered on its replica alone: {local_only}"
    );

    cluster.heal(&owner, "storage1");
    let total = base + side("gw1") + side("gw2");
    cluster.wait_usage(user, total).await;
    println!(
        "limit {LIMIT}, {base} before the cut: {total} messages after the heal (overshoot {})",
        total - LIMIT
    );
    assert_eq!(total, 2 * LIMIT - base);
    refused_everywhere(&cluster, &gw2, user).await;
}
