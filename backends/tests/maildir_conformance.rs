//! The conformance suite against the Maildir backend, plus what only a Maildir has:
//! flags in file names, files dropped by other programs, crash leftovers, the data-dir
//! lock, and names that must stay inside the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use pluto_backends::maildir::MaildirStore;
use pluto_backends::*;

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn mb(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap()
}

fn msg(body: &[u8], flags: &[Flag]) -> NewMessage {
    NewMessage {
        body: Bytes::copy_from_slice(body),
        flags: flags.iter().cloned().collect(),
        internal_date: None,
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Opens a store on a fresh root with one user set up.
async fn fresh(name: &str) -> (tempfile::TempDir, PathBuf, MaildirStore, UserId) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    let store = MaildirStore::open(root.clone()).unwrap();
    let u = user(name);
    store.open_user(&u).await.unwrap();
    (tmp, root, store, u)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    // A fresh store, on a data root of its own, for every check.
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    pluto_conformance::run_all(|| {
        n += 1;
        let root = tmp.path().join(format!("mail{n}"));
        async move { Arc::new(MaildirStore::open(root).unwrap()) }
    })
    .await;
}

#[tokio::test]
async fn flags_live_in_file_names() {
    let (_t, root, s, u) = fresh("alice").await;
    let inbox = MailboxName::inbox();
    let junk = Flag::Keyword(Keyword::new("$Junk").unwrap());
    let out = s
        .append(
            &u,
            &inbox,
            vec![msg(
                b"Subject: x\r\n\r\n",
                &[Flag::Seen, Flag::Deleted, Flag::Answered, junk.clone()],
            )],
        )
        .await
        .unwrap();
    let cur = root.join("alice/cur");
    let names = files_in(&cur);
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with(":2,RST"), "{names:?}");
    let change = FlagChange {
        op: FlagOp::Remove,
        flags: [Flag::Seen].into_iter().collect(),
    };
    s.store_flags(&u, &inbox, &out.uids, &change, None)
        .await
        .unwrap();
    let change = FlagChange {
        op: FlagOp::Add,
        flags: [Flag::Draft, Flag::Flagged].into_iter().collect(),
    };
    s.store_flags(&u, &inbox, &out.uids, &change, None)
        .await
        .unwrap();
    let names = files_in(&cur);
    assert!(names[0].ends_with(":2,DFRT"), "{names:?}");
    // The keyword is in the index, not in the name, and survives.
    let snap = s.select(&u, &inbox).await.unwrap();
    assert!(snap.messages[0].flags.contains(&junk));
    // Bodies stay where a Maildir reader expects them.
    assert_eq!(
        fs::read(cur.join(&names[0])).unwrap(),
        b"Subject: x\r\n\r\n"
    );
}

