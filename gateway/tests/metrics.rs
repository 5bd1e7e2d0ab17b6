//! The Prometheus endpoint: sessions, commands, logins and deliveries are counted.

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
    // One LMTP transaction: a recipient delivered, one unknown.
    let lmtp = server.server.as_ref().unwrap().lmtp.tcp.unwrap();
    let mut lmtp = tokio::io::BufReader::new(tokio::net::TcpStream::connect(lmtp).await.unwrap());
    lmtp.get_mut()
        .write_all(
            b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice@x.org>\r\nRCPT TO:<ghost@x.org>\r\nDATA\r\n",
        )
        .await
        .unwrap();
    let mut replies = String::new();
    while !replies.contains("354 ") {
        tokio::io::AsyncBufReadExt::read_line(&mut lmtp, &mut replies)
            .await
            .unwrap();
    }
    lmtp.get_mut()
        .write_all(b"Subject: m\r\n\r\nbody\r\n.\r\n")
        .await
        .unwrap();
    let mut last = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut lmtp, &mut last)
        .await
        .unwrap();
    assert!(last.starts_with("250 "), "{replies}{last}");

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
    assert!(
        body.contains("pluto_deliveries_total{result=\"delivered\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("pluto_deliveries_total{result=\"unknown_user\"} 1"),
        "{body}"
    );
    // The message's bytes, without the trace headers.
    assert!(body.contains("pluto_delivered_bytes_total 20"), "{body}");
    assert!(body.contains("pluto_delivery_seconds_count 1"), "{body}");
}
