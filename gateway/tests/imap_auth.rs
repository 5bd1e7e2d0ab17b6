//! Black-box tests of getting in and the any-state commands: the greeting and
//! CAPABILITY, LOGIN, AUTHENTICATE PLAIN (with and without SASL-IR), failed logins,
//! LOGOUT, NOOP, NAMESPACE, ID and ENABLE — over real TCP, with async-imap where a
//! client library's view is enough and the raw client where exact bytes matter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{PASSWORD, TestServer, USER};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The capability atoms of a `CAPABILITY` list inside `text` (a greeting, an untagged
/// CAPABILITY line or a tagged OK with a CAPABILITY code), upper-cased.
fn caps_in(text: &str) -> Vec<String> {
    let start = text
        .find("CAPABILITY ")
        .unwrap_or_else(|| panic!("no CAPABILITY in {text}"))
        + "CAPABILITY ".len();
    let rest = &text[start..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect()
}

const EXTENSIONS: &[&str] = &[
    "IMAP4REV1",
    "LITERAL+",
    "ID",
    "ENABLE",
    "IDLE",
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MOVE",
    "SPECIAL-USE",
    "APPENDLIMIT=52428800",
];

#[tokio::test]
async fn greeting_capability_and_login_advertise_the_extensions() {
    let server = TestServer::start().await;
    let tcp = tokio::net::TcpStream::connect(server.imap).await.unwrap();
    let mut raw = common::Client::new(tcp);
    let greeting = raw.line().await;
    assert!(greeting.starts_with("* OK [CAPABILITY "), "{greeting}");
    let before = caps_in(&greeting);
    for cap in EXTENSIONS
        .iter()
        .chain(&["STARTTLS", "AUTH=PLAIN", "SASL-IR"])
    {
        assert!(
            before.contains(&cap.to_string()),
            "{cap} missing from {greeting}"
        );
    }
    assert!(!before.contains(&"LOGINDISABLED".to_owned()), "{greeting}");

    // The CAPABILITY command says the same as the greeting.
    let r = raw.cmd("CAPABILITY").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.untagged.len(), 1, "{r:?}");
    assert_eq!(caps_in(&r.untagged[0]), before);

    // After LOGIN: the tagged OK carries the new list, without STARTTLS or AUTH=.
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
    let after = caps_in(&r.tagged);
    for cap in EXTENSIONS {
        assert!(
            after.contains(&cap.to_string()),
            "{cap} missing from {}",
            r.tagged
        );
    }
    assert!(
        !after
            .iter()
            .any(|c| c == "STARTTLS" || c.starts_with("AUTH=")),
        "{}",
        r.tagged
    );
    let r = raw.cmd("CAPABILITY").await;
    assert_eq!(caps_in(&r.untagged[0]), after);
}

#[tokio::test]
async fn async_imap_logs_in_sees_capabilities_and_logs_out() {
    let server = TestServer::start().await;
    let mut session = server.session().await;
    let caps = session.capabilities().await.unwrap();
    for cap in [
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "SPECIAL-USE",
        "NAMESPACE",
        "UNSELECT",
    ] {
        assert!(caps.has_str(cap), "{cap} missing");
    }
    session.noop().await.unwrap();
    session.logout().await.unwrap();
}

#[tokio::test]
async fn logout_says_bye_then_ok_and_closes() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.cmd("LOGOUT").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.untagged.len(), 1, "{r:?}");
    assert!(r.untagged[0].starts_with("* BYE"), "{r:?}");
    // The server then closes the connection.
    assert_eq!(
        raw.maybe_line(std::time::Duration::from_secs(5)).await,
        None
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let server = TestServer::start().await;
    let mut a = server.raw().await;
    let wrong = a.cmd(&format!("LOGIN {USER} \"not the password\"")).await;
    assert!(wrong.no(), "{wrong:?}");
    assert_eq!(
        wrong.code().as_deref(),
        Some("AUTHENTICATIONFAILED"),
        "{wrong:?}"
    );

    let mut b = server.raw().await;
    let unknown = b.cmd("LOGIN nosuchuser \"whatever\"").await;
    assert!(unknown.no(), "{unknown:?}");
    // Same text after the tag: nothing tells an attacker which names exist.
    let text = |r: &common::Reply| r.tagged.split_once(' ').unwrap().1.to_owned();
    assert_eq!(text(&wrong), text(&unknown));

    // The session goes on: the right password still works on the first connection.
    let ok = a.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(ok.ok(), "{ok:?}");
}

#[tokio::test]
async fn async_imap_login_failure_is_a_no() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let Err((err, _client)) = client.login(USER, "wrong").await else {
        panic!("login with a wrong password succeeded");
    };
    assert!(
        matches!(&err, async_imap::error::Error::No(text) if text.contains("AUTHENTICATIONFAILED")),
        "{err:?}"
    );
}

#[tokio::test]
async fn repeated_failed_logins_end_the_session() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let mut last = None;
    for _ in 0..3 {
        let r = raw.cmd("LOGIN bob \"wrong\"").await;
        assert!(r.no(), "{r:?}");
        last = Some(r);
    }
    let last = last.unwrap();
    assert!(
        last.has("* BYE"),
        "third failure should end the session: {last:?}"
    );
    assert_eq!(
        raw.maybe_line(std::time::Duration::from_secs(5)).await,
        None
    );
}

