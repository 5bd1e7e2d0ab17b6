//! Black-box tests of the login throttle over real TCP: the delay is keyed by (user,
//! address), so other users' failures behind one address delay nobody else; parallel
//! guesses queue one behind the other; a spray of many users from one address hits the
//! per-address ceiling, and other addresses do not notice. Delays are configured so
//! that a throttled answer is either far inside or far outside the windows looked at.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, PASSWORD, TestServer, USER};
use tokio::net::{TcpSocket, TcpStream};

/// A long penalty: an attempt that is throttled at all gets no answer for 30 s (under
/// the 60 s to log in, past which the gateway refuses at once).
const LONG_MS: u64 = 30_000;
/// Longest we wait for an answer that the throttle must not hold up.
const PROMPT: Duration = Duration::from_secs(15);

async fn raw_from(server: &TestServer, local: [u8; 4]) -> Client<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((local, 0)))
        .expect("bind a loopback source address");
    let tcp = socket.connect(server.imap).await.unwrap();
    let mut raw = Client::new(tcp);
    let greeting = raw.line().await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    raw
}

/// Sends LOGIN and returns the tagged answer if it comes within `wait`.
async fn login_within(
    raw: &mut Client<TcpStream>,
    user: &str,
    pass: &str,
    wait: Duration,
) -> Option<String> {
    let tag = raw.tag();
    raw.send(format!("{tag} LOGIN {user} \"{pass}\"\r\n").as_bytes())
        .await;
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = raw.maybe_line(left).await?;
        if line.starts_with(&format!("{tag} ")) {
            return Some(line);
        }
    }
}

#[tokio::test]
async fn others_failures_behind_one_address_do_not_delay_a_user() {
    let server = TestServer::start_with(|c| {
        c.throttle.base_delay_ms = LONG_MS;
        c.throttle.max_delay_ms = LONG_MS;
        pluto_auth::file::add_user(&c.users_file(), "carol", "carol's password").unwrap();
    })
    .await;
    // Two colleagues behind the same address mistype their passwords…
    for user in ["bob", "carol"] {
        let mut raw = server.raw().await;
        let answer = login_within(&mut raw, user, "wrong", PROMPT).await;
        let answer = answer.expect("a first attempt is never delayed");
        assert!(answer.contains("NO [AUTHENTICATIONFAILED]"), "{answer}");
    }
    // …and the third logs in at once (the old per-address count held her 30 s).
    let mut raw = server.raw().await;
    let answer = login_within(&mut raw, USER, PASSWORD, PROMPT).await;
    let answer = answer.expect("alice was delayed by others' failures");
    assert!(answer.contains("OK"), "{answer}");
    // Bob's own second guess is still held up (30 s; we look for 3 s).
    let mut raw = server.raw().await;
    assert_eq!(
        login_within(&mut raw, "bob", "wrong again", Duration::from_secs(3)).await,
        None
    );
}

