//! `pluto deliver`: one message on standard input, by LMTP's rules, with the exit codes
//! of sysexits.h — into a data dir no server holds (directly) and into a running
//! `pluto serve` (through its LMTP listener), read back over IMAP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use pluto_testkit::imap::Blocking as Client;
use pluto_testkit::serve::pluto_bin;
use support::{PASSWORD, Pluto, USER};

/// `pluto deliver ARGS` with `stdin`; its exit code and stderr.
fn deliver(pluto: &Pluto, args: &[&str], env: &[(&str, String)], stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(pluto_bin())
        .arg("deliver")
        .arg("--data-dir")
        .arg(pluto.data_dir())
        .args(args)
        .env("PLUTO_LISTEN__LMTP", pluto.lmtp.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MESSAGE: &[u8] =
    b"From sender@example.net Mon Feb  7 21:52:25 1994\nSubject: piped\nFrom: s@example.net\n\nline one\n.dot line\n";

#[test]
fn exit_codes_and_messages_with_and_without_a_running_server() {
    let mut pluto = support::start();
    let user = ["--user", USER, "--from", "s@example.net"];

    // The server runs and holds the Maildir: through its LMTP listener.
    let (code, err) = deliver(&pluto, &user, &[], MESSAGE);
    assert_eq!(code, 0, "{err}");
    let (code, err) = deliver(&pluto, &["--user", "ghost"], &[], MESSAGE);
    assert_eq!(code, 67, "{err}");
    let (code, err) = deliver(
        &pluto,
        &user,
        &[("PLUTO_LISTEN__LMTP", String::new())],
        MESSAGE,
    );
    assert_eq!(code, 75, "no LMTP listener to go through: {err}");
    let (code, err) = deliver(&pluto, &user, &[], b"");
    assert_eq!(code, 65, "empty: {err}");

    // No server: directly into the Maildir.
    pluto.kill();
    let (code, err) = deliver(&pluto, &user, &[], MESSAGE);
    assert_eq!(code, 0, "{err}");
    let (code, err) = deliver(&pluto, &["--user", "ghost"], &[], MESSAGE);
    assert_eq!(code, 67, "{err}");
    let (code, err) = deliver(
        &pluto,
        &["--user", USER, "--mailbox", "Nowhere"],
        &[],
        MESSAGE,
    );
    assert_eq!(code, 73, "{err}");
    let (code, err) = deliver(&pluto, &["--user", USER, "--mailbox", "Sent"], &[], MESSAGE);
    assert_eq!(code, 0, "{err}");
    let (code, err) = deliver(
        &pluto,
        &user,
        &[("PLUTO_LIMITS__APPEND_LIMIT", "20".into())],
        MESSAGE,
    );
    assert_eq!(code, 65, "too big: {err}");
    let (code, err) = deliver(
        &pluto,
        &["--user", USER, "--config", "/nonexistent/pluto.toml"],
        &[],
        MESSAGE,
    );
    assert_eq!(code, 78, "{err}");

    pluto.restart();
    let mut imap = Client::login(pluto.imap, USER, PASSWORD);
    let (_, exists) = imap.select("INBOX").unwrap();
    assert_eq!(exists, 2);
    let bodies = imap.fetch_bodies("1:*").unwrap();
    // The mbox From_ line is gone, line ends are CRLF, the dot line is intact. Through
    // the server the recipient went as an address (a domain is needed on the wire).
    let rest = b"Subject: piped\r\nFrom: s@example.net\r\n\r\nline one\r\n.dot line\r\n";
    for ((_, body), to) in bodies.iter().zip(["tester@localhost", "tester"]) {
        let mut expected =
            format!("Return-Path: <s@example.net>\r\nDelivered-To: {to}\r\n").into_bytes();
        expected.extend_from_slice(rest);
        assert_eq!(
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&expected)
        );
    }
    let (_, sent) = imap.select("Sent").unwrap();
    assert_eq!(sent, 1);
}

/// `pluto user quota NAME --data-dir DIR` with `env`; its exit code and stdout.
fn user_quota(pluto: &Pluto, env: &[(&str, String)]) -> (i32, String) {
    let out = Command::new(pluto_bin())
        .args(["user", "quota", USER, "--data-dir"])
        .arg(pluto.data_dir())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn over_quota_exits_73_and_pluto_user_quota_shows_limits_and_usage() {
    let mut pluto = support::start();
    let user = ["--user", USER, "--from", "s@example.net"];
    let two = [("PLUTO_QUOTA__MESSAGES", "2".to_owned())];
    // No server: directly into the Maildir, under the [quota] default of the environment.
    pluto.kill();
    for _ in 0..2 {
        let (code, err) = deliver(&pluto, &user, &two, MESSAGE);
        assert_eq!(code, 0, "{err}");
    }
    let (code, err) = deliver(&pluto, &user, &two, MESSAGE);
    assert_eq!(code, 73, "over quota: {err}");
    assert!(err.contains("quota of 2 messages"), "{err}");

    let (code, out) = user_quota(&pluto, &two);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("storage   no limit"), "{out}");
    assert!(
        out.contains("messages  2 messages (from the [quota] default)"),
        "{out}"
    );
    let size = deliver_size();
    assert!(
        out.contains(&format!("usage     {} bytes", 2 * size)) && out.contains(", 2 messages"),
        "{out}"
    );
    let (code, out) = user_quota(&pluto, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("messages  no limit"), "{out}");

    // With the server holding the Maildir: the limits, and where to see the usage.
    pluto.restart();
    let (code, out) = user_quota(&pluto, &two);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("GETQUOTAROOT"), "{out}");
    let mut imap = Client::login(pluto.imap, USER, PASSWORD);
    let (_, exists) = imap.select("INBOX").unwrap();
    assert_eq!(exists, 2, "the refused copy was not stored");
    let (code, out) = Command::new(pluto_bin())
        .args(["user", "quota", "ghost", "--data-dir"])
        .arg(pluto.data_dir())
        .output()
        .map(|o| {
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert_ne!(code, Some(0));
    assert!(out.contains("no such user"), "{out}");
}

/// The size of [`MESSAGE`] as stored directly (CRLF line ends, no mbox line, the two
/// trace headers for `tester`).
fn deliver_size() -> usize {
    let rest = b"Subject: piped\r\nFrom: s@example.net\r\n\r\nline one\r\n.dot line\r\n";
    "Return-Path: <s@example.net>\r\nDelivered-To: tester\r\n".len() + rest.len()
}
