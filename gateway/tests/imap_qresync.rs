//! Black-box tests of QRESYNC (RFC 7162 3.2) against `pluto serve` (Maildir): ENABLE,
//! SELECT (QRESYNC …) answering `VANISHED (EARLIER)` and the changed messages, UID FETCH
//! (CHANGEDSINCE … VANISHED), `VANISHED` instead of `EXPUNGE` once enabled, the
//! full-resync path when the store's expunge history does not reach back far enough,
//! and what a client's sets may cost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Reply, TestServer, fetches, message, number_after, ok};
use tokio::net::TcpStream;

fn code(r: &Reply, name: &str) -> u64 {
    r.untagged
        .iter()
        .find_map(|l| number_after(l, &format!("[{name}")))
        .unwrap_or_else(|| panic!("no {name} in {r:?}"))
}

/// INBOX with `count` messages (UIDs 1..=count), selected by a QRESYNC client; returns
/// the client, the UIDVALIDITY and the HIGHESTMODSEQ it was told.
async fn synced(server: &TestServer, count: usize) -> (Client<TcpStream>, u64, u64) {
    let mut raw = server.login().await;
    for i in 0..count {
        assert!(
            raw.append("INBOX", "", &message(&format!("m{i}"), "x"))
                .await
                .ok()
        );
    }
    let r = ok(&mut raw, "ENABLE QRESYNC").await;
    assert!(r.has("* ENABLED QRESYNC"), "{r:?}");
    let r = ok(&mut raw, "SELECT INBOX").await;
    (raw, code(&r, "UIDVALIDITY"), code(&r, "HIGHESTMODSEQ"))
}

/// Changes made by another client while the first is away: 2 flagged, 3 expunged,
/// one message appended (UID count + 1).
async fn change_elsewhere(server: &TestServer) {
    let mut other = server.login().await;
    ok(&mut other, "SELECT INBOX").await;
    ok(&mut other, "UID STORE 2 +FLAGS (\\Flagged)").await;
    ok(&mut other, "UID STORE 3 +FLAGS (\\Deleted)").await;
    ok(&mut other, "EXPUNGE").await;
    assert!(other.append("INBOX", "", &message("new", "y")).await.ok());
    ok(&mut other, "LOGOUT").await;
}

/// A QRESYNC client of 5 messages that left INBOX while [`change_elsewhere`] ran.
async fn away_while_changed(server: &TestServer) -> (Client<TcpStream>, u64, u64) {
    let (mut raw, validity, modseq) = synced(server, 5).await;
    ok(&mut raw, "UNSELECT").await;
    change_elsewhere(server).await;
    (raw, validity, modseq)
}

/// `SELECT INBOX (QRESYNC (args))`, which must succeed.
async fn resync(raw: &mut Client<TcpStream>, args: &str) -> Reply {
    ok(raw, &format!("SELECT INBOX (QRESYNC ({args}))")).await
}

#[tokio::test]
async fn select_qresync_needs_qresync_enabled() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.cmd("SELECT INBOX (QRESYNC (1 1))").await;
    assert!(r.bad(), "{r:?}");
    let r = ok(&mut raw, "ENABLE QRESYNC").await;
    assert_eq!(r.lines("* ENABLED"), ["* ENABLED QRESYNC"]);
    // QRESYNC implies CONDSTORE; named, it is listed (as Dovecot 2.3 does).
    let r = ok(&mut raw, "ENABLE CONDSTORE").await;
    assert_eq!(r.lines("* ENABLED"), ["* ENABLED CONDSTORE"]);
}

