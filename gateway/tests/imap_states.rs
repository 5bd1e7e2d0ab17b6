//! Black-box tests of the session's state machine (RFC 3501 3): which commands each
//! state allows and what the others get, and the transitions — LOGIN, SELECT and
//! EXAMINE (a failed one leaves no mailbox selected, RFC 3501 6.3.1), CLOSE, UNSELECT,
//! a DELETE of the selected mailbox, LOGOUT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, Reply, TestServer, message};
use tokio::net::TcpStream;

async fn ok(raw: &mut Client<TcpStream>, cmd: &str) -> Reply {
    let r = raw.cmd(cmd).await;
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

/// Asserts that `cmd` is refused BAD with `reason` in the tagged line.
async fn bad(raw: &mut Client<TcpStream>, cmd: &str, reason: &str) {
    let r = raw.cmd(cmd).await;
    assert!(r.bad(), "{cmd}: {r:?}");
    assert!(r.tagged.contains(reason), "{cmd}: {r:?}");
}

/// Asserts that no mailbox is selected: a selected-state command is refused.
async fn nothing_selected(raw: &mut Client<TcpStream>) {
    bad(
        raw,
        "UID FETCH 1:* FLAGS",
        "FETCH needs a selected mailbox (SELECT first)",
    )
    .await;
}

#[tokio::test]
async fn each_state_refuses_the_commands_it_does_not_allow() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    for cmd in ["SELECT INBOX", "LIST \"\" *", "FETCH 1 FLAGS", "CLOSE"] {
        let name = cmd.split(' ').next().unwrap();
        bad(
            &mut raw,
            cmd,
            &format!("{name} is not allowed before logging in"),
        )
        .await;
    }
    // Valid in any state.
    ok(&mut raw, "NOOP").await;
    ok(&mut raw, "CAPABILITY").await;

    let mut raw = server.login().await;
    for cmd in ["FETCH 1 FLAGS", "CLOSE", "UNSELECT", "EXPUNGE", "CHECK"] {
        let name = cmd.split(' ').next().unwrap();
        bad(
            &mut raw,
            cmd,
            &format!("{name} needs a selected mailbox (SELECT first)"),
        )
        .await;
    }
    bad(&mut raw, "LOGIN alice secret", "Already logged in").await;
    ok(&mut raw, "NOOP").await;
}

#[tokio::test]
async fn a_failed_select_leaves_no_mailbox_selected() {
    let server = TestServer::start().await;
    let mut raw = server.select("INBOX").await;
    let r = raw.cmd("SELECT Nonexistent").await;
    assert!(r.no(), "{r:?}");
    assert!(r.has("[CLOSED]"), "the previous mailbox was closed: {r:?}");
    nothing_selected(&mut raw).await;
    // Nothing selected before: no CLOSED.
    let r = raw.cmd("EXAMINE Nonexistent").await;
    assert!(r.no(), "{r:?}");
    assert!(!r.has("[CLOSED]"), "{r:?}");
    nothing_selected(&mut raw).await;
}

#[tokio::test]
async fn selecting_another_mailbox_replaces_the_selected_one() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.append("INBOX", "", &message("one", "x")).await.ok());
    ok(&mut raw, "CREATE Empty").await;
    let r = ok(&mut raw, "SELECT INBOX").await;
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    assert!(!r.has("[CLOSED]"), "{r:?}");
    let r = ok(&mut raw, "EXAMINE Empty").await;
    assert!(r.has("[CLOSED]"), "{r:?}");
    assert!(r.has("* 0 EXISTS"), "{r:?}");
    assert!(r.tagged.contains("[READ-ONLY]"), "{r:?}");
    let r = ok(&mut raw, "UID FETCH 1:* FLAGS").await;
    assert!(r.untagged.is_empty(), "Empty is selected now: {r:?}");
}

#[tokio::test]
async fn close_unselect_and_deleting_the_selected_mailbox_leave_it() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE Box").await;
    ok(&mut raw, "CREATE Other").await;

    ok(&mut raw, "SELECT Box").await;
    ok(&mut raw, "UNSELECT").await;
    nothing_selected(&mut raw).await;

    ok(&mut raw, "SELECT Box").await;
    ok(&mut raw, "CLOSE").await;
    nothing_selected(&mut raw).await;

    // Deleting another mailbox keeps the selected one; deleting it leaves it.
    ok(&mut raw, "SELECT Box").await;
    ok(&mut raw, "DELETE Other").await;
    ok(&mut raw, "UID FETCH 1:* FLAGS").await;
    ok(&mut raw, "DELETE Box").await;
    nothing_selected(&mut raw).await;
}

#[tokio::test]
async fn logout_in_the_selected_state_says_bye_and_ends_the_session() {
    let server = TestServer::start().await;
    let mut raw = server.select("INBOX").await;
    let r = ok(&mut raw, "LOGOUT").await;
    assert_eq!(r.untagged, ["* BYE Logging out"], "{r:?}");
    assert_eq!(
        raw.maybe_line(Duration::from_secs(5)).await,
        None,
        "nothing after the tagged OK: the connection closes"
    );
}
