//! Every MailStore method has its Store RPC. The trait's methods, as `src/store.rs`
//! declares them, are the RPC's list (`remote::METHODS`, made from `methods.rs`): a
//! method with a default body left out of the list would still build, and the client
//! would run the default instead of calling the node. And every method, called
//! through a RemoteStore, reaches the node's store as itself (a Maildir store that
//! notes each call), while the link's own calls (`Unwatch`, `NodeStatus`) reach no
//! store at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use pluto_backends::error::StoreResult;
use pluto_backends::maildir::MaildirStore;
use pluto_backends::net::{MAX_CHUNK, pki};
use pluto_backends::remote::{METHODS, NodeStatus, RemoteStore, StatusFn, serve};
use pluto_backends::*;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod replicated_support;
use replicated_support::tls;

/// The methods of `pub trait MailStore` in `src/store.rs`, in their order there.
fn trait_methods() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store.rs");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("pub trait MailStore")
        .expect("the trait in src/store.rs");
    let body = &text[start..];
    let end = body.find("\n}").expect("the end of the trait");
    body[..end]
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("async fn ")?;
            Some(rest.split('(').next()?.trim().to_owned())
        })
        .collect()
}

#[test]
fn every_mail_store_method_has_an_rpc() {
    let declared = trait_methods();
    // Not a vacuous comparison: the reader finds the methods there are.
    assert!(declared.len() >= 17, "read {declared:?} from src/store.rs");
    assert!(declared.iter().any(|m| m == "fetch_headers"));
    let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
    let listed: BTreeSet<&str> = METHODS.iter().copied().collect();
    assert_eq!(
        listed.len(),
        METHODS.len(),
        "a method listed twice: {METHODS:?}"
    );
    let missing: Vec<_> = declared.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "MailStore methods with no Store RPC (add them to the list in \
         backends/src/remote/methods.rs): {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&declared).collect();
    assert!(stale.is_empty(), "RPCs for no MailStore method: {stale:?}");
}

/// A Maildir store that notes which of its methods each call came to.
struct Noting {
    inner: MaildirStore,
    calls: Mutex<Vec<&'static str>>,
}

impl Noting {
    fn note(&self, method: &'static str) {
        self.calls.lock().unwrap().push(method);
    }

    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

#[async_trait]
impl MailStore for Noting {
    async fn open_user(&self, user: &UserId) -> StoreResult<()> {
        self.note("open_user");
        self.inner.open_user(user).await
    }

    async fn list(&self, user: &UserId) -> StoreResult<MailboxList> {
        self.note("list");
        self.inner.list(user).await
    }

