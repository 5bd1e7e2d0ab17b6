//! Black-box tests of SORT (RFC 5256 3, SORT=DISPLAY of RFC 5957) and THREAD
//! (ORDEREDSUBJECT, REFERENCES: RFC 5256 4): the commands of
//! `testdata/dovecot/sort/sort.script` replayed on pluto, on the mailboxes
//! `session.py` there describes (300 messages of the test corpus, and `edge/`: base
//! subjects, missing and broken dates and addresses, duplicate IDs, loops), and
//! compared with Dovecot's answers (`sort.golden`, recorded by `record.sh`); and the
//! RFC's own examples of the base subject and of the answers' syntax.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Client, TestServer};
use tokio::net::TcpStream;

fn sort_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dovecot/sort")
}

/// Messages in `session.py`'s `corpus` mailbox.
const CORPUS: usize = 300;

/// `2024-MM-01 00:00:00 +0000` plus `hours`, as APPEND's date-time.
fn internal_date(month: u32, hours: usize) -> String {
    let day = 1 + hours / 24;
    let month_name = ["Jan", "Feb"][month as usize - 1];
    format!("{day:02}-{month_name}-2024 {:02}:00:00 +0000", hours % 24)
}

fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    for &b in data {
        if b == b'\n' && !out.ends_with(b"\r") {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The corpus as `session.py` reads it: gen_mbox.py's mbox split at `\nFrom ` lines.
fn corpus() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus.mbox");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/corpus/gen_mbox.py");
    let status = std::process::Command::new("python3")
        .arg(&generator)
        .arg(&out)
        .arg(CORPUS.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs the corpus generator");
    assert!(status.success());
    let mbox = std::fs::read(&out).unwrap();
    let mut messages = Vec::new();
    let mut rest: &[u8] = &mbox;
    loop {
        let next = rest.windows(6).position(|w| w == b"\nFrom ");
        let chunk = &rest[..next.map_or(rest.len(), |n| n + 1)];
        let body_start = chunk
            .iter()
            .position(|&b| b == b'\n')
            .map_or(chunk.len(), |n| n + 1);
        let mut body = chunk[body_start..].to_vec();
        if body.ends_with(b"\n\n") {
            body.pop();
        }
        messages.push(body);
        match next {
            Some(n) => rest = &rest[n + 1..],
            None => break,
        }
    }
    assert_eq!(messages.len(), CORPUS);
    messages
}

async fn append(raw: &mut Client<TcpStream>, mailbox: &str, date: &str, message: &[u8]) {
    let mut out = format!("APPEND {mailbox} () \"{date}\" {{{}+}}\r\n", message.len()).into_bytes();
    out.extend_from_slice(message);
    out.extend_from_slice(b"\r\n");
    let r = raw.cmd_bytes(&out).await;
    assert!(r.ok(), "{r:?}");
}

/// The two mailboxes of `session.py`.
async fn setup(server: &TestServer) -> Client<TcpStream> {
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE corpus").await.ok());
    for (i, message) in corpus().iter().enumerate() {
        append(
            &mut raw,
            "corpus",
            &internal_date(1, (i * 37) % 97),
            &crlf(message),
        )
        .await;
    }
    assert!(raw.cmd("CREATE edge").await.ok());
    let mut names: Vec<_> = std::fs::read_dir(sort_dir().join("edge"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for (i, name) in names.iter().enumerate() {
        let message = crlf(&std::fs::read(name).unwrap());
        append(&mut raw, "edge", &internal_date(2, (i * 5) % 7), &message).await;
    }
    raw
}

/// Lines of SELECT/EXAMINE that are the server's own (UIDVALIDITY, texts) are left out
/// of the comparison; of the others, trailing blanks (Dovecot's `* THREAD ` for no
/// thread; RFC 5256's syntax has no blank there).
fn comparable(line: &str) -> Option<String> {
    let own = [
        "UIDVALIDITY",
        "PERMANENTFLAGS",
        "* FLAGS",
        "[CLOSED]",
        "UNSEEN",
        "UIDNEXT",
    ];
    // MAILBOXID (RFC 8474): pluto's, which Dovecot 2.3 does not have.
    let pluto_only = ["S: * OK [HIGHESTMODSEQ", "S: * OK [MAILBOXID"];
    if own.iter().any(|o| line.contains(o)) || pluto_only.iter().any(|p| line.starts_with(p)) {
        return None;
    }
    Some(line.trim_end().to_owned())
}

#[tokio::test]
async fn answers_as_dovecot_does_to_the_sort_script() {
    let server = TestServer::start().await;
    let mut raw = setup(&server).await;
    let script = std::fs::read_to_string(sort_dir().join("sort.script")).unwrap();
    let golden = std::fs::read_to_string(sort_dir().join("sort.golden")).unwrap();
    let golden: Vec<String> = golden
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(comparable)
        .collect();
    let ours = pluto_testkit::golden::replay_script(&mut raw, &script, <[String]>::to_vec).await;
    let ours: Vec<String> = ours.lines().filter_map(comparable).collect();
    let mut command = "";
    for (a, b) in ours.iter().zip(&golden) {
        if a.starts_with("C: ") {
            command = a;
        }
        assert_eq!(a, b, "pluto's answer to `{command}` differs from Dovecot's");
    }
    assert_eq!(ours.len(), golden.len(), "{}", ours.join("\n"));
}

/// Subjects in the RFC's forms, compared by base subject (RFC 5256 2.1): all but the
/// first are one subject; SORT leaves equal ones in mailbox order, ORDEREDSUBJECT
/// orders a thread by date.
#[tokio::test]
async fn subject_sort_uses_the_base_subject() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE s").await.ok());
    let subjects = [
        ("b", "Mon, 1 Jan 2024 00:00:05 +0000"),
        ("Re: a", "Mon, 1 Jan 2024 00:00:04 +0000"),
        ("[list] RE: Fwd: a (fwd)", "Mon, 1 Jan 2024 00:00:03 +0000"),
        ("[Fwd: =?utf-8?q?A?=]", "Mon, 1 Jan 2024 00:00:02 +0000"),
        ("Re[3]: \t A", "Mon, 1 Jan 2024 00:00:01 +0000"),
    ];
    for (subject, date) in subjects {
        let m = format!("Subject: {subject}\r\nDate: {date}\r\n\r\nx\r\n");
        assert!(raw.append("s", "", m.as_bytes()).await.ok());
    }
    assert!(raw.cmd("SELECT s").await.ok());
    let r = raw.cmd("SORT (SUBJECT) UTF-8 ALL").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* SORT"), vec!["* SORT 2 3 4 5 1"]);
    // ORDEREDSUBJECT: one thread of the four, the earliest first, and "b" alone.
    let r = raw.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD (5 (4)(3)(2))(1)"]);
}

/// RFC 5256 4's syntax: a single reply is written in line, more are nested lists,
/// a missing parent is a list of lists; UID THREAD answers UIDs.
#[tokio::test]
async fn thread_references_nests_as_the_rfc_writes_it() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE t").await.ok());
    let messages = [
        // uid 1, 2: filler, expunged below, so numbers and UIDs differ.
        ("f1", "<f1@x>", "", 0),
        ("f2", "<f2@x>", "", 0),
        ("root", "<r@x>", "", 1),
        ("Re: root", "<a@x>", "<r@x>", 2),
        ("Re: root", "<b@x>", "<r@x> <a@x>", 3),
        ("Re: root", "<c@x>", "<r@x>", 4),
        ("Re: lost", "<d@x>", "<lost@x>", 5),
        ("Re: lost", "<e@x>", "<lost@x>", 6),
    ];
    for (subject, id, refs, minute) in messages {
        let refs = if refs.is_empty() {
            String::new()
        } else {
            format!("References: {refs}\r\n")
        };
        let m = format!(
            "Subject: {subject}\r\nMessage-ID: {id}\r\n{refs}Date: Mon, 1 Jan 2024 00:{minute:02}:00 +0000\r\n\r\nx\r\n"
        );
        assert!(raw.append("t", "", m.as_bytes()).await.ok());
    }
    assert!(raw.cmd("SELECT t").await.ok());
    assert!(raw.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await.ok());
    assert!(raw.cmd("EXPUNGE").await.ok());
    let r = raw.cmd("THREAD REFERENCES UTF-8 ALL").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD (1 (2 3)(4))((5)(6))"]);
    let r = raw.cmd("UID THREAD REFERENCES UTF-8 ALL").await;
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD (3 (4 5)(6))((7)(8))"]);
    // The search criteria choose the messages first: without the root, its replies
    // hang under a dummy.
    let r = raw.cmd("THREAD REFERENCES UTF-8 2:4").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD ((2 3)(4))"]);
}

#[tokio::test]
async fn sort_and_thread_are_advertised_and_need_a_selected_mailbox() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let caps = raw.cmd("CAPABILITY").await;
    for cap in [
        "SORT",
        "SORT=DISPLAY",
        "THREAD=ORDEREDSUBJECT",
        "THREAD=REFERENCES",
    ] {
        assert!(
            caps.untagged[0].split(' ').any(|c| c == cap),
            "{cap} missing: {caps:?}"
        );
    }
    assert!(raw.cmd("SORT (DATE) UTF-8 ALL").await.bad());
    assert!(raw.cmd("THREAD REFERENCES UTF-8 ALL").await.bad());
}