#[tokio::test]
async fn a_qresync_select_tells_exactly_what_changed_since() {
    let server = TestServer::start().await;
    let (mut raw, validity, modseq) = away_while_changed(&server).await;
    let r = resync(&mut raw, &format!("{validity} {modseq}")).await;
    assert!(r.has("* 5 EXISTS"), "{r:?}");
    let vanished = r.lines("* VANISHED");
    assert_eq!(vanished, ["* VANISHED (EARLIER) 3"], "{r:?}");
    let got = fetches(&r);
    assert_eq!(got.len(), 2, "{r:?}");
    assert!(
        got[0].starts_with("* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ("),
        "{r:?}"
    );
    assert!(
        got[1].starts_with("* 5 FETCH (UID 6 FLAGS (") && got[1].contains(" MODSEQ ("),
        "{r:?}"
    );
    // VANISHED comes before the FETCHes (RFC 7162 3.2.5.1's example).
    let at = |p: &str| r.untagged.iter().position(|l| l.starts_with(p)).unwrap();
    assert!(at("* VANISHED") < at("* 2 FETCH"));
    // Resynced again from the new HIGHESTMODSEQ: nothing to tell.
    let now = code(&r, "HIGHESTMODSEQ");
    let r = resync(&mut raw, &format!("{validity} {now}")).await;
    assert!(r.has("* OK [CLOSED]"), "{r:?}");
    assert!(
        r.lines("* VANISHED").is_empty() && fetches(&r).is_empty(),
        "{r:?}"
    );
}

#[tokio::test]
async fn known_uids_bound_the_answer_and_a_wide_range_costs_nothing() {
    let server = TestServer::start().await;
    let (mut raw, validity, modseq) = away_while_changed(&server).await;
    // Known UIDs 1:2: the expunge of 3 is not theirs to hear of; 2's flags are.
    let r = resync(&mut raw, &format!("{validity} {modseq} 1:2")).await;
    assert!(r.lines("* VANISHED").is_empty(), "{r:?}");
    assert_eq!(fetches(&r).len(), 1, "{r:?}");
    // The whole UID space, with a sequence match: answered at once.
    let started = std::time::Instant::now();
    let r = resync(
        &mut raw,
        &format!("{validity} {modseq} 1:4294967295 (1:5 1:5)"),
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED (EARLIER) 3"], "{r:?}");
    // Unequal sequence-match sets, or `*`, are refused.
    let r = raw
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({validity} {modseq} 1:5 (1:3 1:2)))"
        ))
        .await;
    assert!(r.bad(), "{r:?}");
    let r = raw
        .cmd(&format!("SELECT INBOX (QRESYNC ({validity} {modseq} 1:*))"))
        .await;
    assert!(r.bad(), "{r:?}");
    // A known-uids set longer than a command line may be is refused, and the session
    // goes on.
    let long: Vec<String> = (1..20_000u32).map(|u| (u * 2).to_string()).collect();
    let r = raw
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({validity} {modseq} {}))",
            long.join(",")
        ))
        .await;
    assert!(r.bad(), "{:?}", r.tagged);
    ok(&mut raw, "NOOP").await;
}

#[tokio::test]
async fn another_uidvalidity_makes_a_plain_select() {
    let server = TestServer::start().await;
    let (mut raw, validity, modseq) = synced(&server, 3).await;
    change_elsewhere(&server).await;
    let r = resync(&mut raw, &format!("{} {modseq}", validity + 1)).await;
    assert!(
        r.lines("* VANISHED").is_empty() && fetches(&r).is_empty(),
        "{r:?}"
    );
    assert!(r.has("[HIGHESTMODSEQ "), "{r:?}");
}

#[tokio::test]
async fn too_old_a_modseq_gets_the_full_resync_never_a_wrong_delta() {
    let server = TestServer::start().await;
    let (mut raw, validity, _) = away_while_changed(&server).await;
    // Modseq 1 is older than any history the store keeps (a Maildir index starts its
    // modseqs at the time it was made): every message is sent, and VANISHED names every
    // known UID below UIDNEXT that has no message (7:10 were never given out).
    let r = resync(&mut raw, &format!("{validity} 1 1:10")).await;
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED (EARLIER) 3"], "{r:?}");
    let uids: Vec<u64> = fetches(&r)
        .iter()
        .map(|l| number_after(l, "UID").unwrap())
        .collect();
    assert_eq!(uids, [1, 2, 4, 5, 6], "{r:?}");
    // The same through UID FETCH (CHANGEDSINCE 1 VANISHED).
    let r = ok(&mut raw, "UID FETCH 1:10 (FLAGS) (CHANGEDSINCE 1 VANISHED)").await;
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED (EARLIER) 3"], "{r:?}");
    assert_eq!(fetches(&r).len(), 5, "{r:?}");
}

