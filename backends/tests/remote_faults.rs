//! The Store RPC under faults, over real TCP and mutual TLS: a call that was sent and
//! never answered (the node hangs, or the link breaks after the call went out) fails as
//! `Unanswered` — never as `Unavailable`, which the gateway answers NO — once the
//! call's deadline passes; a call that cannot be sent is `Unavailable`; bodies of 45 and
//! 90 MiB (more than one frame holds) are appended and fetched back whole, in bounded
//! chunks; a node refuses chunks past the length announced and streamed bodies above
//! its limit, keeping nothing of them; a node refuses calls about a user it does not
//! hold, before its store sees them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pluto_backends::maildir::MaildirStore;
use pluto_backends::net::{Framed, MAX_CHUNK, MAX_FRAME, NodeTls, Service, pki};
use pluto_backends::remote::{
    AdmitFn, Call, RemoteStore, Reply, Request, Response, ToNode, WireError, serve_admitting,
};
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
                while let Ok(frame) = framed.recv::<ToNode>().await {
                    match fault {
                        Fault::Hang => held.push(frame),
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

/// A Maildir store behind the Store service, taking streamed bodies up to `max_body`.
async fn maildir_node(
    pki: &std::path::Path,
    data: &std::path::Path,
    admit: AdmitFn,
    max_body: u64,
) -> Node {
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
        max_body,
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

fn new_message(body: Bytes) -> NewMessage {
    NewMessage {
        body,
        flags: Flags::new(),
        internal_date: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_larger_than_a_frame_are_appended_and_fetched_whole() {
    let pki = pki_dir();
    let data = tempfile::tempdir().unwrap();
    let node = maildir_node(pki.path(), data.path(), Arc::new(|_| Ok(())), 128 << 20).await;
    let remote = RemoteStore::new(
        "node1",
        node.addr.to_string(),
        "gw1",
        tls(pki.path(), "gw1"),
    );
    let user = UserId::new("alice").unwrap();
    let inbox = MailboxName::inbox();
    remote.open_user(&user).await.unwrap();
    // The last one alone is larger than the largest frame.
    let bodies = [
        big_body(1, 45 << 20),
        big_body(2, 45 << 20),
        big_body(3, 90 << 20),
    ];
    assert!(bodies[2].len() > MAX_FRAME);
    let mut uids = Vec::new();
    for body in &bodies {
        let out = remote
            .append(&user, &inbox, vec![new_message(body.clone())])
            .await
            .unwrap();
        uids.extend(out.uids);
    }
    // One call for all: 180 MiB, in pieces of at most MAX_CHUNK.
    let got = remote.fetch(&user, &inbox, &uids).await.unwrap();
    assert_eq!(got.len(), 3);
    for (got, sent) in got.iter().zip(&bodies) {
        assert!(got.bytes == *sent, "a body came back different");
    }
    // Small and big bodies mixed in one answer keep their order.
    let small = remote
        .append(&user, &inbox, vec![message("small")])
        .await
        .unwrap();
    let order = [uids[2], small.uids[0], uids[0]];
    let got = remote.fetch(&user, &inbox, &order).await.unwrap();
    let got_uids: Vec<Uid> = got.iter().map(|b| b.uid).collect();
    assert_eq!(got_uids, order);
    assert!(got[0].bytes == bodies[2] && got[2].bytes == bodies[0]);
    // The link is still there for the next call.
    assert_eq!(remote.status(&user, &inbox).await.unwrap().messages, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_above_the_nodes_limit_is_too_big_and_the_link_goes_on() {
    let pki = pki_dir();
    let data = tempfile::tempdir().unwrap();
    let limit = (MAX_CHUNK + 1024) as u64;
    let node = maildir_node(pki.path(), data.path(), Arc::new(|_| Ok(())), limit).await;
    let remote = RemoteStore::new(
        "node1",
        node.addr.to_string(),
        "gw1",
        tls(pki.path(), "gw1"),
    );
    let user = UserId::new("alice").unwrap();
    let inbox = MailboxName::inbox();
    remote.open_user(&user).await.unwrap();
    let err = remote
        .append(&user, &inbox, vec![new_message(big_body(1, 2 * MAX_CHUNK))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooBig { limit: l } if l == limit),
        "{err:?}"
    );
    // Its chunks, sent anyway, were dropped; a body within the limit still goes.
    let fits = big_body(2, MAX_CHUNK + 512);
    let out = remote
        .append(&user, &inbox, vec![new_message(fits.clone())])
        .await
        .unwrap();
    let got = remote.fetch(&user, &inbox, &out.uids).await.unwrap();
    assert!(got[0].bytes == fits);
    assert_eq!(remote.status(&user, &inbox).await.unwrap().messages, 1);
}

/// The next `Result` on a raw link (feeds and parts skipped).
async fn next_result<S>(framed: &mut Framed<S>) -> (u64, Response)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(10), framed.recv::<Reply>())
            .await
            .expect("an answer within 10 s")
            .unwrap();
        if let Reply::Result { id, response } = reply {
            return (id, response);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_past_the_announced_length_are_refused_not_buffered() {
    let pki = pki_dir();
    let data = tempfile::tempdir().unwrap();
    let node = maildir_node(pki.path(), data.path(), Arc::new(|_| Ok(())), 1 << 20).await;
    // A misbehaving gateway, speaking the protocol by hand.
    let tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let stream = tls(pki.path(), "gw1").connect("node1", tcp).await.unwrap();
    let mut framed = Framed::new(stream);
    framed.handshake("gw1", Service::Store).await.unwrap();
    let user = UserId::new("alice").unwrap();
    let inbox = MailboxName::inbox();
    let call = |id, request| ToNode::Call(Call { id, request });
    let chunk = |id, bytes: &'static [u8]| ToNode::Chunk {
        id,
        bytes: Bytes::from_static(bytes),
    };
    let streamed = |announced: u64| Request::AppendStreamed {
        user: user.clone(),
        name: inbox.clone(),
        messages: vec![new_message(Bytes::new())],
        streamed: vec![announced],
    };
    framed
        .send(&call(1, Request::OpenUser { user: user.clone() }))
        .await
        .unwrap();
    assert!(matches!(
        next_result(&mut framed).await,
        (1, Response::Done)
    ));
    // 10 bytes announced, 13 sent: refused at the chunk that overruns.
    framed.send(&call(2, streamed(10))).await.unwrap();
    framed.send(&chunk(2, b"Subject: ")).await.unwrap();
    framed.send(&chunk(2, b"hello")).await.unwrap();
    let (id, response) = next_result(&mut framed).await;
    assert_eq!(id, 2);
    assert!(
        matches!(&response, Response::Error(WireError::NotAllowed(r)) if r.contains("grew to 14")),
        "{response:?}"
    );
    // More chunks for the refused call are dropped, not kept for it.
    framed.send(&chunk(2, b"!")).await.unwrap();
    // Announced above the node's limit: refused before any chunk.
    framed.send(&call(3, streamed(2 << 20))).await.unwrap();
    let (id, response) = next_result(&mut framed).await;
    assert_eq!(id, 3);
    assert!(
        matches!(response, Response::Error(WireError::TooBig { limit }) if limit == 1 << 20),
        "{response:?}"
    );
    // The link goes on, and nothing was appended.
    let status = Request::Status {
        user: user.clone(),
        name: inbox.clone(),
    };
    framed.send(&call(4, status)).await.unwrap();
    let (id, response) = next_result(&mut framed).await;
    assert_eq!(id, 4);
    assert!(
        matches!(&response, Response::Status(s) if s.messages == 0),
        "{response:?}"
    );
    // A well-formed streamed append on the same link is taken.
    framed.send(&call(5, streamed(21))).await.unwrap();
    framed
        .send(&chunk(5, b"Subject: hi\r\n\r\n"))
        .await
        .unwrap();
    framed.send(&chunk(5, b"body\r\n")).await.unwrap();
    let (id, response) = next_result(&mut framed).await;
    assert_eq!(id, 5);
    assert!(matches!(response, Response::Appended(_)), "{response:?}");
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
    let node = maildir_node(pki.path(), data.path(), admit, 1 << 20).await;
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
