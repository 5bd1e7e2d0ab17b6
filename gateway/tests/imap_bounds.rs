//! Black-box tests of what one client can make the gateway hold, and for how long: a
//! line over the limit is answered BAD and the session goes on; before login, literals
//! are only as large as LOGIN/AUTHENTICATE need, with a server-wide budget; the time to
//! log in counts from the connection (NOOPs do not extend it) and covers a STARTTLS
//! handshake, an implicit-TLS handshake, an AUTHENTICATE continuation and writes to a
//! client that does not read; at the per-address limit an IMAPS client gets no
//! plaintext; messages holding NUL bytes are sent as valid literals; SEARCH nesting
//! follows `limits.max_nesting`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{PASSWORD, TestServer, USER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; the bytes it sent meanwhile, or `None`
/// if it is still open after `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

#[tokio::test]
async fn a_line_over_the_limit_is_bad_and_the_session_goes_on() {
    let server = TestServer::start_with(|c| c.limits.max_line = 1024).await;
    let mut raw = server.login().await;

    // Arriving in pieces: answered as soon as it is over the limit, the rest of the line
    // is dropped when it comes.
    let tag = raw.tag();
    raw.send(format!("{tag} CREATE {}", "x".repeat(5000)).as_bytes())
        .await;
    let line = raw
        .maybe_line(Duration::from_secs(10))
        .await
        .expect("no answer to an over-long line");
    assert!(line.starts_with(&format!("{tag} BAD")), "{line}");
    assert!(line.contains("1024"), "the limit is not named: {line}");
    raw.send(format!("{} NOOP\r\n", "y".repeat(3000)).as_bytes())
        .await;
    let r = raw.cmd("NOOP").await;
    assert!(r.ok() && r.untagged.is_empty(), "{r:?}");

    // Whole, just over the limit, with the next command pipelined behind it.
    for size in [1100, 20_000] {
        let tag = raw.tag();
        let next = raw.tag();
        raw.send(format!("{tag} CREATE {}\r\n{next} NOOP\r\n", "z".repeat(size)).as_bytes())
            .await;
        let line = raw.line().await;
        assert!(line.starts_with(&format!("{tag} BAD")), "{size}: {line}");
        let line = raw.line().await;
        assert!(line.starts_with(&format!("{next} OK")), "{size}: {line}");
    }
    // Nothing was created from the pieces.
    let r = raw.cmd("LIST \"\" *").await;
    assert!(r.ok(), "{r:?}");
    assert!(
        !r.untagged
            .iter()
            .any(|l| l.contains("xxx") || l.contains("yyy") || l.contains("zzz")),
        "{r:?}"
    );
}

#[tokio::test]
async fn noops_do_not_extend_the_time_to_log_in() {
    let server = TestServer::start_with(|c| c.limits.preauth_timeout_secs = 3).await;
    let mut raw = server.raw().await;
    let mut answered = 0;
    let bye = loop {
        assert!(answered < 10, "10 NOOPs over 10 s and still not logged out");
        let tag = raw.tag();
        raw.send(format!("{tag} NOOP\r\n").as_bytes()).await;
        let line = raw.line().await;
        if line.starts_with("* BYE") {
            break line;
        }
        assert!(line.starts_with(&format!("{tag} OK")), "{line}");
        answered += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(bye.contains("log in"), "{bye}");
    let mut tcp = raw.into_inner();
    assert!(
        closed_within(&mut tcp, Duration::from_secs(5))
            .await
            .is_some()
    );

    // Logging in in time still works, and then the idle timeout applies.
    let mut raw = server.raw().await;
    raw.send(b"a NOOP\r\n").await;
    assert!(raw.line().await.starts_with("a OK"));
    let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(r.ok(), "{r:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(raw.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn stalled_handshakes_and_sasl_exchanges_end_at_the_deadline() {
    let server = TestServer::start_with(|c| c.limits.preauth_timeout_secs = 2).await;

    // STARTTLS answered, then no ClientHello.
    let mut raw = server.raw().await;
    let r = raw.cmd("STARTTLS").await;
    assert!(r.ok(), "{r:?}");
    let mut starttls = raw.into_inner();

    // STARTTLS answered, then half a ClientHello.
    let mut raw = server.raw().await;
    let r = raw.cmd("STARTTLS").await;
    assert!(r.ok(), "{r:?}");
    let mut half = raw.into_inner();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();

    // AUTHENTICATE PLAIN, then the continuation is never answered.
    let mut raw = server.raw().await;
    raw.send(b"a AUTHENTICATE PLAIN\r\n").await;
    assert!(raw.line().await.starts_with('+'));
    let mut sasl = raw.into_inner();

    // Implicit TLS, and nothing sent.
    let mut imaps = TcpStream::connect(server.imaps).await.unwrap();

    for (what, stream) in [
        ("STARTTLS without a handshake", &mut starttls),
        ("STARTTLS with half a handshake", &mut half),
        ("AUTHENTICATE without an answer", &mut sasl),
        ("IMAPS without a handshake", &mut imaps),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(10))
                .await
                .is_some(),
            "{what}: still open"
        );
    }
}

