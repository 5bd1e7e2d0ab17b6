//! A real MTA: Debian's Postfix, configured by the test in a temp dir on loopback,
//! delivers over LMTP into `pluto serve` (TCP and the Unix socket) and into a cluster
//! gateway. The mail then appears over IMAP (and in IDLE); with pluto down — the server
//! stopped, or every node behind the gateway — Postfix defers, and delivers once pluto
//! is back: nothing lost, nothing twice. Without Postfix these tests fail.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, Client, message};
use pluto_cluster_tests::postfix::Postfix;
use pluto_testkit::serve::Pluto;

const PASSWORD: &str = "postfix test password";

/// Message-ID → how many times it is in the user's INBOX.
async fn inbox(imap: SocketAddr, user: &str, password: &str) -> HashMap<String, usize> {
    let mut client = mail::login(imap, user, password).await.unwrap();
    let (_, messages) = client.try_list_messages("INBOX").await.unwrap();
    let mut seen = HashMap::new();
    for (_, id) in messages {
        *seen.entry(id).or_default() += 1;
    }
    seen
}

/// Reads IDLE lines until `* N EXISTS`.
async fn wait_exists(idle: &mut Client, n: usize, context: &dyn Fn() -> String) {
    let wanted = format!("* {n} EXISTS");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "IDLE never said {wanted}:\n{}",
            context()
        );
        let line = tokio::time::timeout(Duration::from_secs(30), idle.try_line()).await;
        if let Ok(Ok(line)) = line {
            if line.trim_end() == wanted {
                return;
            }
        }
    }
}

fn ids(range: std::ops::RangeInclusive<u32>, tag: &str) -> Vec<String> {
    range.map(|i| format!("{tag}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postfix_delivers_into_serve_over_tcp_and_the_socket_and_defers_while_it_is_down() {
    let mut serve = Pluto::start(&[("alice", PASSWORD)]);
    {
        use std::os::unix::fs::PermissionsExt;
        // Postfix's lmtp client runs as `postfix`: it must reach the socket.
        std::fs::set_permissions(serve.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let tcp = Postfix::start(&format!("inet:{}", serve.lmtp));
    let unix = Postfix::start(&format!("unix:{}", serve.lmtp_socket.display()));
    let context = || {
        format!(
            "--- TCP postfix ---\n{}\n--- socket postfix ---\n{}",
            tcp.log(),
            unix.log()
        )
    };

    let mut idle = Client::login(serve.imap, "alice", PASSWORD).await.unwrap();
    assert!(idle.cmd("SELECT INBOX").await.ok());
    idle.send(b"i1 IDLE\r\n").await;
    assert!(idle.line().await.starts_with('+'));
    tcp.send(
        "sender@example.net",
        &["alice@example.org"],
        &message("pf-tcp-1", 300),
    );
    wait_exists(&mut idle, 1, &context).await;
    unix.send(
        "sender@example.net",
        &["alice@example.org"],
        &message("pf-unix-1", 300),
    );
    wait_exists(&mut idle, 2, &context).await;
    drop(idle);
    // IDLE can hear of a message before its 250 reaches Postfix: a kill then would make
    // Postfix deliver it again (LMTP is at least once), so both queues drain first.
    tcp.wait_empty(Duration::from_secs(60));
    unix.wait_empty(Duration::from_secs(60));

    // pluto down: both defer, and deliver once it is back.
    serve.kill();
    for id in ids(2..=4, "pf-tcp") {
        tcp.send(
            "sender@example.net",
            &["alice@example.org"],
            &message(&id, 300),
        );
    }
    unix.send(
        "sender@example.net",
        &["alice@example.org"],
        &message("pf-unix-2", 300),
    );
    let start = Instant::now();
    while tcp.deferrals() == 0 || unix.deferrals() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no deferral:\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!tcp.queue_is_empty() && !unix.queue_is_empty());
    serve.start_again();
    tcp.flush();
    unix.flush();
    tcp.wait_empty(Duration::from_secs(60));
    unix.wait_empty(Duration::from_secs(60));

    let seen = inbox(serve.imap, "alice", PASSWORD).await;
    let mut wanted = ids(1..=4, "pf-tcp");
    wanted.extend(ids(1..=2, "pf-unix"));
    assert_eq!(seen.len(), wanted.len(), "{seen:?}\n{}", context());
    for id in wanted {
        assert_eq!(
            seen.get(&format!("<{id}@cluster.test>")),
            Some(&1),
            "{id}: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postfix_delivers_into_a_cluster_gateway_and_defers_while_every_node_is_down() {
    let mut cluster = Cluster::start(Spec::default()).await;
    let postfix = Postfix::start(&format!("inet:{}", cluster.lmtp));
    let users = [
        "user1@example.org",
        "user2@example.org",
        "user5@example.org",
    ];
    postfix.send("sender@example.net", &users, &message("pf-cluster-1", 300));
    postfix.wait_empty(Duration::from_secs(60));
    for user in ["user1", "user2", "user5"] {
        let seen = inbox(cluster.imap, user, USER_PASSWORD).await;
        assert_eq!(
            seen.get("<pf-cluster-1@cluster.test>"),
            Some(&1),
            "{user}: {seen:?}\n{}",
            postfix.log()
        );
    }

    // Every node down: the gateway answers 451, Postfix keeps the mail and retries.
    let nodes = ["worker1", "worker2", "storage1"];
    for node in nodes {
        cluster.kill(node);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    postfix.send("sender@example.net", &users, &message("pf-cluster-2", 300));
    let start = Instant::now();
    while postfix.deferrals() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no deferral:\n{}",
            postfix.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(postfix.log().contains("4.3.0"), "{}", postfix.log());
    for node in nodes {
        cluster.restart(node);
    }
    for node in nodes {
        cluster.wait_caught_up(node, Duration::from_secs(60)).await;
    }
    postfix.flush();
    postfix.wait_empty(Duration::from_secs(60));
    for user in ["user1", "user2", "user5"] {
        let seen = inbox(cluster.imap, user, USER_PASSWORD).await;
        assert_eq!(seen.len(), 2, "{user}: {seen:?}");
        assert_eq!(
            seen.get("<pf-cluster-2@cluster.test>"),
            Some(&1),
            "{user}: {seen:?}\n{}",
            postfix.log()
        );
    }
}
