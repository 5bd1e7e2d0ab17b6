//! LMTP into `pluto serve` (RFC 2033), black-box: Python's smtplib.LMTP
//! (`testdata/clients/lmtp_send.py`) as the client over TCP and the Unix socket, and
//! what it delivered read back over IMAP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestServer, USER};
use futures::TryStreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Runs the Python client; its JSON report. A missing python3 fails the test.
async fn lmtp_send(target: &str, args: &[&str], message: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message");
    std::fs::write(&file, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/clients/lmtp_send.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(target)
        .arg("--message")
        .arg(&file)
        .args(args)
        .output()
        .await
        .expect("python3 must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "lmtp_send.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn target(server: &TestServer) -> String {
    server
        .server
        .as_ref()
        .unwrap()
        .lmtp
        .tcp
        .unwrap()
        .to_string()
}

/// `[code, "x.y.z text"]` → (code, text).
fn code(v: &Value) -> (u64, String) {
    (v[0].as_u64().unwrap(), v[1].as_str().unwrap().to_owned())
}

fn codes(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|r| code(r).0).collect()
}

/// Sends each line as a command after LHLO (the client's raw mode); each reply's
/// (code, text).
async fn raw_replies(server: &TestServer, lines: &[&str]) -> Vec<(u64, String)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lines");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = lmtp_send(
        &target(server),
        &["--mode", "raw", "--raw-lines", file.to_str().unwrap()],
        b"",
    )
    .await;
    out["raw"].as_array().unwrap().iter().map(code).collect()
}

async fn messages_in(
    server: &TestServer,
    user: &str,
    password: &str,
    mailbox: &str,
) -> Vec<Vec<u8>> {
    let mut session = server
        .client()
        .await
        .login(user, password)
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let mb = session.examine(mailbox).await.unwrap();
    if mb.exists == 0 {
        return Vec::new();
    }
    let fetches: Vec<_> = session
        .fetch("1:*", "BODY.PEEK[]")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    fetches.iter().map(|f| f.body().unwrap().to_vec()).collect()
}

