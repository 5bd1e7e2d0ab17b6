//! Black-box tests of limits and bad input: malformed commands get a tagged BAD and the
//! session goes on; a synchronizing literal above APPENDLIMIT gets `NO [TOOBIG]` before
//! the client sends it; LITERAL+; over-long lines; nesting depth; too many bad commands;
//! connections per address; the pre-login and idle timeouts; and the
//! `auth.allow_insecure_loopback = false` switch (LOGINDISABLED / PRIVACYREQUIRED).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, PASSWORD, Reply, TestServer, USER, message};
use tokio::net::TcpStream;

async fn ok(raw: &mut Client<TcpStream>, cmd: &str) -> Reply {
    let r = raw.cmd(cmd).await;
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

#[tokio::test]
async fn malformed_commands_get_a_tagged_bad_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let cases: &[&[u8]] = &[
        b"FROBNICATE\r\n",
        b"SELECT\r\n",
        b"SELECT INBOX extra junk\r\n",
        b"FETCH x FLAGS\r\n",
        b"FETCH 1 (FLAGS\r\n",
        b"FETCH 1 NOTANITEM\r\n",
        b"STORE 1 +FLAGS\r\n",
        b"LIST \"\"\r\n",
        b"SEARCH (ALL\r\n",
        b"UID FROB 1\r\n",
        b"CREATE \"unterminated\r\n",
        b"STATUS INBOX MESSAGES\r\n",
        b"LOGIN\r\n",
        b"NOOP \x00\r\n",
    ];
    ok(&mut raw, "SELECT INBOX").await;
    for case in cases {
        let r = raw.cmd_bytes(case).await;
        assert!(r.bad(), "{:?}: {r:?}", String::from_utf8_lossy(case));
        // A reason is given.
        let text = r.tagged.splitn(3, ' ').nth(2).unwrap_or_default();
        assert!(!text.trim().is_empty(), "{r:?}");
        let r = raw.cmd("NOOP").await;
        assert!(r.ok(), "after {:?}: {r:?}", String::from_utf8_lossy(case));
    }
    // Lines without a usable tag get an untagged BAD.
    raw.send(b"\r\n").await;
    let line = raw.line().await;
    assert!(line.starts_with("* BAD") || line.contains("BAD"), "{line}");
    raw.send(b"*bad NOOP\r\n").await;
    let line = raw.line().await;
    assert!(line.contains("BAD"), "{line}");
    // Still selected and working.
    let r = ok(&mut raw, "FETCH 1:* FLAGS").await;
    assert!(r.untagged.is_empty(), "{r:?}");
}

#[tokio::test]
async fn too_many_bad_commands_in_a_row_end_the_session() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let mut bye = None;
    for _ in 0..40 {
        let tag = raw.tag();
        raw.send(format!("{tag} FROBNICATE\r\n").as_bytes()).await;
        let line = raw.line().await;
        if line.starts_with("* BYE") {
            bye = Some(line);
            break;
        }
        assert!(line.starts_with(&format!("{tag} BAD")), "{line}");
    }
    assert!(bye.is_some(), "40 bad commands did not end the session");
    assert_eq!(raw.maybe_line(Duration::from_secs(5)).await, None);
}

#[tokio::test]
async fn a_synchronizing_literal_above_appendlimit_is_refused_before_it_is_sent() {
    let server = TestServer::start_with(|c| c.limits.append_limit = 1000).await;
    let mut raw = server.raw().await;
    let r = raw.cmd("CAPABILITY").await;
    assert!(r.untagged[0].contains("APPENDLIMIT=1000"), "{r:?}");
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok() && r.tagged.contains("APPENDLIMIT=1000"), "{r:?}");

    let tag = raw.tag();
    raw.send(format!("{tag} APPEND INBOX {{5000}}\r\n").as_bytes())
        .await;
    // No "+": the tagged NO [TOOBIG] comes at once, and the client never sends the data.
    let line = raw.line().await;
    assert!(line.starts_with(&format!("{tag} NO [TOOBIG]")), "{line}");
    let r = ok(&mut raw, "NOOP").await;
    assert!(r.untagged.is_empty(), "{r:?}");

    // At the limit is fine.
    let mut body = message("fits", "");
    body.resize(1000, b'x');
    let r = raw.append("INBOX", "", &body).await;
    assert!(r.ok(), "{r:?}");
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 1)"), "{r:?}");

    // A too-large literal elsewhere (a LOGIN password, a search string) is refused too.
    let tag = raw.tag();
    raw.send(format!("{tag} SELECT {{4000}}\r\n").as_bytes())
        .await;
    let line = raw.line().await;
    assert!(
        line.starts_with(&format!("{tag} NO")) || line.starts_with(&format!("{tag} BAD")),
        "{line}"
    );
    ok(&mut raw, "NOOP").await;
}

#[tokio::test]
async fn literal_plus_appends_and_too_large_is_refused_after_reading() {
    let server = TestServer::start_with(|c| c.limits.append_limit = 1000).await;
    let mut raw = server.login().await;
    let body = message("plus", "non-synchronizing literal");
    let r = raw.append_plus("INBOX", "\\Seen", &body).await;
    assert!(r.ok(), "{r:?}");
    assert!(
        r.code().unwrap_or_default().starts_with("APPENDUID "),
        "{r:?}"
    );

    // Above the limit: the client sends it anyway (RFC 7888 4); the server must read it
    // all and answer, without taking the bytes for commands.
    let mut big = b"a NOOP\r\n".repeat(300);
    big.truncate(2000);
    let r = raw.append_plus("INBOX", "", &big).await;
    assert!(r.no() || r.bad(), "{r:?}");
    assert!(r.tagged.contains("TOOBIG"), "{r:?}");
    assert!(
        r.untagged.is_empty(),
        "the literal's bytes were run as commands: {r:?}"
    );
    let r = ok(&mut raw, "NOOP").await;
    assert!(r.untagged.is_empty(), "{r:?}");

    // The appended message is byte-exact.
    ok(&mut raw, "SELECT INBOX").await;
    let r = ok(&mut raw, "FETCH 1 BODY.PEEK[]").await;
    assert!(
        r.untagged[0].ends_with(&format!(
            "{{{}}}\r\n{})",
            body.len(),
            std::str::from_utf8(&body).unwrap()
        )),
        "{r:?}"
    );
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 1)"), "{r:?}");
}

