//! The MailStore conformance suite: named checks that every backend must pass.
//!
//! It is a crate of its own so that nothing of it is compiled into pluto's product
//! code; `pluto-backends` runs it from its tests (`backends/tests/*_conformance.rs`,
//! as a dev-dependency), and so can a third-party backend: add `pluto-conformance` to
//! your crate's `[dev-dependencies]` and make one call with a factory for fresh stores:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use pluto_backends::maildir::MaildirStore;
//! # async fn example() {
//! let dir = tempfile::tempdir().unwrap();
//! let mut n = 0;
//! pluto_conformance::run_all(|| {
//!     n += 1;
//!     let root = dir.path().join(n.to_string());
//!     async move { Arc::new(MaildirStore::open(root).unwrap()) }
//! })
//! .await;
//! # }
//! ```
//!
//! [`run_all`] calls the factory once per check and hands the check the store it made
//! and a user of its own (`conf-<check name>`); a factory may also hand out the same
//! store every time ([`shared`]), since no check looks at another's user. Each check panics with a
//! message that names it when the store misbehaves; [`run_all`] runs every check in a
//! task of its own, then fails listing all that failed. The checks need a tokio runtime
//! with more than one worker thread (`#[tokio::test(flavor = "multi_thread")]`).
//! [`checks`] and [`run_one`] are for a caller that wants to run them one by one.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use futures::StreamExt;

use pluto_backends::*;

/// A boxed check future.
pub type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One named check: it gets the store and a user of its own.
pub struct Check<S> {
    pub name: &'static str,
    pub run: fn(Arc<S>, UserId) -> CheckFuture,
}

macro_rules! check {
    ($name:ident) => {
        Check {
            name: stringify!($name),
            run: |s, u| Box::pin($name(s, u)),
        }
    };
}

/// Every check, in a stable order.
pub fn checks<S: MailStore>() -> Vec<Check<S>> {
    vec![
        check!(open_user_creates_defaults),
        check!(append_fetch_byte_exact),
        check!(fetch_headers_is_the_header_section),
        check!(append_large_and_binary),
        check!(append_batch_and_dates),
        check!(uids_ascend_and_are_never_reused),
        check!(uid_validity_and_next_are_stable),
        check!(flags_add_remove_replace),
        check!(store_unchanged_since),
        check!(copy_keeps_bytes_flags_date),
        check!(copy_into_same_mailbox),
        check!(move_maps_and_expunges_source),
        check!(expunge_all_and_by_uid),
        check!(changes_since_delta),
        check!(watch_notifies_other_session),
        check!(create_with_parents),
        check!(rename_hierarchy),
        check!(rename_inbox),
        check!(delete_rules),
        check!(subscriptions),
        check!(status_counts),
        check!(usage_counts_every_mailbox),
        check!(recent_is_claimed_once),
        check!(typed_errors),
        check!(concurrent_appends),
        check!(object_ids_are_stable),
    ]
}

/// Runs every check, each against a store from `fresh` (called once per check);
/// panics listing the checks that failed.
pub async fn run_all<S, F, Fut>(mut fresh: F)
where
    S: MailStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let mut failed = Vec::new();
    for check in checks::<S>() {
        let store = fresh().await;
        if let Err(why) = run_one(store, &check).await {
            failed.push(why);
        }
    }
    if !failed.is_empty() {
        panic!(
            "{} conformance check(s) failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
}

/// A factory that hands out `store` to every check: for a store that is costly to
/// make (a node, a link), or whose point is to see every check's writes (e.g. to cross
/// many checkpoints).
pub fn shared<S: MailStore>(store: Arc<S>) -> impl FnMut() -> std::future::Ready<Arc<S>> {
    move || std::future::ready(store.clone())
}

/// Runs one check in its own task; `Err` carries its name and the panic message.
pub async fn run_one<S: MailStore>(store: Arc<S>, check: &Check<S>) -> Result<(), String> {
    let user = UserId::new(format!("conf-{}", check.name))
        .map_err(|e| format!("{}: bad user name: {e}", check.name))?;
    tracing::info!(check = check.name, "conformance check");
    match tokio::spawn((check.run)(store, user)).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let msg = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into()),
                Err(e) => e.to_string(),
            };
            Err(format!("  {}: {msg}", check.name))
        }
    }
}

// ---- helpers -------------------------------------------------------------------------

fn mb(name: &str) -> MailboxName {
    match MailboxName::new(name) {
        Ok(n) => n,
        Err(e) => panic!("test mailbox name {name:?}: {e}"),
    }
}

fn kw(name: &str) -> Flag {
    match Keyword::new(name) {
        Ok(k) => Flag::Keyword(k),
        Err(e) => panic!("test keyword {name:?}: {e}"),
    }
}

fn flags(list: &[Flag]) -> Flags {
    list.iter().cloned().collect()
}

fn msg(body: &[u8]) -> NewMessage {
    NewMessage {
        body: Bytes::copy_from_slice(body),
        flags: Flags::new(),
        internal_date: None,
    }
}

fn sample(n: usize) -> Vec<u8> {
    format!("From: a@example.org\r\nTo: b@example.org\r\nSubject: message {n}\r\n\r\nbody {n}\r\n")
        .into_bytes()
}

fn date(s: &str) -> DateTime<FixedOffset> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(d) => d,
        Err(e) => panic!("test date {s}: {e}"),
    }
}

fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

async fn setup<S: MailStore>(s: &S, u: &UserId) {
    ok("open_user", s.open_user(u).await);
}

async fn append_n<S: MailStore>(s: &S, u: &UserId, m: &MailboxName, n: usize) -> Vec<Uid> {
    let msgs = (0..n).map(|i| msg(&sample(i))).collect();
    ok("append", s.append(u, m, msgs).await).uids
}

async fn select<S: MailStore>(s: &S, u: &UserId, m: &MailboxName) -> MailboxSnapshot {
    ok("select", s.select(u, m).await)
}

async fn set<S: MailStore>(
    s: &S,
    u: &UserId,
    m: &MailboxName,
    uids: &[Uid],
    op: FlagOp,
    f: &[Flag],
) -> StoreOutcome {
    let change = FlagChange {
        op,
        flags: flags(f),
    };
    ok(
        "store_flags",
        s.store_flags(u, m, uids, &change, None).await,
    )
}

