//! The Store RPC under faults, over real TCP and mutual TLS: a call that was sent and
//! never answered (the node hangs, or the link breaks after the call went out) fails as
//! `Unanswered` — never as `Unavailable`, which the gateway answers NO — once the
//! call's deadline passes; a call that cannot be sent is `Unavailable`; a FETCH of two
//! 45 MiB bodies (more than one frame holds) comes back whole; a node refuses calls
//! about a user it does not hold, before its store sees them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pluto_backends::maildir::MaildirStore;
use pluto_backends::net::{Framed, NodeTls, Service, pki};
use pluto_backends::remote::{AdmitFn, Call, RemoteStore, serve_admitting};
use pluto_backends::*;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn tls(dir: &std::path::Path, name: &str) -> NodeTls {
    NodeTls::load(
        &dir.join("ca.pem"),
        &dir.join(format!("{name}.pem")),
        &dir.join(format!("{name}-key.pem")),
    )
    .unwrap()
}

fn pki_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    pki::generate(dir.path(), &["node1".into(), "gw1".into()], &[], false).unwrap();
    dir
}

fn message(text: &str) -> NewMessage {
    NewMessage {
        body: Bytes::from(format!("Subject: {text}\r\n\r\n{text}\r\n")),
        flags: Flags::new(),
        internal_date: None,
    }
}

#[derive(Clone, Copy)]
enum Fault {
    /// Reads every call and never answers (a SIGSTOPped node, as the gateway sees it).
    Hang,
    /// Closes the link as soon as a call has arrived (a node killed mid-call).
    DropAfterCall,
}

/// A node that speaks the Store service's handshake, then misbehaves.
async fn faulty_node(pki: &std::path::Path, fault: Fault) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = tls(pki, "node1");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let mut framed = Framed::new(stream);
                if framed.handshake("node1", Service::Store).await.is_err() {
                    return;
                }
                let mut held = Vec::new();
                while let Ok(call) = framed.recv::<Call>().await {
                    match fault {
                        Fault::Hang => held.push(call.id),
                        Fault::DropAfterCall => return,
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_node_never_answers_is_unanswered_after_the_deadline() {
    let pki = pki_dir();
    let addr = faulty_node(pki.path(), Fault::Hang).await;
    let remote = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki.path(), "gw1"))
        .with_call_timeout(Duration::from_millis(500));
    let user = UserId::new("alice").unwrap();
    let err = remote
        .append(&user, &MailboxName::inbox(), vec![message("x")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unanswered(_)), "{err:?}");
    // A read that was sent is just as unanswered (the session ends, it does not hang).
    let err = remote.list(&user).await.unwrap_err();
    assert!(matches!(err, StoreError::Unanswered(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_lost_after_the_call_was_sent_is_unanswered() {
    let pki = pki_dir();
    let addr = faulty_node(pki.path(), Fault::DropAfterCall).await;
    let remote = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki.path(), "gw1"));
    let user = UserId::new("alice").unwrap();
    let err = remote
        .append(&user, &MailboxName::inbox(), vec![message("x")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unanswered(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_be_sent_is_unavailable() {
    let pki = pki_dir();
    // Nobody listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let remote = RemoteStore::new("node1", addr.to_string(), "gw1", tls(pki.path(), "gw1"));
    let user = UserId::new("alice").unwrap();
    let err = remote
        .append(&user, &MailboxName::inbox(), vec![message("x")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

struct Node {
    _stop: watch::Sender<bool>,
    addr: std::net::SocketAddr,
}

async fn maildir_node(pki: &std::path::Path, data: &std::path::Path, admit: AdmitFn) -> Node {
    let store: Arc<dyn MailStore> = Arc::new(MaildirStore::open(data.to_path_buf()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let status: pluto_backends::remote::StatusFn =
        Arc::new(|| pluto_backends::remote::NodeStatus {
            name: "node1".into(),
            caught_up: true,
            peers: Vec::new(),
        });
    tokio::spawn(serve_admitting(
        listener,
        tls(pki, "node1"),
        "node1".into(),
        store,
        status,
        admit,
        stop_rx,
    ));
    Node { _stop: stop, addr }
}

/// A body of `size` bytes, different for each `seed`.
fn big_body(seed: u8, size: usize) -> Bytes {
    let mut body = format!("Subject: big {seed}\r\n\r\n").into_bytes();
    let line: Vec<u8> = (0..76u8)
        .map(|i| b'a' + (i.wrapping_add(seed)) % 26)
        .chain(*b"\r\n")
        .collect();
    while body.len() + line.len() <= size {
        body.extend_from_slice(&line);
    }
    body.resize(size, b'x');
    Bytes::from(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_of_two_45_mib_bodies_comes_back_whole() {
    let pki = pki_dir();
    let data = tempfile::tempdir().unwrap();
    let node = maildir_node(pki.path(), data.path(), Arc::new(|_| Ok(()))).await;
    let remote = RemoteStore::new(
        "node1",
        node.addr.to_string(),
        "gw1",
        tls(pki.path(), "gw1"),
    );
    let user = UserId::new("alice").unwrap();
    let inbox = MailboxName::inbox();
    remote.open_user(&user).await.unwrap();
    let bodies = [big_body(1, 45 << 20), big_body(2, 45 << 20)];
    let mut uids = Vec::new();
    for body in &bodies {
        let out = remote
            .append(
                &user,
                &inbox,
                vec![NewMessage {
                    body: body.clone(),
                    flags: Flags::new(),
                    internal_date: None,
                }],
            )
            .await
            .unwrap();
        uids.extend(out.uids);
    }
    // One call for both: 90 MiB, more than one internal frame may hold.
    let got = remote.fetch(&user, &inbox, &uids).await.unwrap();
    assert_eq!(got.len(), 2);
    for (got, sent) in got.iter().zip(&bodies) {
        assert!(got.bytes == *sent, "a body came back different");
    }
    // The link is still there for the next call.
    assert_eq!(remote.status(&user, &inbox).await.unwrap().messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_user_it_does_not_hold() {
    let pki = pki_dir();
    let data = tempfile::tempdir().unwrap();
    let admit: AdmitFn = Arc::new(|user: &UserId| {
        if user.as_str() == "alice" {
            Ok(())
        } else {
            Err(format!("node1 does not hold {user}"))
        }
    });
    let node = maildir_node(pki.path(), data.path(), admit).await;
    let remote = RemoteStore::new(
        "node1",
        node.addr.to_string(),
        "gw1",
        tls(pki.path(), "gw1"),
    );
    let alice = UserId::new("alice").unwrap();
    let mallory = UserId::new("mallory").unwrap();
    remote.open_user(&alice).await.unwrap();
    let err = remote.open_user(&mallory).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(r) if r.contains("does not hold")),
        "{err:?}"
    );
    let err = remote
        .append(&mallory, &MailboxName::inbox(), vec![message("x")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // Nothing of mallory's was made on the node's disk.
    let mut names: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        !names.iter().any(|n| n.contains("mallory")),
        "the node made something for a user it does not hold: {names:?}"
    );
    assert!(names.iter().any(|n| n.contains("alice")), "{names:?}");
}
