//! Issue scenario (c): the storage node is SIGKILLed under load with ack = "replica".
//! Writes go on (answered from the worker alone: after the ack timeout while the dead
//! link is not yet noticed, at once after); after the
//! storage node comes back and catches up, every acknowledged message is on every
//! replica. Then the worker is killed too, and the storage node alone still has
//! everything that was acknowledged.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pluto_cluster_tests::cluster::{Cluster, Spec, read_replica};
use pluto_cluster_tests::corpus;
use pluto_cluster_tests::mail::{append_all, message};

async fn ids_on(cluster: &Cluster, node: &str, user: &str) -> HashSet<String> {
    let view = read_replica(&cluster.remote(node), user, "INBOX")
        .await
        .unwrap_or_else(|e| panic!("reading {user} on {node}: {e}\n{}", cluster.logs()));
    view.messages
        .iter()
        .map(|(_, _, b)| corpus::message_id(b).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_acknowledged_is_lost_when_storage_dies() {
    let spec = Spec {
        users: (1..=4).map(|i| format!("user{i}")).collect(),
        ..Spec::default()
    };
    let users = spec.users.clone();
    let mut cluster = Cluster::start(spec).await;
    let per_user = 150;
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for user in &users {
        let messages: Vec<(String, Vec<u8>)> = (0..per_user)
            .map(|i| {
                let id = format!("{user}-{i}");
                (format!("<{id}@cluster.test>"), message(&id, 3000))
            })
            .collect();
        tasks.push(tokio::spawn(append_all(
            cluster.imap,
            user.clone(),
            messages,
            acked_count.clone(),
        )));
    }
    let start = Instant::now();
    while acked_count.load(Ordering::Relaxed) < per_user * users.len() / 4 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "appends stalled:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill("storage1");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.restart("storage1");
    let mut acked: HashMap<String, Vec<String>> = HashMap::new();
    for (user, task) in users.iter().zip(tasks) {
        acked.insert(user.clone(), task.await.unwrap());
    }
    let total: usize = acked.values().map(Vec::len).sum();
    println!("{total} appends acknowledged in {:?}", start.elapsed());
    for node in ["worker1", "worker2", "storage1"] {
        cluster.wait_caught_up(node, Duration::from_secs(60)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for user in &users {
        for node in cluster.replicas_of(user) {
            loop {
                let have = ids_on(&cluster, &node, user).await;
                let missing: Vec<&String> = acked[user]
                    .iter()
                    .filter(|id| !have.contains(*id))
                    .collect();
                if missing.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{user} on {node}: {} acknowledged messages missing, e.g. {:?}\n{}",
                    missing.len(),
                    &missing[..missing.len().min(3)],
                    cluster.logs()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // The workers die now: storage alone must hold every acknowledged message.
    cluster.kill("worker1");
    cluster.kill("worker2");
    for user in &users {
        let have = ids_on(&cluster, "storage1", user).await;
        for id in &acked[user] {
            assert!(
                have.contains(id),
                "{user}: {id} acknowledged but not on storage1"
            );
        }
    }
}
