//! pluto-bench against a real `pluto serve` (debug build, spawned on loopback) with
//! tiny counts, checking that the report's numbers add up; and against a fake
//! server whose answers are wrong, checking that wrong answers count as errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pluto_bench::conn::{Target, TlsTarget};
use pluto_bench::stats::{ALL, CONNECT, IDLE_NOTIFY, Report};
use pluto_bench::workload::{self, RunConfig, User, Workload};
use pluto_bench::{corpus, idle_mem};
use pluto_testkit::serve::Pluto;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PASSWORD: &str = "bench-test-password";

/// `pluto serve` with the users `bench1` … `benchN`.
fn serve(users: usize) -> Pluto {
    let names: Vec<String> = (1..=users).map(|i| format!("bench{i}")).collect();
    let users: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), PASSWORD)).collect();
    Pluto::start(&users)
}

fn users(n: usize, password: &str) -> Vec<User> {
    (1..=n)
        .map(|i| User {
            name: format!("bench{i}"),
            password: password.to_owned(),
        })
        .collect()
}

fn config(target: Target, workload: Workload, cycles: u64) -> RunConfig {
    let corpus = corpus::load(None, &corpus::default_generator(), 30).unwrap();
    RunConfig {
        label: "test".into(),
        target,
        workload,
        clients: 2,
        users: users(2, PASSWORD),
        duration: Duration::from_secs(60),
        max_cycles: Some(cycles),
        fill: 5,
        watchers: 3,
        corpus: Arc::new(corpus),
        progress: false,
    }
}

fn plain(addr: SocketAddr) -> Target {
    Target {
        addr,
        tls: None,
        timeout: Duration::from_secs(30),
    }
}

/// The figures any report must satisfy.
fn assert_sane(r: &Report) {
    assert_eq!(r.errors_total, 0, "{}", r.table());
    let sum: u64 = r
        .commands
        .iter()
        .filter(|c| c.name != CONNECT && c.name != IDLE_NOTIFY)
        .map(|c| c.count)
        .sum();
    assert_eq!(r.commands_total, sum, "ALL is the sum of the commands");
    assert_eq!(r.row(ALL).unwrap().count, sum);
    assert!(r.seconds > 0.0 && r.seconds < 60.0);
    let rate = r.commands_total as f64 / r.seconds;
    assert!((r.commands_per_sec - rate).abs() < 1e-6 * rate.max(1.0));
    for c in r.commands.iter().chain([&r.all]) {
        assert!(c.count > 0, "{} never succeeded", c.name);
        assert!(c.p50_us >= 1, "{}", c.name);
        assert!(c.p50_us <= c.p99_us && c.p99_us <= c.p999_us, "{}", c.name);
        // hdrhistogram rounds to 3 significant digits.
        assert!(
            c.p999_us as f64 <= c.max_us as f64 * 1.001 + 1.0,
            "{}",
            c.name
        );
        assert!(
            c.max_us < 60_000_000,
            "{}: a latency above the run's length",
            c.name
        );
    }
}

fn count(r: &Report, name: &str) -> u64 {
    r.row(name).map_or(0, |c| c.count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_against_pluto_serve() {
    let s = serve(2);

    let a = workload::run(config(plain(s.imap), Workload::A, 6))
        .await
        .unwrap();
    assert_sane(&a);
    assert_eq!(a.meta.cycles, 6);
    for name in [
        CONNECT,
        "LOGIN",
        "LIST",
        "STATUS",
        "SELECT",
        "FETCH",
        "FETCH BODY",
        "STORE",
        "STORE DELETED",
        "EXPUNGE",
        "APPEND",
        "LOGOUT",
    ] {
        assert_eq!(count(&a, name), 6, "{name} once per cycle\n{}", a.table());
    }
    assert_eq!(a.commands_total, 6 * 11);

    let b = workload::run(config(plain(s.imap), Workload::B, 8))
        .await
        .unwrap();
    assert_sane(&b);
    assert_eq!(count(&b, "LOGIN"), 2, "one LOGIN per client");
    assert_eq!(count(&b, "SELECT"), 8);
    assert_eq!(count(&b, "LOGOUT"), 0);

    let c = workload::run(config(plain(s.imap), Workload::C, 10))
        .await
        .unwrap();
    assert_sane(&c);
    assert_eq!(count(&c, "APPEND"), 10);

    let d = workload::run(config(plain(s.imap), Workload::D, 4))
        .await
        .unwrap();
    assert_sane(&d);
    assert_eq!(count(&d, "APPEND"), 4);
    assert_eq!(
        count(&d, IDLE_NOTIFY),
        4 * 3,
        "every watcher saw every APPEND"
    );

    // Over TLS (self-signed: verification skipped), and the JSON round trip.
    let tls = Target {
        tls: Some(TlsTarget::new(None, "localhost").unwrap()),
        ..plain(s.imaps)
    };
    let t = workload::run(config(tls.clone(), Workload::B, 4))
        .await
        .unwrap();
    assert_sane(&t);
    assert!(t.meta.tls);
    let back: Report = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
    assert_eq!(back.commands_total, t.commands_total);

    // Idle memory: a handful of sessions, measured on the server's process.
    let mem = idle_mem::measure(idle_mem::IdleConfig {
        target: tls,
        users: users(2, PASSWORD),
        sessions: 20,
        concurrency: 4,
        pids: vec![s.pid().unwrap()],
        settle: Duration::from_millis(200),
        hold: Duration::ZERO,
        warmup: 4,
    })
    .await
    .unwrap();
    assert_eq!((mem.sessions, mem.sessions_failed), (20, 0));
    assert_eq!(mem.processes_after, 1);
    assert!(mem.pss_before_kib > 0 && mem.pss_after_kib > 0);
}

#[tokio::test]
async fn a_wrong_password_fails_the_run() {
    let s = serve(1);
    let mut cfg = config(plain(s.imap), Workload::B, 2);
    cfg.users = users(1, "not-the-password");
    let err = workload::run(cfg).await.unwrap_err();
    assert!(err.to_string().contains("LOGIN"), "{err}");
}

/// A server that says OK to everything but never lists INBOX: every cycle's LIST is
/// a wrong answer.
async fn liar() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"* OK liar ready\r\n").await.unwrap();
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let mut parts = line.split_whitespace();
                    let tag = parts.next().unwrap_or("*").to_owned();
                    let cmd = parts.next().unwrap_or("").to_ascii_uppercase();
                    let reply = match cmd.as_str() {
                        "STATUS" => format!("* STATUS INBOX (MESSAGES 0)\r\n{tag} OK done\r\n"),
                        "LIST" => format!("* LIST () \"/\" Sent\r\n{tag} OK done\r\n"),
                        _ => format!("{tag} OK done\r\n"),
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn wrong_answers_count_as_errors() {
    let addr = liar().await;
    let mut cfg = config(plain(addr), Workload::A, 3);
    cfg.fill = 0;
    let r = workload::run(cfg).await.unwrap();
    let list = r.row("LIST").unwrap();
    assert_eq!((list.count, list.errors), (0, 3), "{}", r.table());
    assert_eq!(r.errors_total, 3);
    assert_eq!(count(&r, "LOGIN"), 3);
    assert_eq!(r.meta.cycles, 0, "no cycle completed");
}
