//! LMTP into a cluster gateway: one DATA for users of different workers (Python's
//! smtplib.LMTP), failover to the replica set when a worker is down, 451 when no
//! replica is up, and a worker SIGKILLed during 1,000 deliveries from 4 clients —
//! every recipient answered 250 is readable afterwards, exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, message};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Python's smtplib.LMTP through `testdata/clients/lmtp_send.py`; its JSON report.
async fn lmtp_send(target: SocketAddr, rcpts: &[String], message: &[u8]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message");
    std::fs::write(&file, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/clients/lmtp_send.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script)
        .arg(target.to_string())
        .arg("--message")
        .arg(&file)
        .args(["--from", "sender@example.net"]);
    for r in rcpts {
        cmd.args(["--rcpt", &format!("{r}@example.org")]);
    }
    let out = cmd.output().await.expect("python3 must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codes(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_u64().unwrap())
        .collect()
}

/// The Message-IDs in a user's INBOX, read through the gateway.
async fn inbox_ids(cluster: &Cluster, user: &str) -> Vec<String> {
    let mut client = mail::login(cluster.imap, user, USER_PASSWORD)
        .await
        .unwrap();
    let (_, messages) = client.try_list_messages("INBOX").await.unwrap();
    messages.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_data_for_users_of_every_worker_then_failover_then_451() {
    let mut cluster = Cluster::start(Spec::default()).await;
    let users: Vec<String> = (1..=8).map(|i| format!("user{i}")).collect();
    let owners: Vec<String> = users
        .iter()
        .map(|u| cluster.replicas_of(u)[0].clone())
        .collect();
    assert!(owners.contains(&"worker1".to_owned()) && owners.contains(&"worker2".to_owned()));
    let out = lmtp_send(cluster.lmtp, &users, &message("all-users", 200)).await;
    assert_eq!(codes(&out["rcpt"]), vec![250; 8], "{out}");
    assert_eq!(
        codes(&out["data"]),
        vec![250; 8],
        "{out}\n{}",
        cluster.logs()
    );
    for user in &users {
        assert_eq!(
            inbox_ids(&cluster, user).await,
            vec!["<all-users@cluster.test>"],
            "{user}"
        );
    }

    // worker1 down: its users are delivered to their next replica.
    cluster.kill("worker1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = lmtp_send(cluster.lmtp, &users, &message("failover", 200)).await;
    assert_eq!(
        codes(&out["data"]),
        vec![250; 8],
        "{out}\n{}",
        cluster.logs()
    );

    // Every node down: 451 4.3.0 for each, nothing stored.
    cluster.kill("worker2");
    cluster.kill("storage1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = lmtp_send(cluster.lmtp, &users[..2], &message("nowhere", 200)).await;
    let data = out["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{out}");
    for r in data {
        assert_eq!(r[0].as_u64(), Some(451), "{out}");
        assert!(r[1].as_str().unwrap().starts_with("4.3.0"), "{out}");
    }

    for node in ["storage1", "worker1", "worker2"] {
        cluster.restart(node);
    }
    for node in ["storage1", "worker1", "worker2"] {
        cluster.wait_caught_up(node, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for user in &users {
        let mut ids = inbox_ids(&cluster, user).await;
        ids.sort();
        assert_eq!(
            ids,
            vec!["<all-users@cluster.test>", "<failover@cluster.test>"],
            "{user}"
        );
    }
}

/// A plain LMTP client for the load test: one transaction per message, reconnecting
/// when the connection is lost. Returns the (user, Message-ID) pairs answered 250.
async fn deliver_all(
    addr: SocketAddr,
    deliveries: Vec<(Vec<String>, String)>,
    done: Arc<AtomicUsize>,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    let mut conn: Option<BufReader<TcpStream>> = None;
    for (rcpts, id) in deliveries {
        for _attempt in 0..3 {
            if conn.is_none() {
                conn = connect(addr).await.ok();
            }
            let Some(c) = conn.as_mut() else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            match transaction(c, &rcpts, &id).await {
                Ok(answered) => {
                    acked.extend(answered.into_iter().map(|u| (u, id.clone())));
                    break;
                }
                // The connection broke before the replies: the outcome is unknown to
                // this client, so it is not counted and not sent again.
                Err(_) => {
                    conn = None;
                    break;
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    acked
}

async fn reply(c: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(60), c.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line);
        }
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<BufReader<TcpStream>> {
    let mut c = BufReader::new(TcpStream::connect(addr).await?);
    reply(&mut c).await?;
    c.get_mut().write_all(b"LHLO load.test\r\n").await?;
    reply(&mut c).await?;
    Ok(c)
}

/// One pipelined transaction; the recipients answered 250 after the data.
async fn transaction(
    c: &mut BufReader<TcpStream>,
    rcpts: &[String],
    id: &str,
) -> std::io::Result<Vec<String>> {
    let mut batch = String::from("MAIL FROM:<load@example.net>\r\n");
    for r in rcpts {
        batch.push_str(&format!("RCPT TO:<{r}@example.org>\r\n"));
    }
    batch.push_str("DATA\r\n");
    c.get_mut().write_all(batch.as_bytes()).await?;
    reply(c).await?;
    let mut taken = Vec::new();
    for r in rcpts {
        if reply(c).await?.starts_with("250") {
            taken.push(r.clone());
        }
    }
    if !reply(c).await?.starts_with("354") {
        return Ok(Vec::new());
    }
    let mut body = message(id, 1500);
    body.extend_from_slice(b".\r\n");
    c.get_mut().write_all(&body).await?;
    let mut answered = Vec::new();
    for r in taken {
        if reply(c).await?.starts_with("250") {
            answered.push(r);
        }
    }
    Ok(answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_delivery_answered_250_survives_a_worker_killed_mid_stream() {
    let count = 1000;
    let spec = Spec::default();
    let users = spec.users.clone();
    let mut cluster = Cluster::start(spec).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for client in 0..4 {
        let deliveries: Vec<(Vec<String>, String)> = (0..count / 4)
            .map(|i| {
                let n = client * (count / 4) + i;
                // Every third message has two recipients (often of two workers).
                let mut rcpts = vec![users[n % users.len()].clone()];
                if n % 3 == 0 {
                    rcpts.push(users[(n + 3) % users.len()].clone());
                }
                (rcpts, format!("lmtp-{n}"))
            })
            .collect();
        tasks.push(tokio::spawn(deliver_all(
            cluster.lmtp,
            deliveries,
            done.clone(),
        )));
    }
    let started = Instant::now();
    while done.load(Ordering::Relaxed) < count / 4 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "deliveries stalled:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_kill = done.load(Ordering::Relaxed);
    cluster.kill("worker1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart("worker1");
    let mut acked: Vec<(String, String)> = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    println!(
        "{} recipients answered 250 for {count} messages ({at_kill} sent before the kill) in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(
        acked.len() >= count,
        "too few deliveries answered 250: {}\n{}",
        acked.len(),
        cluster.logs()
    );
    for node in ["worker1", "worker2", "storage1"] {
        cluster.wait_caught_up(node, Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
    for (user, id) in acked {
        by_user
            .entry(user)
            .or_default()
            .push(format!("<{id}@cluster.test>"));
    }
    for user in &users {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for id in inbox_ids(&cluster, user).await {
            *seen.entry(id).or_default() += 1;
        }
        for id in by_user.get(user).into_iter().flatten() {
            assert_eq!(
                seen.get(id).copied(),
                Some(1),
                "{user}: {id} answered 250, found {:?} times",
                seen.get(id)
            );
        }
        assert!(
            seen.values().all(|&n| n == 1),
            "{user}: a message stored twice: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_replica_counts_the_same_usage_and_the_gateway_enforces_the_quota() {
    let cluster = Cluster::start(Spec {
        quota_messages: Some(3),
        ..Spec::default()
    })
    .await;
    let user = "user1".to_owned();
    for i in 0..3 {
        let out = lmtp_send(
            cluster.lmtp,
            std::slice::from_ref(&user),
            &message(&format!("q{i}"), 300),
        )
        .await;
        assert_eq!(codes(&out["data"]), vec![250], "{out}\n{}", cluster.logs());
    }
    let out = lmtp_send(
        cluster.lmtp,
        std::slice::from_ref(&user),
        &message("q-over", 300),
    )
    .await;
    assert_eq!(codes(&out["data"]), vec![552], "{out}");
    assert!(
        out["data"][0][1].as_str().unwrap().starts_with("5.2.2 "),
        "{out}"
    );
    assert_eq!(inbox_ids(&cluster, &user).await.len(), 3);

    // Every replica of the user counts the same usage from its own CRDT state.
    assert!(cluster.replicas_of(&user).len() >= 2);
    let usage = cluster.wait_usage(&user, 3).await;
    assert!(usage.bytes > 900, "{usage:?}");
}
