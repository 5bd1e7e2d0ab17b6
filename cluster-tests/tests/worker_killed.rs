//! Issue scenario (a): 8 clients APPEND 2,000 corpus messages through the gateway while
//! a worker is SIGKILLed mid-stream and restarted. Afterwards every acknowledged message
//! is on every replica of its user exactly once, byte for byte, and the replicas agree on
//! every UID; a message acknowledged after the kill keeps the UID its APPENDUID named
//! (the storage node binds above the worker's claimed window, so the worker's last
//! unreplicated appends cannot collide with it).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pluto_cluster_tests::cluster::{Cluster, Spec, read_replica};
use pluto_cluster_tests::corpus;
use pluto_cluster_tests::mail::{Acked, append_all_acked};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_a_worker_killed_mid_stream() {
    let count: usize = std::env::var("PLUTO_CLUSTER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let spec = Spec::default();
    let users = spec.users.clone();
    let mut cluster = Cluster::start(spec).await;
    let corpus = corpus::messages(count);
    let by_id: HashMap<String, Vec<u8>> = corpus.iter().cloned().collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let share: Vec<(String, Vec<u8>)> = corpus
            .iter()
            .skip(i)
            .step_by(users.len())
            .cloned()
            .collect();
        tasks.push(tokio::spawn(append_all_acked(
            cluster.imap,
            user.clone(),
            share,
            acked.clone(),
        )));
    }
    // Mid-stream: kill worker1, give the gateway time to fail over, bring it back.
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) < count / 4 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "appends stalled:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_kill = acked.load(Ordering::Relaxed);
    let killed_at = Instant::now();
    cluster.kill("worker1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart("worker1");
    let mut acknowledged: HashMap<String, Vec<Acked>> = HashMap::new();
    for (user, task) in users.iter().zip(tasks) {
        acknowledged.insert(user.clone(), task.await.unwrap());
    }
    let total: usize = acknowledged.values().map(Vec::len).sum();
    println!(
        "{total} of {count} appends acknowledged ({at_kill} before the kill) in {:?}",
        started.elapsed()
    );
    assert!(
        total >= count * 9 / 10,
        "too few appends acknowledged: {total}\n{}",
        cluster.logs()
    );

    for node in ["worker1", "worker2", "storage1"] {
        cluster.wait_caught_up(node, Duration::from_secs(60)).await;
    }
    // Every replica of every user converges to the same mailbox.
    let converge_start = Instant::now();
    for user in &users {
        let replicas = cluster.replicas_of(user);
        let stores: Vec<_> = replicas.iter().map(|n| cluster.remote(n)).collect();
        let views = loop {
            let mut views = Vec::new();
            for s in &stores {
                views.push(read_replica(s, user, "INBOX").await);
            }
            let agree = views.iter().all(|v| v.is_ok()) && views.windows(2).all(|w| w[0] == w[1]);
            if agree {
                break views.into_iter().map(Result::unwrap).collect::<Vec<_>>();
            }
            assert!(
                converge_start.elapsed() < Duration::from_secs(60),
                "{user}: replicas {replicas:?} did not converge:\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // Each acknowledged message exactly once, byte for byte; nothing foreign.
        let view = &views[0];
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut uid_of: HashMap<String, u32> = HashMap::new();
        for (uid, _, bytes) in &view.messages {
            let id = corpus::message_id(bytes)
                .unwrap_or_else(|| panic!("{user}: UID {uid} has no Message-ID"));
            let original = by_id
                .get(&id)
                .unwrap_or_else(|| panic!("{user}: UID {uid} is not a corpus message"));
            assert_eq!(
                original.as_slice(),
                bytes.as_ref(),
                "{user}: UID {uid} ({id}) differs from what was sent"
            );
            uid_of.insert(id.clone(), *uid);
            *seen.entry(id).or_default() += 1;
        }
        let mut renumbered_before_the_kill = 0;
        for a in &acknowledged[user] {
            let id = &a.id;
            assert_eq!(
                seen.get(id).copied(),
                Some(1),
                "{user}: acknowledged {id} is there {:?} times",
                seen.get(id)
            );
            if uid_of[id] != a.uid {
                // Before the kill: only a write the worker answered on its own fsync
                // (its replica slow past the ack timeout) can meet a concurrent bind.
                assert!(
                    a.at < killed_at,
                    "{user}: {id}, acknowledged after the kill as UID {}, is now UID {}",
                    a.uid,
                    uid_of[id]
                );
                renumbered_before_the_kill += 1;
            }
        }
        if renumbered_before_the_kill > 0 {
            println!(
                "{user}: {renumbered_before_the_kill} messages acknowledged before the kill were renumbered"
            );
        }
    }
    println!(
        "replicas agreed {:?} after the writers finished",
        converge_start.elapsed()
    );
}