#[tokio::test]
async fn files_dropped_into_new_are_taken_in() {
    let (_t, root, s, u) = fresh("bob").await;
    let inbox = MailboxName::inbox();
    let first = s
        .append(&u, &inbox, vec![msg(b"a", &[])])
        .await
        .unwrap()
        .uids[0];
    let before = s.select(&u, &inbox).await.unwrap();
    // An MTA delivers: tmp/ then rename into new/.
    let dir = root.join("bob");
    fs::write(
        dir.join("tmp/1700000000.M1P1.mta"),
        b"Subject: delivered\r\n\r\nhi\r\n",
    )
    .unwrap();
    fs::rename(
        dir.join("tmp/1700000000.M1P1.mta"),
        dir.join("new/1700000000.M1P1.mta"),
    )
    .unwrap();
    let changes = s
        .changes_since(&u, &inbox, before.highest_modseq)
        .await
        .unwrap();
    let Changes::Delta {
        updated, uid_next, ..
    } = changes
    else {
        panic!("delta expected")
    };
    assert_eq!(updated.len(), 1);
    let uid = updated[0].uid;
    assert!(uid > first, "fresh UID above every UID given");
    assert_eq!(uid_next.get(), uid.get() + 1);
    assert_eq!(
        updated[0].size as usize,
        b"Subject: delivered\r\n\r\nhi\r\n".len()
    );
    assert!(files_in(&dir.join("new")).is_empty(), "moved out of new/");
    let body = s.fetch(&u, &inbox, &[uid]).await.unwrap();
    assert_eq!(&body[0].bytes[..], b"Subject: delivered\r\n\r\nhi\r\n");
    // Another Maildir program marks it seen by renaming the file.
    let name = files_in(&dir.join("cur"))
        .into_iter()
        .find(|n| n.starts_with("1700000000"))
        .unwrap();
    assert!(name.ends_with(":2,"), "{name}");
    fs::rename(
        dir.join("cur").join(&name),
        dir.join("cur").join(format!("{name}S")),
    )
    .unwrap();
    let snap = s.select(&u, &inbox).await.unwrap();
    let m = snap.messages.iter().find(|m| m.uid == uid).unwrap();
    assert!(m.flags.contains(&Flag::Seen), "external flag change seen");
    // STATUS also takes in new mail.
    fs::write(dir.join("new/1700000001.M2P1.mta"), b"x").unwrap();
    assert_eq!(s.status(&u, &inbox).await.unwrap().messages, 3);
    // And a file removed by another program is expunged.
    fs::remove_file(dir.join("cur").join(format!("{name}S"))).unwrap();
    let Changes::Delta { expunged, .. } = s
        .changes_since(&u, &inbox, snap.highest_modseq)
        .await
        .unwrap()
    else {
        panic!("delta expected")
    };
    assert_eq!(expunged, vec![uid]);
}

#[tokio::test]
async fn state_survives_a_restart() {
    let (t, root, s, u) = fresh("carol").await;
    let inbox = MailboxName::inbox();
    let uids = s
        .append(
            &u,
            &inbox,
            (0..5)
                .map(|i| msg(format!("m{i}").as_bytes(), &[]))
                .collect(),
        )
        .await
        .unwrap()
        .uids;
    let kw = Flag::Keyword(Keyword::new("Project").unwrap());
    let change = FlagChange {
        op: FlagOp::Add,
        flags: [Flag::Deleted, kw.clone()].into_iter().collect(),
    };
    s.store_flags(&u, &inbox, &uids[..2], &change, None)
        .await
        .unwrap();
    let mid = s.select(&u, &inbox).await.unwrap().highest_modseq;
    s.expunge(&u, &inbox, Some(&uids[..1])).await.unwrap();
    s.set_subscribed(&u, &mb("Elsewhere"), true).await.unwrap();
    let before = s.select(&u, &inbox).await.unwrap();
    drop(s);
    let s = MaildirStore::open(root.clone()).unwrap();
    s.open_user(&u).await.unwrap();
    let after = s.select(&u, &inbox).await.unwrap();
    assert_eq!(
        after, before,
        "same UIDs, UIDVALIDITY, flags, modseqs after a restart"
    );
    let Changes::Delta { expunged, .. } = s.changes_since(&u, &inbox, mid).await.unwrap() else {
        panic!("tombstones survive a restart")
    };
    assert_eq!(expunged, vec![uids[0]]);
    assert!(
        s.list(&u)
            .await
            .unwrap()
            .subscriptions
            .contains(&mb("Elsewhere"))
    );
    let next = s
        .append(&u, &inbox, vec![msg(b"n", &[])])
        .await
        .unwrap()
        .uids[0];
    assert!(next > uids[4]);
    drop(t);
}

