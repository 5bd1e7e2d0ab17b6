//! Black-box tests of mail that other programs drop into a Maildir's `new/` (an MDA,
//! procmail, a script): bare LFs are served as CRLF with the CRLF size, an empty file
//! is no message, and IDLE sees a dropped file at once, not at its 30 s poll.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestServer;

fn inbox(server: &TestServer) -> PathBuf {
    server.dir.path().join("mail").join(common::USER)
}

/// Delivers like a Maildir MDA: written in tmp/, then renamed into new/.
fn drop_into_new(maildir: &Path, name: &str, bytes: &[u8]) {
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
}

const LF_MESSAGE: &[u8] =
    b"From: a@example.com\nTo: b@example.org\nSubject: unix line ends\n\nline one\nline two\n";

fn crlf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes)
        .replace('\n', "\r\n")
        .into_bytes()
}

#[tokio::test]
async fn a_dropped_file_with_bare_lfs_is_served_with_crlf_and_its_crlf_size() {
    let server = TestServer::start().await;
    let mut raw = server.login().await; // sets up the Maildir
    // Named as Maildir++ MDAs do, with the (LF) size in it.
    let name = format!("1700000000.M1P2.host,S={}", LF_MESSAGE.len());
    drop_into_new(&inbox(&server), &name, LF_MESSAGE);
    let r = raw.cmd("SELECT INBOX").await;
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    let expected = crlf(LF_MESSAGE);
    let r = raw.cmd("FETCH 1 (RFC822.SIZE BODY.PEEK[])").await;
    assert!(r.ok(), "{r:?}");
    let line = r.lines("* 1 FETCH").join("\n");
    assert!(
        line.contains(&format!("RFC822.SIZE {}", expected.len())),
        "{line}"
    );
    let body = format!(
        "BODY[] {{{}}}\r\n{}",
        expected.len(),
        String::from_utf8_lossy(&expected)
    );
    assert!(line.contains(&body), "{line:?}");
    // Parts agree with the whole: the text part is CRLF too.
    let r = raw.cmd("FETCH 1 BODY.PEEK[TEXT]").await;
    assert!(r.has("{20}\r\nline one\r\nline two\r\n"), "{r:?}");
    // The file in cur/ is the converted one: what other Maildir readers see matches.
    let cur: Vec<_> = std::fs::read_dir(inbox(&server).join("cur"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(cur.len(), 1);
    assert_eq!(std::fs::read(cur[0].path()).unwrap(), expected);
    // Its name states the CRLF size, not the stale LF one.
    let file = cur[0].file_name().into_string().unwrap();
    assert!(file.contains(&format!(",S={}", expected.len())), "{file}");
}

#[tokio::test]
async fn an_empty_file_in_new_is_not_a_message() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    drop_into_new(&inbox(&server), "1700000001.empty.host", b"");
    drop_into_new(&inbox(&server), "1700000002.real.host", &crlf(LF_MESSAGE));
    let r = raw.cmd("SELECT INBOX").await;
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    let r = raw.cmd("FETCH 1:* RFC822.SIZE").await;
    assert_eq!(r.lines("* ").len(), 1, "{r:?}");
    assert!(!r.has("RFC822.SIZE 0"), "{r:?}");
    // Left alone where it was.
    assert!(
        inbox(&server)
            .join("new")
            .join("1700000001.empty.host")
            .exists()
    );
}

#[tokio::test]
async fn idle_sees_a_dropped_file_within_moments() {
    let server = TestServer::start().await;
    let mut raw = server.select("INBOX").await;
    let tag = raw.tag();
    raw.send(format!("{tag} IDLE\r\n").as_bytes()).await;
    assert!(raw.line().await.starts_with('+'));
    drop_into_new(&inbox(&server), "1700000003.idle.host", &crlf(LF_MESSAGE));
    // The poll would take 30 s; the directory watch takes well under a second.
    let mut seen = None;
    while let Some(line) = raw.maybe_line(Duration::from_secs(10)).await {
        if line == "* 1 EXISTS" {
            seen = Some(line);
            break;
        }
    }
    assert_eq!(seen.as_deref(), Some("* 1 EXISTS"));
    raw.send(b"DONE\r\n").await;
    let r = raw.read_reply(&tag).await;
    assert!(r.ok(), "{r:?}");
}