fn names(list: &MailboxList) -> Vec<&str> {
    list.mailboxes.iter().map(|m| m.name.as_str()).collect()
}

fn uid(n: u32) -> Uid {
    match Uid::new(n) {
        Some(u) => u,
        None => panic!("uid 0"),
    }
}

// ---- checks --------------------------------------------------------------------------

async fn open_user_creates_defaults<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    setup(&*s, &u).await; // idempotent
    let list = ok("list", s.list(&u).await);
    for (name, special) in DEFAULT_MAILBOXES {
        let found = list.mailboxes.iter().find(|m| m.name.as_str() == name);
        let Some(found) = found else {
            panic!("default mailbox {name} missing from {:?}", names(&list));
        };
        assert_eq!(found.special_use, special, "special use of {name}");
    }
    assert_eq!(
        list.mailboxes.len(),
        DEFAULT_MAILBOXES.len(),
        "{:?}",
        names(&list)
    );
    let sorted = {
        let mut v = list.mailboxes.clone();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    };
    assert_eq!(list.mailboxes, sorted, "list is sorted by name");
    let snap = select(&*s, &u, &MailboxName::inbox()).await;
    assert!(snap.messages.is_empty(), "a new INBOX is empty");
}

async fn fetch_headers_is_the_header_section<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let long_header = format!(
        "Subject: long\r\nX-Pad: {}\r\n\r\nbody\r\n",
        "p".repeat(20_000)
    );
    let bodies: Vec<Vec<u8>> = vec![
        b"Subject: a\r\nTo: b\r\n\r\nbody\r\n\r\nmore\r\n".to_vec(),
        b"Subject: b\n\nbare LF body\n".to_vec(),
        b"Subject: c\r\nno empty line".to_vec(),
        long_header.into_bytes(),
    ];
    let out = ok(
        "append",
        s.append(&u, &inbox, bodies.iter().map(|b| msg(b)).collect())
            .await,
    );
    let headers = ok(
        "fetch_headers",
        s.fetch_headers(&u, &inbox, &out.uids).await,
    );
    let want: Vec<&[u8]> = vec![
        b"Subject: a\r\nTo: b\r\n\r\n",
        b"Subject: b\n\n",
        b"Subject: c\r\nno empty line",
        &bodies[3][..bodies[3].len() - 6],
    ];
    assert_eq!(headers.len(), want.len());
    for ((got, want), uid) in headers.iter().zip(want).zip(&out.uids) {
        assert_eq!(got.uid, *uid);
        assert_eq!(&got.bytes[..], want, "header of uid {uid}");
    }
}

async fn append_fetch_byte_exact<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    // Bare LF, a lone CR, no final newline, a NUL: stored as given, not normalised.
    let bodies: Vec<&[u8]> = vec![
        b"Subject: a\r\n\r\nhello\r\n",
        b"Subject: b\n\nbare LF\nand a lone \r in it",
        b"Subject: c\r\n\r\nNUL \0 byte, no final newline",
        b"x",
    ];
    let out = ok(
        "append",
        s.append(&u, &inbox, bodies.iter().map(|b| msg(b)).collect())
            .await,
    );
    assert_eq!(out.uids.len(), bodies.len(), "one UID per message");
    let fetched = ok("fetch", s.fetch(&u, &inbox, &out.uids).await);
    assert_eq!(fetched.len(), bodies.len());
    for ((got, want), uid) in fetched.iter().zip(&bodies).zip(&out.uids) {
        assert_eq!(got.uid, *uid, "fetch answers in the order asked");
        assert_eq!(&got.bytes[..], *want, "bytes of uid {uid}");
    }
    let snap = select(&*s, &u, &inbox).await;
    for (m, want) in snap.messages.iter().zip(&bodies) {
        assert_eq!(m.size as usize, want.len(), "RFC822.SIZE of uid {}", m.uid);
    }
    // Reverse order and an unknown UID.
    let mut asked: Vec<Uid> = out.uids.iter().rev().copied().collect();
    asked.insert(1, uid(9999));
    let fetched = ok("fetch", s.fetch(&u, &inbox, &asked).await);
    let got: Vec<Uid> = fetched.iter().map(|b| b.uid).collect();
    let want: Vec<Uid> = out.uids.iter().rev().copied().collect();
    assert_eq!(got, want, "unknown UIDs are left out, order kept");
}

async fn append_large_and_binary<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let mut big = b"Subject: big\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    let mut x: u32 = 12345;
    while big.len() < (1 << 20) + 17 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.push((x >> 16) as u8);
    }
    let binary: Vec<u8> = (0u8..=255).cycle().take(70_000).collect();
    let out = ok(
        "append",
        s.append(&u, &inbox, vec![msg(&big), msg(&binary)]).await,
    );
    let fetched = ok("fetch", s.fetch(&u, &inbox, &out.uids).await);
    assert_eq!(fetched.len(), 2);
    assert!(fetched[0].bytes[..] == big[..], "1 MiB message differs");
    assert!(fetched[1].bytes[..] == binary[..], "8-bit message differs");
    let status = ok("status", s.status(&u, &inbox).await);
    assert_eq!(
        status.size,
        (big.len() + binary.len()) as u64,
        "status size"
    );
    let snap = select(&*s, &u, &inbox).await;
    assert_eq!(snap.messages[0].size as usize, big.len());
}

async fn append_batch_and_dates<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let when = date("2001-02-03T04:05:06+05:30");
    let m = NewMessage {
        body: Bytes::from_static(b"Subject: dated\r\n\r\nx\r\n"),
        flags: flags(&[Flag::Seen, Flag::Draft, kw("$Label1")]),
        internal_date: Some(when),
    };
    let before = chrono::Utc::now().timestamp() - 5;
    let out = ok("append", s.append(&u, &inbox, vec![m, msg(b"x")]).await);
    let snap = select(&*s, &u, &inbox).await;
    assert_eq!(snap.messages.len(), 2);
    let first = &snap.messages[0];
    assert_eq!(first.uid, out.uids[0]);
    assert_eq!(first.internal_date, when, "internal date kept");
    assert_eq!(
        first.internal_date.offset().local_minus_utc(),
        when.offset().local_minus_utc(),
        "zone kept"
    );
    assert_eq!(
        first.flags,
        flags(&[Flag::Seen, Flag::Draft, kw("$Label1")])
    );
    let second = &snap.messages[1];
    assert!(
        second.internal_date.timestamp() >= before,
        "default internal date is the time of the append"
    );
    assert!(second.flags.is_empty());
    assert_eq!(out.uid_validity, snap.uid_validity, "APPENDUID validity");
    let empty = ok("append none", s.append(&u, &inbox, Vec::new()).await);
    assert!(empty.uids.is_empty(), "appending nothing gives no UIDs");
}

