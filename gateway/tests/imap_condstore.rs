//! Black-box tests of CONDSTORE (RFC 7162 3.1) against `pluto serve` (Maildir): the
//! RFC's examples adapted to a fresh mailbox (whose modseqs are read, not assumed):
//! HIGHESTMODSEQ in SELECT and STATUS, the MODSEQ FETCH item, CHANGEDSINCE,
//! UNCHANGEDSINCE with `[MODIFIED …]` (0 included), SEARCH MODSEQ with its `(MODSEQ n)`,
//! ENABLE and the implicit enabling, and modseqs kept per mailbox.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Reply, TestServer, fetches, message, number_after, ok};
use tokio::net::TcpStream;

/// The HIGHESTMODSEQ an answer announced (untagged or tagged).
fn highest(r: &Reply) -> u64 {
    r.untagged
        .iter()
        .chain([&r.tagged])
        .find_map(|l| number_after(l, "[HIGHESTMODSEQ"))
        .unwrap_or_else(|| panic!("no HIGHESTMODSEQ in {r:?}"))
}

/// `(sequence number, MODSEQ)` of each untagged FETCH, in order.
fn modseqs(r: &Reply) -> Vec<(u32, u64)> {
    r.lines("* ")
        .into_iter()
        .filter(|l| l.contains(" FETCH ("))
        .map(|l| {
            let seq = l[2..].split(' ').next().unwrap().parse().unwrap();
            (
                seq,
                number_after(l, "MODSEQ").unwrap_or_else(|| panic!("{l}")),
            )
        })
        .collect()
}

/// A logged-in client with `count` messages in INBOX, INBOX selected.
async fn inbox_with(server: &TestServer, count: usize) -> Client<TcpStream> {
    let mut raw = server.login().await;
    for i in 0..count {
        let r = raw
            .append("INBOX", "", &message(&format!("m{i}"), "x"))
            .await;
        assert!(r.ok(), "{r:?}");
    }
    ok(&mut raw, "SELECT INBOX").await;
    raw
}

#[tokio::test]
async fn condstore_and_qresync_are_advertised() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = ok(&mut raw, "CAPABILITY").await;
    let caps = r.find("* CAPABILITY").unwrap();
    assert!(
        caps.contains(" CONDSTORE") && caps.contains(" QRESYNC"),
        "{caps}"
    );
}

#[tokio::test]
async fn select_and_status_tell_one_highestmodseq_that_grows_with_each_change() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let first = highest(&ok(&mut raw, "SELECT INBOX").await);
    assert!(first >= 1);
    let status = ok(&mut raw, "STATUS INBOX (HIGHESTMODSEQ MESSAGES)").await;
    let line = status.find("* STATUS").unwrap();
    assert_eq!(number_after(line, "HIGHESTMODSEQ"), Some(first), "{line}");
    assert!(raw.append("INBOX", "", &message("a", "b")).await.ok());
    let examine = ok(&mut raw, "EXAMINE INBOX").await;
    let second = highest(&examine);
    assert!(second > first, "{first} then {second}");
    assert!(!examine.has("NOMODSEQ"), "{examine:?}");
    // Every mailbox counts its own modseqs: a change in Sent leaves INBOX's alone.
    assert!(raw.append("Sent", "", &message("s", "t")).await.ok());
    let status = ok(&mut raw, "STATUS INBOX (HIGHESTMODSEQ)").await;
    assert_eq!(
        number_after(status.find("* STATUS").unwrap(), "HIGHESTMODSEQ"),
        Some(second)
    );
}

#[tokio::test]
async fn fetch_modseq_and_changedsince_find_exactly_what_changed() {
    let server = TestServer::start().await;
    let mut raw = inbox_with(&server, 4).await;
    let all = ok(&mut raw, "FETCH 1:* (MODSEQ)").await;
    // The first CONDSTORE enabling command in the selected state is told the
    // mailbox's HIGHESTMODSEQ first (as Dovecot does).
    let announced = highest(&all);
    let before = modseqs(&all);
    assert!(before.iter().all(|(_, m)| *m <= announced), "{all:?}");
    assert_eq!(before.len(), 4, "{all:?}");
    let top = before.iter().map(|(_, m)| *m).max().unwrap();
    // FETCH MODSEQ enabled CONDSTORE: a STORE's FETCH now carries the new MODSEQ.
    let stored = ok(&mut raw, "STORE 2 +FLAGS (\\Flagged)").await;
    let after = modseqs(&stored);
    assert_eq!(after.len(), 1, "{stored:?}");
    assert_eq!(after[0].0, 2);
    assert!(after[0].1 > top, "{stored:?}");
    assert!(
        fetches(&stored)[0].contains("FLAGS (\\Flagged"),
        "{stored:?}"
    );
    // RFC 7162 3.1.4.1: only the messages changed since, with MODSEQ added.
    let changed = ok(&mut raw, &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {top})")).await;
    assert_eq!(modseqs(&changed), after, "{changed:?}");
    let uid = ok(
        &mut raw,
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {top})"),
    )
    .await;
    let lines = fetches(&uid);
    assert_eq!(lines.len(), 1, "{uid:?}");
    assert!(lines[0].starts_with("* 2 FETCH (UID 2 "), "{uid:?}");
    let none = ok(
        &mut raw,
        &format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {})", after[0].1),
    )
    .await;
    assert!(fetches(&none).is_empty(), "{none:?}");
}