/// RFC 7162 3.1.5: a SORT with a MODSEQ search key ends with the highest modseq of
/// the messages it returns (and none when it returns none).
#[tokio::test]
async fn a_sort_on_modseq_tells_the_highest_modseq_sorted() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE m").await.ok());
    for subject in ["b", "a", "c"] {
        let m = format!("Subject: {subject}\r\n\r\nx\r\n");
        assert!(raw.append("m", "", m.as_bytes()).await.ok());
    }
    assert!(raw.cmd("SELECT m").await.ok());
    assert!(raw.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)").await.ok());
    let fetched = raw.cmd("FETCH 1:3 (MODSEQ)").await;
    let modseq = |n: u32| -> u64 {
        let line = fetched.find(&format!("* {n} FETCH")).unwrap();
        let at = line.find("MODSEQ (").unwrap() + "MODSEQ (".len();
        line[at..].split(')').next().unwrap().parse().unwrap()
    };
    let highest = modseq(1).max(modseq(3));
    assert!(modseq(2) > highest, "the STORE raised message 2's modseq");
    // Messages 1 and 3 only: their modseq, not message 2's.
    let r = raw.cmd("SORT (SUBJECT) UTF-8 MODSEQ 1 NOT 2").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(
        r.lines("* SORT"),
        vec![format!("* SORT 1 3 (MODSEQ {highest})")]
    );
    let r = raw.cmd("SORT (SUBJECT) UTF-8 MODSEQ 1").await;
    assert_eq!(
        r.lines("* SORT"),
        vec![format!("* SORT 2 1 3 (MODSEQ {})", modseq(2))]
    );
    let r = raw
        .cmd(&format!("SORT (SUBJECT) UTF-8 MODSEQ {}", modseq(2) + 1))
        .await;
    assert_eq!(r.lines("* SORT"), vec!["* SORT"]);
}

