//! Black-box tests of two sessions on one mailbox: another session's appends, flag
//! changes and expunges reach a session as untagged EXISTS / FETCH / EXPUNGE at NOOP,
//! after commands and during IDLE (within a second), and never as an EXPUNGE while a
//! FETCH, STORE or SEARCH by sequence number runs (RFC 3501 7.4.1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, Reply, TestServer, message};
use tokio::net::TcpStream;

async fn ok(raw: &mut Client<TcpStream>, cmd: &str) -> Reply {
    let r = raw.cmd(cmd).await;
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

/// A server with `n` messages in INBOX (UIDs 1..=n) and two sessions with INBOX selected.
async fn two_sessions(n: usize) -> (TestServer, Client<TcpStream>, Client<TcpStream>) {
    let server = TestServer::start().await;
    let mut setup = server.login().await;
    for i in 1..=n {
        let r = setup
            .append("INBOX", "", &message(&format!("m{i}"), "body"))
            .await;
        assert!(r.ok(), "{r:?}");
    }
    let a = server.select("INBOX").await;
    let b = server.select("INBOX").await;
    (server, a, b)
}

fn expunges(reply: &Reply) -> Vec<&str> {
    reply
        .untagged
        .iter()
        .filter(|l| l.ends_with(" EXPUNGE"))
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn noop_brings_new_mail_flag_changes_and_expunges() {
    let (_server, mut a, mut b) = two_sessions(3).await;
    let r = ok(&mut a, "NOOP").await;
    assert!(r.untagged.is_empty(), "nothing changed yet: {r:?}");

    // New mail.
    let r = b.append("INBOX", "", &message("new", "x")).await;
    assert!(r.ok(), "{r:?}");
    let r = ok(&mut a, "NOOP").await;
    assert_eq!(r.untagged, ["* 4 EXISTS"], "{r:?}");

    // A flag change.
    ok(&mut b, "STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    let r = ok(&mut a, "NOOP").await;
    assert_eq!(r.untagged.len(), 1, "{r:?}");
    assert!(
        r.untagged[0].starts_with("* 2 FETCH (FLAGS (\\Flagged \\Recent)"),
        "{r:?}"
    );

    // An expunge.
    ok(&mut b, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut b, "EXPUNGE").await;
    let r = ok(&mut a, "NOOP").await;
    let e = expunges(&r);
    assert_eq!(e, ["* 1 EXPUNGE"], "{r:?}");
    // The \Deleted flag of the expunged message may be announced first; nothing else.
    let r = ok(&mut a, "FETCH 1:* UID").await;
    assert_eq!(
        r.untagged,
        [
            "* 1 FETCH (UID 2)",
            "* 2 FETCH (UID 3)",
            "* 3 FETCH (UID 4)"
        ]
    );
    let r = ok(&mut a, "NOOP").await;
    assert!(r.untagged.is_empty(), "announced once only: {r:?}");
}

#[tokio::test]
async fn check_and_other_commands_bring_changes_too() {
    let (_server, mut a, mut b) = two_sessions(2).await;
    b.append("INBOX", "", &message("new", "x")).await;
    let r = ok(&mut a, "CHECK").await;
    assert!(r.has("* 3 EXISTS"), "{r:?}");
    b.append("INBOX", "", &message("newer", "x")).await;
    // RFC 3501 7: after any command the server may send updates; FETCH must at least
    // not lose them.
    let r = ok(&mut a, "FETCH 1 FLAGS").await;
    let r2 = ok(&mut a, "NOOP").await;
    assert!(
        r.has("* 4 EXISTS") || r2.has("* 4 EXISTS"),
        "EXISTS after FETCH or at the next NOOP: {r:?} {r2:?}"
    );
}

#[tokio::test]
async fn own_changes_are_not_echoed_twice() {
    let (_server, mut a, _b) = two_sessions(2).await;
    let r = ok(&mut a, "STORE 1 +FLAGS (\\Seen)").await;
    assert_eq!(r.untagged, ["* 1 FETCH (FLAGS (\\Seen \\Recent))"]);
    let r = ok(&mut a, "NOOP").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    // An APPEND to the selected mailbox announces EXISTS (RFC 3501 6.3.11: SHOULD) once.
    let r = a.append("INBOX", "", &message("own", "x")).await;
    assert!(r.ok(), "{r:?}");
    let r2 = ok(&mut a, "NOOP").await;
    let exists: Vec<_> = r
        .untagged
        .iter()
        .chain(&r2.untagged)
        .filter(|l| l.ends_with(" EXISTS"))
        .collect();
    assert_eq!(exists, ["* 3 EXISTS"], "{r:?} {r2:?}");
    // Own expunge: EXPUNGE once, in the EXPUNGE reply.
    ok(&mut a, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut a, "EXPUNGE").await;
    assert_eq!(expunges(&r), ["* 1 EXPUNGE"], "{r:?}");
    let r = ok(&mut a, "NOOP").await;
    assert!(r.untagged.is_empty(), "{r:?}");
}

#[tokio::test]
async fn no_expunge_while_fetch_store_or_search_by_sequence_number() {
    let (_server, mut a, mut b) = two_sessions(4).await;
    ok(&mut b, "STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut b, "EXPUNGE").await;
    // Give the feed a moment, so that A surely knows.
    tokio::time::sleep(Duration::from_millis(100)).await;

    for cmd in [
        "FETCH 1:* (UID FLAGS)",
        "STORE 3 +FLAGS (\\Answered)",
        "SEARCH ALL",
        "FETCH 4 BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
    ] {
        let r = a.cmd(cmd).await;
        assert!(expunges(&r).is_empty(), "EXPUNGE during {cmd}: {r:?}");
        assert!(!r.bad(), "{cmd}: {r:?}");
    }
    // Sequence numbers are still A's old ones: message 4 is UID 4.
    let r = ok(&mut a, "FETCH 4 UID").await;
    assert!(expunges(&r).is_empty(), "{r:?}");
    assert!(r.has("* 4 FETCH (UID 4)"), "{r:?}");
    let r = ok(&mut a, "SEARCH UID 4").await;
    assert_eq!(r.search(), [4]);

    // NOOP may now expunge: once, with the right number.
    let r = ok(&mut a, "NOOP").await;
    assert_eq!(expunges(&r), ["* 2 EXPUNGE"], "{r:?}");
    let r = ok(&mut a, "FETCH 1:* UID").await;
    assert_eq!(
        r.untagged,
        [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 3)",
            "* 3 FETCH (UID 4)"
        ]
    );
    // The STORE that A made while it could not yet see the expunge took effect.
    let r = ok(&mut a, "FETCH 2 FLAGS").await;
    assert!(r.untagged[0].contains("\\Answered"), "{r:?}");
}

#[tokio::test]
async fn uid_commands_may_carry_expunges_with_correct_numbers() {
    let (_server, mut a, mut b) = two_sessions(5).await;
    ok(&mut b, "STORE 2,4 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut b, "EXPUNGE").await;
    b.append("INBOX", "", &message("m6", "x")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A's model of the mailbox, updated only from what the server says.
    let mut model: Vec<u32> = vec![1, 2, 3, 4, 5];
    let r = ok(&mut a, "UID FETCH 1:* FLAGS").await;
    let r2 = ok(&mut a, "NOOP").await;
    for line in r.untagged.iter().chain(&r2.untagged) {
        if let Some(n) = line
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(" EXPUNGE"))
        {
            model.remove(n.parse::<usize>().unwrap() - 1);
        } else if let Some(n) = line
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(" EXISTS"))
        {
            let n: usize = n.parse().unwrap();
            assert!(n >= model.len(), "EXISTS never shrinks the mailbox: {line}");
            while model.len() < n {
                model.push(0); // UID unknown until fetched
            }
        }
    }
    assert_eq!(model.len(), 4, "{r:?} {r2:?}");
    let r = ok(&mut a, "FETCH 1:* UID").await;
    assert_eq!(
        r.untagged,
        [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 3)",
            "* 3 FETCH (UID 5)",
            "* 4 FETCH (UID 6)"
        ]
    );
}

#[tokio::test]
async fn async_imap_sees_exists_at_noop() {
    let server = TestServer::start().await;
    let mut a = server.session().await;
    a.select("INBOX").await.unwrap();
    let mut b = server.login().await;
    b.append("INBOX", "", &message("x", "y")).await;
    a.noop().await.unwrap();
    let got = common::unsolicited(&a);
    assert!(
        got.iter()
            .any(|u| matches!(u, async_imap::types::UnsolicitedResponse::Exists(1))),
        "{got:?}"
    );
}

/// Reads untagged lines until one satisfies `want`, failing after `limit`.
async fn wait_for(
    raw: &mut Client<TcpStream>,
    limit: Duration,
    want: impl Fn(&str) -> bool,
) -> (String, Duration) {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match raw.maybe_line(left).await {
            Some(line) if want(&line) => return (line, start.elapsed()),
            Some(line) => seen.push(line),
            None => panic!("nothing matching within {limit:?}; saw {seen:?}"),
        }
    }
}

#[tokio::test]
async fn idle_pushes_changes_from_another_session_within_a_second() {
    let (_server, mut a, mut b) = two_sessions(3).await;
    let tag = a.tag();
    a.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    let cont = a.line().await;
    assert!(cont.starts_with('+'), "{cont}");

    b.append("INBOX", "", &message("pushed", "x")).await;
    let (line, took) = wait_for(&mut a, Duration::from_secs(5), |l| l.ends_with(" EXISTS")).await;
    assert_eq!(line, "* 4 EXISTS");
    assert!(took < Duration::from_secs(1), "EXISTS took {took:?}");

    ok(&mut b, "STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    let (line, took) = wait_for(&mut a, Duration::from_secs(5), |l| l.contains(" FETCH ")).await;
    assert!(
        line.starts_with("* 1 FETCH (FLAGS (\\Flagged \\Recent)"),
        "{line}"
    );
    assert!(took < Duration::from_secs(1), "FETCH took {took:?}");

    ok(&mut b, "STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut b, "EXPUNGE").await;
    let (line, took) = wait_for(&mut a, Duration::from_secs(5), |l| l.ends_with(" EXPUNGE")).await;
    assert_eq!(line, "* 2 EXPUNGE");
    assert!(took < Duration::from_secs(1), "EXPUNGE took {took:?}");

    a.send(b"DONE\r\n").await;
    let r = a.read_reply(&tag).await;
    assert!(r.ok(), "{r:?}");
    assert!(expunges(&r).is_empty(), "{r:?}");
    let r = ok(&mut a, "FETCH 1:* UID").await;
    assert_eq!(
        r.untagged,
        [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 3)",
            "* 3 FETCH (UID 4)"
        ]
    );
}

#[tokio::test]
async fn idle_reports_what_happened_before_it_started() {
    let (_server, mut a, mut b) = two_sessions(1).await;
    b.append("INBOX", "", &message("before", "x")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tag = a.tag();
    a.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    let (line, _) = wait_for(&mut a, Duration::from_secs(2), |l| l.ends_with(" EXISTS")).await;
    assert_eq!(line, "* 2 EXISTS");
    a.send(b"DONE\r\n").await;
    assert!(a.read_reply(&tag).await.ok());
}

#[tokio::test]
async fn idle_with_async_imap() {
    use async_imap::extensions::idle::IdleResponse;
    let server = TestServer::start().await;
    let mut a = server.session().await;
    a.select("INBOX").await.unwrap();
    let mut idle = a.idle();
    idle.init().await.unwrap();
    let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(5));
    let pusher = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut b = server.login().await;
        let r = b.append("INBOX", "", &message("pushed", "x")).await;
        assert!(r.ok(), "{r:?}");
        Instant::now()
    };
    let (result, appended_at) = tokio::join!(wait, pusher);
    let took = appended_at.elapsed();
    match result.unwrap() {
        IdleResponse::NewData(data) => {
            let text = format!("{:?}", data.parsed());
            assert!(text.contains("MailboxData(Exists(1))"), "{text}");
        }
        other => panic!("expected new data, got {other:?}"),
    }
    assert!(
        took < Duration::from_secs(1),
        "push took {took:?} after the append"
    );
    let mut a = idle.done().await.unwrap();
    let mb = a.select("INBOX").await.unwrap();
    assert_eq!(mb.exists, 1);
}

#[tokio::test]
async fn bad_input_during_idle_and_idle_outside_selected_state() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    // IDLE in the authenticated state is allowed (RFC 2177) and ends with DONE.
    let tag = raw.tag();
    raw.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(raw.line().await.starts_with('+'));
    raw.send(b"DONE\r\n").await;
    let r = raw.read_reply(&tag).await;
    assert!(r.ok(), "{r:?}");
    // Something other than DONE ends IDLE with BAD; the session goes on.
    ok(&mut raw, "SELECT INBOX").await;
    let tag = raw.tag();
    raw.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(raw.line().await.starts_with('+'));
    raw.send(b"NOOP\r\n").await;
    let r = raw.read_reply(&tag).await;
    assert!(r.bad(), "{r:?}");
    ok(&mut raw, "NOOP").await;
}