#[tokio::test]
async fn stalled_connections_do_not_lock_clients_out_past_the_deadline() {
    let server = TestServer::start_with(|c| {
        c.limits.preauth_timeout_secs = 2;
        c.limits.max_connections = 3;
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut raw = server.raw().await;
        assert!(raw.cmd("STARTTLS").await.ok());
        stalled.push(raw.into_inner());
    }
    // Full: a fourth is turned away.
    let mut fourth = TcpStream::connect(server.imap).await.unwrap();
    let refused = closed_within(&mut fourth, Duration::from_secs(5))
        .await
        .expect("a connection over max_connections was kept");
    assert!(String::from_utf8_lossy(&refused).starts_with("* BYE"));
    // Once the deadline has passed, the stalled ones are gone and a client gets in.
    for stream in &mut stalled {
        assert!(
            closed_within(stream, Duration::from_secs(10))
                .await
                .is_some(),
            "a stalled STARTTLS outlived the deadline"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut raw = server.login().await;
    assert!(raw.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn imaps_at_the_address_limit_gets_no_plaintext() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = 1).await;
    let mut first = server.raw_tls().await;
    assert!(first.cmd("NOOP").await.ok());
    let mut second = TcpStream::connect(server.imaps).await.unwrap();
    let sent = closed_within(&mut second, Duration::from_secs(5))
        .await
        .expect("the connection over the limit was kept open");
    assert!(
        sent.is_empty(),
        "plaintext on the IMAPS port: {:?}",
        String::from_utf8_lossy(&sent)
    );
    assert!(first.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn literals_before_login_are_small() {
    let server = TestServer::start().await;

    // A synchronizing literal over the pre-login limit: refused before the "+".
    let mut raw = server.raw().await;
    for command in ["LOGIN", "CAPABILITY", "FROBNICATE"] {
        let tag = raw.tag();
        raw.send(format!("{tag} {command} {{41943040}}\r\n").as_bytes())
            .await;
        let line = raw.line().await;
        assert!(line.starts_with(&format!("{tag} NO")), "{command}: {line}");
        assert!(line.contains("8192"), "the limit is not named: {line}");
    }
    // A non-synchronizing one is not kept: BYE, and the connection closes.
    let mut tcp = raw.into_inner();
    tcp.write_all(b"b LOGIN {41943040+}\r\n").await.unwrap();
    let _ = tcp.write_all(&vec![b'x'; 1 << 20]).await;
    let sent = closed_within(&mut tcp, Duration::from_secs(10))
        .await
        .expect("the connection stayed open");
    assert!(
        String::from_utf8_lossy(&sent).contains("* BYE"),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );

    // What LOGIN needs still fits, as literals; after login, APPENDLIMIT applies.
    let mut raw = server.raw().await;
    raw.send(format!("a LOGIN {{{}}}\r\n", USER.len()).as_bytes())
        .await;
    assert!(raw.line().await.starts_with('+'));
    raw.send(format!("{USER} {{{}}}\r\n", PASSWORD.len()).as_bytes())
        .await;
    assert!(raw.line().await.starts_with('+'));
    raw.send(format!("{PASSWORD}\r\n").as_bytes()).await;
    let r = raw.read_reply("a").await;
    assert!(r.ok(), "{r:?}");
    let mut big = common::message("big", "");
    big.resize(100_000, b'x');
    let r = raw.append("INBOX", "", &big).await;
    assert!(r.ok(), "{r:?}");
}

#[tokio::test]
async fn the_literal_budget_before_login_is_shared_by_all_connections() {
    // 4 MiB in all, 8 KiB each: the 513th client holding a full literal is turned away.
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = 1000).await;
    let mut holders = Vec::new();
    let mut refused = None;
    for i in 0..600 {
        let mut raw = server.raw().await;
        raw.send(b"a LOGIN {8192}\r\n").await;
        let line = raw.line().await;
        if line.starts_with('+') {
            holders.push(raw);
            continue;
        }
        assert!(line.starts_with("a NO [LIMIT]"), "client {i}: {line}");
        refused = Some(i);
        break;
    }
    assert_eq!(refused, Some(512), "{} literals were taken", holders.len());
    // One that finishes its command gives its share back.
    let mut first = holders.swap_remove(0);
    first.send(&vec![b'x'; 8192]).await;
    first.send(b"\r\n").await;
    let line = first.line().await;
    assert!(
        line.starts_with("a BAD") || line.starts_with("a NO"),
        "{line}"
    );
    first.send(b"b NOOP\r\n").await;
    assert!(first.line().await.starts_with("b OK"));
    let mut raw = server.raw().await;
    raw.send(b"a LOGIN {8192}\r\n").await;
    let line = raw.line().await;
    assert!(line.starts_with('+'), "{line}");
    // Logging in is never refused for lack of budget.
    let mut raw = server.login().await;
    assert!(raw.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn messages_holding_nul_bytes_are_sent_as_valid_literals() {
    let server = TestServer::start().await;
    let mut raw = server.select("INBOX").await;
    // Delivered by something that does not clean mail: dropped into Maildir new/.
    let new = server.dir.path().join("mail").join(USER).join("new");
    assert!(new.is_dir(), "no Maildir at {}", new.display());
    let message = b"From: a@example.com\r\nSubject: nul\r\n\r\nbefore\0after\r\n\0\r\n";
    std::fs::write(new.join("1700000000.M1P1.nul"), message).unwrap();
    let r = raw.cmd("SELECT INBOX").await;
    assert!(r.ok() && r.has("1 EXISTS"), "{r:?}");

    let tag = raw.tag();
    raw.send(
        format!("{tag} FETCH 1 (BODY.PEEK[] BODY.PEEK[TEXT] RFC822 BODY[]<38.9>)\r\n").as_bytes(),
    )
    .await;
    // Read as bytes: each literal's length must be exact, and no NUL may be in it.
    let mut tcp = raw.into_inner();
    let mut got = Vec::new();
    let ends = format!("\r\n{tag} ");
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        while !(String::from_utf8_lossy(&got).contains(&ends) && got.ends_with(b"\r\n")) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no answer to the FETCH");
    assert!(
        !got.contains(&0),
        "a NUL went out: {:?}",
        String::from_utf8_lossy(&got)
    );
    let safe: Vec<u8> = message
        .iter()
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    let text = &safe[37..];
    let mut expected = format!("* 1 FETCH (BODY[] {{{}}}\r\n", safe.len()).into_bytes();
    expected.extend_from_slice(&safe);
    expected.extend_from_slice(format!(" BODY[TEXT] {{{}}}\r\n", text.len()).as_bytes());
    expected.extend_from_slice(text);
    expected.extend_from_slice(format!(" RFC822 {{{}}}\r\n", safe.len()).as_bytes());
    expected.extend_from_slice(&safe);
    expected.extend_from_slice(b" BODY[]<38> {9}\r\n");
    expected.extend_from_slice(&safe[38..47]);
    // \Recent: this session selected the mailbox first (RFC 3501 2.3.2).
    expected.extend_from_slice(b" FLAGS (\\Seen \\Recent))\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got[..expected.len().min(got.len())]),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(&got[..expected.len()], &expected[..]);
    let rest = String::from_utf8_lossy(&got[expected.len()..]).into_owned();
    assert!(rest.starts_with(&format!("{tag} OK")), "{rest}");

    // The session goes on.
    let mut raw = common::Client::new(tcp);
    assert!(raw.cmd("NOOP").await.ok());
}

/// `OR SUBJECT w0 OR SUBJECT w1 … SUBJECT w{n}`: n ORs, nested n deep.
fn or_chain(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("OR SUBJECT w{i}x "));
    }
    s.push_str(&format!("SUBJECT w{n}x"));
    s
}

#[tokio::test]
async fn long_or_chains_and_deep_parentheses_follow_max_nesting() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for subject in ["w3x", "other", "w29x", "w40x"] {
        let r = raw
            .append("INBOX", "", &common::message(subject, "body"))
            .await;
        assert!(r.ok(), "{r:?}");
    }
    assert!(raw.cmd("SELECT INBOX").await.ok());

    // Thunderbird-style: 30 ORs (31 levels), within the default limit of 64.
    let r = raw.cmd(&format!("SEARCH {}", or_chain(30))).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.search(), vec![1, 3]);
    let r = raw
        .cmd(&format!("UID SEARCH CHARSET UTF-8 {}", or_chain(45)))
        .await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.search(), vec![1, 3, 4]);
    // 20 levels of parentheses, with NOT and a literal inside.
    let r = raw
        .cmd_bytes(
            format!(
                "SEARCH {}NOT SUBJECT {{5}}\r\nother{} UNDELETED\r\n",
                "(".repeat(20),
                ")".repeat(20)
            )
            .as_bytes(),
        )
        .await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.search(), vec![1, 3, 4]);

    // Past the limit: a BAD naming it, and the session goes on.
    let r = raw.cmd(&format!("SEARCH {}", or_chain(70))).await;
    assert!(r.bad(), "{r:?}");
    assert!(r.tagged.contains("64"), "the limit is not named: {r:?}");
    let r = raw
        .cmd(&format!("SEARCH {}ALL{}", "(".repeat(80), ")".repeat(80)))
        .await;
    assert!(r.bad() && r.tagged.contains("64"), "{r:?}");
    // Broken programs still get imap-codec's BAD.
    let r = raw.cmd(&format!("SEARCH {} (ALL", or_chain(12))).await;
    assert!(r.bad(), "{r:?}");
    assert!(raw.cmd("NOOP").await.ok());
}

#[tokio::test]
async fn a_smaller_max_nesting_is_enforced() {
    let server = TestServer::start_with(|c| c.limits.max_nesting = 10).await;
    let mut raw = server.select("INBOX").await;
    let r = raw.cmd(&format!("SEARCH {}", or_chain(9))).await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd(&format!("SEARCH {}", or_chain(10))).await;
    assert!(r.bad() && r.tagged.contains("10"), "{r:?}");
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_at_the_deadline() {
    let server = TestServer::start_with(|c| {
        c.limits.preauth_timeout_secs = 2;
        c.limits.max_connections = 1;
    })
    .await;
    // Pipelines NOOPs (megabytes of answers) and never reads one.
    let tcp = TcpStream::connect(server.imap).await.unwrap();
    let (_reader, mut writer) = tcp.into_split();
    let flood = tokio::spawn(async move {
        let noops = b"a NOOP\r\n".repeat(400_000);
        let _ = writer.write_all(&noops).await;
        // Kept open (and unread) until the test ends.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    // Its slot is given back once the deadline has passed, though it still reads nothing.
    let mut admitted = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut tcp = TcpStream::connect(server.imap).await.unwrap();
        let mut greeting = [0u8; 5];
        let read =
            tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut greeting)).await;
        if matches!(read, Ok(Ok(_))) && &greeting == b"* OK " {
            admitted = true;
            break;
        }
    }
    assert!(
        admitted,
        "a client that never reads held the only slot for 10 s"
    );
    flood.abort();
}
