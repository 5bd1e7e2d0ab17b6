//! Black-box tests of ESEARCH (RFC 4731) and SEARCHRES (RFC 5182): the commands of
//! `testdata/dovecot/extensions/esearch.script` replayed on pluto and compared with
//! Dovecot's answers to them (`esearch.golden`, recorded by `record.sh` there), and
//! the rules the script cannot show against Dovecot: the saved result after SELECT and
//! after an expunge, `$` in MOVE, the capabilities.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, extensions_setup, golden_dir};

#[tokio::test]
async fn answers_as_dovecot_does_to_the_esearch_script() {
    let server = TestServer::start().await;
    let mut raw = extensions_setup(&server).await;
    let script = std::fs::read_to_string(golden_dir().join("esearch.script")).unwrap();
    let golden = std::fs::read_to_string(golden_dir().join("esearch.golden")).unwrap();
    let ours = pluto_testkit::golden::replay_script(&mut raw, &script, <[String]>::to_vec).await;
    pluto_testkit::golden::assert_golden(&ours, &golden);
}

#[tokio::test]
async fn esearch_and_searchres_are_advertised() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let caps = format!(
        "{} ",
        raw.cmd("CAPABILITY").await.find("* CAPABILITY").unwrap()
    );
    assert!(caps.contains(" ESEARCH "), "{caps}");
    assert!(caps.contains(" SEARCHRES "), "{caps}");
}

#[tokio::test]
async fn the_saved_result_is_emptied_by_select_and_loses_expunged_messages() {
    let server = TestServer::start().await;
    let mut raw = extensions_setup(&server).await;
    assert!(raw.cmd("SEARCH RETURN (SAVE) FLAGGED").await.ok());
    // Expunging message 3 (UID 3) renumbers 5 as 4; $ follows.
    assert!(raw.cmd("STORE 3 +FLAGS.SILENT (\\Deleted)").await.ok());
    assert!(raw.cmd("EXPUNGE").await.ok());
    let r = raw.cmd("FETCH $ (UID)").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.untagged, ["* 2 FETCH (UID 2)", "* 4 FETCH (UID 5)"]);
    let r = raw.cmd("UID SEARCH RETURN (ALL) $").await;
    assert_eq!(
        r.untagged,
        [format!("* ESEARCH (TAG \"{}\") UID ALL 2,5", tag_of(&r))]
    );
    // RFC 5182 2.1: every SELECT starts with an empty result.
    assert!(raw.cmd("SELECT es").await.ok());
    let r = raw.cmd("FETCH $ (UID)").await;
    assert!(r.ok() && r.untagged.is_empty(), "{r:?}");
    // $ needs a selected mailbox.
    assert!(raw.cmd("UNSELECT").await.ok());
    assert!(raw.cmd("FETCH $ (UID)").await.bad());
    assert!(raw.cmd("SEARCH RETURN (SAVE) ALL").await.bad());
}

#[tokio::test]
async fn move_takes_the_saved_result() {
    let server = TestServer::start().await;
    let mut raw = extensions_setup(&server).await;
    assert!(raw.cmd("UID SEARCH RETURN (SAVE) SUBJECT m6").await.ok());
    let r = raw.cmd("MOVE $ Trash").await;
    assert!(r.ok(), "{r:?}");
    assert!(r.has("* 6 EXPUNGE"), "{r:?}");
    let r = raw.cmd("STATUS Trash (MESSAGES)").await;
    assert!(r.has("MESSAGES 1"), "{r:?}");
    // The moved message is gone from view: $ is empty now.
    let r = raw.cmd("UID FETCH $ (UID)").await;
    assert!(r.ok() && r.untagged.is_empty(), "{r:?}");
}

#[tokio::test]
async fn uid_expunge_takes_the_saved_result() {
    let server = TestServer::start().await;
    let mut raw = extensions_setup(&server).await;
    assert!(raw.cmd("SEARCH RETURN (SAVE) FLAGGED").await.ok());
    assert!(raw.cmd("STORE 1:* +FLAGS.SILENT (\\Deleted)").await.ok());
    // Only the saved messages (2, 3, 5) go, though all are \Deleted (UIDPLUS).
    let r = raw.cmd("UID EXPUNGE $").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* ").len(), 3, "{r:?}");
    assert!(r.untagged.iter().all(|l| l.ends_with(" EXPUNGE")), "{r:?}");
    let r = raw.cmd("UID SEARCH ALL").await;
    assert_eq!(r.search(), [1, 4, 6, 7]);
    let r = raw.cmd("UID EXPUNGE $").await;
    assert!(r.ok() && r.untagged.is_empty(), "{r:?}");
}

fn tag_of(r: &common::Reply) -> &str {
    r.tagged.split(' ').next().unwrap()
}