async fn uids_ascend_and_are_never_reused<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let m = mb("Archive");
    let first = append_n(&*s, &u, &m, 3).await;
    assert!(
        first.windows(2).all(|w| w[0] < w[1]),
        "ascending: {first:?}"
    );
    set(&*s, &u, &m, &first, FlagOp::Add, &[Flag::Deleted]).await;
    let gone = ok("expunge", s.expunge(&u, &m, None).await);
    assert_eq!(gone, first);
    let again = append_n(&*s, &u, &m, 2).await;
    let last = first[first.len() - 1];
    assert!(
        again.iter().all(|x| *x > last),
        "UIDs reused after expunge: {again:?} vs {first:?}"
    );
    let snap = select(&*s, &u, &m).await;
    assert!(snap.uid_next > again[1], "UIDNEXT above every UID");
}

async fn uid_validity_and_next_are_stable<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let m = mb("Drafts");
    let a = select(&*s, &u, &m).await;
    let b = select(&*s, &u, &m).await;
    assert_eq!(a.uid_validity, b.uid_validity);
    assert_eq!(a.uid_next, b.uid_next, "UIDNEXT moves only with appends");
    let uids = append_n(&*s, &u, &m, 2).await;
    assert_eq!(uids[0], a.uid_next, "first UID is the UIDNEXT announced");
    let c = select(&*s, &u, &m).await;
    assert_eq!(c.uid_validity, a.uid_validity);
    assert_eq!(c.uid_next.get(), uids[1].get() + 1);
    assert!(
        c.highest_modseq > a.highest_modseq,
        "modseq moves with appends"
    );
    // A re-created mailbox of the same name gets a new UIDVALIDITY.
    let t = mb("Recreated");
    ok("create", s.create_mailbox(&u, &t, None).await);
    let v1 = select(&*s, &u, &t).await.uid_validity;
    ok("delete", s.delete_mailbox(&u, &t).await);
    ok("create", s.create_mailbox(&u, &t, None).await);
    let v2 = select(&*s, &u, &t).await.uid_validity;
    assert!(
        v2 > v1,
        "re-created mailbox: UIDVALIDITY {v2} not above {v1}"
    );
}

async fn flags_add_remove_replace<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let uids = append_n(&*s, &u, &inbox, 3).await;
    let out = set(
        &*s,
        &u,
        &inbox,
        &uids[..2],
        FlagOp::Add,
        &[Flag::Seen, kw("$Important")],
    )
    .await;
    assert_eq!(out.updated.len(), 2, "two messages changed");
    assert!(out.modified.is_empty());
    for m in &out.updated {
        assert!(m.flags.contains(&Flag::Seen) && m.flags.contains(&kw("$Important")));
    }
    // Adding what is there changes nothing.
    let out = set(&*s, &u, &inbox, &uids[..1], FlagOp::Add, &[Flag::Seen]).await;
    assert!(out.updated.is_empty(), "no-op STORE reports no update");
    let out = set(
        &*s,
        &u,
        &inbox,
        &uids[..1],
        FlagOp::Remove,
        &[kw("$Important")],
    )
    .await;
    assert_eq!(out.updated.len(), 1);
    assert_eq!(out.updated[0].flags, flags(&[Flag::Seen]));
    let all = [
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Draft,
        kw("Work"),
        kw("$Junk"),
    ];
    let out = set(&*s, &u, &inbox, &uids, FlagOp::Replace, &all).await;
    assert_eq!(out.updated.len(), 3);
    let snap = select(&*s, &u, &inbox).await;
    for m in &snap.messages {
        assert_eq!(m.flags, flags(&all), "flags of uid {} after replace", m.uid);
    }
    let modseqs: HashSet<ModSeq> = snap.messages.iter().map(|m| m.modseq).collect();
    assert!(modseqs.iter().all(|m| *m <= snap.highest_modseq));
    let out = set(&*s, &u, &inbox, &uids[2..], FlagOp::Replace, &[]).await;
    assert_eq!(out.updated.len(), 1);
    assert!(
        out.updated[0].flags.is_empty(),
        "replace with nothing clears"
    );
    assert!(
        out.updated[0].modseq > snap.highest_modseq,
        "a change gets a higher modseq"
    );
    // Unknown UIDs are ignored.
    let out = set(&*s, &u, &inbox, &[uid(777)], FlagOp::Add, &[Flag::Seen]).await;
    assert!(out.updated.is_empty() && out.modified.is_empty());
    // Flags survive a fresh look.
    let snap = select(&*s, &u, &inbox).await;
    assert!(snap.messages[2].flags.is_empty());
    assert_eq!(snap.messages[0].flags, flags(&all));
    // One change, one modseq: the mailbox's next (sessions rely on it).
    let before = select(&*s, &u, &inbox).await.highest_modseq;
    let flagged = set(&*s, &u, &inbox, &uids, FlagOp::Add, &[kw("$Checked")]).await;
    assert_eq!(flagged.updated.len(), 3);
    assert!(
        flagged.updated.iter().all(|m| m.modseq.0 == before.0 + 1),
        "a STORE's messages all get HIGHESTMODSEQ + 1 (was {before:?}): {:?}",
        flagged.updated
    );
    assert_eq!(select(&*s, &u, &inbox).await.highest_modseq.0, before.0 + 1);
}

async fn store_unchanged_since<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let uids = append_n(&*s, &u, &inbox, 2).await;
    let snap = select(&*s, &u, &inbox).await;
    let base = snap.highest_modseq;
    set(&*s, &u, &inbox, &uids[1..], FlagOp::Add, &[Flag::Flagged]).await;
    let change = FlagChange {
        op: FlagOp::Add,
        flags: flags(&[Flag::Seen]),
    };
    let out = ok(
        "store_flags",
        s.store_flags(&u, &inbox, &uids, &change, Some(base)).await,
    );
    assert_eq!(
        out.modified,
        vec![uids[1]],
        "the message changed since is refused"
    );
    assert_eq!(out.updated.len(), 1);
    assert_eq!(out.updated[0].uid, uids[0]);
    let snap = select(&*s, &u, &inbox).await;
    assert!(
        !snap.messages[1].flags.contains(&Flag::Seen),
        "refused message left alone"
    );
    assert!(snap.messages[0].flags.contains(&Flag::Seen));
}