#[tokio::test]
async fn crash_leftovers_are_recovered() {
    let (_t, root, s, u) = fresh("dave").await;
    let inbox = MailboxName::inbox();
    let out = s
        .append(
            &u,
            &inbox,
            (0..3)
                .map(|i| msg(format!("m{i}").as_bytes(), &[]))
                .collect(),
        )
        .await
        .unwrap();
    drop(s);
    let dir = root.join("dave");
    // Crash between rename into cur/ and the index update.
    fs::write(dir.join("cur/1700000000.M9P9Q9.host,S=6:2,S"), b"orphan").unwrap();
    // Crash in the middle of writing a body: a truncated tmp file.
    fs::write(
        dir.join("tmp/1700000001.M1P1Q1.host,S=100"),
        b"Subject: half",
    )
    .unwrap();
    // An index entry whose file vanished.
    let victim = files_in(&dir.join("cur"))
        .into_iter()
        .find(|n| !n.starts_with("1700000000"))
        .unwrap();
    fs::remove_file(dir.join("cur").join(&victim)).unwrap();
    // A torn record at the end of the journal.
    let mut journal = fs::read(dir.join("pluto-journal")).unwrap();
    journal.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    fs::write(dir.join("pluto-journal"), journal).unwrap();

    let s = MaildirStore::open(root.clone()).unwrap();
    let snap = s.select(&u, &inbox).await.unwrap();
    assert_eq!(snap.uid_validity, out.uid_validity, "UIDVALIDITY kept");
    let uids: Vec<Uid> = snap.messages.iter().map(|m| m.uid).collect();
    assert_eq!(uids.len(), 3, "two survivors and the orphan: {uids:?}");
    for m in &snap.messages[..2] {
        assert!(
            out.uids.contains(&m.uid),
            "acknowledged messages keep their UIDs"
        );
    }
    let orphan = &snap.messages[2];
    assert!(orphan.uid > out.uids[2], "orphan gets a fresh UID");
    assert!(
        orphan.flags.contains(&Flag::Seen),
        "orphan's flags from its name"
    );
    assert_eq!(
        s.fetch(&u, &inbox, &[orphan.uid]).await.unwrap()[0].bytes,
        Bytes::from_static(b"orphan")
    );
    // Appends still work after the torn journal was cut.
    let more = s
        .append(&u, &inbox, vec![msg(b"after", &[])])
        .await
        .unwrap()
        .uids[0];
    drop(s);
    let s = MaildirStore::open(root.clone()).unwrap();
    let snap2 = s.select(&u, &inbox).await.unwrap();
    assert_eq!(
        snap2.messages.last().unwrap().uid,
        more,
        "record after the cut is durable"
    );
    assert_eq!(snap2.uid_validity, out.uid_validity);
}

#[tokio::test]
async fn corrupt_index_is_rebuilt_from_files() {
    let (_t, root, s, u) = fresh("erin").await;
    let inbox = MailboxName::inbox();
    let out = s
        .append(
            &u,
            &inbox,
            vec![msg(b"one", &[Flag::Seen]), msg(b"two", &[])],
        )
        .await
        .unwrap();
    drop(s);
    fs::write(root.join("erin/pluto-index"), b"garbage").unwrap();
    let s = MaildirStore::open(root.clone()).unwrap();
    let snap = s.select(&u, &inbox).await.unwrap();
    assert_ne!(
        snap.uid_validity, out.uid_validity,
        "new UIDs need a new UIDVALIDITY"
    );
    assert_eq!(snap.messages.len(), 2);
    let mut bodies: Vec<Vec<u8>> = s
        .fetch(
            &u,
            &inbox,
            &snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.bytes.to_vec())
        .collect();
    bodies.sort();
    assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(
        snap.messages
            .iter()
            .filter(|m| m.flags.contains(&Flag::Seen))
            .count(),
        1
    );
}

#[tokio::test]
async fn journal_compaction_keeps_state() {
    let (_t, root, s, u) = fresh("frank").await;
    let inbox = MailboxName::inbox();
    let uids = s
        .append(
            &u,
            &inbox,
            (0..300)
                .map(|i| msg(format!("m{i}").as_bytes(), &[]))
                .collect(),
        )
        .await
        .unwrap()
        .uids;
    for round in 0..60 {
        let op = if round % 2 == 0 {
            FlagOp::Add
        } else {
            FlagOp::Remove
        };
        let change = FlagChange {
            op,
            flags: [Flag::Flagged].into_iter().collect(),
        };
        s.store_flags(&u, &inbox, &uids, &change, None)
            .await
            .unwrap();
    }
    let change = FlagChange {
        op: FlagOp::Add,
        flags: [Flag::Seen].into_iter().collect(),
    };
    s.store_flags(&u, &inbox, &uids[..10], &change, None)
        .await
        .unwrap();
    let before = s.select(&u, &inbox).await.unwrap();
    let journal_len = fs::metadata(root.join("frank/pluto-journal"))
        .unwrap()
        .len();
    assert!(
        journal_len < 200_000,
        "the journal was compacted ({journal_len} bytes)"
    );
    drop(s);
    let s = MaildirStore::open(root.clone()).unwrap();
    assert_eq!(s.select(&u, &inbox).await.unwrap(), before);
}

