//! Black-box tests of TLS: STARTTLS on the plain port (then LOGIN, also with plaintext
//! login disabled), the STARTTLS command-injection defence, and implicit TLS with
//! async-imap over tokio-rustls; the certificate is the one `serve` generated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, PASSWORD, TestServer, USER, message};
use futures::TryStreamExt;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Sends STARTTLS on a raw plain connection and returns the TLS stream after the handshake.
async fn starttls(server: &TestServer, mut raw: Client<TcpStream>) -> TlsStream<TcpStream> {
    let r = raw.cmd("STARTTLS").await;
    assert!(r.ok(), "{r:?}");
    let tcp = raw.into_inner();
    let name = ServerName::try_from("localhost").unwrap();
    server.tls_connector().connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn starttls_then_login() {
    let server = TestServer::start().await;
    let raw = server.raw().await;
    let tls = starttls(&server, raw).await;
    let mut raw = Client::new(tls);
    let r = raw.cmd("CAPABILITY").await;
    assert!(r.ok(), "{r:?}");
    let caps = &r.untagged[0];
    assert!(
        !caps.contains("STARTTLS"),
        "STARTTLS offered again over TLS: {caps}"
    );
    assert!(caps.contains("AUTH=PLAIN"), "{caps}");
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd("STARTTLS").await;
    assert!(r.bad() || r.no(), "{r:?}");
    let r = raw
        .append("INBOX", "", &message("over tls", "secret"))
        .await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd("SELECT INBOX").await;
    assert!(r.ok() && r.has("* 1 EXISTS"), "{r:?}");
    let r = raw.cmd("LOGOUT").await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn starttls_makes_login_possible_when_plaintext_is_disabled() {
    let server = TestServer::start_with(|c| c.auth.allow_insecure_loopback = false).await;
    let mut raw = server.raw().await;
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.no(), "{r:?}");
    let tls = starttls(&server, raw).await;
    // async-imap on the upgraded stream (no second greeting after STARTTLS).
    let client = async_imap::Client::new(tls);
    let mut session = client
        .login(USER, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let caps = session.capabilities().await.unwrap();
    assert!(!caps.has_str("LOGINDISABLED"));
    let mb = session.select("INBOX").await.unwrap();
    assert_eq!(mb.exists, 0);
    session.logout().await.unwrap();
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_dropped() {
    // The classic STARTTLS injection (CVE-2011-0411 and kin): bytes sent in the clear
    // after STARTTLS must not be run after the handshake.
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    raw.send(format!("s1 STARTTLS\r\ns2 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    let line = raw.line().await;
    assert!(line.starts_with("s1 OK"), "{line}");
    let tcp = raw.into_inner();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = server.tls_connector().connect(name, tcp).await.unwrap();
    let mut raw = Client::new(tls);
    let r = raw.cmd("SELECT INBOX").await;
    assert!(
        !r.untagged.iter().any(|l| l.starts_with("s2 ")),
        "the injected command was answered: {r:?}"
    );
    assert!(r.bad() || r.no(), "the injected LOGIN took effect: {r:?}");
}

#[tokio::test]
async fn implicit_tls_with_async_imap() {
    let server = TestServer::start().await;
    let tcp = TcpStream::connect(server.imaps).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = server.tls_connector().connect(name, tcp).await.unwrap();
    let mut client = async_imap::Client::new(tls);
    let greeting = client.read_response().await.unwrap().expect("greeting");
    let text = format!("{:?}", greeting.parsed());
    assert!(!text.contains("STARTTLS"), "{text}");

    let mut session = client
        .login(USER, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let body = message("implicit", "TLS all the way");
    session
        .append("INBOX", Some("(\\Seen)"), None, &body)
        .await
        .unwrap();
    let mb = session.select("INBOX").await.unwrap();
    assert_eq!(mb.exists, 1);
    let fetches: Vec<_> = session
        .fetch("1", "(FLAGS BODY.PEEK[])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fetches[0].body(), Some(&body[..]));
    session.logout().await.unwrap();
}

#[tokio::test]
async fn implicit_tls_raw_greeting_and_starttls_refused() {
    let server = TestServer::start_with(|c| c.auth.allow_insecure_loopback = false).await;
    let mut raw = server.raw_tls().await;
    let r = raw.cmd("CAPABILITY").await;
    let caps = &r.untagged[0];
    assert!(caps.contains("AUTH=PLAIN"), "{caps}");
    assert!(
        !caps.contains("LOGINDISABLED") && !caps.contains("STARTTLS"),
        "{caps}"
    );
    let r = raw.cmd("STARTTLS").await;
    assert!(r.bad() || r.no(), "{r:?}");
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn an_untrusting_client_fails_the_handshake() {
    // A client that does not know the self-signed certificate refuses it: the server
    // really presents the generated certificate, not something else.
    let server = TestServer::start().await;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(server.imaps).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    assert!(connector.connect(name, tcp).await.is_err());
    // The server is still fine afterwards.
    let mut raw = server.raw_tls().await;
    assert!(raw.cmd("NOOP").await.ok());
}