async fn copy_keeps_bytes_flags_date<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let (inbox, arch) = (MailboxName::inbox(), mb("Archive"));
    let when = date("2010-10-10T10:10:10-03:00");
    let m = NewMessage {
        body: Bytes::from_static(b"Subject: keep me\r\n\r\n\xe9t\xe9\r\n"),
        flags: flags(&[Flag::Answered, kw("$Forwarded")]),
        internal_date: Some(when),
    };
    let src = ok(
        "append",
        s.append(&u, &inbox, vec![m.clone(), msg(b"y")]).await,
    )
    .uids;
    // Pre-existing message in the destination so mapped UIDs are not trivially 1..n.
    append_n(&*s, &u, &arch, 1).await;
    let mut asked = src.clone();
    asked.reverse();
    asked.push(uid(4242));
    let out = ok("copy", s.copy(&u, &inbox, &asked, &arch).await);
    let dest = select(&*s, &u, &arch).await;
    assert_eq!(
        out.uid_validity, dest.uid_validity,
        "COPYUID names the destination"
    );
    assert_eq!(out.mapping.len(), 2, "unknown source UIDs left out");
    assert_eq!(out.mapping[0].0, src[0], "mapping ascending by source UID");
    assert_eq!(out.mapping[1].0, src[1]);
    assert!(out.mapping[0].1 < out.mapping[1].1);
    let copied = dest
        .messages
        .iter()
        .find(|x| x.uid == out.mapping[0].1)
        .unwrap_or_else(|| panic!("copied message missing"));
    assert_eq!(copied.flags, m.flags);
    assert_eq!(copied.internal_date, when);
    let body = ok("fetch", s.fetch(&u, &arch, &[out.mapping[0].1]).await);
    assert_eq!(body[0].bytes, m.body, "copied bytes");
    assert_eq!(
        select(&*s, &u, &inbox).await.messages.len(),
        2,
        "copy leaves the source"
    );
    // Changing the copy leaves the original alone.
    set(
        &*s,
        &u,
        &arch,
        &[out.mapping[0].1],
        FlagOp::Add,
        &[Flag::Deleted],
    )
    .await;
    ok("expunge", s.expunge(&u, &arch, None).await);
    let original = ok("fetch", s.fetch(&u, &inbox, &src[..1]).await);
    assert_eq!(
        original[0].bytes, m.body,
        "expunging a copy keeps the original"
    );
    let snap = select(&*s, &u, &inbox).await;
    assert!(!snap.messages[0].flags.contains(&Flag::Deleted));
}

async fn copy_into_same_mailbox<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let src = append_n(&*s, &u, &inbox, 2).await;
    let out = ok("copy", s.copy(&u, &inbox, &src, &inbox).await);
    assert_eq!(out.mapping.len(), 2);
    assert!(
        out.mapping.iter().all(|(_, d)| *d > src[1]),
        "copies get new UIDs"
    );
    let snap = select(&*s, &u, &inbox).await;
    assert_eq!(snap.messages.len(), 4);
    let bodies = ok(
        "fetch",
        s.fetch(&u, &inbox, &[src[0], out.mapping[0].1]).await,
    );
    assert_eq!(bodies[0].bytes, bodies[1].bytes);
    let out = ok("move", s.move_messages(&u, &inbox, &src[..1], &inbox).await);
    assert_eq!(out.mapping.len(), 1);
    let snap = select(&*s, &u, &inbox).await;
    assert_eq!(
        snap.messages.len(),
        4,
        "move within a mailbox keeps the count"
    );
    assert!(
        snap.messages.iter().all(|m| m.uid != src[0]),
        "moved source gone"
    );
}

async fn move_maps_and_expunges_source<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let (inbox, trash) = (MailboxName::inbox(), mb("Trash"));
    let src = append_n(&*s, &u, &inbox, 3).await;
    set(&*s, &u, &inbox, &src[1..2], FlagOp::Add, &[Flag::Seen]).await;
    let before = select(&*s, &u, &inbox).await.highest_modseq;
    let out = ok("move", s.move_messages(&u, &inbox, &src[..2], &trash).await);
    assert_eq!(
        out.mapping.iter().map(|m| m.0).collect::<Vec<_>>(),
        src[..2].to_vec()
    );
    let dest = select(&*s, &u, &trash).await;
    assert_eq!(out.uid_validity, dest.uid_validity);
    assert_eq!(dest.messages.len(), 2);
    assert!(
        dest.messages[1].flags.contains(&Flag::Seen),
        "flags move along"
    );
    let left = select(&*s, &u, &inbox).await;
    assert_eq!(
        left.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![src[2]]
    );
    let changes = ok("changes", s.changes_since(&u, &inbox, before).await);
    let (_, _, _, expunged) = as_delta(changes, &src, before);
    assert_eq!(expunged, src[..2].to_vec(), "move expunges sources");
    let bodies = ok("fetch", s.fetch(&u, &trash, &[out.mapping[0].1]).await);
    assert_eq!(&bodies[0].bytes[..], &sample(0)[..]);
}

async fn expunge_all_and_by_uid<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let uids = append_n(&*s, &u, &inbox, 5).await;
    let none = ok("expunge", s.expunge(&u, &inbox, None).await);
    assert!(none.is_empty(), "nothing flagged, nothing expunged");
    set(
        &*s,
        &u,
        &inbox,
        &[uids[0], uids[2], uids[4]],
        FlagOp::Add,
        &[Flag::Deleted],
    )
    .await;
    let some = ok(
        "uid expunge",
        s.expunge(&u, &inbox, Some(&[uids[4], uids[1], uids[0]]))
            .await,
    );
    assert_eq!(
        some,
        vec![uids[0], uids[4]],
        "only flagged UIDs among those given, ascending"
    );
    let snap = select(&*s, &u, &inbox).await;
    assert_eq!(
        snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![uids[1], uids[2], uids[3]]
    );
    let rest = ok("expunge", s.expunge(&u, &inbox, None).await);
    assert_eq!(rest, vec![uids[2]]);
    let fetched = ok("fetch", s.fetch(&u, &inbox, &uids).await);
    assert_eq!(
        fetched.iter().map(|b| b.uid).collect::<Vec<_>>(),
        vec![uids[1], uids[3]],
        "expunged messages cannot be fetched"
    );
    let status = ok("status", s.status(&u, &inbox).await);
    assert_eq!(status.messages, 2);
}

