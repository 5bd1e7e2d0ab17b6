//! Issue 5: a worker is added under IMAP load. The processes re-read the configuration
//! on SIGHUP; the users the ring gives the new worker are sent to it whole before the
//! gateways send their sessions there. Afterwards every acknowledged message is on every
//! replica of its user, and each moved user's mail is on its new owner.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pluto_cluster_tests::cluster::{Cluster, Spec, read_replica};
use pluto_cluster_tests::corpus;
use pluto_cluster_tests::mail::{append_all_counting, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_added_under_load_takes_its_users_whole() {
    let spec = Spec::default();
    let users = spec.users.clone();
    let mut cluster = Cluster::start(spec).await;
    let before: HashMap<String, String> = users
        .iter()
        .map(|u| (u.clone(), cluster.replicas_of(u)[0].clone()))
        .collect();
    let per_user = 120;
    let acked_count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for user in &users {
        let messages: Vec<(String, Vec<u8>)> = (0..per_user)
            .map(|i| {
                let id = format!("{user}-{i}");
                (format!("<{id}@cluster.test>"), message(&id, 2500))
            })
            .collect();
        tasks.push(tokio::spawn(append_all_counting(
            cluster.imap,
            user.clone(),
            messages,
            acked_count.clone(),
        )));
    }
    let start = Instant::now();
    while acked_count.load(Ordering::Relaxed) < per_user * users.len() / 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "appends stalled:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.add_worker("worker3").await;
    let mut acked: HashMap<String, Vec<String>> = HashMap::new();
    let mut reconnects: HashMap<String, usize> = HashMap::new();
    for (user, task) in users.iter().zip(tasks) {
        let (ok, lost) = task.await.unwrap();
        acked.insert(user.clone(), ok);
        reconnects.insert(user.clone(), lost);
    }
    let moved: Vec<&String> = users
        .iter()
        .filter(|u| cluster.replicas_of(u)[0] != before[*u])
        .collect();
    println!(
        "{} appends acknowledged in {:?}; users moved to worker3: {moved:?}",
        acked.values().map(Vec::len).sum::<usize>(),
        start.elapsed()
    );
    assert!(
        !moved.is_empty(),
        "the test needs a user that moves: {before:?}"
    );
    println!("reconnects per user: {reconnects:?}");
    // A client sees at most one reconnect: its session moves once, to the new owner.
    for (user, n) in &reconnects {
        assert!(*n <= 1, "{user} reconnected {n} times\n{}", cluster.logs());
    }
    for node in ["worker1", "worker2", "worker3", "storage1"] {
        cluster.wait_caught_up(node, Duration::from_secs(60)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for user in &users {
        for node in cluster.replicas_of(user) {
            loop {
                let view = read_replica(&cluster.remote(&node), user, "INBOX").await;
                let have: HashSet<String> = match &view {
                    Ok(v) => v
                        .messages
                        .iter()
                        .map(|(_, _, b)| corpus::message_id(b).unwrap_or_default())
                        .collect(),
                    Err(_) => HashSet::new(),
                };
                let missing = acked[user].iter().filter(|id| !have.contains(*id)).count();
                if missing == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{user} on {node}: {missing} acknowledged messages missing ({view:?})\n{}",
                    cluster.logs()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
