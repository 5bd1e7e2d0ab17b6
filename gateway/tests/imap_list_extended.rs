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
use tokio::net::TcpStream;

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dovecot/extensions")
}

/// The setup `record.py` makes (after a new user's default mailboxes).
async fn setup(server: &TestServer) -> Client<TcpStream> {
    let mut raw = server.login().await;
    for name in [
        "Fruit",
        "Fruit/Apple",
        "Fruit/Banana",
        "Fruit/Peach",
        "Tofu",
        "Vegetable",
        "Vegetable/Broccoli",
        "Vegetable/Corn",
    ] {
        let r = raw.cmd(&format!("CREATE {name}")).await;
        assert!(r.ok(), "{r:?}");
    }
    for name in [
        "INBOX",
        "Fruit/Banana",
        "Fruit/Peach",
        "Vegetable",
        "Vegetable/Broccoli",
    ] {
        assert!(raw.cmd(&format!("SUBSCRIBE {name}")).await.ok());
    }
    assert!(raw.cmd("DELETE Fruit/Peach").await.ok());
    for i in 1..=3 {
        let flags = if i == 1 { "\\Seen" } else { "" };
        let body = format!("Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n");
        assert!(raw.append("INBOX", flags, body.as_bytes()).await.ok());
    }
    let r = raw
        .append("Fruit/Banana", "\\Deleted", b"Subject: b\r\n\r\nbanana\r\n")
        .await;
    assert!(r.ok(), "{r:?}");
    raw
}

/// The untagged lines as `record.py` normalises them.
fn normalised(lines: &[String]) -> Vec<String> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for line in lines {
        let mut line = line.clone();
        for item in ["UIDVALIDITY ", "HIGHESTMODSEQ "] {
            if let Some(at) = line.find(item) {
                let start = at + item.len();
                let end = line[start..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(line.len(), |e| start + e);
                line.replace_range(start..end, "N");
            }
        }
        match groups.last_mut() {
            Some(group) if line.starts_with("* STATUS ") => group.push(line),
            _ => groups.push(vec![line]),
        }
    }
    let key = |g: &Vec<String>| g[0].rsplit("\"/\" ").next().unwrap_or_default().to_owned();
    groups.sort_by_key(key);
    groups.concat()
}

#[tokio::test]
async fn answers_as_dovecot_does_to_the_list_script() {
    let server = TestServer::start().await;
    let mut raw = setup(&server).await;
    let script = std::fs::read_to_string(golden_dir().join("list.script")).unwrap();
    let golden = std::fs::read_to_string(golden_dir().join("list.golden")).unwrap();
    let ours = common::replay_script(&mut raw, &script, normalised).await;
    common::assert_golden(&ours, &golden);
}