async fn changes_since_delta<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let uids = append_n(&*s, &u, &inbox, 4).await;
    let base = select(&*s, &u, &inbox).await;
    match ok(
        "changes",
        s.changes_since(&u, &inbox, base.highest_modseq).await,
    ) {
        Changes::Delta {
            highest_modseq,
            updated,
            expunged,
            uid_next,
        } => {
            assert_eq!(highest_modseq, base.highest_modseq);
            assert_eq!(uid_next, base.uid_next);
            assert!(
                updated.is_empty() && expunged.is_empty(),
                "nothing changed yet"
            );
        }
        Changes::Snapshot(_) => panic!("no change should still be a delta"),
    }
    set(&*s, &u, &inbox, &uids[..2], FlagOp::Add, &[Flag::Deleted]).await;
    set(&*s, &u, &inbox, &uids[3..], FlagOp::Add, &[kw("Later")]).await;
    ok("expunge", s.expunge(&u, &inbox, Some(&uids[..1])).await);
    let new = append_n(&*s, &u, &inbox, 1).await;
    // A store that compacts its history (the replicated one, at a checkpoint) may answer
    // with the whole mailbox instead; it must say the same.
    let changes = ok(
        "changes",
        s.changes_since(&u, &inbox, base.highest_modseq).await,
    );
    let (highest_modseq, uid_next, updated, expunged) =
        as_delta(changes, &uids, base.highest_modseq);
    let up: Vec<Uid> = updated.iter().map(|m| m.uid).collect();
    assert_eq!(up, vec![uids[1], uids[3], new[0]], "updated, ascending");
    assert_eq!(expunged, vec![uids[0]]);
    assert!(highest_modseq > base.highest_modseq);
    assert!(
        updated
            .iter()
            .all(|m| m.modseq > base.highest_modseq && m.modseq <= highest_modseq)
    );
    assert_eq!(uid_next.get(), new[0].get() + 1);
    let mid = updated
        .iter()
        .map(|m| m.modseq)
        .min()
        .unwrap_or(highest_modseq);
    // From a later point only later changes show.
    let now: Vec<Uid> = vec![uids[1], uids[2], uids[3], new[0]];
    let later = ok("changes", s.changes_since(&u, &inbox, highest_modseq).await);
    let (_, _, updated, expunged) = as_delta(later, &now, highest_modseq);
    assert!(updated.is_empty() && expunged.is_empty());
    let from_mid = ok("changes", s.changes_since(&u, &inbox, mid).await);
    let (_, _, updated, _) = as_delta(from_mid, &now, mid);
    assert!(updated.iter().all(|m| m.modseq > mid));
}

/// A change set as a delta: a [`Changes::Snapshot`] (a store that compacted its history)
/// turned into what changed after `since`, given the UIDs the caller knew then.
fn as_delta(
    changes: Changes,
    known: &[Uid],
    since: ModSeq,
) -> (ModSeq, Uid, Vec<MessageMeta>, Vec<Uid>) {
    match changes {
        Changes::Delta {
            highest_modseq,
            uid_next,
            updated,
            expunged,
        } => (highest_modseq, uid_next, updated, expunged),
        Changes::Snapshot(snap) => {
            let present: Vec<Uid> = snap.messages.iter().map(|m| m.uid).collect();
            let expunged = known
                .iter()
                .filter(|u| !present.contains(u))
                .copied()
                .collect();
            let updated = snap
                .messages
                .into_iter()
                .filter(|m| m.modseq > since)
                .collect();
            (snap.highest_modseq, snap.uid_next, updated, expunged)
        }
    }
}

async fn next_within<T>(what: &str, fut: impl Future<Output = Option<T>>) -> T {
    match tokio::time::timeout(Duration::from_secs(10), fut).await {
        Ok(Some(v)) => v,
        Ok(None) => panic!("change feed ended while waiting for {what}"),
        Err(_) => panic!("no notification within 10 s for {what}"),
    }
}

async fn watch_notifies_other_session<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let mut feed = ok("watch", s.watch(&u, &inbox).await);
    let other = {
        let (s, u, inbox) = (s.clone(), u.clone(), inbox.clone());
        tokio::spawn(async move { append_n(&*s, &u, &inbox, 1).await })
    };
    let uids = match other.await {
        Ok(v) => v,
        Err(e) => panic!("other session failed: {e}"),
    };
    let after_append = select(&*s, &u, &inbox).await.highest_modseq;
    let mut seen = next_within("append", feed.next()).await;
    while seen < after_append {
        seen = next_within("append", feed.next()).await;
    }
    set(&*s, &u, &inbox, &uids, FlagOp::Add, &[Flag::Deleted]).await;
    let after_store = select(&*s, &u, &inbox).await.highest_modseq;
    while seen < after_store {
        seen = next_within("store", feed.next()).await;
    }
    ok("expunge", s.expunge(&u, &inbox, None).await);
    let after_expunge = select(&*s, &u, &inbox).await.highest_modseq;
    assert!(after_expunge > after_store);
    while seen < after_expunge {
        seen = next_within("expunge", feed.next()).await;
    }
    // Another mailbox's changes are not this feed's business, and need not arrive.
    let missing = s.watch(&u, &mb("No/Such")).await;
    assert!(
        matches!(missing, Err(StoreError::NoSuchMailbox(_))),
        "watch on a missing mailbox: {:?}",
        missing.map(|_| ())
    );
}