#[tokio::test]
async fn one_root_one_store() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mail");
    let first = MaildirStore::open(root.clone()).unwrap();
    match MaildirStore::open(root.clone()) {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("in use"), "{why}"),
        other => panic!("a second store on one root must fail, got {other:?}"),
    }
    drop(first);
    MaildirStore::open(root).expect("the lock goes with the store");
}

#[tokio::test]
async fn odd_names_stay_inside_the_root() {
    let (t, root, s, u) = fresh("gina").await;
    // Path tricks are not even names.
    for bad in [
        "../x",
        "a/../../b",
        "/etc",
        "a//b",
        "..",
        "a/./b",
        "x\0y",
        "x\ny",
    ] {
        assert!(MailboxName::new(bad).is_err(), "{bad:?} accepted");
    }
    let odd = [
        "...",
        ".hidden",
        "a.b/..c",
        "~user",
        "back\\slash",
        "x.2E",
        "  spaced  ",
        "Ελληνικά",
    ];
    for name in odd {
        let name = mb(name);
        s.create_mailbox(&u, &name, None).await.unwrap();
        s.append(&u, &name, vec![msg(name.as_str().as_bytes(), &[])])
            .await
            .unwrap();
    }
    let listed: Vec<String> = s
        .list(&u)
        .await
        .unwrap()
        .mailboxes
        .into_iter()
        .map(|m| m.name.to_string())
        .collect();
    for name in odd {
        assert!(
            listed.iter().any(|l| l == name),
            "{name} missing from {listed:?}"
        );
        let got = s.fetch(&u, &mb(name), &[Uid::MIN]).await.unwrap();
        assert_eq!(
            &got[0].bytes[..],
            name.as_bytes(),
            "{name} holds its own mail"
        );
    }
    // Nothing but the root was written next to it, and every mailbox is one directory
    // directly in the user's directory.
    assert_eq!(files_in(t.path()), vec!["mail".to_string()]);
    assert_eq!(
        files_in(&root),
        vec![".pluto-maildir.lock".to_string(), "gina".to_string()]
    );
    let user_dir = root.join("gina");
    for entry in fs::read_dir(&user_dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.path().is_dir() && name.starts_with('.') {
            assert!(entry.path().join("cur").is_dir(), "{name} is a mailbox");
            assert!(name != "." && name != "..");
        }
    }
    assert!(user_dir.join(".%2E%2E%2E").join("cur").is_dir());
    assert!(user_dir.join(".a%2Eb.%2E%2Ec").join("cur").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_append_and_store_at_once() {
    let (_t, _root, s, u) = fresh("hank").await;
    let s = Arc::new(s);
    let inbox = MailboxName::inbox();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (s, u, inbox) = (s.clone(), u.clone(), inbox.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..20 {
                let out = s
                    .append(&u, &inbox, vec![msg(format!("{t}/{i}").as_bytes(), &[])])
                    .await
                    .unwrap();
                let change = FlagChange {
                    op: FlagOp::Add,
                    flags: [Flag::Seen].into_iter().collect(),
                };
                s.store_flags(&u, &inbox, &out.uids, &change, None)
                    .await
                    .unwrap();
                mine.push(out.uids[0]);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        all.extend(mine);
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 320, "distinct UIDs");
    let snap = s.select(&u, &inbox).await.unwrap();
    assert_eq!(snap.messages.len(), 320);
    assert!(snap.messages.iter().all(|m| m.flags.contains(&Flag::Seen)));
}
