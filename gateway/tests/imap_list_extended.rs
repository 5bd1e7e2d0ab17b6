//! Black-box tests of LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and the
//! SPECIAL-USE selection and return options (RFC 6154 3): the commands of
//! `testdata/dovecot/extensions/list.script` (RFC 5258 5's examples adapted, RFC
//! 5819's) replayed on pluto and compared with Dovecot's answers to them
//! (`list.golden`, recorded by `record.sh` there), and what the script cannot show
//! against Dovecot: STATUS SIZE, DELETED and HIGHESTMODSEQ in a LIST, CHILDINFO for
//! special-use descendants, the BADs where Dovecot is lenient, the bound on patterns,
//! a LIST-STATUS over a user at `limits.max_mailboxes`, the capabilities.
//!
//! Normalised on both sides, as `record.py` does, and only that: the untagged answers
//! of one command are sorted by mailbox, each LIST line with the STATUS line after it
//! (neither RFC fixes an order; Dovecot lists in directory order), and the values of
//! UIDVALIDITY and HIGHESTMODSEQ, which are each server's own, are replaced by `N`; of
//! the tagged answer only the status and a code's name are compared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, TestServer};
use pluto_testkit::golden;
use tokio::net::TcpStream;

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dovecot/extensions")
}

/// The setup `record.py` makes (after a new user's default mailboxes).
async fn setup(server: &TestServer) -> Client<TcpStream> {
    let mut raw = server.login().await;
    golden::list_setup(&mut raw).await;
    raw
}

#[tokio::test]
async fn answers_as_dovecot_does_to_the_list_script() {
    let server = TestServer::start().await;
    let mut raw = setup(&server).await;
    let script = std::fs::read_to_string(golden_dir().join("list.script")).unwrap();
    let golden = std::fs::read_to_string(golden_dir().join("list.golden")).unwrap();
    let ours = golden::replay_script(&mut raw, &script, golden::list_normalised).await;
    golden::assert_golden(&ours, &golden);
}

#[tokio::test]
async fn list_extended_and_list_status_are_advertised() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let caps = format!(
        "{} ",
        raw.cmd("CAPABILITY").await.find("* CAPABILITY").unwrap()
    );
    assert!(caps.contains(" LIST-EXTENDED "), "{caps}");
    assert!(caps.contains(" LIST-STATUS "), "{caps}");
}

#[tokio::test]
async fn list_status_answers_every_status_item_as_status_does() {
    let server = TestServer::start().await;
    let mut raw = setup(&server).await;
    let items =
        "MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED DELETED-STORAGE SIZE HIGHESTMODSEQ";
    for mailbox in ["INBOX", "Fruit/Banana", "Tofu"] {
        let status = raw.cmd(&format!("STATUS {mailbox} ({items})")).await;
        assert!(status.ok(), "{status:?}");
        let listed = raw
            .cmd(&format!("LIST \"\" {mailbox} RETURN (STATUS ({items}))"))
            .await;
        assert!(listed.ok(), "{listed:?}");
        assert_eq!(listed.untagged.len(), 2, "{listed:?}");
        assert!(listed.untagged[0].starts_with("* LIST "), "{listed:?}");
        assert_eq!(listed.untagged[1], status.untagged[0]);
    }
    // The values are the mailbox's: Fruit/Banana holds one \Deleted message.
    let r = raw
        .cmd("LIST \"\" Fruit/Banana RETURN (STATUS (MESSAGES DELETED SIZE))")
        .await;
    let size = "Subject: b\r\n\r\nbanana\r\n".len();
    assert!(
        r.has(&format!("(MESSAGES 1 DELETED 1 SIZE {size})")),
        "{r:?}"
    );
}

#[tokio::test]
async fn recursivematch_tells_of_special_use_descendants() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE Projects").await.ok());
    let r = raw.cmd("CREATE Projects/Starred (USE (\\Flagged))").await;
    assert!(r.ok(), "{r:?}");
    let r = raw
        .cmd("LIST (SPECIAL-USE RECURSIVEMATCH) \"\" \"%\"")
        .await;
    assert!(r.ok(), "{r:?}");
    assert!(
        r.has("* LIST () \"/\" Projects (CHILDINFO (\"SPECIAL-USE\"))"),
        "{r:?}"
    );
    assert!(r.has("* LIST (\\Archive) \"/\" Archive"), "{r:?}");
    assert!(!r.has("Projects/Starred"), "{r:?}");
    // Its descendant matches "*", so the parent is not listed for it (RFC 5258 3.5).
    let r = raw
        .cmd("LIST (SPECIAL-USE RECURSIVEMATCH) \"\" \"*\"")
        .await;
    assert!(r.has("* LIST (\\Flagged) \"/\" Projects/Starred"), "{r:?}");
    assert!(!r.has("\"/\" Projects "), "{r:?}");
    assert!(!r.has("\"/\" Projects\r"), "{r:?}");
    assert_eq!(r.lines("* LIST ").len(), 6, "{r:?}");
}