async fn create_with_parents<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    ok("create", s.create_mailbox(&u, &mb("a/b/c"), None).await);
    let list = ok("list", s.list(&u).await);
    for n in ["a", "a/b", "a/b/c"] {
        assert!(
            names(&list).contains(&n),
            "{n} missing from {:?}",
            names(&list)
        );
    }
    ok(
        "create",
        s.create_mailbox(&u, &mb("a/x"), Some(SpecialUse::Flagged))
            .await,
    );
    let list = ok("list", s.list(&u).await);
    let x = list.mailboxes.iter().find(|m| m.name.as_str() == "a/x");
    assert_eq!(x.and_then(|m| m.special_use), Some(SpecialUse::Flagged));
    // Names with dots and odd characters are names, not paths.
    for n in ["dots.in.name", "x/..y", "~tilde", "plus+cent", "Entwürfe"] {
        ok("create", s.create_mailbox(&u, &mb(n), None).await);
        let uids = append_n(&*s, &u, &mb(n), 1).await;
        assert_eq!(uids.len(), 1);
    }
    let list = ok("list", s.list(&u).await);
    for n in [
        "dots.in.name",
        "x",
        "x/..y",
        "~tilde",
        "plus+cent",
        "Entwürfe",
    ] {
        assert!(
            names(&list).contains(&n),
            "{n} missing from {:?}",
            names(&list)
        );
    }
    assert!(!names(&list).contains(&"dots"), "a dot is not a separator");
}

async fn rename_hierarchy<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    ok("create", s.create_mailbox(&u, &mb("p/q"), None).await);
    let uids = append_n(&*s, &u, &mb("p/q"), 2).await;
    set(&*s, &u, &mb("p/q"), &uids[..1], FlagOp::Add, &[kw("Keep")]).await;
    let before = select(&*s, &u, &mb("p/q")).await;
    ok("subscribe", s.set_subscribed(&u, &mb("p/q"), true).await);
    ok("rename", s.rename_mailbox(&u, &mb("p"), &mb("r/s")).await);
    let list = ok("list", s.list(&u).await);
    let n = names(&list);
    assert!(
        n.contains(&"r") && n.contains(&"r/s") && n.contains(&"r/s/q"),
        "{n:?}"
    );
    assert!(!n.contains(&"p") && !n.contains(&"p/q"), "{n:?}");
    let after = select(&*s, &u, &mb("r/s/q")).await;
    assert_eq!(
        after.uid_validity, before.uid_validity,
        "UIDVALIDITY travels with the data"
    );
    assert_eq!(
        after.messages, before.messages,
        "messages, UIDs and flags travel"
    );
    let body = ok("fetch", s.fetch(&u, &mb("r/s/q"), &uids[1..]).await);
    assert_eq!(&body[0].bytes[..], &sample(1)[..]);
    assert!(matches!(
        s.select(&u, &mb("p/q")).await,
        Err(StoreError::NoSuchMailbox(_))
    ));
    // Renaming onto an existing name or below itself fails.
    ok("create", s.create_mailbox(&u, &mb("t"), None).await);
    let e = s.rename_mailbox(&u, &mb("t"), &mb("r/s")).await;
    assert!(matches!(e, Err(StoreError::MailboxExists(_))), "{e:?}");
    let e = s.rename_mailbox(&u, &mb("t"), &mb("t/inner")).await;
    assert!(matches!(e, Err(StoreError::NotAllowed(_))), "{e:?}");
    let e = s.rename_mailbox(&u, &mb("nope"), &mb("nope2")).await;
    assert!(matches!(e, Err(StoreError::NoSuchMailbox(_))), "{e:?}");
    // A renamed mailbox keeps working.
    let more = append_n(&*s, &u, &mb("r/s/q"), 1).await;
    assert!(more[0] > uids[1]);
}

async fn rename_inbox<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    ok(
        "create",
        s.create_mailbox(&u, &mb("INBOX/child"), None).await,
    );
    let uids = append_n(&*s, &u, &inbox, 3).await;
    set(&*s, &u, &inbox, &uids[..1], FlagOp::Add, &[Flag::Seen]).await;
    ok(
        "rename",
        s.rename_mailbox(&u, &inbox, &mb("Old mail")).await,
    );
    let left = select(&*s, &u, &inbox).await;
    assert!(left.messages.is_empty(), "INBOX is left empty");
    assert!(left.uid_next > uids[2], "INBOX UIDs are not reused");
    let moved = select(&*s, &u, &mb("Old mail")).await;
    assert_eq!(moved.messages.len(), 3);
    assert!(moved.messages[0].flags.contains(&Flag::Seen));
    let list = ok("list", s.list(&u).await);
    assert!(
        names(&list).contains(&"INBOX/child"),
        "INBOX's children stay"
    );
    let again = append_n(&*s, &u, &inbox, 1).await;
    assert!(again[0] > uids[2]);
}

async fn delete_rules<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let e = s.delete_mailbox(&u, &MailboxName::inbox()).await;
    assert!(
        matches!(e, Err(StoreError::NotAllowed(_))),
        "deleting INBOX: {e:?}"
    );
    // A parent can be deleted (RFC 3501 6.3.4): its own messages go, the mailboxes
    // below it stay, with their mail.
    ok("create", s.create_mailbox(&u, &mb("d/e"), None).await);
    append_n(&*s, &u, &mb("d/e"), 2).await;
    append_n(&*s, &u, &mb("d"), 1).await;
    ok("delete parent", s.delete_mailbox(&u, &mb("d")).await);
    let list = ok("list", s.list(&u).await);
    assert!(
        names(&list).contains(&"d/e") && !names(&list).contains(&"d"),
        "after deleting the parent: {:?}",
        names(&list)
    );
    assert_eq!(
        select(&*s, &u, &mb("d/e")).await.messages.len(),
        2,
        "the child keeps its mail"
    );
    let e = s.select(&u, &mb("d")).await;
    assert!(matches!(e, Err(StoreError::NoSuchMailbox(_))), "{e:?}");
    ok("delete", s.delete_mailbox(&u, &mb("d/e")).await);
    let list = ok("list", s.list(&u).await);
    assert!(
        !names(&list).iter().any(|n| n.starts_with('d')),
        "{:?}",
        names(&list)
    );
    let e = s.delete_mailbox(&u, &mb("d")).await;
    assert!(matches!(e, Err(StoreError::NoSuchMailbox(_))), "{e:?}");
    let e = s.select(&u, &mb("d/e")).await;
    assert!(matches!(e, Err(StoreError::NoSuchMailbox(_))), "{e:?}");
    // Re-created: empty.
    ok("create", s.create_mailbox(&u, &mb("d/e"), None).await);
    assert!(select(&*s, &u, &mb("d/e")).await.messages.is_empty());
    // Deleting a special-use mailbox is allowed.
    ok("delete", s.delete_mailbox(&u, &mb("Junk")).await);
}