#[tokio::test]
async fn unchangedsince_stores_only_the_unchanged_and_names_the_others() {
    let server = TestServer::start().await;
    let mut raw = inbox_with(&server, 5).await;
    let start = modseqs(&ok(&mut raw, "FETCH 1:* (MODSEQ)").await);
    let base = start.iter().map(|(_, m)| *m).max().unwrap();
    // Another client changes messages 2 and 4 after `base` (RFC 7162 3.1.3's example).
    let mut other = server.login().await;
    ok(&mut other, "SELECT INBOX").await;
    ok(&mut other, "STORE 2,4 +FLAGS (\\Seen)").await;
    let r = ok(
        &mut raw,
        &format!("STORE 1:5 (UNCHANGEDSINCE {base}) +FLAGS.SILENT (\\Deleted)"),
    )
    .await;
    assert!(r.tagged.contains("[MODIFIED 2,4]"), "{r:?}");
    // .SILENT still tells a CONDSTORE client each changed message's new MODSEQ, and
    // nothing of those that failed the test.
    let changed: Vec<u32> = modseqs(&r)
        .into_iter()
        .filter(|(_, m)| *m > base)
        .map(|(s, _)| s)
        .collect();
    assert!(
        changed.contains(&1) && changed.contains(&3) && changed.contains(&5),
        "{r:?}"
    );
    for line in fetches(&r) {
        if line.starts_with("* 1 ") || line.starts_with("* 3 ") || line.starts_with("* 5 ") {
            assert!(!line.contains("FLAGS"), "{line}");
        }
    }
    let flags = ok(&mut raw, "FETCH 1:5 (FLAGS)").await;
    for (seq, deleted) in [(1, true), (2, false), (3, true), (4, false), (5, true)] {
        let line = flags.find(&format!("* {seq} FETCH")).unwrap();
        assert_eq!(line.contains("\\Deleted"), deleted, "{line}");
    }
    // UNCHANGEDSINCE 0 fails for every message and changes none; UID STORE names UIDs.
    let r = ok(
        &mut raw,
        "UID STORE 1:5 (UNCHANGEDSINCE 0) -FLAGS (\\Deleted)",
    )
    .await;
    assert!(r.tagged.contains("[MODIFIED 1:5]"), "{r:?}");
    assert!(fetches(&r).is_empty(), "{r:?}");
    let flags = ok(&mut raw, "FETCH 1 (FLAGS)").await;
    assert!(flags.has("\\Deleted"), "{flags:?}");
    // A store whose messages all pass answers a plain OK.
    let now = modseqs(&ok(&mut raw, "FETCH 1:* (MODSEQ)").await);
    let top = now.iter().map(|(_, m)| *m).max().unwrap();
    let r = ok(
        &mut raw,
        &format!("STORE 2 (UNCHANGEDSINCE {top}) +FLAGS (\\Answered)"),
    )
    .await;
    assert!(!r.tagged.contains("MODIFIED"), "{r:?}");
    assert!(fetches(&r)[0].contains("\\Answered") && fetches(&r)[0].contains("MODSEQ ("));
    let twice = raw
        .cmd("STORE 2 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) +FLAGS (\\Seen)")
        .await;
    assert!(twice.bad(), "{twice:?}");
}

#[tokio::test]
async fn search_modseq_matches_at_or_above_and_ends_with_the_highest() {
    let server = TestServer::start().await;
    let mut raw = inbox_with(&server, 4).await;
    let start = modseqs(&ok(&mut raw, "FETCH 1:* (MODSEQ)").await);
    let base = start.iter().map(|(_, m)| *m).max().unwrap();
    let stored = ok(&mut raw, "STORE 1,3 +FLAGS (\\Draft)").await;
    let new = modseqs(&stored)[0].1;
    let r = ok(&mut raw, &format!("SEARCH MODSEQ {}", base + 1)).await;
    assert_eq!(
        r.find("* SEARCH").unwrap(),
        &format!("* SEARCH 1 3 (MODSEQ {new})")
    );
    // The entry name and type are accepted and (one modseq per message) ignored.
    let r = ok(
        &mut raw,
        &format!(
            "UID SEARCH MODSEQ \"/flags/\\\\draft\" all {} NOT DELETED",
            base + 1
        ),
    )
    .await;
    assert_eq!(
        r.find("* SEARCH").unwrap(),
        &format!("* SEARCH 1 3 (MODSEQ {new})")
    );
    let r = ok(&mut raw, &format!("SEARCH MODSEQ {}", new + 1)).await;
    assert_eq!(r.find("* SEARCH").unwrap(), "* SEARCH");
    // No MODSEQ key, no (MODSEQ …).
    let r = ok(&mut raw, "SEARCH ALL").await;
    assert_eq!(r.find("* SEARCH").unwrap(), "* SEARCH 1 2 3 4");
}