#[tokio::test]
async fn parallel_guesses_for_one_user_are_serialized() {
    // Slots 0, 100, 300, 500, … ms: the k-th answer (k ≥ 1) comes no earlier than
    // (200 k − 100) ms after the guesses were sent.
    let server = TestServer::start_with(|c| {
        c.throttle.base_delay_ms = 100;
        c.throttle.max_delay_ms = 200;
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(server.raw().await);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut raw in clients {
        tasks.spawn(async move {
            let answer = login_within(&mut raw, USER, "guess", Duration::from_secs(60)).await;
            (answer, started.elapsed())
        });
    }
    let mut answered = Vec::new();
    for (answer, at) in tasks.join_all().await {
        let answer = answer.expect("every guess is answered in the end");
        assert!(answer.contains("NO [AUTHENTICATIONFAILED]"), "{answer}");
        answered.push(at);
    }
    answered.sort();
    // Within the first second at most 6 slots exist (0, 100, 300, 500, 700, 900 ms);
    // without reservation all 40 would be answered there, verification time aside.
    let early = answered
        .iter()
        .filter(|at| **at < Duration::from_secs(1))
        .count();
    assert!(
        early <= 6,
        "{early} guesses answered within 1 s: {answered:?}"
    );
    // The last slot is 100 + 38 × 200 ms = 7.7 s after the first.
    assert!(answered[39] >= Duration::from_millis(7_700), "{answered:?}");
    // The right password, from this address, still waits behind the guesses' slots
    // (they are this same (user, address)); it is answered OK once its turn comes.
    let mut raw = server.raw().await;
    let answer = login_within(&mut raw, USER, PASSWORD, PROMPT).await;
    assert!(answer.is_some_and(|a| a.contains("OK")));
}

#[tokio::test]
async fn a_spray_of_50_users_hits_the_per_address_ceiling() {
    let server = TestServer::start_with(|c| {
        c.throttle.base_delay_ms = LONG_MS;
        c.throttle.max_delay_ms = LONG_MS;
        c.throttle.address_allowance = 45;
    })
    .await;
    // 50 user names from one address, one wrong password each: the first 46 attempts
    // (failures 0…45 counted before them) go through at once; the rest get slots 30,
    // 60, 90, 120 s on the address's curve: the first of them waits, the last two
    // would outlast the 60 s to log in and are refused at once. None of those four
    // has its password checked.
    let mut answered = 0;
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..50 {
        let mut raw = raw_from(&server, [127, 0, 0, 1]).await;
        let wait = if i < 46 {
            PROMPT
        } else {
            Duration::from_secs(1)
        };
        match login_within(&mut raw, &format!("user{i}"), "spray", wait).await {
            Some(answer) if i < 46 => {
                assert!(
                    answer.contains("NO [AUTHENTICATIONFAILED]"),
                    "{i}: {answer}"
                );
                answered += 1;
            }
            Some(answer) => {
                assert!(answer.contains("NO [UNAVAILABLE]"), "{i}: {answer}");
                refused += 1;
            }
            None => held.push(raw),
        }
    }
    assert_eq!(answered, 46);
    // The 60 s slot is held or refused depending on the second this test took.
    assert_eq!(held.len() + refused, 4);
    assert!(
        !held.is_empty() && refused >= 2,
        "{} held, {refused} refused",
        held.len()
    );
    // A real user from the spraying address is not let in now either…
    let mut raw = raw_from(&server, [127, 0, 0, 1]).await;
    let answer = login_within(&mut raw, USER, PASSWORD, Duration::from_secs(2)).await;
    assert!(answer.is_none_or(|a| a.contains("NO [UNAVAILABLE]")));
    // …one from another address is, at once.
    let mut raw = raw_from(&server, [127, 0, 0, 2]).await;
    let answer = login_within(&mut raw, USER, PASSWORD, PROMPT).await;
    assert!(answer.is_some_and(|a| a.contains("OK")));
}

#[tokio::test]
async fn a_wait_longer_than_the_time_to_log_in_is_refused_at_once() {
    // Penalty 30 s, 45 s to log in: parallel guesses get slots 0, 30, 60 s; the third
    // would outlast the login time and is refused without its password being checked.
    let server = TestServer::start_with(|c| {
        c.throttle.base_delay_ms = 30_000;
        c.throttle.max_delay_ms = 30_000;
        c.limits.preauth_timeout_secs = 45;
    })
    .await;
    let mut first = server.raw().await;
    let answer = login_within(&mut first, USER, "guess", PROMPT).await;
    assert!(answer.is_some_and(|a| a.contains("NO [AUTHENTICATIONFAILED]")));
    let mut second = server.raw().await;
    assert_eq!(
        login_within(&mut second, USER, "guess", Duration::from_secs(2)).await,
        None,
        "the second guess waits its 30 s slot"
    );
    let mut third = server.raw().await;
    let answer = login_within(&mut third, USER, PASSWORD, PROMPT).await;
    let answer = answer.expect("refused at once, not parked");
    assert!(answer.contains("NO [UNAVAILABLE]"), "{answer}");
    assert!(answer.contains("try again later"), "{answer}");
    // The session goes on: CAPABILITY still answers…
    assert!(third.cmd("CAPABILITY").await.ok());
    // …but refusals count as failures: the third in a session ends it.
    let answer = login_within(&mut third, USER, PASSWORD, PROMPT).await;
    assert!(answer.is_some_and(|a| a.contains("NO [UNAVAILABLE]")));
    let tag = third.tag();
    third
        .send(format!("{tag} LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    assert!(third.line().await.starts_with("* BYE"));
}

#[tokio::test]
async fn parallel_logins_with_the_right_password_are_not_delayed() {
    // A client that opens several connections at once (Thunderbird, mbsync, a phone):
    // every attempt reserves a slot before its password is checked, but a success lets
    // the ones queued behind it go at once. Penalty 10 s: the six get slots 0, 10, …,
    // 50 s, so without that the third would not be answered within PROMPT (15 s).
    let server = TestServer::start_with(|c| {
        c.throttle.base_delay_ms = 10_000;
        c.throttle.max_delay_ms = 10_000;
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(server.raw().await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for mut raw in clients {
        tasks.spawn(async move { login_within(&mut raw, USER, PASSWORD, PROMPT).await });
    }
    for answer in tasks.join_all().await {
        let answer = answer.expect("a login with the right password was held up");
        assert!(answer.contains("OK"), "{answer}");
    }
}