#[tokio::test]
async fn uid_fetch_vanished_reports_expunges_since_and_needs_its_conditions() {
    let server = TestServer::start().await;
    let (mut raw, _, modseq) = synced(&server, 5).await;
    let mut other = server.login().await;
    ok(&mut other, "SELECT INBOX").await;
    ok(&mut other, "UID STORE 3:4 +FLAGS (\\Deleted)").await;
    ok(&mut other, "EXPUNGE").await;
    ok(&mut other, "UID STORE 1 +FLAGS (\\Seen)").await;
    // The expunges are not yet told to this session: they are not EARLIER ones, and
    // come as a VANISHED after the command.
    let r = ok(
        &mut raw,
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"),
    )
    .await;
    assert!(!r.has("VANISHED (EARLIER)"), "{r:?}");
    assert!(r.has("* VANISHED 3:4"), "{r:?}");
    assert!(
        fetches(&r)[0].starts_with("* 1 FETCH (UID 1 FLAGS (\\Seen")
            && fetches(&r)[0].contains(" MODSEQ ("),
        "{r:?}"
    );
    // From a fresh session, they are EARLIER ones.
    let mut late = server.login().await;
    ok(&mut late, "ENABLE QRESYNC").await;
    ok(&mut late, "SELECT INBOX").await;
    let r = ok(
        &mut late,
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"),
    )
    .await;
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED (EARLIER) 3:4"], "{r:?}");
    assert_eq!(fetches(&r).len(), 1, "{r:?}");
    for bad in [
        format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"),
        "UID FETCH 1:* (FLAGS) (VANISHED)".to_owned(),
    ] {
        let r = late.cmd(&bad).await;
        assert!(r.bad(), "{bad}: {r:?}");
    }
    let mut plain = server.login().await;
    ok(&mut plain, "SELECT INBOX").await;
    let r = plain
        .cmd(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    assert!(r.bad(), "{r:?}");
}

#[tokio::test]
async fn once_enabled_expunges_are_vanished_uids() {
    let server = TestServer::start().await;
    let (mut raw, _, _) = synced(&server, 6).await;
    ok(&mut raw, "STORE 1:2 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut raw, "EXPUNGE").await;
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED 1:2"], "{r:?}");
    assert!(
        r.lines("* ").iter().all(|l| !l.ends_with(" EXPUNGE")),
        "{r:?}"
    );
    assert!(r.tagged.contains("[HIGHESTMODSEQ "), "{r:?}");
    // UID EXPUNGE, MOVE, and another session's expunge seen by NOOP.
    ok(&mut raw, "UID STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut raw, "UID EXPUNGE 3").await;
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED 3"], "{r:?}");
    let r = ok(&mut raw, "UID MOVE 4 Trash").await;
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED 4"], "{r:?}");
    let mut other = server.login().await;
    ok(&mut other, "SELECT INBOX").await;
    ok(&mut other, "UID STORE 6 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut other, "EXPUNGE").await;
    let r = ok(&mut raw, "NOOP").await;
    assert_eq!(r.lines("* VANISHED"), ["* VANISHED 6"], "{r:?}");
    // A flag change elsewhere reaches a QRESYNC client with UID and MODSEQ.
    ok(&mut other, "UID STORE 5 +FLAGS.SILENT (\\Seen)").await;
    let r = ok(&mut raw, "NOOP").await;
    assert!(
        fetches(&r)[0].starts_with("* 1 FETCH (UID 5 FLAGS (\\Seen")
            && fetches(&r)[0].contains(" MODSEQ ("),
        "{r:?}"
    );
}
