//! Internal links: certificates from `pluto pki` give working mutual TLS, and a node
//! with a certificate from another CA is refused.

#![allow(clippy::unwrap_used)]

use pluto_backends::net::{Framed, NodeTls, Service};
use tokio::net::{TcpListener, TcpStream};

fn load(dir: &std::path::Path, name: &str) -> NodeTls {
    NodeTls::load(
        &dir.join("ca.pem"),
        &dir.join(format!("{name}.pem")),
        &dir.join(format!("{name}-key.pem")),
    )
    .unwrap()
}

#[tokio::test]
async fn nodes_of_one_ca_link_and_strangers_are_refused() {
    let pki = tempfile::tempdir().unwrap();
    pluto_backends::net::pki::generate(pki.path(), &["worker1".into(), "gw1".into()], &[], false)
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    pluto_backends::net::pki::generate(other.path(), &["intruder".into()], &[], false).unwrap();

    let server_tls = load(pki.path(), "worker1");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut results = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            match server_tls.accept(tcp).await {
                Ok(tls) => {
                    let mut framed = Framed::new(tls);
                    let peer = framed.handshake("worker1", Service::Store).await.unwrap();
                    let n: u64 = framed.recv().await.unwrap();
                    framed.send(&(n + 1)).await.unwrap();
                    results.push(Some(peer));
                }
                Err(_) => results.push(None),
            }
        }
        results
    });

    // A node of the same CA.
    let gw = load(pki.path(), "gw1");
    let tls = gw
        .connect("worker1", TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    let mut framed = Framed::new(tls);
    assert_eq!(
        framed.handshake("gw1", Service::Store).await.unwrap(),
        "worker1"
    );
    framed.send(&41u64).await.unwrap();
    assert_eq!(framed.recv::<u64>().await.unwrap(), 42);

    // A node that trusts our CA but whose own certificate comes from another CA: the
    // server must refuse it.
    let intruder = NodeTls::load(
        &pki.path().join("ca.pem"),
        &other.path().join("intruder.pem"),
        &other.path().join("intruder-key.pem"),
    )
    .unwrap();
    if let Ok(tls) = intruder
        .connect("worker1", TcpStream::connect(addr).await.unwrap())
        .await
    {
        // With TLS 1.3 the client may finish before the server rejects its certificate;
        // then the first exchange must fail.
        let mut framed = Framed::new(tls);
        let hello = framed.handshake("intruder", Service::Store).await;
        assert!(hello.is_err(), "a certificate of another CA was accepted");
    }

    let results = server.await.unwrap();
    assert_eq!(results[0].as_deref(), Some("gw1"));
    assert_eq!(results[1], None);
}
