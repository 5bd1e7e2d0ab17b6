//! The conformance suite through the Store RPC: a RemoteStore over mutual TLS to a node
//! serving a Maildir store. Also: a node that goes away ends the change feeds and makes
//! calls fail as Unavailable, and the client links again once the node is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pluto_backends::maildir::MaildirStore;
use pluto_backends::net::{NodeTls, pki};
use pluto_backends::remote::{RemoteStore, serve};
use pluto_backends::*;
use tokio::net::TcpListener;
use tokio::sync::watch;

struct Node {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn tls(dir: &std::path::Path, name: &str) -> NodeTls {
    NodeTls::load(
        &dir.join("ca.pem"),
        &dir.join(format!("{name}.pem")),
        &dir.join(format!("{name}-key.pem")),
    )
    .unwrap()
}

async fn start_node(
    listener: TcpListener,
    pki_dir: &std::path::Path,
    store: Arc<dyn MailStore>,
) -> Node {
    let (stop, stop_rx) = watch::channel(false);
    let status: pluto_backends::remote::StatusFn =
        Arc::new(|| pluto_backends::remote::NodeStatus {
            name: "node1".into(),
            caught_up: true,
            peers: Vec::new(),
        });
    let task = tokio::spawn(serve(
        listener,
        tls(pki_dir, "node1"),
        "node1".into(),
        store,
        status,
        stop_rx,
    ));
    Node { stop, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_the_rpc() {
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(pki_dir.path(), &["node1".into(), "gw1".into()], &[], false).unwrap();
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn MailStore> =
        Arc::new(MaildirStore::open(data.path().to_path_buf()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _node = start_node(listener, pki_dir.path(), store).await;
    let remote = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki_dir.path(), "gw1"));
    // One node and one client for every check: each check has a user of its own.
    pluto_conformance::run_all(pluto_conformance::shared(Arc::new(remote))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_ends_feeds_and_the_client_relinks() {
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(pki_dir.path(), &["node1".into(), "gw1".into()], &[], false).unwrap();
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn MailStore> =
        Arc::new(MaildirStore::open(data.path().to_path_buf()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let node = start_node(listener, pki_dir.path(), store.clone()).await;
    let remote = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki_dir.path(), "gw1"));
    let user = UserId::new("carol").unwrap();
    remote.open_user(&user).await.unwrap();
    let inbox = MailboxName::inbox();
    let mut feed = remote.watch(&user, &inbox).await.unwrap();
    remote
        .append(
            &user,
            &inbox,
            vec![NewMessage {
                body: bytes::Bytes::from_static(b"Subject: x\r\n\r\nhi\r\n"),
                flags: Flags::new(),
                internal_date: None,
            }],
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .unwrap();
    assert!(first.is_some(), "the feed told of the append");

    // The node goes away: the feed ends, calls fail as Unavailable.
    node.stop.send(true).unwrap();
    node.task.await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while feed.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the feed did not end when the node went away");
    let err = remote.status(&user, &inbox).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    // Back on the same address: the next call links again and sees the mail.
    let listener = TcpListener::bind(addr).await.unwrap();
    let _node = start_node(listener, pki_dir.path(), store).await;
    let status = remote.status(&user, &inbox).await.unwrap();
    assert_eq!(status.messages, 1);
    assert!(remote.node_status().await.unwrap().caught_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_claim_another_nodes_name() {
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(pki_dir.path(), &["node1".into(), "gw1".into()], &[], false).unwrap();
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn MailStore> =
        Arc::new(MaildirStore::open(data.path().to_path_buf()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _node = start_node(listener, pki_dir.path(), store).await;
    // gw1's certificate, but the hello says "worker7".
    let impostor = RemoteStore::new(
        "node1",
        addr.to_string(),
        "worker7",
        tls(pki_dir.path(), "gw1"),
    );
    let user = UserId::new("x").unwrap();
    // The node ends the link after the hello: the call, already sent, is unanswered.
    let err = impostor.open_user(&user).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Unanswered(_)),
        "{err:?}"
    );
    // The same certificate with its own name works.
    let honest = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki_dir.path(), "gw1"));
    honest.open_user(&user).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_of_the_replicated_store_through_the_rpc() {
    use pluto_backends::replicated::{AckMode, NodeConfig, ReplicatedStore};
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(pki_dir.path(), &["node1".into(), "gw1".into()], &[], false).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new("node1", 1, data.path());
    config.ack = AckMode::Local;
    let store: Arc<dyn MailStore> = ReplicatedStore::open(&config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _node = start_node(listener, pki_dir.path(), store).await;
    let remote = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki_dir.path(), "gw1"));
    // One node and one client for every check: each check has a user of its own.
    pluto_conformance::run_all(pluto_conformance::shared(Arc::new(remote))).await;
}

/// `\Recent` is claimed on the node, not in the gateway: two gateways' clients of one
/// node never both get a message, and a claim through one hides it from the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_claims_are_the_nodes_across_gateways() {
    let pki_dir = tempfile::tempdir().unwrap();
    pki::generate(
        pki_dir.path(),
        &["node1".into(), "gw1".into(), "gw2".into()],
        &[],
        false,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let store: Arc<dyn MailStore> =
        Arc::new(MaildirStore::open(data.path().to_path_buf()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _node = start_node(listener, pki_dir.path(), store).await;
    let gw1 = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki_dir.path(), "gw1"));
    let gw2 = RemoteStore::new("node1", addr.to_string(), "gw2", tls(pki_dir.path(), "gw2"));
    let user = UserId::new("recent-user").unwrap();
    let inbox = MailboxName::inbox();
    gw1.open_user(&user).await.unwrap();
    let message = NewMessage {
        body: bytes::Bytes::from_static(b"Subject: r\r\n\r\nbody\r\n"),
        flags: Flags::default(),
        internal_date: None,
    };
    let appended = gw1.append(&user, &inbox, vec![message]).await.unwrap();
    let uid = appended.uids[0];
    // gw2 looks (EXAMINE): still unclaimed for gw1.
    assert!(
        gw2.recent(&user, &inbox, false)
            .await
            .unwrap()
            .contains(uid)
    );
    let first = gw1.recent(&user, &inbox, true).await.unwrap();
    let second = gw2.recent(&user, &inbox, true).await.unwrap();
    assert!(first.contains(uid), "{first:?}");
    assert!(!second.contains(uid), "both gateways were told: {second:?}");
}