#[tokio::test]
async fn a_session_on_another_mailbox_is_not_disturbed() {
    let server = TestServer::start().await;
    let mut a = server.select("Sent").await;
    let mut b = server.login().await;
    b.append("INBOX", "", &message("x", "y")).await;
    let r = ok(&mut a, "NOOP").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    // …but STATUS from it sees the new mail.
    let r = ok(&mut a, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 1)"), "{r:?}");
}

#[tokio::test]
async fn shutdown_says_bye_to_every_session() {
    let mut server = TestServer::start().await;
    let mut selected = server.select("INBOX").await;
    let mut idling = server.select("INBOX").await;
    let tag = idling.tag();
    idling.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(idling.line().await.starts_with('+'));
    let mut fresh = server.raw().await;
    let start = Instant::now();
    server.stop().await;
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    for (name, raw) in [
        ("selected", &mut selected),
        ("idling", &mut idling),
        ("not logged in", &mut fresh),
    ] {
        let line = raw.maybe_line(Duration::from_secs(2)).await;
        assert!(
            line.as_deref().is_some_and(|l| l.starts_with("* BYE")),
            "{name}: {line:?}"
        );
        assert_eq!(raw.maybe_line(Duration::from_secs(2)).await, None, "{name}");
    }
}

#[tokio::test]
async fn deleting_the_mailbox_another_session_has_selected() {
    let server = TestServer::start().await;
    let mut setup = server.login().await;
    ok(&mut setup, "CREATE Doomed").await;
    setup.append("Doomed", "", &message("x", "y")).await;
    let mut a = server.select("Doomed").await;
    ok(&mut setup, "DELETE Doomed").await;
    // A learns of it: a BYE (as Dovecot does), or a NO for commands on the mailbox; it
    // never sees the message again through a stale view.
    let tag = a.tag();
    a.send(format!("{tag} FETCH 1 BODY.PEEK[]\r\n").as_bytes())
        .await;
    let mut lines = Vec::new();
    loop {
        match a.maybe_line(Duration::from_secs(5)).await {
            Some(l) if l.starts_with(&format!("{tag} ")) => {
                lines.push(l);
                break;
            }
            Some(l) if l.starts_with("* BYE") => {
                lines.push(l);
                break;
            }
            Some(l) => lines.push(l),
            None => break,
        }
    }
    assert!(
        !lines.iter().any(|l| l.contains("FETCH (BODY[]")),
        "a deleted mailbox's message was served: {lines:?}"
    );
}