async fn inbox(server: &TestServer) -> Vec<Vec<u8>> {
    messages_in(server, USER, common::PASSWORD, "INBOX").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_delivered_with_trace_headers() {
    let server = TestServer::start().await;
    let message = common::message("hello", "over LMTP");
    let out = lmtp_send(
        &target(&server),
        &[
            "--from",
            "sender@example.net",
            "--rcpt",
            "alice@example.org",
        ],
        &message,
    )
    .await;
    let features: Vec<&str> = out["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in ["pipelining", "enhancedstatuscodes", "8bitmime", "size"] {
        assert!(features.contains(&f), "{features:?}");
    }
    assert_eq!(code(&out["mail"]).0, 250, "{out}");
    assert_eq!(
        code(&out["rcpt"][0]),
        (250, "2.1.5 Recipient OK".into()),
        "{out}"
    );
    assert_eq!(code(&out["data"][0]).0, 250, "{out}");
    assert!(code(&out["data"][0]).1.starts_with("2.0.0"), "{out}");
    let stored = inbox(&server).await;
    assert_eq!(stored.len(), 1);
    let mut expected =
        b"Return-Path: <sender@example.net>\r\nDelivered-To: alice@example.org\r\n".to_vec();
    expected.extend_from_slice(&message);
    assert_eq!(stored[0], expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_users_and_foreign_domains_are_refused_per_recipient() {
    let server = TestServer::start_with(|c| c.lmtp.domains = vec!["example.org".into()]).await;
    let out = lmtp_send(
        &target(&server),
        &[
            "--from",
            "",
            "--rcpt",
            "nobody@example.org",
            "--rcpt",
            "alice@elsewhere.net",
            "--rcpt",
            "ALICE@Example.ORG",
        ],
        &common::message("one", "x"),
    )
    .await;
    let rcpt: Vec<(u64, String)> = out["rcpt"].as_array().unwrap().iter().map(code).collect();
    assert_eq!(rcpt[0].0, 550);
    assert!(rcpt[0].1.starts_with("5.1.1"), "{rcpt:?}");
    assert_eq!(rcpt[1].0, 550);
    assert!(rcpt[1].1.starts_with("5.1.2"), "{rcpt:?}");
    assert_eq!(rcpt[2].0, 250, "{rcpt:?}");
    // One reply after DATA: one recipient was taken. The null sender is kept as <>.
    assert_eq!(codes(&out["data"]), vec![250]);
    let stored = inbox(&server).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with(b"Return-Path: <>\r\nDelivered-To: ALICE@Example.ORG\r\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_data_for_several_users_answers_each_in_order_with_pipelining() {
    let server = TestServer::start().await;
    let out = lmtp_send(
        &target(&server),
        &[
            "--mode",
            "pipeline",
            "--from",
            "s@example.net",
            "--rcpt",
            "alice@example.org",
            "--rcpt",
            "ghost@example.org",
            "--rcpt",
            "bob@example.org",
        ],
        &common::message("many", "for two users"),
    )
    .await;
    assert_eq!(code(&out["mail"]).0, 250, "{out}");
    assert_eq!(codes(&out["rcpt"]), vec![250, 550, 250], "{out}");
    assert_eq!(code(&out["data_start"]).0, 354, "{out}");
    assert_eq!(codes(&out["data"]), vec![250, 250], "{out}");
    assert_eq!(inbox(&server).await.len(), 1);
    let bob = messages_in(&server, "bob", "bob's password", "INBOX").await;
    assert_eq!(bob.len(), 1);
    assert!(
        bob[0].starts_with(b"Return-Path: <s@example.net>\r\nDelivered-To: bob@example.org\r\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_bit_bodies_and_nul_bytes_arrive_exactly() {
    let server = TestServer::start().await;
    let mut message = b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    message.extend_from_slice("Grüße, ½ € — ünïcödé\r\n".as_bytes());
    message.extend_from_slice(b"nul:\0:\xff\xfe:end\r\n.leading dot\r\n..two dots\r\n");
    let out = lmtp_send(
        &target(&server),
        &[
            "--from",
            "s@example.net",
            "--rcpt",
            "alice@example.org",
            "--mail-option",
            "BODY=8BITMIME",
        ],
        &message,
    )
    .await;
    assert_eq!(code(&out["mail"]).0, 250, "{out}");
    assert_eq!(codes(&out["data"]), vec![250], "{out}");
    let mut expected =
        b"Return-Path: <s@example.net>\r\nDelivered-To: alice@example.org\r\n".to_vec();
    expected.extend_from_slice(&message);
    // Stored exactly, NUL included (the Maildir file)…
    let files = files_under(&server.dir.path().join("mail"));
    let on_disk: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .filter(|b| b.windows(4).any(|w| w == b"nul:"))
        .collect();
    assert_eq!(on_disk, vec![expected.clone()]);
    // …and over IMAP as every message is: NUL sent as 0x80 (IMAP literals hold no NUL).
    let shown: Vec<u8> = expected
        .iter()
        .map(|&b| if b == 0 { 0x80 } else { b })
        .collect();
    assert_eq!(inbox(&server).await, vec![shown]);
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mib_message_is_delivered_and_a_larger_one_refused() {
    let limit = 60 * 1024 * 1024;
    let server = TestServer::start_with(|c| c.limits.append_limit = limit).await;
    let mut message = b"Subject: big\r\n\r\n".to_vec();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,-_\r\n";
    while message.len() < 50 * 1024 * 1024 {
        message.extend_from_slice(line);
    }
    let out = lmtp_send(
        &target(&server),
        &["--from", "s@x", "--rcpt", "alice@example.org"],
        &message,
    )
    .await;
    assert_eq!(codes(&out["data"]), vec![250], "{out}");
    let stored = inbox(&server).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].ends_with(&message[message.len() - 1000..]));
    assert_eq!(
        stored[0].len(),
        message.len() + "Return-Path: <s@x>\r\nDelivered-To: alice@example.org\r\n".len()
    );

    // SIZE says it is too big: refused at MAIL. Without SIZE: after the data.
    let big = format!("SIZE={}", limit + 1);
    let out = lmtp_send(
        &target(&server),
        &[
            "--from",
            "s@x",
            "--rcpt",
            "alice@example.org",
            "--mail-option",
            &big,
        ],
        b"x\r\n",
    )
    .await;
    let (c, text) = code(&out["mail"]);
    assert_eq!(c, 552, "{out}");
    assert!(text.starts_with("5.3.4"), "{out}");
    message.resize(limit as usize + 10, b'a');
    let out = lmtp_send(
        &target(&server),
        &[
            "--from",
            "s@x",
            "--rcpt",
            "alice@example.org",
            "--rcpt",
            "bob@example.org",
        ],
        &message,
    )
    .await;
    let data: Vec<(u64, String)> = out["data"].as_array().unwrap().iter().map(code).collect();
    assert_eq!(data.len(), 2, "{out}");
    for (c, text) in data {
        assert_eq!(c, 552);
        assert!(text.starts_with("5.3.4"), "{text}");
    }
    assert_eq!(inbox(&server).await.len(), 1, "nothing more was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_command_sequence_is_answered_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let long = format!("NOOP {}", "x".repeat(5000));
    let raw = raw_replies(
        &server,
        &[
            "RCPT TO:<alice@example.org>",
            "DATA",
            "EHLO client.example",
            "MAIL FROM:<s@x>",
            "MAIL FROM:<s@x>",
            "DATA",
            "BDAT 10 LAST",
            "STARTTLS",
            "VRFY alice",
            long.as_str(),
            "FOO bar",
            "RSET",
            "RCPT TO:<alice@example.org>",
            "NOOP",
        ],
    )
    .await;
    let got: Vec<u64> = raw.iter().map(|r| r.0).collect();
    assert_eq!(
        got,
        vec![
            503, 503, 500, 250, 503, 503, 502, 502, 252, 500, 500, 250, 503, 250
        ],
        "{raw:?}"
    );
    assert!(raw[0].1.starts_with("5.5.1"), "{raw:?}");
    assert!(raw[9].1.contains("too long"), "{raw:?}");

    // Before LHLO, MAIL is refused.
    let mut tcp = BufReader::new(TcpStream::connect(target(&server)).await.unwrap());
    let mut line = String::new();
    tcp.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line}");
    tcp.get_mut()
        .write_all(b"MAIL FROM:<s@x>\r\n")
        .await
        .unwrap();
    line.clear();
    tcp.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("503 5.5.1"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_mid_data_stores_nothing() {
    let server = TestServer::start().await;
    let out = lmtp_send(
        &target(&server),
        &[
            "--mode",
            "disconnect",
            "--from",
            "s@x",
            "--rcpt",
            "alice@example.org",
        ],
        &common::message("cut", &"a line of the body\r\n".repeat(1000)),
    )
    .await;
    assert_eq!(code(&out["data_start"]).0, 354, "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_unix_socket_takes_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("lmtp.sock");
    let path = socket.display().to_string();
    let server = TestServer::start_with(|c| {
        c.listen.lmtp = String::new();
        c.listen.lmtp_socket = path.clone();
    })
    .await;
    assert!(server.server.as_ref().unwrap().lmtp.tcp.is_none());
    let out = lmtp_send(
        &path,
        &["--from", "s@x", "--rcpt", "alice@example.org"],
        &common::message("unix", "socket"),
    )
    .await;
    assert_eq!(codes(&out["data"]), vec![250], "{out}");
    assert_eq!(inbox(&server).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn user_plus_detail_goes_to_that_mailbox_when_it_exists() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE Work").await.ok());
    let args = [
        "--from",
        "s@x",
        "--rcpt",
        "alice+Work@example.org",
        "--rcpt",
        "alice+nothere@example.org",
    ];
    let out = lmtp_send(&target(&server), &args, &common::message("detail", "x")).await;
    assert_eq!(codes(&out["data"]), vec![250, 250], "{out}");
    let work = messages_in(&server, USER, common::PASSWORD, "Work").await;
    assert_eq!(work.len(), 1);
    assert!(work[0].starts_with(b"Return-Path: <s@x>\r\nDelivered-To: alice+Work@example.org\r\n"));
    let inbox = inbox(&server).await;
    assert_eq!(inbox.len(), 1);
    assert!(
        inbox[0].starts_with(b"Return-Path: <s@x>\r\nDelivered-To: alice+nothere@example.org\r\n")
    );

    // Turned off: everything to INBOX.
    let server = TestServer::start_with(|c| c.lmtp.detail_to_mailbox = false).await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE Work").await.ok());
    let out = lmtp_send(
        &target(&server),
        &["--from", "s@x", "--rcpt", "alice+Work@example.org"],
        b"Subject: x\r\n\r\ny\r\n",
    )
    .await;
    assert_eq!(codes(&out["data"]), vec![250], "{out}");
    assert!(
        messages_in(&server, USER, common::PASSWORD, "Work")
            .await
            .is_empty()
    );
    assert_eq!(
        messages_in(&server, USER, common::PASSWORD, "INBOX")
            .await
            .len(),
        1
    );
}

/// imaptest's profile mode (Dovecot's imaptest, by hand; docs/COMPLIANCE.md) delivers
/// to `<user>` and `<user+Spam>` without a domain, as Dovecot's LMTP takes them; pluto
/// answered `501 5.1.3` before it parsed them itself. Other addresses smtp-proto
/// refuses stay refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_without_a_domain_is_the_user_of_that_name() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE Spam").await.ok());
    let args = [
        "--from",
        "s@x",
        "--rcpt",
        USER,
        "--rcpt",
        "alice+Spam",
        "--rcpt",
        "nobody",
    ];
    let out = lmtp_send(&target(&server), &args, &common::message("bare", "x")).await;
    assert_eq!(codes(&out["rcpt"]), vec![250, 250, 550], "{out}");
    assert_eq!(codes(&out["data"]), vec![250, 250], "{out}");
    let inbox = inbox(&server).await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].starts_with(b"Return-Path: <s@x>\r\nDelivered-To: alice\r\n"));
    let spam = messages_in(&server, USER, common::PASSWORD, "Spam").await;
    assert_eq!(spam.len(), 1);
    assert!(spam[0].starts_with(b"Return-Path: <s@x>\r\nDelivered-To: alice+Spam\r\n"));

    let raw = raw_replies(
        &server,
        &[
            "LHLO client.example",
            "MAIL FROM:<s@x>",
            "RCPT TO:<alice..x>",
            "RCPT TO:<.alice>",
            "RCPT TO:<alice> NOTIFY=NEVER",
            "RCPT TO:<al ice>",
            "RCPT TO:<alice>",
            // RFC 5321 4.5.1: Postmaster without a domain is a recipient (here no
            // user of that name exists: 550 5.1.1, not a syntax error).
            "RCPT TO:<Postmaster>",
        ],
    )
    .await;
    let got: Vec<u64> = raw.iter().map(|r| r.0).collect();
    assert_eq!(got, vec![250, 250, 501, 501, 501, 501, 250, 550], "{raw:?}");
    assert!(raw[7].1.contains("5.1.1"), "{raw:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_wakes_an_idle_session() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("SELECT INBOX").await.ok());
    raw.send(b"i1 IDLE\r\n").await;
    let cont = raw.line().await;
    assert!(cont.starts_with('+'), "{cont}");
    let out = lmtp_send(
        &target(&server),
        &["--from", "s@x", "--rcpt", "alice@example.org"],
        &common::message("wake", "up"),
    )
    .await;
    assert_eq!(codes(&out["data"]), vec![250], "{out}");
    let line = tokio::time::timeout(Duration::from_secs(5), raw.line())
        .await
        .expect("IDLE was not woken within 5 s");
    assert_eq!(line, "* 1 EXISTS");
    raw.send(b"DONE\r\n").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_database_unavailable_is_451_and_too_many_recipients_452() {
    let server = TestServer::start_with(|c| c.lmtp.max_recipients = 2).await;
    let out = lmtp_send(
        &target(&server),
        &[
            "--from",
            "s@x",
            "--rcpt",
            "alice@example.org",
            "--rcpt",
            "bob@example.org",
            "--rcpt",
            "alice@example.org",
        ],
        b"Subject: x\r\n\r\ny\r\n",
    )
    .await;
    let rcpt: Vec<(u64, String)> = out["rcpt"].as_array().unwrap().iter().map(code).collect();
    assert_eq!(rcpt[2].0, 452, "{rcpt:?}");
    assert!(rcpt[2].1.starts_with("4.5.3"), "{rcpt:?}");
    assert_eq!(codes(&out["data"]), vec![250, 250]);

    // The users file gone: the database cannot say whether the user exists.
    std::fs::remove_file(server.dir.path().join("users")).unwrap();
    let out = lmtp_send(
        &target(&server),
        &["--from", "s@x", "--rcpt", "alice@example.org"],
        b"Subject: x\r\n\r\ny\r\n",
    )
    .await;
    let (c, text) = code(&out["rcpt"][0]);
    assert_eq!(c, 451, "{out}");
    assert!(text.starts_with("4.3.0"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_client_is_timed_out_and_connections_are_bounded() {
    let server = TestServer::start_with(|c| {
        c.lmtp.timeout_secs = 1;
        c.lmtp.max_connections = 1;
    })
    .await;
    let mut first = BufReader::new(TcpStream::connect(target(&server)).await.unwrap());
    let mut line = String::new();
    first.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line}");
    // A second connection while the first holds the only slot.
    let mut second = BufReader::new(TcpStream::connect(target(&server)).await.unwrap());
    let mut refused = String::new();
    second.read_line(&mut refused).await.unwrap();
    assert!(refused.starts_with("421 4.3.2"), "{refused}");
    // The first says nothing: after the timeout, 421 and closed.
    line.clear();
    tokio::time::timeout(Duration::from_secs(5), first.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert!(line.starts_with("421 4.4.2"), "{line}");
    line.clear();
    assert_eq!(first.read_line(&mut line).await.unwrap(), 0, "closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lmtp_settings_fail_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = pluto_gateway::Config {
        data_dir: dir.path().to_path_buf(),
        ..pluto_gateway::Config::default()
    };
    config.listen.imap = "127.0.0.1:0".into();
    config.listen.imaps = String::new();
    config.listen.lmtp = "127.0.0.1:0".into();
    config.lmtp.allow_networks = vec!["10.0.0.0/33".into()];
    pluto_auth::file::add_user(&config.users_file(), USER, "pw").unwrap();
    let error = pluto_gateway::cli::start_serve(config).await.err().unwrap();
    assert!(error.to_string().contains("lmtp.allow_networks"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_over_quota_gets_552_5_2_2_and_the_others_their_copy() {
    // Everyone may hold one message; carol's own line lifts that.
    let server = TestServer::start_with(|c| c.quota.messages = 1).await;
    server.add_user_with_extra_fields("carol", "pw", "userdb_quota_rule=*:messages=0");
    let to = target(&server);
    let args = [
        "--mode",
        "pipeline",
        "--from",
        "s@example.net",
        "--rcpt",
        "alice@example.org",
        "--rcpt",
        "carol@example.org",
    ];
    let message: &[u8] = b"Subject: q\r\n\r\nquota\r\n";
    let send = || lmtp_send(&to, &args, message);
    let out = send().await;
    assert_eq!(codes(&out["data"]), vec![250, 250], "{out}");
    let out = send().await;
    // RCPT is taken (the size is known only after the data); the answer after it says.
    assert_eq!(codes(&out["rcpt"]), vec![250, 250], "{out}");
    let (alice, text) = code(&out["data"][0]);
    assert_eq!(alice, 552, "{out}");
    assert!(text.starts_with("5.2.2 "), "{out}");
    assert!(text.contains("1 messages"), "names the limit: {out}");
    assert_eq!(code(&out["data"][1]).0, 250, "{out}");
    assert_eq!(inbox(&server).await.len(), 1, "nothing stored for alice");
    assert_eq!(messages_in(&server, "carol", "pw", "INBOX").await.len(), 2);

    // STORAGE counts the trace headers too: a message that fits bare may not.
    let server = TestServer::start_with(|c| c.quota.storage_kib = 1).await;
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.resize(1000, b'x');
    let out = lmtp_send(
        &target(&server),
        &["--from", "s@example.net", "--rcpt", "alice@example.org"],
        &big,
    )
    .await;
    assert_eq!(code(&out["data"][0]).0, 552, "{out}");
    assert!(code(&out["data"][0]).1.starts_with("5.2.2 "), "{out}");
    assert!(inbox(&server).await.is_empty());
}