/// RFC 5182 2.1: SORT and THREAD take `$`; and their search programs nest as deep as
/// SEARCH's (`limits.max_nesting`), past imap-codec's own limit.
#[tokio::test]
async fn sort_and_thread_take_the_saved_result_and_deep_programs() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE d").await.ok());
    for (subject, minute) in [("c", 3), ("a", 1), ("b", 2), ("Re: a", 4)] {
        let m = format!(
            "Subject: {subject}\r\nDate: Mon, 1 Jan 2024 00:0{minute}:00 +0000\r\n\r\nx\r\n"
        );
        assert!(raw.append("d", "", m.as_bytes()).await.ok());
    }
    assert!(raw.cmd("SELECT d").await.ok());
    assert!(raw.cmd("SEARCH RETURN (SAVE) NOT SUBJECT b").await.ok());
    let r = raw.cmd("SORT (SUBJECT) UTF-8 $").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* SORT"), vec!["* SORT 2 4 1"]);
    let r = raw.cmd("UID SORT (REVERSE DATE) UTF-8 $ NOT 4").await;
    assert_eq!(r.lines("* SORT"), vec!["* SORT 1 2"]);
    let r = raw.cmd("THREAD ORDEREDSUBJECT UTF-8 $").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD (2 4)(1)"]);
    // Twelve ORs: deeper than imap-codec parses.
    let mut program = String::new();
    for i in 0..12 {
        program.push_str(&format!("OR SUBJECT nothing{i} "));
    }
    program.push_str("SUBJECT a");
    let r = raw.cmd(&format!("SORT (DATE) UTF-8 {program}")).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* SORT"), vec!["* SORT 2 4"]);
    let r = raw.cmd(&format!("THREAD REFERENCES UTF-8 {program}")).await;
    assert_eq!(r.lines("* THREAD"), vec!["* THREAD (2 4)"]);
    // The frame's errors are BAD, as imap-codec's.
    assert!(raw.cmd("SORT (NOKEY) UTF-8 $").await.bad());
    assert!(raw.cmd("THREAD NOALG UTF-8 $").await.bad());
}
