//! The replicated store in-process, on one node: the MailStore conformance suite, and
//! crash recovery (a store dropped without a clean stop, its log's tail torn, reopened:
//! every acknowledged append is there with the same UID, UIDVALIDITY and bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use pluto_backends::replicated::{AckMode, NodeConfig, ReplicatedStore};
use pluto_backends::*;

fn config(dir: &std::path::Path) -> NodeConfig {
    // Replica 1: its first UID in an empty mailbox is 1, the UIDNEXT announced.
    let mut c = NodeConfig::new("node1", 1, dir);
    c.ack = AckMode::Local;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicatedStore::open(&config(dir.path())).unwrap();
    // One store for every check, so that the log and checkpoints see all their writes.
    pluto_conformance::run_all(pluto_conformance::shared(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_tiny_segments_and_frequent_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.segment_bytes = 8 * 1024;
    c.checkpoint_every = 20;
    let store = ReplicatedStore::open(&c).unwrap();
    // One store for every check, so that the log and checkpoints see all their writes.
    pluto_conformance::run_all(pluto_conformance::shared(store)).await;
}

fn body(i: usize) -> Bytes {
    Bytes::from(format!(
        "From: a@example.org\r\nSubject: crash {i}\r\n\r\n{}\r\n",
        "x".repeat(i % 97)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_crash_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let user = UserId::new("crash").unwrap();
    let inbox = MailboxName::inbox();
    let mut acked = Vec::new();
    let validity;
    {
        let mut c = config(dir.path());
        c.segment_bytes = 16 * 1024;
        c.checkpoint_every = 150;
        let store = ReplicatedStore::open(&c).unwrap();
        store.open_user(&user).await.unwrap();
        // Concurrent writers share fsyncs; a checkpoint runs in the middle.
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (store, user, inbox) = (store.clone(), user.clone(), inbox.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..40 {
                    let n = t * 1000 + i;
                    let msg = NewMessage {
                        body: body(n),
                        flags: Flags::new(),
                        internal_date: None,
                    };
                    let out = store.append(&user, &inbox, vec![msg]).await.unwrap();
                    got.push((out.uids[0], out.uid_validity, n));
                }
                got
            }));
        }
        for t in tasks {
            acked.extend(t.await.unwrap());
        }
        validity = acked[0].1;
        store
            .store_flags(
                &user,
                &inbox,
                &[acked[0].0],
                &FlagChange {
                    op: FlagOp::Add,
                    flags: [Flag::Seen].into_iter().collect(),
                },
                None,
            )
            .await
            .unwrap();
        // No clean stop: the store is dropped as a crash would leave it.
        drop(store);
    }
    // A crash mid-write leaves half a record at the end of the last segment.
    let log_dir = dir.path().join("log");
    let mut segs: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    segs.sort();
    let last = segs.last().unwrap().clone();
    // The old writer thread may still be closing; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
            .unwrap();
    }
    let store = ReplicatedStore::open(&config(dir.path())).unwrap();
    let snap = store.select(&user, &inbox).await.unwrap();
    assert_eq!(snap.uid_validity, validity, "UIDVALIDITY kept");
    assert_eq!(
        snap.messages.len(),
        acked.len(),
        "every acknowledged append is back"
    );
    let uids: Vec<Uid> = acked.iter().map(|a| a.0).collect();
    let bodies = store.fetch(&user, &inbox, &uids).await.unwrap();
    assert_eq!(bodies.len(), acked.len());
    for ((uid, _, n), got) in acked.iter().zip(&bodies) {
        assert_eq!(got.uid, *uid);
        assert_eq!(got.bytes, body(*n), "bytes of uid {uid}");
    }
    let first = snap.messages.iter().find(|m| m.uid == acked[0].0).unwrap();
    assert!(
        first.flags.contains(&Flag::Seen),
        "the flag change survived"
    );
    // New appends go above everything shown before the crash.
    let max = uids.iter().max().copied().unwrap();
    let out = store
        .append(
            &user,
            &inbox,
            vec![NewMessage {
                body: body(1),
                flags: Flags::new(),
                internal_date: None,
            }],
        )
        .await
        .unwrap();
    assert!(out.uids[0] > max);
    // A second open of the same directory is refused while this one runs.
    assert!(ReplicatedStore::open(&config(dir.path())).is_err());
}
