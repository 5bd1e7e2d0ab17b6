//! The cluster tells the truth under faults (issue 10, points 4, 5, 6, 13, 14), with
//! real processes on loopback:
//!
//! - a worker SIGKILLed under 4 APPENDing clients: no APPEND answered NO is stored,
//!   every APPEND answered OK is there once (an APPEND whose answer was lost ends the
//!   session with `* BYE [UNAVAILABLE]` and no tagged answer);
//! - a worker SIGSTOPped: its sessions — idle, in IDLE, or waiting for an APPEND — get
//!   `* BYE [UNAVAILABLE]` (idle ones once the probe marks the node down, the APPEND
//!   once `cluster.rpc_timeout_ms` passes), and a new session fails over;
//! - the storage node dead: writes are not held up by `ack_timeout_ms` each (it is
//!   set far above what the writes take), and the worker counts them as acknowledged
//!   locally only;
//! - a node refuses a user the ring does not place on it; the user's UIDVALIDITY
//!   stays what it was;
//! - two 45 MiB messages and one of 90 MiB (larger than an internal frame, with
//!   `limits.append_limit` raised): fetched in one FETCH through the gateway, and
//!   replicated to the storage node, byte for byte.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pluto_backends::{MailStore, StoreError, UserId};
use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD, read_replica};
use pluto_cluster_tests::corpus;
use pluto_cluster_tests::mail::{self, Client};

/// What one APPEND got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Ok,
    No,
    /// The session ended (BYE or a dropped connection) without a tagged answer.
    Unknown,
}