async fn subscriptions<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    ok("sub", s.set_subscribed(&u, &mb("Nowhere/Yet"), true).await);
    ok("sub", s.set_subscribed(&u, &mb("Sent"), true).await);
    ok("sub", s.set_subscribed(&u, &mb("Sent"), true).await);
    let list = ok("list", s.list(&u).await);
    assert!(
        list.subscriptions.contains(&mb("Nowhere/Yet")),
        "nonexistent names can be subscribed"
    );
    assert!(
        !names(&list).contains(&"Nowhere/Yet"),
        "subscribing does not create"
    );
    assert_eq!(
        list.subscriptions
            .iter()
            .filter(|n| n.as_str() == "Sent")
            .count(),
        1
    );
    let mut sorted = list.subscriptions.clone();
    sorted.sort();
    assert_eq!(sorted, list.subscriptions, "subscriptions sorted");
    ok(
        "unsub",
        s.set_subscribed(&u, &mb("Nowhere/Yet"), false).await,
    );
    ok("unsub", s.set_subscribed(&u, &mb("Never"), false).await);
    let list = ok("list", s.list(&u).await);
    assert!(!list.subscriptions.contains(&mb("Nowhere/Yet")));
    // Deleting a mailbox does not unsubscribe it (RFC 3501 6.3.4).
    ok("create", s.create_mailbox(&u, &mb("Tmp"), None).await);
    ok("sub", s.set_subscribed(&u, &mb("Tmp"), true).await);
    ok("delete", s.delete_mailbox(&u, &mb("Tmp")).await);
    let list = ok("list", s.list(&u).await);
    assert!(list.subscriptions.contains(&mb("Tmp")));
}

async fn status_counts<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let uids = append_n(&*s, &u, &inbox, 5).await;
    set(&*s, &u, &inbox, &uids[..2], FlagOp::Add, &[Flag::Seen]).await;
    set(&*s, &u, &inbox, &uids[1..4], FlagOp::Add, &[Flag::Deleted]).await;
    let st = ok("status", s.status(&u, &inbox).await);
    let snap = select(&*s, &u, &inbox).await;
    assert_eq!(st.messages, 5);
    assert_eq!(st.unseen, 3);
    assert_eq!(st.deleted, 3);
    assert_eq!(st.uid_next, snap.uid_next);
    assert_eq!(st.uid_validity, snap.uid_validity);
    assert_eq!(st.highest_modseq, snap.highest_modseq);
    let size: u64 = (0..5).map(|i| sample(i).len() as u64).sum();
    assert_eq!(st.size, size);
    let empty = ok("status", s.status(&u, &mb("Sent")).await);
    assert_eq!((empty.messages, empty.unseen, empty.size), (0, 0, 0));
}

/// `usage` is the sizes and number of the messages of every mailbox: it follows
/// appends, copies, moves, expunges, deletes and renames, counts `\Deleted` messages
/// until they are expunged, and never counts a message twice.
async fn usage_counts_every_mailbox<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let usage = |what: &'static str| {
        let s = s.clone();
        let u = u.clone();
        async move { ok(what, s.usage(&u).await) }
    };
    assert_eq!(usage("usage of a new user").await, Usage::default());
    let inbox = MailboxName::inbox();
    let size = |range: std::ops::Range<usize>| range.map(|i| sample(i).len() as u64).sum::<u64>();
    let uids = append_n(&*s, &u, &inbox, 4).await;
    assert_eq!(usage("usage").await, Usage::new(size(0..4), 4));
    let work = mb("Work");
    ok("create", s.create_mailbox(&u, &work, None).await);
    let copied = ok("copy", s.copy(&u, &inbox, &uids[..2], &work).await);
    assert_eq!(
        usage("usage after a copy").await,
        Usage::new(size(0..4) + size(0..2), 6)
    );
    ok(
        "move",
        s.move_messages(&u, &inbox, &uids[2..3], &work).await,
    );
    assert_eq!(
        usage("usage after a move").await,
        Usage::new(size(0..4) + size(0..2), 6),
        "a move changes nothing"
    );
    set(&*s, &u, &inbox, &uids[..1], FlagOp::Add, &[Flag::Deleted]).await;
    assert_eq!(
        usage("usage with a \\Deleted message").await,
        Usage::new(size(0..4) + size(0..2), 6),
        "\\Deleted messages count until expunged"
    );
    ok("expunge", s.expunge(&u, &inbox, None).await);
    assert_eq!(
        usage("usage after an expunge").await,
        Usage::new(size(1..4) + size(0..2), 5)
    );
    let renamed = mb("Projects");
    ok("rename", s.rename_mailbox(&u, &work, &renamed).await);
    assert_eq!(
        usage("usage after a rename").await,
        Usage::new(size(1..4) + size(0..2), 5)
    );
    ok("delete", s.delete_mailbox(&u, &renamed).await);
    assert_eq!(
        usage("usage after a delete").await,
        Usage::new(size(1..2) + size(3..4), 2),
        "the deleted mailbox held the two copies and the moved message ({} copied)",
        copied.mapping.len()
    );
}

async fn recent_is_claimed_once<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let uids = append_n(&*s, &u, &inbox, 3).await;
    let get = |claim| {
        let s = s.clone();
        let u = u.clone();
        let inbox = inbox.clone();
        async move { ok("recent", s.recent(&u, &inbox, claim).await) }
    };
    // Looking claims nothing.
    let peek = get(false).await;
    assert!(
        uids.iter().all(|&uid| peek.contains(uid)),
        "{peek:?} {uids:?}"
    );
    assert_eq!(get(false).await, peek);
    // The first claim takes all three; the next one nothing.
    let first = get(true).await;
    assert!(uids.iter().all(|&uid| first.contains(uid)), "{first:?}");
    let second = get(true).await;
    assert!(uids.iter().all(|&uid| !second.contains(uid)), "{second:?}");
    assert!(!get(false).await.contains(uids[2]));
    // New mail is recent once more, for one claimer.
    let more = append_n(&*s, &u, &inbox, 1).await;
    let third = get(true).await;
    assert!(third.contains(more[0]), "{third:?}");
    assert!(!third.contains(uids[2]), "{third:?}");
    assert!(!get(true).await.contains(more[0]));
    // Another mailbox keeps its own claims; a copy's target gets them too.
    let sent = mb("Sent");
    let in_sent = ok("copy", s.copy(&u, &inbox, &uids, &sent).await);
    let r = ok("recent", s.recent(&u, &sent, true).await);
    assert!(
        in_sent.mapping.iter().all(|(_, to)| r.contains(*to)),
        "{r:?}"
    );
    assert!(!ok("recent", s.recent(&u, &sent, true).await).contains(in_sent.mapping[0].1));
    assert!(matches!(
        s.recent(&u, &mb("Nope"), true).await,
        Err(StoreError::NoSuchMailbox(_))
    ));
}