/// A keyword the client has not been told of comes with new FLAGS and PERMANENTFLAGS
/// before the FETCH that shows it (RFC 3501 7.2.6), whoever set it.
#[tokio::test]
async fn a_new_keyword_is_announced_before_it_is_shown() {
    let (_server, mut a, mut b) = two_sessions(2).await;
    ok(&mut b, "STORE 1 +FLAGS ($Forwarded)").await;
    let noop = ok(&mut a, "NOOP").await;
    let flags_at = noop
        .untagged
        .iter()
        .position(|l| l.starts_with("* FLAGS") && l.contains("$Forwarded"));
    let fetch_at = noop
        .untagged
        .iter()
        .position(|l| l.contains("FETCH") && l.contains("$Forwarded"));
    assert!(
        matches!((flags_at, fetch_at), (Some(f), Some(x)) if f < x),
        "{noop:?}"
    );
    assert!(
        noop.has("PERMANENTFLAGS")
            && noop
                .find("PERMANENTFLAGS")
                .is_some_and(|l| l.contains("$Forwarded")),
        "{noop:?}"
    );
    // Its own STORE of another new keyword: the same, in the STORE's answer.
    let store = ok(&mut a, "STORE 2 +FLAGS (Work)").await;
    let flags_at = store
        .untagged
        .iter()
        .position(|l| l.starts_with("* FLAGS") && l.contains("Work"));
    let fetch_at = store
        .untagged
        .iter()
        .position(|l| l.contains("FETCH") && l.contains("Work"));
    assert!(
        matches!((flags_at, fetch_at), (Some(f), Some(x)) if f < x),
        "{store:?}"
    );
    // A known keyword is not announced again.
    let again = ok(&mut a, "STORE 1 +FLAGS (Work)").await;
    assert!(!again.has("* FLAGS"), "{again:?}");
}