#[tokio::test]
async fn login_accepts_a_literal_password() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let tag = raw.tag();
    raw.send(format!("{tag} LOGIN {USER} {{{}}}\r\n", PASSWORD.len()).as_bytes())
        .await;
    let cont = raw.line().await;
    assert!(cont.starts_with('+'), "{cont}");
    raw.send(format!("{PASSWORD}\r\n").as_bytes()).await;
    let r = raw.read_reply(&tag).await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn authenticate_plain_with_initial_response() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let ir = b64(format!("\0{USER}\0{PASSWORD}").as_bytes());
    let r = raw.cmd(&format!("AUTHENTICATE PLAIN {ir}")).await;
    assert!(r.ok(), "{r:?}");
    assert!(r.tagged.contains("[CAPABILITY "), "{r:?}");
    let r = raw.cmd("SELECT INBOX").await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn authenticate_plain_with_a_continuation() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let tag = raw.tag();
    raw.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
        .await;
    let cont = raw.line().await;
    assert!(cont.starts_with('+'), "{cont}");
    // authzid = authcid is allowed.
    raw.send(
        format!(
            "{}\r\n",
            b64(format!("{USER}\0{USER}\0{PASSWORD}").as_bytes())
        )
        .as_bytes(),
    )
    .await;
    let r = raw.read_reply(&tag).await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn authenticate_plain_cancelled_or_wrong_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let tag = raw.tag();
    raw.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
        .await;
    assert!(raw.line().await.starts_with('+'));
    raw.send(b"*\r\n").await;
    let r = raw.read_reply(&tag).await;
    assert!(r.bad(), "cancel is a BAD (RFC 3501 6.2.2): {r:?}");

    // Logging in as someone else (authzid != authcid) is refused.
    let r = raw
        .cmd(&format!(
            "AUTHENTICATE PLAIN {}",
            b64(format!("bob\0{USER}\0{PASSWORD}").as_bytes())
        ))
        .await;
    assert!(r.no(), "{r:?}");

    // Not base64.
    let r = raw.cmd("AUTHENTICATE PLAIN !!!notbase64").await;
    assert!(r.bad() || r.no(), "{r:?}");

    // Unsupported mechanism.
    let r = raw.cmd("AUTHENTICATE CRAM-MD5").await;
    assert!(r.no() || r.bad(), "{r:?}");

    let ir = b64(format!("\0{USER}\0{PASSWORD}").as_bytes());
    let r = raw.cmd(&format!("AUTHENTICATE PLAIN {ir}")).await;
    assert!(r.ok(), "{r:?}");
}

struct Plain;

impl async_imap::Authenticator for Plain {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{USER}\0{PASSWORD}").into_bytes()
    }
}

#[tokio::test]
async fn async_imap_authenticate_plain() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut session = client
        .authenticate("PLAIN", Plain)
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let mailbox = session.select("INBOX").await.unwrap();
    assert_eq!(mailbox.exists, 0);
}

#[tokio::test]
async fn commands_need_the_right_state() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    for cmd in [
        "SELECT INBOX",
        "LIST \"\" *",
        "CREATE foo",
        "FETCH 1 FLAGS",
        "IDLE",
    ] {
        let r = raw.cmd(cmd).await;
        assert!(r.bad() || r.no(), "{cmd} before login: {r:?}");
    }
    // Still usable.
    let r = raw.cmd("NOOP").await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
    // LOGIN again once logged in.
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.bad() || r.no(), "{r:?}");
    // Selected-state commands without a selected mailbox.
    for cmd in [
        "FETCH 1 FLAGS",
        "STORE 1 +FLAGS (\\Seen)",
        "SEARCH ALL",
        "EXPUNGE",
        "CLOSE",
        "UNSELECT",
        "COPY 1 Trash",
        "UID FETCH 1 FLAGS",
        "CHECK",
    ] {
        let r = raw.cmd(cmd).await;
        assert!(r.bad() || r.no(), "{cmd} without SELECT: {r:?}");
    }
    let r = raw.cmd("NOOP").await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn namespace_id_and_enable() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    // ID works before login (RFC 2971 3.1).
    let r = raw
        .cmd("ID (\"name\" \"pluto-tests\" \"version\" \"1\")")
        .await;
    assert!(r.ok(), "{r:?}");
    let id = r.find("* ID (").unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        id.to_ascii_lowercase().contains("\"name\" \"pluto\""),
        "{id}"
    );
    let r = raw.cmd("ID NIL").await;
    assert!(r.ok() && r.has("* ID "), "{r:?}");

    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd("NAMESPACE").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        r.lines("* NAMESPACE"),
        vec!["* NAMESPACE ((\"\" \"/\")) NIL NIL"],
        "{r:?}"
    );

    // ENABLE lists what it enabled (CONDSTORE, RFC 7162), not what pluto lacks.
    let r = raw.cmd("ENABLE CONDSTORE X-NOT-THERE").await;
    assert!(r.ok(), "{r:?}");
    let enabled = r.find("* ENABLED").unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(enabled, "* ENABLED CONDSTORE", "{r:?}");
}

#[tokio::test]
async fn async_imap_id() {
    let server = TestServer::start().await;
    let mut session = server.session().await;
    let ours = session
        .id([("name", Some("pluto-tests")), ("version", Some("1"))])
        .await
        .unwrap()
        .expect("server ID");
    assert_eq!(ours.get("name").map(String::as_str), Some("pluto"));
    assert!(ours.contains_key("version"), "{ours:?}");
}