async fn typed_errors<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let ghost = mb("Ghost");
    let inbox = MailboxName::inbox();
    macro_rules! nsm {
        ($e:expr, $what:literal) => {
            let r = $e;
            assert!(
                matches!(r, Err(StoreError::NoSuchMailbox(_))),
                "{}: {:?}",
                $what,
                r.map(|_| ())
            );
        };
    }
    nsm!(s.select(&u, &ghost).await, "select");
    nsm!(s.status(&u, &ghost).await, "status");
    nsm!(
        s.changes_since(&u, &ghost, ModSeq(1)).await,
        "changes_since"
    );
    nsm!(s.fetch(&u, &ghost, &[uid(1)]).await, "fetch");
    nsm!(s.append(&u, &ghost, vec![msg(b"x")]).await, "append");
    nsm!(
        s.store_flags(
            &u,
            &ghost,
            &[uid(1)],
            &FlagChange {
                op: FlagOp::Add,
                flags: flags(&[Flag::Seen])
            },
            None
        )
        .await,
        "store"
    );
    nsm!(s.expunge(&u, &ghost, None).await, "expunge");
    nsm!(
        s.copy(&u, &inbox, &[uid(1)], &ghost).await,
        "copy to missing"
    );
    nsm!(
        s.copy(&u, &ghost, &[uid(1)], &inbox).await,
        "copy from missing"
    );
    nsm!(
        s.move_messages(&u, &inbox, &[uid(1)], &ghost).await,
        "move to missing"
    );
    nsm!(s.delete_mailbox(&u, &ghost).await, "delete");
    nsm!(s.rename_mailbox(&u, &ghost, &mb("Ghost2")).await, "rename");
    let r = s.create_mailbox(&u, &mb("Sent"), None).await;
    assert!(
        matches!(r, Err(StoreError::MailboxExists(_))),
        "create existing: {r:?}"
    );
    let r = s.create_mailbox(&u, &inbox, None).await;
    assert!(
        matches!(r, Err(StoreError::MailboxExists(_))),
        "create INBOX: {r:?}"
    );
    let r = s.rename_mailbox(&u, &mb("Sent"), &mb("Drafts")).await;
    assert!(
        matches!(r, Err(StoreError::MailboxExists(_))),
        "rename onto existing: {r:?}"
    );
    // A failed append to a missing mailbox left nothing behind.
    assert!(!names(&ok("list", s.list(&u).await)).contains(&"Ghost"));
}

async fn concurrent_appends<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let inbox = MailboxName::inbox();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (s, u, inbox) = (s.clone(), u.clone(), inbox.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..10 {
                let body = format!("Subject: task {t} message {i}\r\n\r\n.\r\n");
                let out = ok(
                    "append",
                    s.append(&u, &inbox, vec![msg(body.as_bytes())]).await,
                );
                got.push((out.uids[0], body));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        match t.await {
            Ok(v) => {
                assert!(
                    v.windows(2).all(|w| w[0].0 < w[1].0),
                    "one session's UIDs ascend"
                );
                all.extend(v);
            }
            Err(e) => panic!("append task failed: {e}"),
        }
    }
    let distinct: HashSet<Uid> = all.iter().map(|(u, _)| *u).collect();
    assert_eq!(distinct.len(), 80, "every append got its own UID");
    let snap = select(&*s, &u, &inbox).await;
    assert_eq!(snap.messages.len(), 80);
    let uids: Vec<Uid> = all.iter().map(|(u, _)| *u).collect();
    let bodies = ok("fetch", s.fetch(&u, &inbox, &uids).await);
    for ((uid, want), got) in all.iter().zip(&bodies) {
        assert_eq!(got.uid, *uid);
        assert_eq!(
            &got.bytes[..],
            want.as_bytes(),
            "uid {uid} has another message's bytes"
        );
    }
}

/// RFC 8474: MAILBOXID is CREATE's, STATUS's and SELECT's alike, survives RENAME, and
/// differs between mailboxes and for a mailbox made again under a deleted one's name;
/// EMAILID differs between messages of different bytes and is kept by COPY and MOVE
/// into another mailbox.
async fn object_ids_are_stable<S: MailStore>(s: Arc<S>, u: UserId) {
    setup(&*s, &u).await;
    let (a, b, c) = (mb("Ids-A"), mb("Ids-B"), mb("Ids-C"));
    let created = ok("create", s.create_mailbox(&u, &a, None).await);
    let other = ok("create", s.create_mailbox(&u, &b, None).await);
    assert_ne!(created, other, "two mailboxes share a MAILBOXID");
    assert_eq!(ok("status", s.status(&u, &a).await).mailbox_id, created);
    assert_eq!(select(&*s, &u, &a).await.mailbox_id, created);
    ok("rename", s.rename_mailbox(&u, &a, &c).await);
    assert_eq!(
        ok("status", s.status(&u, &c).await).mailbox_id,
        created,
        "RENAME changed the MAILBOXID"
    );
    let again = ok("create", s.create_mailbox(&u, &a, None).await);
    assert_ne!(
        again, created,
        "a new mailbox under an old name kept its MAILBOXID"
    );

    let uids = append_n(&*s, &u, &c, 2).await;
    let before = select(&*s, &u, &c).await.messages;
    assert_ne!(
        before[0].email_id, before[1].email_id,
        "two messages share an EMAILID"
    );
    ok("copy", s.copy(&u, &c, &uids[..1], &b).await);
    ok("move", s.move_messages(&u, &c, &uids[1..], &b).await);
    let after: Vec<ObjectId> = select(&*s, &u, &b)
        .await
        .messages
        .iter()
        .map(|m| m.email_id)
        .collect();
    assert_eq!(
        after,
        [before[0].email_id, before[1].email_id],
        "COPY or MOVE changed the EMAILID"
    );
}