#[tokio::test]
async fn what_the_grammar_refuses_is_a_bad_even_where_dovecot_is_lenient() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    // Before login an extended LIST is refused like a basic one.
    let r = raw.cmd("LIST () \"\" \"*\"").await;
    assert!(r.bad(), "{r:?}");
    let mut raw = server.login().await;
    // RFC 5258 6: `patterns` holds at least one pattern (Dovecot answers OK).
    let r = raw.cmd("LIST \"\" ()").await;
    assert!(r.bad(), "{r:?}");
    // LSUB has no extended syntax.
    let r = raw.cmd("LSUB () \"\" \"*\"").await;
    assert!(r.bad(), "{r:?}");
    // The bound on one command's patterns: each is matched against every mailbox.
    let patterns = |n: usize| vec!["INBOX"; n].join(" ");
    let r = raw.cmd(&format!("LIST \"\" ({})", patterns(64))).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* LIST ").len(), 1, "listed once: {r:?}");
    let r = raw.cmd(&format!("LIST \"\" ({})", patterns(65))).await;
    assert!(r.bad() && r.tagged.contains("64"), "{r:?}");
    // A reason is given for what is refused.
    let r = raw.cmd("LIST (FOO) \"\" \"*\"").await;
    assert!(r.bad() && r.tagged.contains("FOO"), "{r:?}");
    let r = raw.cmd("LIST \"\" \"*\" RETURN (STATUS (FOO))").await;
    assert!(r.bad() && r.tagged.contains("STATUS"), "{r:?}");
    // The session goes on, and the basic LIST still answers as before.
    let r = raw.cmd("LIST \"\" \"\"").await;
    assert_eq!(r.untagged, ["* LIST (\\Noselect) \"/\" \"\""]);
}

/// LIST-STATUS over every mailbox of a user at `limits.max_mailboxes`: one STATUS
/// after each LIST line, each with that mailbox's own values. The server computes and
/// sends them one mailbox at a time (`cmd_list_extended`), so what it holds is the
/// mailbox list (which LIST holds anyway) and one mailbox's status.
#[tokio::test]
async fn list_status_covers_a_user_at_the_mailbox_limit() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let limit = pluto_gateway::Config::default().limits.max_mailboxes;
    let existing = raw.cmd("LIST \"\" \"*\"").await.lines("* LIST ").len();
    // Pipelined, so that the set-up takes seconds: one more than the limit allows.
    let creates: String = (existing..=limit)
        .map(|i| format!("c{i} CREATE Box{i:04}\r\n"))
        .collect();
    raw.send(creates.as_bytes()).await;
    for i in existing..limit {
        let r = raw.read_reply(&format!("c{i}")).await;
        assert!(r.ok(), "{r:?}");
    }
    let r = raw.read_reply(&format!("c{limit}")).await;
    assert_eq!(r.code().as_deref(), Some("LIMIT"), "{r:?}");
    for i in [existing, limit / 2, limit - 1] {
        let r = raw
            .append(
                &format!("Box{i:04}"),
                "",
                format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes(),
            )
            .await;
        assert!(r.ok(), "{r:?}");
    }
    let r = raw
        .cmd("LIST \"\" \"*\" RETURN (STATUS (MESSAGES UIDNEXT SIZE))")
        .await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* LIST ").len(), limit, "{}", r.untagged.len());
    assert_eq!(r.lines("* STATUS ").len(), limit);
    for pair in r.untagged.chunks(2) {
        let name = pair[0].rsplit("\"/\" ").next().unwrap();
        assert!(
            pair[1].starts_with(&format!("* STATUS {name} (")),
            "{pair:?}"
        );
        let holds_one = [existing, limit / 2, limit - 1]
            .iter()
            .any(|i| name == format!("Box{i:04}"));
        if name.starts_with("Box") {
            let messages = if holds_one { 1 } else { 0 };
            assert!(
                pair[1].contains(&format!("(MESSAGES {messages} UIDNEXT {} ", messages + 1)),
                "{pair:?}"
            );
        }
    }
}
