//! Black-box tests of the small extensions: STATUS=SIZE (RFC 8438), WITHIN (RFC 5032:
//! SEARCH OLDER / YOUNGER), UNAUTHENTICATE (RFC 8437) and CREATE-SPECIAL-USE (RFC
//! 6154), each advertised.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{PASSWORD, TestServer, USER, message};

#[tokio::test]
async fn the_capabilities_are_advertised() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let caps = format!(
        "{} ",
        raw.cmd("CAPABILITY").await.find("* CAPABILITY").unwrap()
    );
    for cap in [
        " STATUS=SIZE ",
        " WITHIN ",
        " UNAUTHENTICATE ",
        " CREATE-SPECIAL-USE ",
    ] {
        assert!(caps.contains(cap), "{cap} missing: {caps}");
    }
}

#[tokio::test]
async fn status_size_is_the_sum_of_the_messages_sizes() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE Sized").await.ok());
    let r = raw.cmd("STATUS Sized (SIZE)").await;
    assert_eq!(r.untagged, ["* STATUS Sized (SIZE 0)"], "{r:?}");
    let (a, b) = (message("one", "x"), message("two", &"y".repeat(500)));
    assert!(raw.append("Sized", "", &a).await.ok());
    assert!(raw.append("Sized", "\\Deleted", &b).await.ok());
    let r = raw.cmd("STATUS Sized (MESSAGES SIZE)").await;
    let want = a.len() + b.len();
    assert_eq!(
        r.untagged,
        [format!("* STATUS Sized (MESSAGES 2 SIZE {want})")],
        "{r:?}"
    );
    // The same figure as the messages' RFC822.SIZE.
    assert!(raw.cmd("SELECT Sized").await.ok());
    let r = raw.cmd("FETCH 1:* (RFC822.SIZE)").await;
    let total: usize = r
        .untagged
        .iter()
        .map(|l| {
            let n = l.rsplit(' ').next().unwrap().trim_end_matches(')');
            n.parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(total, want);
}

#[tokio::test]
async fn older_and_younger_compare_the_internal_date_with_now() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let old = message("old", "from 2020");
    let mut bytes = format!(
        "APPEND INBOX \"01-Jan-2020 10:00:00 +0000\" {{{}+}}\r\n",
        old.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&old);
    bytes.extend_from_slice(b"\r\n");
    assert!(raw.cmd_bytes(&bytes).await.ok());
    assert!(raw.append("INBOX", "", &message("new", "now")).await.ok());
    let r = raw.cmd("SELECT INBOX").await;
    assert!(r.has("* 2 EXISTS"), "{r:?}");
    // RFC 5032: OLDER n is an internal date at least n seconds ago, YOUNGER n within
    // the last n seconds.
    assert_eq!(raw.cmd("SEARCH OLDER 3600").await.search(), [1]);
    assert_eq!(raw.cmd("SEARCH YOUNGER 3600").await.search(), [2]);
    assert_eq!(
        raw.cmd("SEARCH OR OLDER 3600 YOUNGER 3600").await.search(),
        [1, 2]
    );
    assert!(
        raw.cmd("SEARCH YOUNGER 1 OLDER 1")
            .await
            .search()
            .is_empty()
    );
    assert!(
        raw.cmd("SEARCH YOUNGER 0").await.bad(),
        "n is a non-zero number"
    );
    assert!(raw.cmd("SEARCH OLDER x").await.bad());
}

#[tokio::test]
async fn unauthenticate_returns_to_the_not_authenticated_state() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("SELECT INBOX").await.ok());
    let r = raw.cmd("UNAUTHENTICATE").await;
    assert!(r.ok(), "{r:?}");
    // Nothing of the login is left: no selected mailbox, no authenticated commands.
    assert!(raw.cmd("FETCH 1 (UID)").await.bad());
    assert!(raw.cmd("LIST \"\" *").await.bad());
    assert!(raw.cmd("UNAUTHENTICATE").await.bad());
    let caps = raw.cmd("CAPABILITY").await;
    assert!(
        caps.has("AUTH=PLAIN"),
        "the pre-login capabilities: {caps:?}"
    );
    // Another user logs in on the same connection and sees their own mail.
    assert!(raw.append("INBOX", "", &message("x", "y")).await.bad());
    let r = raw.cmd("LOGIN bob \"bob's password\"").await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(r.has("MESSAGES 0"), "{r:?}");
    assert!(raw.cmd("UNAUTHENTICATE").await.ok());
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
    assert!(raw.cmd("SELECT INBOX").await.ok());
}

#[tokio::test]
async fn after_unauthenticate_the_login_limits_apply_again() {
    let server = TestServer::start_with(|c| c.limits.preauth_timeout_secs = 2).await;
    let mut raw = server.login().await;
    assert!(raw.cmd("UNAUTHENTICATE").await.ok());
    // Literals are as small as before login.
    let r = raw.cmd(&format!("LOGIN {{{}}}", 64 * 1024)).await;
    assert!(r.no() && r.tagged.contains("TOOBIG"), "{r:?}");
    // And the login deadline runs again.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let bye = raw.line().await;
    assert!(bye.starts_with("* BYE"), "{bye}");
}

#[tokio::test]
async fn create_records_one_special_use_and_refuses_what_it_cannot() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    // RFC 6154 5.2's example.
    let r = raw.cmd("CREATE MySpecial (USE (\\Drafts))").await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd("LIST \"\" MySpecial").await;
    assert_eq!(
        r.untagged,
        ["* LIST (\\HasNoChildren \\Drafts) \"/\" MySpecial"]
    );
    let r = raw.cmd("CREATE {7+}\r\nOld/Box (use (\\archive))").await;
    assert!(r.ok(), "{r:?}");
    assert!(raw.cmd("LIST \"\" Old/Box").await.has("\\Archive"));
    // An empty list asks for nothing special.
    assert!(raw.cmd("CREATE Plain (USE ())").await.ok());
    let r = raw.cmd("LIST \"\" Plain").await;
    assert_eq!(r.untagged, ["* LIST (\\HasNoChildren) \"/\" Plain"]);
    // Two uses, or one RFC 6154 does not define: NO [USEATTR], nothing created.
    for create in [
        "CREATE Two (USE (\\Sent \\Trash))",
        "CREATE Odd (USE (\\Important))",
    ] {
        let r = raw.cmd(create).await;
        assert!(
            r.no() && r.code().as_deref() == Some("USEATTR"),
            "{create}: {r:?}"
        );
    }
    let r = raw.cmd("LIST \"\" %").await;
    assert!(!r.has("Two") && !r.has("Odd"), "{r:?}");
    assert!(raw.cmd("CREATE x (USE (Archive))").await.bad());
}