    async fn create_mailbox(
        &self,
        user: &UserId,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<ObjectId> {
        self.note("create_mailbox");
        self.inner.create_mailbox(user, name, special_use).await
    }

    async fn delete_mailbox(&self, user: &UserId, name: &MailboxName) -> StoreResult<()> {
        self.note("delete_mailbox");
        self.inner.delete_mailbox(user, name).await
    }

    async fn rename_mailbox(
        &self,
        user: &UserId,
        from: &MailboxName,
        to: &MailboxName,
    ) -> StoreResult<()> {
        self.note("rename_mailbox");
        self.inner.rename_mailbox(user, from, to).await
    }

    async fn set_subscribed(
        &self,
        user: &UserId,
        name: &MailboxName,
        subscribed: bool,
    ) -> StoreResult<()> {
        self.note("set_subscribed");
        self.inner.set_subscribed(user, name, subscribed).await
    }

    async fn status(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxStatus> {
        self.note("status");
        self.inner.status(user, name).await
    }

    async fn recent(
        &self,
        user: &UserId,
        name: &MailboxName,
        claim: bool,
    ) -> StoreResult<RecentRange> {
        self.note("recent");
        self.inner.recent(user, name, claim).await
    }

    async fn select(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxSnapshot> {
        self.note("select");
        self.inner.select(user, name).await
    }

    async fn changes_since(
        &self,
        user: &UserId,
        name: &MailboxName,
        since: ModSeq,
    ) -> StoreResult<Changes> {
        self.note("changes_since");
        self.inner.changes_since(user, name, since).await
    }

    async fn watch(&self, user: &UserId, name: &MailboxName) -> StoreResult<ChangeFeed> {
        self.note("watch");
        self.inner.watch(user, name).await
    }

    async fn fetch(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.note("fetch");
        self.inner.fetch(user, name, uids).await
    }

    async fn fetch_headers(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.note("fetch_headers");
        self.inner.fetch_headers(user, name, uids).await
    }

    async fn append(
        &self,
        user: &UserId,
        name: &MailboxName,
        messages: Vec<NewMessage>,
    ) -> StoreResult<AppendOutcome> {
        self.note("append");
        self.inner.append(user, name, messages).await
    }

    async fn store_flags(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<StoreOutcome> {
        self.note("store_flags");
        self.inner
            .store_flags(user, name, uids, change, unchanged_since)
            .await
    }

    async fn copy(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        self.note("copy");
        self.inner.copy(user, from, uids, to).await
    }

    async fn move_messages(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        self.note("move_messages");
        self.inner.move_messages(user, from, uids, to).await
    }

    async fn expunge(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: Option<&[Uid]>,
    ) -> StoreResult<Vec<Uid>> {
        self.note("expunge");
        self.inner.expunge(user, name, uids).await
    }

    async fn usage(&self, user: &UserId) -> StoreResult<Usage> {
        self.note("usage");
        self.inner.usage(user).await
    }
}

fn message(body: Bytes) -> NewMessage {
    NewMessage {
        body,
        flags: Flags::new(),
        internal_date: None,
    }
}

/// Calls that reached the store, each checked to be the one method expected.
struct Seen<'a> {
    store: &'a Noting,
    methods: BTreeSet<&'static str>,
}

impl Seen<'_> {
    /// The store has been called once since the last look, with `method`.
    fn only(&mut self, method: &'static str) {
        assert_eq!(self.store.take(), vec![method], "calling {method}");
        self.methods.insert(method);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_reaches_the_node_as_itself() {
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(pki_dir.path(), &["node1".into(), "gw1".into()], &[], false).unwrap();
    let data = tempfile::tempdir().unwrap();
    let noting = Arc::new(Noting {
        inner: MaildirStore::open(data.path().to_path_buf()).unwrap(),
        calls: Mutex::new(Vec::new()),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let status: StatusFn = Arc::new(|| NodeStatus {
        name: "node1".into(),
        caught_up: true,
        peers: Vec::new(),
    });
    let store: Arc<dyn MailStore> = noting.clone();
    tokio::spawn(serve(
        listener,
        tls(pki_dir.path(), "node1"),
        "node1".into(),
        store,
        status,
        stop_rx,
    ));
    let remote = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki_dir.path(), "gw1"));
    let mut seen = Seen {
        store: &noting,
        methods: BTreeSet::new(),
    };
    let user = UserId::new("dora").unwrap();
    let inbox = MailboxName::inbox();
    let work = MailboxName::new("Work").unwrap();
    let projects = MailboxName::new("Projects").unwrap();

    remote.open_user(&user).await.unwrap();
    seen.only("open_user");
    remote
        .create_mailbox(&user, &work, Some(SpecialUse::Archive))
        .await
        .unwrap();
    seen.only("create_mailbox");
    remote
        .rename_mailbox(&user, &work, &projects)
        .await
        .unwrap();
    seen.only("rename_mailbox");
    remote.set_subscribed(&user, &inbox, false).await.unwrap();
    seen.only("set_subscribed");
    let list = remote.list(&user).await.unwrap();
    seen.only("list");
    assert!(list.mailboxes.iter().any(|m| m.name == projects));
    assert!(!list.subscriptions.contains(&inbox));

    let mut feed = remote.watch(&user, &inbox).await.unwrap();
    seen.only("watch");
    let small = Bytes::from_static(b"Subject: small\r\n\r\nhello\r\n");
    let appended = remote
        .append(&user, &inbox, vec![message(small.clone())])
        .await
        .unwrap();
    seen.only("append");
    // Larger than a frame's share of bodies: streamed in chunks, run as one append.
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.resize(MAX_CHUNK + 1000, b'x');
    let big = Bytes::from(big);
    let streamed = remote
        .append(&user, &inbox, vec![message(big.clone())])
        .await
        .unwrap();
    seen.only("append");
    let uids = vec![appended.uids[0], streamed.uids[0]];
    let changed = tokio::time::timeout(Duration::from_secs(10), feed.next()).await;
    assert!(matches!(changed, Ok(Some(_))), "no change notified");

    let status = remote.status(&user, &inbox).await.unwrap();
    seen.only("status");
    assert_eq!(status.messages, 2);
    let usage = remote.usage(&user).await.unwrap();
    seen.only("usage");
    assert_eq!(usage, Usage::new((small.len() + big.len()) as u64, 2));
    let recent = remote.recent(&user, &inbox, false).await.unwrap();
    seen.only("recent");
    assert!(uids.iter().all(|&uid| recent.contains(uid)));
    let snapshot = remote.select(&user, &inbox).await.unwrap();
    seen.only("select");
    assert_eq!(snapshot.messages.len(), 2);
    remote
        .changes_since(&user, &inbox, ModSeq(0))
        .await
        .unwrap();
    seen.only("changes_since");
    // The big body comes back in pieces, whole.
    let bodies = remote.fetch(&user, &inbox, &uids).await.unwrap();
    seen.only("fetch");
    assert_eq!(bodies.len(), 2);
    assert_eq!((&bodies[0].bytes, &bodies[1].bytes), (&small, &big));
    let headers = remote.fetch_headers(&user, &inbox, &uids).await.unwrap();
    seen.only("fetch_headers");
    assert_eq!(&headers[1].bytes[..], b"Subject: big\r\n\r\n");

    let deleted = FlagChange {
        op: FlagOp::Add,
        flags: [Flag::Deleted].into_iter().collect(),
    };
    let stored = remote
        .store_flags(
            &user,
            &inbox,
            &uids[..1],
            &deleted,
            Some(snapshot.highest_modseq),
        )
        .await
        .unwrap();
    seen.only("store_flags");
    assert_eq!(stored.updated.len(), 1);
    let copied = remote
        .copy(&user, &inbox, &uids[1..], &projects)
        .await
        .unwrap();
    seen.only("copy");
    assert_eq!(copied.mapping.len(), 1);
    let moved = remote
        .move_messages(&user, &projects, &[copied.mapping[0].1], &inbox)
        .await
        .unwrap();
    seen.only("move_messages");
    assert_eq!(moved.mapping.len(), 1);
    let expunged = remote.expunge(&user, &inbox, None).await.unwrap();
    seen.only("expunge");
    assert_eq!(expunged, vec![uids[0]]);
    remote.delete_mailbox(&user, &projects).await.unwrap();
    seen.only("delete_mailbox");

    // The link's own calls are answered by the link: `Unwatch` (the feed dropped) and
    // then the health probe, which comes back after the node has read the `Unwatch`.
    drop(feed);
    assert!(remote.node_status().await.unwrap().caught_up);
    assert_eq!(noting.take(), Vec::<&str>::new());

    let listed: BTreeSet<&str> = METHODS.iter().copied().collect();
    let untried: Vec<_> = listed.difference(&seen.methods).collect();
    assert!(
        untried.is_empty(),
        "methods this test did not call through the RPC (add a call above): {untried:?}"
    );
}
