//! Issue scenario (b): a worker and the storage node are partitioned for 30 s while both
//! take writes for the same user (clients pinned to each side). After the heal they
//! converge, and an observer that recorded every UID it was ever shown on either side
//! finds no UID that named two messages.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pluto_backends::{Flag, FlagChange, FlagOp, Flags, MailStore, MailboxName, NewMessage, UserId};
use pluto_cluster_tests::cluster::{Cluster, Spec, read_replica};
use pluto_cluster_tests::corpus;
use pluto_cluster_tests::mail::{Observer, message};

async fn writer(
    store: pluto_backends::remote::RemoteStore,
    user: UserId,
    side: &'static str,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let inbox = MailboxName::inbox();
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("{side}-{n}");
        let body = Bytes::from(message(&id, 1500));
        let m = NewMessage {
            body,
            flags: Flags::new(),
            internal_date: None,
        };
        if let Ok(outcome) = store.append(&user, &inbox, vec![m]).await {
            acked.push(format!("<{id}@cluster.test>"));
            // Now and then flag what was just appended, on this side only.
            if n % 3 == 0 {
                let change = FlagChange {
                    op: FlagOp::Add,
                    flags: Flags::from_iter([Flag::Flagged]),
                };
                let _ = store
                    .store_flags(&user, &inbox, &outcome.uids, &change, None)
                    .await;
            }
        }
        // A client's pace: with the link cut, a write no longer waits the ack timeout
        // (the peer is known down), so unpaced writers would make thousands of
        // conflicting appends, a different scenario from the one measured here.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    acked
}

/// Records what each side shows, until told to stop.
async fn observe(cluster: &Cluster, user: &str, sides: &[String], observer: &mut Observer) {
    for side in sides {
        let store = cluster.remote(side);
        if let Ok(view) = read_replica(&store, user, "INBOX").await {
            let bindings: Vec<(u32, String)> = view
                .messages
                .iter()
                .map(|(uid, _, bytes)| (*uid, corpus::message_id(bytes).unwrap_or_default()))
                .collect();
            if let Err(violation) = observer.record(user, view.uid_validity, &bindings) {
                panic!("on {side}: {violation}\n{}", cluster.logs());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_sides_of_a_partition_take_writes_and_converge() {
    let seconds: u64 = std::env::var("PLUTO_PARTITION_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let cluster = Cluster::start(Spec {
        users: vec!["pat".into()],
        ..Spec::default()
    })
    .await;
    let user = UserId::new("pat").unwrap();
    let replicas = cluster.replicas_of("pat");
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    let (home, storage) = (replicas[0].clone(), replicas[1].clone());
    cluster.remote(&home).open_user(&user).await.unwrap();
    cluster
        .wait_caught_up(&storage, Duration::from_secs(30))
        .await;

    let mut observer = Observer::default();
    cluster.partition(&home, &storage);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (side, name) in [("home", &home), ("storage", &storage)] {
        for k in 0..3 {
            let label: &'static str = Box::leak(format!("{side}{k}").into_boxed_str());
            writers.push(tokio::spawn(writer(
                cluster.remote(name),
                user.clone(),
                label,
                stop.clone(),
            )));
        }
    }
    let partitioned = Instant::now();
    while partitioned.elapsed() < Duration::from_secs(seconds) {
        observe(&cluster, "pat", &replicas, &mut observer).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    println!(
        "{} writes acknowledged during {seconds} s of partition",
        acked.len()
    );
    assert!(
        acked.len() >= 10,
        "too few writes during the partition:\n{}",
        cluster.logs()
    );

    cluster.heal(&home, &storage);
    let healed = Instant::now();
    let stores: Vec<_> = replicas.iter().map(|n| cluster.remote(n)).collect();
    let converged = loop {
        observe(&cluster, "pat", &replicas, &mut observer).await;
        let a = read_replica(&stores[0], "pat", "INBOX").await;
        let b = read_replica(&stores[1], "pat", "INBOX").await;
        if let (Ok(a), Ok(b)) = (&a, &b) {
            if a == b {
                break healed.elapsed();
            }
        }
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "no convergence 30 s after the heal:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("converged {converged:?} after the heal");
    // Every acknowledged write is there exactly once.
    let view = read_replica(&stores[0], "pat", "INBOX").await.unwrap();
    let mut count: HashMap<String, usize> = HashMap::new();
    for (_, _, bytes) in &view.messages {
        *count
            .entry(corpus::message_id(bytes).unwrap_or_default())
            .or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            count.get(id).copied(),
            Some(1),
            "{id} is there {:?} times",
            count.get(id)
        );
    }
    // The target is convergence within 5 s of the heal.
    assert!(
        converged < Duration::from_secs(5),
        "converged only after {converged:?}"
    );
}