/// A session that STOREs skips asking the store for changes only when its own change
/// was the mailbox's next one; a change another session slipped in before it must still
/// reach the client, at the STORE or at the next NOOP, exactly once.
#[tokio::test]
async fn another_sessions_store_between_ours_is_not_lost() {
    let (_server, mut a, mut b) = two_sessions(3).await;
    // Ours, alone: answered with our FETCH, nothing more to learn.
    let r = ok(&mut a, "STORE 1 +FLAGS (\\Seen)").await;
    assert_eq!(r.untagged, ["* 1 FETCH (FLAGS (\\Seen \\Recent))"], "{r:?}");
    // Theirs, then ours: ours is no longer the mailbox's next change.
    ok(&mut b, "STORE 2 +FLAGS.SILENT (\\Flagged)").await;
    let r = ok(&mut a, "STORE 3 +FLAGS (\\Answered)").await;
    let r2 = ok(&mut a, "NOOP").await;
    let lines: Vec<&String> = r.untagged.iter().chain(&r2.untagged).collect();
    assert!(
        lines.contains(&&"* 3 FETCH (FLAGS (\\Answered \\Recent))".to_owned()),
        "{lines:?}"
    );
    let theirs: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("* 2 FETCH (FLAGS (\\Flagged \\Recent)"))
        .collect();
    assert_eq!(theirs.len(), 1, "their change told once: {lines:?}");
    // And ours after theirs is current again: nothing left to tell.
    let r = ok(&mut a, "STORE 1 -FLAGS.SILENT (\\Seen)").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    let r = ok(&mut a, "NOOP").await;
    assert!(r.untagged.is_empty(), "{r:?}");
}
