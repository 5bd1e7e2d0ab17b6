//! `pluto-bench lmtp`'s load generator against a real `pluto serve` (debug build on
//! loopback ports of the test kit) with small message counts: the report's counts
//! add up and the copies are in the INBOXes (counted here with the test kit's own IMAP
//! client); and against fake LMTP servers, checking that refusals count as errors and
//! that a server which says 250 but stores nothing fails the verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pluto_bench::conn::Target;
use pluto_bench::lmtp::{self, DATA, ENVELOPE, LmtpConfig};
use pluto_bench::stats::{ALL, CONNECT, Report, TRANSACTION};
use pluto_bench::workload::User;
use pluto_bench::{compare, corpus};
use pluto_testkit::imap::Client;
use pluto_testkit::serve::Pluto;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PASSWORD: &str = "bench-test-password";

fn users(n: usize) -> Vec<User> {
    (1..=n)
        .map(|i| User {
            name: format!("bench{i}"),
            password: PASSWORD.to_owned(),
        })
        .collect()
}

fn serve(n: usize) -> Pluto {
    let names: Vec<String> = (1..=n).map(|i| format!("bench{i}")).collect();
    let users: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), PASSWORD)).collect();
    Pluto::start(&users)
}

fn imap(addr: SocketAddr) -> Target {
    Target {
        addr,
        tls: None,
        timeout: Duration::from_secs(30),
    }
}

fn config(addr: SocketAddr, users: Vec<User>, recipients: usize, messages: u64) -> LmtpConfig {
    LmtpConfig {
        label: "test".into(),
        addr,
        timeout: Duration::from_secs(30),
        clients: 2,
        recipients,
        users,
        domain: "example.org".into(),
        sender: "sender@example.net".into(),
        duration: Duration::from_secs(120),
        max_messages: Some(messages),
        corpus: Arc::new(corpus::load(None, &corpus::default_generator(), 25).unwrap()),
        verify: None,
        progress: false,
    }
}

fn count(r: &Report, name: &str) -> (u64, u64) {
    r.row(name).map_or((0, 0), |c| (c.count, c.errors))
}

