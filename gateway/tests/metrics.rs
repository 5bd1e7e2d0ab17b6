//! The Prometheus endpoint: sessions, commands and logins are counted.

#![allow(clippy::unwrap_used)]

mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_logins_and_commands() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    pluto_gateway::metrics::install(&listen).unwrap();
    let server = common::TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("NOOP").await.ok());
    let mut bad = server.raw().await;
    assert!(bad.cmd("LOGIN alice wrong").await.no());

    let mut http = tokio::net::TcpStream::connect(&listen).await.unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    http.read_to_string(&mut body).await.unwrap();
    assert!(
        body.contains("pluto_logins_total{result=\"ok\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("pluto_logins_total{result=\"failed\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("pluto_commands_total{command=\"NOOP\"} 1"),
        "{body}"
    );
    assert!(body.contains("pluto_sessions_open 2"), "{body}");
}
