//! Durability under SIGKILL: three clients stream APPENDs into pluto (two into INBOX,
//! one into Archive), recording every `[APPENDUID v u]` the server acknowledged; the
//! server is SIGKILLed in the middle of the stream, restarted on the same data dir,
//! and every acknowledged message must be there with the same UIDVALIDITY, the same
//! UID and byte-identical `BODY[]`. This is done twice in a row, so the second round
//! also checks that what the first restart recovered survives another crash.
//!
//! Messages that were in flight when the process died (sent, not acknowledged) may or
//! may not be present; if present they must be exactly what was sent. After each
//! restart a fresh APPEND must get a UID above every UID ever handed out: a UID is
//! never reused, even for a message lost in the crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pluto_testkit::imap::{Blocking, appenduid};
use support::{PASSWORD, Pluto, USER};

/// An acknowledged APPEND.
#[derive(Clone)]
struct Acked {
    mailbox: &'static str,
    validity: u32,
    uid: u32,
    bytes: Vec<u8>,
}

/// What the clients saw in one round.
#[derive(Default)]
struct Log {
    acked: Vec<Acked>,
    /// Per client, the message it was sending when its connection broke.
    in_flight: Vec<(&'static str, Vec<u8>)>,
}

const CLIENTS: [&str; 3] = ["INBOX", "INBOX", "Archive"];

/// A deterministic, unique message of varying size (100 B to ~40 KiB), CRLF lines.
fn message(round: u32, client: usize, seq: u32) -> Vec<u8> {
    let mut m = format!(
        "From: Crash Test <crash@example.com>\r\nTo: tester@example.com\r\n\
         Subject: round {round} client {client} message {seq}\r\n\
         Message-ID: <crash.{round}.{client}.{seq}@example.com>\r\n\
         Date: Wed, 15 May 2024 12:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    let lines = (seq as usize * 7919 + client * 104_729) % 500;
    for i in 0..=lines {
        m.extend_from_slice(
            format!("{round}/{client}/{seq} line {i:04} the quick brown fox jumps\r\n").as_bytes(),
        );
    }
    m
}

/// Streams appends from three clients until their connections break; kills the
/// server once `kill_after` appends are acknowledged.
fn stream_and_kill(pluto: &mut Pluto, round: u32, kill_after: usize) -> Log {
    let log = Arc::new(Mutex::new(Log::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Every client logs in before any streams: a login still running when the kill
    // comes (slow under load) would only fail the test, not check durability.
    let logged_in = Arc::new(std::sync::Barrier::new(CLIENTS.len()));
    let mut threads = Vec::new();
    for (client, &mailbox) in CLIENTS.iter().enumerate() {
        let addr = pluto.imap;
        let (log, acked, stop) = (log.clone(), acked.clone(), stop.clone());
        let logged_in = logged_in.clone();
        threads.push(std::thread::spawn(move || {
            let mut conn = Blocking::login(addr, USER, PASSWORD);
            logged_in.wait();
            // A safety bound: the server is killed long before this.
            for seq in 0..5_000 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let bytes = message(round, client, seq);
                match conn.append(mailbox, "", &bytes) {
                    Ok(reply) if reply.ok() => {
                        let (validity, uid) = appenduid(&reply.tagged).unwrap_or_else(|| {
                            panic!("APPEND OK without APPENDUID: {}", reply.tagged)
                        });
                        log.lock().unwrap().acked.push(Acked {
                            mailbox,
                            validity,
                            uid,
                            bytes,
                        });
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(reply) if reply.tagged.starts_with("* BYE") => {
                        panic!("server said BYE during the stream: {}", reply.tagged)
                    }
                    Ok(reply) => panic!("APPEND refused: {}", reply.tagged),
                    Err(_) => {
                        // The server died; this message may or may not have made it.
                        log.lock().unwrap().in_flight.push((mailbox, bytes));
                        return;
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while acked.load(Ordering::SeqCst) < kill_after {
        assert!(
            Instant::now() < deadline,
            "only {} appends acknowledged in 40 s:\n{}",
            acked.load(Ordering::SeqCst),
            pluto.logs()
        );
        assert!(
            pluto.is_running(),
            "pluto died on its own:\n{}",
            pluto.logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    pluto.kill();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }
    Arc::try_unwrap(log)
        .ok()
        .expect("client threads are done")
        .into_inner()
        .unwrap()
}

/// Checks, after a restart, that every acknowledged message is intact; returns
/// each mailbox's UIDVALIDITY and highest UID on the server.
fn check_after_restart(
    pluto: &Pluto,
    acked: &[Acked],
    in_flight: &[(&'static str, Vec<u8>)],
) -> BTreeMap<&'static str, (u32, u32)> {
    let mut client = Blocking::login(pluto.imap, USER, PASSWORD);
    let mut out = BTreeMap::new();
    let mailboxes: BTreeSet<&'static str> = CLIENTS.iter().copied().collect();
    for mailbox in mailboxes {
        let (validity, exists) = client.select(mailbox).unwrap();
        let on_server: BTreeMap<u32, Vec<u8>> = if exists == 0 {
            BTreeMap::new()
        } else {
            client.fetch_bodies("1:*").unwrap().into_iter().collect()
        };
        assert_eq!(
            on_server.len(),
            exists as usize,
            "{mailbox}: FETCH 1:* vs EXISTS"
        );
        let mine: Vec<&Acked> = acked.iter().filter(|a| a.mailbox == mailbox).collect();
        let mut seen_uids = BTreeSet::new();
        for a in &mine {
            assert_eq!(
                a.validity, validity,
                "{mailbox}: UIDVALIDITY changed across the crash (APPENDUID said {}, SELECT says {validity})",
                a.validity
            );
            assert!(
                seen_uids.insert(a.uid),
                "{mailbox}: UID {} acknowledged twice",
                a.uid
            );
            let Some(body) = on_server.get(&a.uid) else {
                panic!(
                    "{mailbox}: acknowledged UID {} is missing after the restart ({} acknowledged, {} on the server)\n{}",
                    a.uid,
                    mine.len(),
                    on_server.len(),
                    pluto.logs()
                );
            };
            assert!(
                *body == a.bytes,
                "{mailbox}: UID {} differs after the restart ({} bytes stored, {} appended)",
                a.uid,
                body.len(),
                a.bytes.len()
            );
        }
        // Anything else on the server must be a message that was in flight, intact.
        for (uid, body) in &on_server {
            if seen_uids.contains(uid) {
                continue;
            }
            assert!(
                in_flight.iter().any(|(m, b)| *m == mailbox && b == body),
                "{mailbox}: UID {uid} ({} bytes) was never acknowledged nor in flight",
                body.len()
            );
        }
        let max_uid = on_server.keys().next_back().copied().unwrap_or(0);
        out.insert(mailbox, (validity, max_uid));
    }
    let reply = client.cmd("LOGOUT").unwrap();
    assert!(reply.ok(), "LOGOUT: {}", reply.tagged);
    out
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let mut pluto = support::start();
    let mut all_acked: Vec<Acked> = Vec::new();
    let mut all_in_flight = Vec::new();
    // The highest UID ever handed out per mailbox (acknowledged or not seen at all).
    let mut highest: BTreeMap<&'static str, u32> = BTreeMap::new();

    for (round, kill_after) in [(1u32, 150usize), (2, 100)] {
        let log = stream_and_kill(&mut pluto, round, kill_after);
        assert!(
            log.acked.len() >= kill_after,
            "round {round}: {} acknowledged",
            log.acked.len()
        );
        eprintln!(
            "round {round}: {} appends acknowledged, {} in flight at SIGKILL",
            log.acked.len(),
            log.in_flight.len()
        );
        all_acked.extend(log.acked);
        all_in_flight.extend(log.in_flight);
        pluto.restart();
        let state = check_after_restart(&pluto, &all_acked, &all_in_flight);
        for a in &all_acked {
            let h = highest.entry(a.mailbox).or_insert(0);
            *h = (*h).max(a.uid);
        }
        for (mailbox, (_, max_uid)) in &state {
            let h = highest.entry(mailbox).or_insert(0);
            *h = (*h).max(*max_uid);
        }

        // A new message after the restart gets a fresh UID, same UIDVALIDITY.
        let mut client = Blocking::login(pluto.imap, USER, PASSWORD);
        for (mailbox, (validity, _)) in &state {
            let bytes = message(round, 99, 0);
            let reply = client.append(mailbox, "", &bytes).unwrap();
            assert!(reply.ok(), "APPEND after restart: {}", reply.tagged);
            let (v, uid) = appenduid(&reply.tagged).expect("APPENDUID after restart");
            assert_eq!(v, *validity, "{mailbox}: UIDVALIDITY of a new APPEND");
            let h = highest.entry(mailbox).or_insert(0);
            assert!(
                uid > *h,
                "{mailbox}: UID {uid} after restart reuses or precedes UID {h}"
            );
            *h = uid;
            all_acked.push(Acked {
                mailbox,
                validity: v,
                uid,
                bytes,
            });
        }
        drop(client);
    }
    // The whole history, including the appends made after the last restart, survives
    // one more SIGKILL (this time with the clients idle).
    pluto.restart();
    check_after_restart(&pluto, &all_acked, &all_in_flight);
}