/// The user's INBOX over IMAP: (messages, messages delivered to `address`).
async fn inbox(addr: SocketAddr, user: &str, address: &str) -> (usize, usize) {
    let mut c = Client::login(addr, user, PASSWORD).await.unwrap();
    assert!(c.cmd("EXAMINE INBOX").await.ok());
    let all = c.cmd("SEARCH ALL").await;
    assert!(all.ok(), "{all:?}");
    let to = c
        .cmd(&format!("SEARCH HEADER Delivered-To \"{address}\""))
        .await;
    assert!(to.ok(), "{to:?}");
    let marked = c.cmd("SEARCH HEADER X-Pluto-Bench \".\"").await;
    assert_eq!(
        marked.search().len(),
        all.search().len(),
        "every message is marked"
    );
    (all.search().len(), to.search().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_into_pluto_serve_and_every_copy_is_there() {
    let s = serve(3);

    // 20 messages, one recipient each, over 2 connections, verified over IMAP.
    let mut cfg = config(s.lmtp, users(3), 1, 20);
    cfg.verify = Some(imap(s.imap));
    let one = lmtp::run(cfg).await.unwrap();
    assert_eq!(one.errors_total, 0, "{}", one.table());
    let l = one.lmtp.clone().unwrap();
    assert_eq!((l.messages, l.deliveries, l.refused), (20, 20, 0));
    assert_eq!(one.meta.workload, "lmtp-1rcpt");
    assert_eq!(one.meta.cycles, 20);
    for row in [ENVELOPE, DATA, TRANSACTION] {
        assert_eq!(count(&one, row), (20, 0), "{row}\n{}", one.table());
    }
    assert_eq!(
        count(&one, CONNECT),
        (2, 0),
        "one connection per client, kept"
    );
    assert_eq!(
        count(&one, ALL).0,
        40,
        "ENVELOPE and DATA are the round trips"
    );
    let v = l.verified.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!((v.expected, v.found), (20, 20));
    let rate = l.deliveries as f64 / one.seconds;
    assert!((l.deliveries_per_sec - rate).abs() < 1e-6 * rate.max(1.0));
    let data = one.row(DATA).unwrap();
    assert!(data.p50_us <= data.p99_us && data.p99_us <= data.p999_us);
    let transaction = one.row(TRANSACTION).unwrap();
    assert!(
        transaction.p50_us >= data.p50_us,
        "a transaction includes its DATA"
    );

    // 4 messages to 3 different users each: 12 copies, 4 per user.
    let mut cfg = config(s.lmtp, users(3), 3, 4);
    cfg.verify = Some(imap(s.imap));
    let three = lmtp::run(cfg).await.unwrap();
    assert_eq!(three.errors_total, 0, "{}", three.table());
    let l = three.lmtp.clone().unwrap();
    assert_eq!((l.messages, l.deliveries, l.recipients), (4, 12, 3));
    assert!(l.verified.unwrap().ok());

    // The side-by-side table has an LMTP row per run, with the copies found.
    let table = compare::table(&[one.clone(), three.clone()], "test");
    assert!(table.contains("| lmtp-1rcpt | test | 2 | 1 |"), "{table}");
    assert!(table.contains("| 20 of 20 |"), "{table}");
    assert!(table.contains("| lmtp-3rcpt | test | 2 | 3 |"), "{table}");
    assert!(
        !table.contains("commands/s"),
        "no IMAP table without IMAP runs\n{table}"
    );

    // Counted independently: every copy is in its user's INBOX, with its
    // Delivered-To, nothing more (the first run spread 20 over 3 users: 7, 7, 6).
    let mut total = 0;
    for (i, first_run) in [7, 7, 6].into_iter().enumerate() {
        let user = format!("bench{}", i + 1);
        let (all, to) = inbox(s.imap, &user, &format!("{user}@example.org")).await;
        assert_eq!(all, first_run + 4, "{user}");
        assert_eq!(to, all, "{user}: every message was delivered to it");
        total += all;
    }
    assert_eq!(total, 32);
}

/// A fake LMTP server: advertises PIPELINING, refuses RCPT for `refuse` (550), and
/// after the message answers 250 for every accepted recipient — storing nothing.
async fn fake(refuse: &'static str) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 fake LMTP\r\n").await.unwrap();
                let (mut accepted, mut in_data) = (0, false);
                let mut bytes = Vec::new();
                while r.read_until(b'\n', &mut bytes).await.unwrap_or(0) > 0 {
                    let line = String::from_utf8_lossy(&bytes).into_owned();
                    let upper = line.to_ascii_uppercase();
                    let reply = if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            "250 2.0.0 ok\r\n".repeat(std::mem::take(&mut accepted))
                        } else {
                            String::new()
                        }
                    } else if upper.starts_with("LHLO") {
                        "250-fake\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n".into()
                    } else if upper.starts_with("RCPT") && line.contains(refuse) {
                        "550 5.1.1 no such user\r\n".into()
                    } else if upper.starts_with("RCPT") {
                        accepted += 1;
                        "250 2.1.5 ok\r\n".into()
                    } else if upper.starts_with("DATA") && accepted == 0 {
                        "503 5.5.1 no valid recipients\r\n".into()
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        "354 go ahead\r\n".into()
                    } else {
                        "250 2.0.0 ok\r\n".into()
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    bytes.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn refused_recipients_are_errors_not_deliveries() {
    // Message n goes to bench(n % 2 + 1): the odd ones to bench2, who is refused.
    let addr = fake("<bench2@").await;
    let r = lmtp::run(config(addr, users(2), 1, 10)).await.unwrap();
    let l = r.lmtp.clone().unwrap();
    assert_eq!(
        (l.messages, l.deliveries, l.refused),
        (5, 5, 5),
        "{}",
        r.table()
    );
    assert_eq!(count(&r, ENVELOPE), (5, 5));
    assert_eq!(count(&r, DATA), (5, 0));
    assert_eq!(r.errors_total, 5);
    assert!(count(&r, CONNECT).0 >= 2, "a failed transaction reconnects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_says_250_and_stores_nothing_fails_verification() {
    let s = serve(2);
    let addr = fake("nobody-is-refused").await;
    let mut cfg = config(addr, users(2), 2, 6);
    cfg.verify = Some(imap(s.imap));
    let r = lmtp::run(cfg).await.unwrap();
    assert_eq!(r.errors_total, 0, "every reply was the expected one");
    let l = r.lmtp.clone().unwrap();
    assert_eq!(l.deliveries, 12);
    let v = l.verified.unwrap();
    assert!(!v.ok());
    assert_eq!((v.expected, v.found, v.users_wrong.len()), (12, 0, 2));
    assert!(r.table().contains("VERIFICATION FAILED"), "{}", r.table());
}

#[tokio::test]
async fn bad_settings_are_refused_before_connecting() {
    // Nothing listens on port 9 of loopback, and nothing is tried.
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let too_many = lmtp::run(config(addr, users(2), 3, 1)).await.unwrap_err();
    assert!(too_many.to_string().contains("recipients"), "{too_many}");
    let mut cfg = config(addr, users(2), 1, 1);
    cfg.domain = "x>\r\nRCPT TO:<y".into();
    let injected = lmtp::run(cfg).await.unwrap_err();
    assert!(injected.to_string().contains("LMTP address"), "{injected}");
}