#[tokio::test]
async fn literal_plus_in_other_commands() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let r = raw
        .cmd_bytes(
            format!(
                "LOGIN {{{}+}}\r\n{USER} {{{}+}}\r\n{PASSWORD}\r\n",
                USER.len(),
                PASSWORD.len()
            )
            .as_bytes(),
        )
        .await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd_bytes(b"CREATE {8+}\r\nLiteral!\r\n").await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd_bytes(b"LIST \"\" {4+}\r\nLit*\r\n").await;
    assert!(r.ok() && r.has("Literal!"), "{r:?}");
}

#[tokio::test]
async fn an_empty_message_is_refused() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.append("INBOX", "", b"").await;
    assert!(r.no() || r.bad(), "{r:?}");
    ok(&mut raw, "NOOP").await;
}

#[tokio::test]
async fn a_too_long_line_is_answered_not_buffered_forever() {
    let server = TestServer::start_with(|c| c.limits.max_line = 1024).await;
    let mut raw = server.login().await;
    // Just below the limit works.
    let pattern = "n".repeat(900);
    ok(&mut raw, &format!("LIST \"\" \"{pattern}\"")).await;
    // Above it: a tagged BAD at once, without waiting for the line to end, and the
    // session goes on after it.
    let tag = raw.tag();
    let long = format!("{tag} CREATE {}", "x".repeat(5000));
    raw.send(long.as_bytes()).await; // no CRLF yet
    let line = raw
        .maybe_line(Duration::from_secs(5))
        .await
        .expect("no answer to an over-long line");
    assert!(line.starts_with(&format!("{tag} BAD")), "{line}");
    raw.send(b"\r\n").await;
    ok(&mut raw, "NOOP").await;
}

#[tokio::test]
async fn deep_nesting_is_refused() {
    let server = TestServer::start().await;
    let mut raw = server.select("INBOX").await;
    let deep = format!("SEARCH {}ALL{}", "(".repeat(200), ")".repeat(200));
    let r = raw.cmd(&deep).await;
    assert!(r.bad(), "{r:?}");
    let deep_not = format!("SEARCH {}ALL", "NOT ".repeat(200));
    let r = raw.cmd(&deep_not).await;
    assert!(r.bad() || r.no(), "{r:?}");
    // Modest nesting is fine.
    let r = raw
        .cmd(&format!("SEARCH {}ALL{}", "(".repeat(5), ")".repeat(5)))
        .await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn connections_per_address_are_bounded() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let _a = server.raw().await;
    let _b = server.raw().await;
    let tcp = TcpStream::connect(server.imap).await.unwrap();
    let mut c = Client::new(tcp);
    // Refused: a BYE, or the connection closed, but never a usable session.
    match c.maybe_line(Duration::from_secs(5)).await {
        None => {}
        Some(line) => {
            assert!(
                line.starts_with("* BYE"),
                "third connection was greeted: {line}"
            );
        }
    }
    drop(_a);
    // A slot is free again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = server.raw().await;
    assert!(d.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn clients_that_do_not_log_in_are_dropped() {
    let server = TestServer::start_with(|c| c.limits.preauth_timeout_secs = 1).await;
    let mut raw = server.raw().await;
    let start = Instant::now();
    let line = raw.maybe_line(Duration::from_secs(5)).await;
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with("* BYE")),
        "{line:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(raw.maybe_line(Duration::from_secs(5)).await, None);
}

#[tokio::test]
async fn idle_sessions_are_logged_out() {
    let server = TestServer::start_with(|c| c.limits.idle_timeout_secs = 1).await;
    let mut raw = server.login().await;
    let line = raw.maybe_line(Duration::from_secs(5)).await;
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with("* BYE")),
        "{line:?}"
    );
}

#[tokio::test]
async fn without_insecure_loopback_plaintext_login_is_disabled() {
    let server = TestServer::start_with(|c| c.auth.allow_insecure_loopback = false).await;
    let tcp = TcpStream::connect(server.imap).await.unwrap();
    let mut raw = Client::new(tcp);
    let greeting = raw.line().await;
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    assert!(greeting.contains("STARTTLS"), "{greeting}");
    assert!(!greeting.contains("AUTH=PLAIN"), "{greeting}");
    let r = raw.cmd("CAPABILITY").await;
    assert!(r.untagged[0].contains("LOGINDISABLED"), "{r:?}");

    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("PRIVACYREQUIRED"), "{r:?}");
    let r = raw
        .cmd("AUTHENTICATE PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2UgYmF0dGVyeSBzdGFwbGU=")
        .await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("PRIVACYREQUIRED"), "{r:?}");
    // Still not logged in.
    let r = raw.cmd("SELECT INBOX").await;
    assert!(r.bad() || r.no(), "{r:?}");

    // async-imap sees the same.
    let client = server.client().await;
    assert!(client.login(USER, PASSWORD).await.is_err());
}