/// Appends `messages` for `user`, reconnecting when the session is lost; records each
/// message's outcome.
async fn append_recording(
    addr: std::net::SocketAddr,
    user: String,
    messages: Vec<(String, Vec<u8>)>,
) -> Vec<(String, Outcome, String)> {
    let mut out = Vec::new();
    let mut client: Option<Client> = None;
    for (id, body) in messages {
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.is_none() {
            match mail::login(addr, &user, USER_PASSWORD).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    assert!(Instant::now() < deadline, "{user} could not log in: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        match c.try_append_plus("INBOX", "", &body).await {
            Ok(reply) if reply.ok() => out.push((id, Outcome::Ok, reply.tagged)),
            Ok(reply) => out.push((id, Outcome::No, reply.tagged)),
            Err(e) => {
                out.push((id, Outcome::Unknown, e.to_string()));
                client = None;
            }
        }
    }
    out
}

/// Waits until every replica of `user` shows the same INBOX; returns its Message-IDs.
async fn converged_ids(cluster: &Cluster, user: &str) -> HashMap<String, usize> {
    let replicas = cluster.replicas_of(user);
    let stores: Vec<_> = replicas.iter().map(|n| cluster.remote(n)).collect();
    let start = Instant::now();
    let view = loop {
        let mut views = Vec::new();
        for s in &stores {
            views.push(read_replica(s, user, "INBOX").await);
        }
        if views.iter().all(Result::is_ok) && views.windows(2).all(|w| w[0] == w[1]) {
            break views.into_iter().next().unwrap().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{user}: replicas {replicas:?} did not converge:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut seen = HashMap::new();
    for (uid, _, bytes) in &view.messages {
        let id = corpus::message_id(bytes).unwrap_or_else(|| panic!("UID {uid}: no Message-ID"));
        *seen.entry(id).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_append_answered_no_is_stored_when_a_worker_is_killed() {
    let spec = Spec {
        users: (1..=12).map(|i| format!("user{i}")).collect(),
        ..Spec::default()
    };
    let all = spec.users.clone();
    let mut cluster = Cluster::start(spec).await;
    // Four writers, at least three of them at home on the worker that is killed.
    let (mut users, others): (Vec<String>, Vec<String>) = all
        .into_iter()
        .partition(|u| cluster.replicas_of(u)[0] == "worker1");
    assert!(users.len() >= 3, "the ring put only {users:?} on worker1");
    users.truncate(3);
    users.extend(others.into_iter().take(1));
    let count = 1200;
    let corpus = corpus::messages(count);
    let mut tasks = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let share: Vec<_> = corpus
            .iter()
            .skip(i)
            .step_by(users.len())
            .cloned()
            .collect();
        tasks.push(tokio::spawn(append_recording(
            cluster.imap,
            user.clone(),
            share,
        )));
    }
    // Kill worker1 twice while the clients append, restarting it in between.
    for round in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500 + 1000 * round)).await;
        cluster.kill("worker1");
        tokio::time::sleep(Duration::from_secs(3)).await;
        cluster.restart("worker1");
        cluster
            .wait_caught_up("worker1", Duration::from_secs(60))
            .await;
    }
    let mut outcomes: HashMap<String, Vec<(String, Outcome, String)>> = HashMap::new();
    for (user, task) in users.iter().zip(tasks) {
        outcomes.insert(user.clone(), task.await.unwrap());
    }
    for node in ["worker1", "worker2", "storage1"] {
        cluster.wait_caught_up(node, Duration::from_secs(60)).await;
    }
    let mut tally: HashMap<Outcome, usize> = HashMap::new();
    for user in &users {
        let seen = converged_ids(&cluster, user).await;
        for (id, outcome, answer) in &outcomes[user] {
            *tally.entry(*outcome).or_default() += 1;
            match outcome {
                Outcome::Ok => assert_eq!(
                    seen.get(id).copied(),
                    Some(1),
                    "{user}: {id} was answered OK and is there {:?} times",
                    seen.get(id)
                ),
                Outcome::No => assert!(
                    !seen.contains_key(id),
                    "{user}: {id} was answered NO ({answer}) but is stored"
                ),
                // Either is true; never twice.
                Outcome::Unknown => assert!(seen.get(id).copied().unwrap_or(0) <= 1),
            }
        }
    }
    println!("APPEND outcomes with worker1 killed twice: {tally:?}");
    assert!(
        tally.get(&Outcome::Ok).copied().unwrap_or(0) >= count / 2,
        "too few appends acknowledged: {tally:?}\n{}",
        cluster.logs()
    );
}

/// A user whose home (the owner worker) is `node`.
fn user_on(cluster: &Cluster, users: &[String], node: &str) -> String {
    users
        .iter()
        .find(|u| cluster.replicas_of(u).first().map(String::as_str) == Some(node))
        .unwrap_or_else(|| panic!("no user on {node}"))
        .clone()
}

/// Reads lines until a `* BYE`; panics on a tagged answer or a closed connection.
async fn until_bye(client: &mut Client, what: &str) -> String {
    loop {
        let line = client
            .try_line()
            .await
            .unwrap_or_else(|e| panic!("{what}: no BYE before {e}"));
        let line = line.trim_end().to_owned();
        if line.starts_with("* BYE") {
            return line;
        }
        assert!(
            line.starts_with('*') || line.starts_with('+'),
            "{what}: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_on_a_stopped_worker_get_bye() {
    let spec = Spec {
        rpc_timeout_ms: 5000,
        ..Spec::default()
    };
    let users = spec.users.clone();
    let cluster = Cluster::start(spec).await;
    let on_w1: Vec<String> = users
        .iter()
        .filter(|u| cluster.replicas_of(u)[0] == "worker1")
        .cloned()
        .collect();
    assert!(on_w1.len() >= 2, "the ring put {on_w1:?} on worker1");
    let (a, b) = (&on_w1[0], &on_w1[1]);
    // A session in IDLE, one idle between commands, one about to APPEND.
    let mut idling = mail::login(cluster.imap, a, USER_PASSWORD).await.unwrap();
    assert!(idling.try_cmd("SELECT INBOX").await.unwrap().ok());
    let tag = idling.tag();
    idling
        .try_send(format!("{tag} IDLE\r\n").as_bytes())
        .await
        .unwrap();
    let cont = idling.try_line().await.unwrap();
    assert!(cont.starts_with('+'), "{cont}");
    let mut quiet = mail::login(cluster.imap, b, USER_PASSWORD).await.unwrap();
    assert!(quiet.try_cmd("SELECT INBOX").await.unwrap().ok());
    let mut writer = mail::login(cluster.imap, a, USER_PASSWORD).await.unwrap();
    assert!(
        writer
            .try_append_plus("INBOX", "", b"Subject: before\r\n\r\nbefore\r\n")
            .await
            .unwrap()
            .ok()
    );

    cluster.signal("worker1", "STOP");
    let stopped = Instant::now();
    let append = tokio::spawn(async move {
        let r = writer
            .try_append_plus("INBOX", "", b"Subject: during\r\n\r\nduring\r\n")
            .await;
        (r.map(|r| r.tagged), Instant::now())
    });
    let bye = until_bye(&mut idling, "the IDLE session").await;
    let idle_after = stopped.elapsed();
    assert!(bye.contains("[UNAVAILABLE]"), "{bye}");
    let bye = until_bye(&mut quiet, "the idle session").await;
    let quiet_after = stopped.elapsed();
    assert!(bye.contains("[UNAVAILABLE]"), "{bye}");
    // The APPEND in flight on the hung node: no NO (it may have been stored), a BYE.
    let (answer, at) = append.await.unwrap();
    let append_after = at - stopped;
    assert!(
        answer.is_err(),
        "the APPEND on a hung node was answered: {answer:?}"
    );
    // A new session of the same user fails over and works.
    let mut again = mail::login(cluster.imap, a, USER_PASSWORD).await.unwrap();
    assert!(
        again
            .try_append_plus("INBOX", "", b"Subject: after\r\n\r\nafter\r\n")
            .await
            .unwrap()
            .ok()
    );
    println!(
        "worker1 SIGSTOPped: BYE after {idle_after:?} (IDLE), {quiet_after:?} (idle), {append_after:?} (APPEND in flight, rpc_timeout_ms = 5000)"
    );
    cluster.signal("worker1", "CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_with_the_storage_node_dead_do_not_wait_ack_timeout() {
    let ack_timeout = Duration::from_secs(20);
    let spec = Spec {
        users: (1..=4).map(|i| format!("user{i}")).collect(),
        ack_timeout_ms: ack_timeout.as_millis() as u64,
        rpc_timeout_ms: 30_000,
        ..Spec::default()
    };
    let users = spec.users.clone();
    let mut cluster = Cluster::start(spec).await;
    cluster.kill("storage1");
    // Until each worker's link to storage1 is seen down.
    let start = Instant::now();
    for w in cluster.workers() {
        let remote = cluster.remote(&w);
        loop {
            let status = remote.node_status().await.unwrap();
            if status
                .peers
                .iter()
                .any(|p| p.name == "storage1" && !p.connected)
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{w}: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let per_user = 10;
    let started = Instant::now();
    let writes: Vec<_> = users
        .iter()
        .map(|user| {
            let addr = cluster.imap;
            let user = user.clone();
            tokio::spawn(async move {
                let mut c = mail::login(addr, &user, USER_PASSWORD).await.unwrap();
                let mut done = 0;
                for i in 0..per_user {
                    let body = format!("Subject: {i}\r\n\r\nstorage down {i}\r\n");
                    if c.try_append_plus("INBOX", "", body.as_bytes())
                        .await
                        .unwrap()
                        .ok()
                    {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    // 40 writes, 10 per session in a row, within one ack_timeout: none waited for it.
    let all = async {
        let mut done = 0;
        for w in writes {
            done += w.await.unwrap();
        }
        done
    };
    let done: usize = tokio::time::timeout(ack_timeout, all)
        .await
        .unwrap_or_else(|_| panic!("writes waited for the dead storage node"));
    let took = started.elapsed();
    assert_eq!(done, users.len() * per_user);
    let mut local_only = 0.0;
    for w in cluster.workers() {
        local_only += cluster
            .metric(&w, "pluto_writes_acked_locally_only_total")
            .await
            .unwrap_or(0.0);
        let reachable = cluster
            .metric(&w, "pluto_replication_peers_reachable")
            .await;
        // Only the other worker is reachable (the metrics task runs once a second).
        assert!(reachable.is_some_and(|r| r <= 1.0), "{w}: {reachable:?}");
    }
    // Metrics are published once a second.
    if local_only < done as f64 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        local_only = 0.0;
        for w in cluster.workers() {
            local_only += cluster
                .metric(&w, "pluto_writes_acked_locally_only_total")
                .await
                .unwrap_or(0.0);
        }
    }
    assert!(
        local_only >= done as f64,
        "{local_only} writes counted as acknowledged locally only, {done} made"
    );
    println!(
        "storage1 dead, ack_timeout_ms = {}: {done} APPENDs (4 sessions) took {took:?}",
        ack_timeout.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_refuses_a_user_the_ring_does_not_place_on_it() {
    let spec = Spec::default();
    let users = spec.users.clone();
    let cluster = Cluster::start(spec).await;
    let user = user_on(&cluster, &users, "worker1");
    let mut c = mail::login(cluster.imap, &user, USER_PASSWORD)
        .await
        .unwrap();
    assert!(
        c.try_append_plus(
            "INBOX",
            "",
            b"Message-ID: <x@test>\r\nSubject: x\r\n\r\nx\r\n"
        )
        .await
        .unwrap()
        .ok()
    );
    let (validity, _) = c.try_list_messages("INBOX").await.unwrap();
    // A gateway that routes the user to worker2 (a wrong configuration) is refused.
    let worker2 = cluster.remote("worker2");
    let id = UserId::new(&user).unwrap();
    let err = worker2.open_user(&id).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(r) if r.contains("does not hold")),
        "{err:?}"
    );
    let err = worker2.list(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let log = std::fs::read_to_string(cluster.dir.path().join("worker2.log")).unwrap();
    assert!(
        log.contains("does not hold"),
        "worker2 did not log the refusal"
    );
    // Nothing changed for the user.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut c = mail::login(cluster.imap, &user, USER_PASSWORD)
        .await
        .unwrap();
    let (after, messages) = c.try_list_messages("INBOX").await.unwrap();
    assert_eq!(after, validity, "UIDVALIDITY changed");
    assert_eq!(messages.len(), 1);
    for node in cluster.replicas_of(&user) {
        let view = read_replica(&cluster.remote(&node), &user, "INBOX")
            .await
            .unwrap();
        assert_eq!(view.uid_validity, validity, "{node}");
    }
}

/// A body of `size` bytes, different for each `seed`.
fn big_message(seed: u8, size: usize) -> Vec<u8> {
    let mut body =
        format!("Message-ID: <big{seed}@test>\r\nSubject: big {seed}\r\n\r\n").into_bytes();
    let line: Vec<u8> = (0..76u8)
        .map(|i| b'a' + (i.wrapping_add(seed)) % 26)
        .chain(*b"\r\n")
        .collect();
    while body.len() + line.len() <= size {
        body.extend_from_slice(&line);
    }
    while body.len() < size {
        body.push(b'x');
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_larger_than_a_frame_pass_the_gateway_and_replication() {
    let spec = Spec {
        users: vec!["big".into()],
        append_limit: Some(100 << 20),
        ..Spec::default()
    };
    let cluster = Cluster::start(spec).await;
    let sent = [
        big_message(1, 45 << 20),
        big_message(2, 45 << 20),
        big_message(3, 90 << 20),
    ];
    assert!(sent[2].len() > pluto_backends::net::MAX_FRAME);
    let mut c = mail::login(cluster.imap, "big", USER_PASSWORD)
        .await
        .unwrap();
    for m in &sent {
        let r = c.try_append_plus("INBOX", "", m).await.unwrap();
        assert!(r.ok(), "{}", r.tagged);
    }
    assert!(c.try_cmd("SELECT INBOX").await.unwrap().ok());
    // All in one command: 180 MiB from the node in one FETCH.
    let r = c.try_cmd("FETCH 1:3 BODY.PEEK[]").await.unwrap();
    assert!(r.ok(), "{}", r.tagged);
    assert_eq!(r.untagged.iter().filter(|l| l.contains("FETCH")).count(), 3);
    for (literals, m) in r
        .untagged
        .iter()
        .zip(&r.literals)
        .filter(|(l, _)| l.contains("FETCH"))
        .map(|(_, literals)| literals)
        .zip(&sent)
    {
        assert!(literals[0].starts_with(m), "a body came back different");
    }
    // And on every replica, byte for byte.
    for node in cluster.replicas_of("big") {
        let store = cluster.remote(&node);
        let start = Instant::now();
        let view = loop {
            match read_replica(&store, "big", "INBOX").await {
                Ok(v) if v.messages.len() == 3 => break v,
                other => assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "{node}: {:?}\n{}",
                    other.map(|v| v.messages.len()),
                    cluster.logs()
                ),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        for ((_, _, got), m) in view.messages.iter().zip(&sent) {
            assert!(got.as_ref() == m.as_slice(), "{node}: a body differs");
        }
    }
    let store = cluster.remote("storage1");
    let status = store.node_status().await.unwrap();
    assert!(status.peers.iter().all(|p| p.connected), "{status:?}");
    let _ = MailStore::list(&store, &UserId::new("big").unwrap())
        .await
        .unwrap();
}