#[tokio::test]
async fn enable_and_select_condstore_switch_modseqs_on_for_the_session() {
    let server = TestServer::start().await;
    let mut raw = inbox_with(&server, 2).await;
    // Not enabled yet: a STORE's FETCH is RFC 3501's.
    let r = ok(&mut raw, "STORE 1 +FLAGS (\\Seen)").await;
    let got = fetches(&r);
    // (FLAGS may show \\Recent: this session selected the mailbox first.)
    assert!(
        got.len() == 1 && got[0].starts_with("* 1 FETCH (FLAGS (\\Seen"),
        "{r:?}"
    );
    assert!(!got[0].contains("MODSEQ"), "{r:?}");
    let r = ok(&mut raw, "ENABLE CONDSTORE").await;
    assert!(r.has("* ENABLED CONDSTORE"), "{r:?}");
    // Enabled in the selected state: the mailbox's HIGHESTMODSEQ follows.
    highest(&r);
    // Named again, it is listed again (as Dovecot 2.3 does), with no HIGHESTMODSEQ.
    let again = ok(&mut raw, "ENABLE CONDSTORE").await;
    assert_eq!(
        again.lines("* ENABLED"),
        ["* ENABLED CONDSTORE"],
        "{again:?}"
    );
    assert!(!again.has("HIGHESTMODSEQ"), "{again:?}");
    let r = ok(&mut raw, "STORE 2 +FLAGS (\\Seen)").await;
    assert!(fetches(&r)[0].contains("MODSEQ ("), "{r:?}");
    // A change made elsewhere reaches this session with its MODSEQ.
    let mut other = server.login().await;
    ok(&mut other, "SELECT INBOX").await;
    ok(&mut other, "STORE 1 +FLAGS (\\Flagged)").await;
    let noop = ok(&mut raw, "NOOP").await;
    assert!(fetches(&noop)[0].contains("MODSEQ ("), "{noop:?}");
    // EXPUNGE's OK tells HIGHESTMODSEQ only with QRESYNC (as Dovecot's).
    ok(&mut raw, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let expunge = ok(&mut raw, "EXPUNGE").await;
    assert!(!expunge.tagged.contains("HIGHESTMODSEQ"), "{expunge:?}");

    // SELECT (CONDSTORE) is an enabling command too.
    let mut fresh = server.login().await;
    let r = ok(&mut fresh, "SELECT INBOX (CONDSTORE)").await;
    highest(&r);
    let r = ok(&mut fresh, "STORE 1 -FLAGS (\\Seen)").await;
    assert!(fetches(&r)[0].contains("MODSEQ ("), "{r:?}");
}

/// imaptest's `esearch-condstore`: an ESEARCH answer to a MODSEQ search (with an entry
/// name) ends with the highest modseq of the messages it returns — of MIN or MAX alone
/// when only those are asked for (RFC 7162 3.1.5), and none when nothing matched.
#[tokio::test]
async fn an_esearch_of_modseqs_tells_the_highest_of_what_it_returns() {
    let server = TestServer::start().await;
    let mut raw = inbox_with(&server, 4).await;
    // A CONDSTORE-enabling command, as imaptest enables it.
    ok(&mut raw, "FETCH 1 MODSEQ").await;
    let mut m = [0u64; 5];
    for seq in [1, 3, 2, 4] {
        let r = ok(&mut raw, &format!("STORE {seq} +FLAGS \\Seen")).await;
        m[seq] = modseqs(&r)[0].1;
    }
    let esearch = |r: &Reply| r.find("* ESEARCH").unwrap().to_owned();
    let with = |t: &str, tail: String| format!("* ESEARCH (TAG \"{t}\"){tail}");
    let key = "MODSEQ \"/flags/\\\\seen\" all";
    let cases = [
        (
            "e1",
            format!("RETURN (MIN) 1:3 {key} 1"),
            format!(" MIN 1 MODSEQ {}", m[1]),
        ),
        (
            "e2",
            format!("RETURN (MAX) 1:3 {key} 1"),
            format!(" MAX 3 MODSEQ {}", m[3]),
        ),
        (
            "e3",
            format!("RETURN () 1:3 {key} 1"),
            format!(" ALL 1:3 MODSEQ {}", m[2]),
        ),
        (
            "e4",
            format!("RETURN (MIN MAX) 2:3 {key} 1"),
            format!(" MIN 2 MAX 3 MODSEQ {}", m[2]),
        ),
        (
            "e5",
            format!("RETURN (ALL) 2:3 {key} {}", m[2]),
            format!(" ALL 2 MODSEQ {}", m[2]),
        ),
        (
            "e6",
            format!("RETURN (ALL) 2:3 {key} {}", m[4]),
            String::new(),
        ),
    ];
    for (tag, args, tail) in cases {
        raw.send(format!("{tag} SEARCH {args}\r\n").as_bytes())
            .await;
        let r = raw.read_reply(tag).await;
        assert!(r.ok(), "{args}: {r:?}");
        assert_eq!(esearch(&r), with(tag, tail), "{args}");
    }
}
