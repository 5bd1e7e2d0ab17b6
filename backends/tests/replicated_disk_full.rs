//! The replicated store on a full disk (a small tmpfs, mounted as root): APPEND, CREATE,
//! RENAME, SUBSCRIBE and DELETE fail with [`StoreError::DiskFull`], what a client sees is
//! unchanged, and once there is room again the same writes work — also after the store
//! is reopened, so no half-written record was left in the op log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicated_support;

use std::path::Path;

use bytes::Bytes;
use pluto_backends::replicated::{AckMode, NodeConfig, ReplicatedStore};
use pluto_backends::*;
use pluto_testkit::disk::{Tmpfs, fill};
use replicated_support::{dump, msg};

fn config(dir: &Path) -> NodeConfig {
    let mut c = NodeConfig::new("node1", 1, dir);
    c.ack = AckMode::Local;
    c
}

fn assert_full<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        Err(StoreError::DiskFull(_)) => {}
        other => panic!("{what}: expected DiskFull, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_with_disk_full_and_changes_nothing() {
    let mount = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mount.path(), "16m") else {
        return;
    };
    let data = mount.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let user = UserId::new("dora").unwrap();
    let inbox = MailboxName::inbox();
    let keep = MailboxName::new("keep").unwrap();
    let big = NewMessage {
        body: Bytes::from(format!(
            "Subject: big\r\n\r\n{}\r\n",
            "x".repeat(256 * 1024)
        )),
        flags: Flags::new(),
        internal_date: None,
    };

    let store = ReplicatedStore::open(&config(&data)).unwrap();
    store.open_user(&user).await.unwrap();
    store.create_mailbox(&user, &keep, None).await.unwrap();
    store.append(&user, &inbox, vec![msg("one")]).await.unwrap();
    let before = dump(&store, &user).await;

    // Each refused write may free what it had begun to write: fill again before each.
    // A small op-log record can still fit in the last page the log file already has,
    // so a small write may succeed; a write either succeeds or fails with DiskFull and
    // then changes nothing.
    let mut fillers = Vec::new();
    let mut refill = || {
        let f = mount.path().join(format!("filler{}", fillers.len()));
        fill(&f);
        fillers.push(f);
    };
    refill();
    assert_full(
        "APPEND",
        store.append(&user, &inbox, vec![big.clone()]).await,
    );
    assert_eq!(
        dump(&store, &user).await,
        before,
        "a refused APPEND changed nothing"
    );
    let (fresh, moved) = (
        MailboxName::new("fresh").unwrap(),
        MailboxName::new("moved").unwrap(),
    );
    let mut refused = 0;
    for round in 0..20 {
        refill();
        let seen = dump(&store, &user).await;
        let r = match round % 4 {
            0 => store.create_mailbox(&user, &fresh, None).await.map(drop),
            1 => store.set_subscribed(&user, &keep, round % 8 == 1).await,
            2 => store
                .append(&user, &inbox, vec![msg(&format!("small {round}"))])
                .await
                .map(|_| ()),
            _ => store.delete_mailbox(&user, &fresh).await,
        };
        match r {
            Ok(()) => {}
            Err(StoreError::DiskFull(_)) => {
                refused += 1;
                assert_eq!(
                    dump(&store, &user).await,
                    seen,
                    "round {round}: a refused write changed nothing"
                );
            }
            Err(e) => panic!("round {round}: expected success or DiskFull, got {e:?}"),
        }
    }
    assert!(refused > 0, "no small write was refused on a full disk");
    eprintln!("{refused} of 20 small writes refused on a full disk");
    let full_state = dump(&store, &user).await;

    // Room again: the same writes work, in this process and after a reopen.
    for f in &fillers {
        std::fs::remove_file(f).unwrap();
    }
    store
        .append(&user, &inbox, vec![big.clone()])
        .await
        .unwrap();
    store.rename_mailbox(&user, &keep, &moved).await.unwrap();
    let after = dump(&store, &user).await;
    assert_eq!(after.messages(), full_state.messages() + 1);
    drop(store);
    let reopened = ReplicatedStore::open(&config(&data)).unwrap();
    assert_eq!(dump(&reopened, &user).await, after);
    reopened
        .append(&user, &inbox, vec![msg("three")])
        .await
        .unwrap();
}
