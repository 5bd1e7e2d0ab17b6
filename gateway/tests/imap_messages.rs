//! Black-box tests of the message commands: APPEND (APPENDUID, TRYCREATE, flags and
//! dates), FETCH (byte-exact bodies, sizes, every item, sections, partials, the macros,
//! \Seen side effects), STORE, SEARCH (many keys), COPY and MOVE (COPYUID), EXPUNGE and
//! UID EXPUNGE (sequence numbers after expunges), CLOSE, UNSELECT and CHECK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Reply, TestServer, message};
use futures::TryStreamExt;
use tokio::net::TcpStream;

async fn ok(raw: &mut Client<TcpStream>, cmd: &str) -> Reply {
    let r = raw.cmd(cmd).await;
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

/// A two-part MIME message for section tests.
fn multipart() -> Vec<u8> {
    b"From: Carol <carol@example.net>\r\n\
To: Dave <dave@example.org>, Erin <erin@example.org>\r\n\
Cc: Frank <frank@example.com>\r\n\
Subject: =?UTF-8?B?UmVwb3J0IMOpdMOp?=\r\n\
Date: Tue, 15 Mar 2022 08:30:00 +0100\r\n\
Message-ID: <multi@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\
\r\n\
preamble\r\n\
--XYZ\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Quarterly numbers attached. Caf\xc3\xa9.\r\n\
--XYZ\r\n\
Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
Content-Disposition: attachment; filename=\"data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--XYZ--\r\n"
        .to_vec()
}

/// Applies untagged `* n EXPUNGE` lines to the client's list of UIDs, as a client must.
/// An `EXISTS` among them must agree with the count so far.
fn apply_expunges(uids: &mut Vec<u32>, reply: &Reply) {
    for line in &reply.untagged {
        if let Some(n) = line
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(" EXPUNGE"))
        {
            let n: usize = n.parse().unwrap();
            assert!(
                n >= 1 && n <= uids.len(),
                "EXPUNGE {n} of {} in {reply:?}",
                uids.len()
            );
            uids.remove(n - 1);
        } else if let Some(n) = line
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(" EXISTS"))
        {
            assert_eq!(n.parse::<usize>().unwrap(), uids.len(), "{reply:?}");
        }
    }
}

fn expunge_count(reply: &Reply) -> usize {
    reply
        .untagged
        .iter()
        .filter(|l| l.ends_with(" EXPUNGE"))
        .count()
}

async fn uids(raw: &mut Client<TcpStream>) -> Vec<u32> {
    let r = ok(raw, "FETCH 1:* UID").await;
    let mut out = Vec::new();
    for (i, line) in r.lines("* ").iter().enumerate() {
        let (seq, rest) = line[2..].split_once(" FETCH (UID ").unwrap();
        assert_eq!(seq.parse::<usize>().unwrap(), i + 1, "{r:?}");
        out.push(rest.trim_end_matches(')').parse().unwrap());
    }
    out
}

#[tokio::test]
async fn append_answers_appenduid_and_fetch_returns_the_exact_bytes() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let bodies: Vec<Vec<u8>> = vec![
        message("plain", "Hello, world."),
        multipart(),
        // 8-bit, a NUL-free binary-ish byte range, bare LF inside, no final CRLF.
        b"Subject: odd\r\n\r\n\xff\xfe 8-bit \xe2\x82\xac\nbare LF\r\nno final newline".to_vec(),
        // Only headers, no body.
        b"Subject: headers only\r\n".to_vec(),
    ];
    let r = ok(&mut raw, "STATUS INBOX (UIDVALIDITY)").await;
    let validity: u32 = r.untagged[0]
        .split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    for (i, body) in bodies.iter().enumerate() {
        let expect_uid = i + 1;
        let r = raw.append("INBOX", "", body).await;
        assert!(r.ok(), "{r:?}");
        assert_eq!(
            r.code(),
            Some(format!("APPENDUID {validity} {expect_uid}")),
            "{r:?}"
        );
    }

    let mut session = server.session().await;
    let mb = session.select("INBOX").await.unwrap();
    assert_eq!(mb.exists, bodies.len() as u32);
    assert_eq!(mb.uid_validity, Some(validity));
    let fetches: Vec<_> = session
        .fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fetches.len(), bodies.len());
    for (i, f) in fetches.iter().enumerate() {
        assert_eq!(f.message, i as u32 + 1);
        assert_eq!(f.uid, Some(i as u32 + 1));
        assert_eq!(
            f.body(),
            Some(&bodies[i][..]),
            "BODY[] of message {}",
            i + 1
        );
        assert_eq!(
            f.size,
            Some(bodies[i].len() as u32),
            "RFC822.SIZE of {}",
            i + 1
        );
    }
    // RFC822 is BODY[] too, and sets \Seen.
    let fetches: Vec<_> = session
        .fetch("1", "RFC822")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fetches[0].body(), Some(&bodies[0][..]));
}

#[tokio::test]
async fn a_large_message_round_trips() {
    // Far above the 64 KiB line limit, far below APPENDLIMIT: a literal is not a line.
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let mut large = message("large", "");
    for i in 0..20_000 {
        large.extend_from_slice(format!("line {i:05} of a large message body\r\n").as_bytes());
    }
    for literal in ["", "+"] {
        let tag = raw.tag();
        raw.send(format!("{tag} APPEND INBOX {{{}{literal}}}\r\n", large.len()).as_bytes())
            .await;
        if literal.is_empty() {
            let cont = raw.line().await;
            assert!(cont.starts_with('+'), "{cont}");
        }
        raw.send(&large).await;
        raw.send(b"\r\n").await;
        // Read line by line so that a BYE is shown rather than lost with the connection.
        let mut seen = Vec::new();
        loop {
            match raw.maybe_line(std::time::Duration::from_secs(20)).await {
                Some(line) if line.starts_with(&format!("{tag} ")) => {
                    assert!(
                        line.contains(" OK "),
                        "APPEND of {} bytes: {line} after {seen:?}",
                        large.len()
                    );
                    break;
                }
                Some(line) => seen.push(line),
                None => panic!(
                    "APPEND of {} bytes (literal {{n{literal}}}): connection closed or silent after {seen:?}",
                    large.len()
                ),
            }
        }
    }
    let mut session = server.session().await;
    session.select("INBOX").await.unwrap();
    let fetches: Vec<_> = session
        .fetch("1:2", "(RFC822.SIZE BODY.PEEK[])")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fetches.len(), 2);
    for f in &fetches {
        assert_eq!(f.size, Some(large.len() as u32));
        assert!(
            f.body() == Some(&large[..]),
            "BODY[] differs from what was appended"
        );
    }
}

#[tokio::test]
async fn async_imap_append_then_fetch() {
    let server = TestServer::start().await;
    let mut session = server.session().await;
    let body = message("via async-imap", "body text");
    session
        .append("Drafts", Some("(\\Draft \\Seen)"), None, &body)
        .await
        .unwrap();
    session.select("Drafts").await.unwrap();
    let fetches: Vec<_> = session
        .fetch("1", "(FLAGS BODY.PEEK[] ENVELOPE)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let f = &fetches[0];
    assert_eq!(f.body(), Some(&body[..]));
    let flags: Vec<_> = f.flags().collect();
    assert!(flags.contains(&async_imap::types::Flag::Draft), "{flags:?}");
    assert!(flags.contains(&async_imap::types::Flag::Seen), "{flags:?}");
    let env = f.envelope().unwrap();
    assert_eq!(env.subject.as_deref(), Some(&b"via async-imap"[..]));
    assert_eq!(
        env.message_id.as_deref(),
        Some(&b"<via async-imap@example.com>"[..])
    );
}

#[tokio::test]
async fn append_errors() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.append("NoSuchBox", "", &message("x", "y")).await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("TRYCREATE"), "{r:?}");
    // \Recent cannot be set by a client.
    let r = raw.append("INBOX", "\\Recent", &message("x", "y")).await;
    assert!(!r.ok(), "{r:?}");
    // Bad date.
    let tag = raw.tag();
    let body = message("d", "e");
    raw.send(
        format!(
            "{tag} APPEND INBOX \"31-Foo-2020 10:00:00 +0000\" {{{}}}\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let first = raw.line().await;
    if first.starts_with('+') {
        raw.send(&body).await;
        raw.send(b"\r\n").await;
        let r = raw.read_reply(&tag).await;
        assert!(r.bad(), "{r:?}");
    } else {
        assert!(first.starts_with(&format!("{tag} BAD")), "{first}");
    }
    // The session goes on and nothing was appended.
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 0)"), "{r:?}");
}

#[tokio::test]
async fn append_keeps_flags_and_internaldate() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let body = message("dated", "x");
    let tag = raw.tag();
    raw.send(
        format!(
            "{tag} APPEND INBOX (\\Flagged $Label1) \"15-Jun-2021 12:34:56 +0200\" {{{}}}\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(raw.line().await.starts_with('+'));
    raw.send(&body).await;
    raw.send(b"\r\n").await;
    let r = raw.read_reply(&tag).await;
    assert!(r.ok(), "{r:?}");
    ok(&mut raw, "SELECT INBOX").await;
    let r = ok(&mut raw, "FETCH 1 (FLAGS INTERNALDATE)").await;
    let line = &r.untagged[0];
    assert!(
        line.contains("\\Flagged") && line.contains("$Label1"),
        "{line}"
    );
    assert!(!line.contains("\\Seen"), "{line}");
    // The same instant; the zone may be normalised.
    let date = line
        .split("INTERNALDATE \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let parsed = chrono::DateTime::parse_from_str(date, "%d-%b-%Y %H:%M:%S %z").unwrap();
    let expected = chrono::DateTime::parse_from_rfc3339("2021-06-15T12:34:56+02:00").unwrap();
    assert_eq!(parsed, expected, "{line}");
    // The SELECT after APPEND lists the new keyword.
    let r = ok(&mut raw, "SELECT INBOX").await;
    assert!(r.find("* FLAGS (").unwrap().contains("$Label1"), "{r:?}");
}

#[tokio::test]
async fn fetch_items_sections_and_partials() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let plain = message("first", "hello world");
    let multi = multipart();
    raw.append("INBOX", "\\Seen", &plain).await;
    raw.append("INBOX", "\\Seen", &multi).await;
    ok(&mut raw, "SELECT INBOX").await;

    let r = ok(&mut raw, "FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]").await;
    assert_eq!(
        r.untagged[0],
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {51}\r\nFrom: Alice <alice@example.com>\r\nSubject: first\r\n\r\n)"
    );
    let r = ok(&mut raw, "FETCH 1 BODY.PEEK[]<0.10>").await;
    assert_eq!(r.untagged[0], "* 1 FETCH (BODY[]<0> {10}\r\nFrom: Alic)");
    let r = ok(&mut raw, "FETCH 1 BODY.PEEK[TEXT]<5.100>").await;
    assert_eq!(r.untagged[0], "* 1 FETCH (BODY[TEXT]<5> {8}\r\n world\r\n)");
    // A partial past the end is empty.
    let r = ok(&mut raw, "FETCH 1 BODY.PEEK[]<100000.10>").await;
    assert!(
        r.untagged[0].contains("{0}\r\n") || r.untagged[0].contains("\"\""),
        "{r:?}"
    );
    let r = ok(&mut raw, "FETCH 1 ENVELOPE").await;
    assert_eq!(
        r.untagged[0],
        "* 1 FETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"first\" ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Bob\" NIL \"bob\" \"example.org\")) NIL NIL NIL \"<first@example.com>\"))"
    );
    let r = ok(&mut raw, "FETCH 1 BODYSTRUCTURE").await;
    assert_eq!(
        r.untagged[0].to_ascii_lowercase(),
        "* 1 fetch (bodystructure (\"text\" \"plain\" (\"charset\" \"us-ascii\") nil nil \"7bit\" 13 1 nil nil nil nil))"
    );
    let r = ok(&mut raw, "FETCH 1 RFC822.HEADER").await;
    let header_len = plain.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        r.untagged[0].contains(&format!("RFC822.HEADER {{{header_len}}}")),
        "{r:?}"
    );
    let r = ok(&mut raw, "FETCH 1 (RFC822.SIZE INTERNALDATE UID FLAGS)").await;
    assert!(
        r.untagged[0].contains(&format!("RFC822.SIZE {}", plain.len())),
        "{r:?}"
    );
    assert!(r.untagged[0].contains("UID 1"), "{r:?}");

    // Multipart sections.
    let r = ok(&mut raw, "FETCH 2 BODY.PEEK[1]").await;
    assert!(
        r.untagged[0].ends_with("{34}\r\nQuarterly numbers attached. Caf\u{e9}.)"),
        "{r:?}"
    );
    let r = ok(&mut raw, "FETCH 2 BODY.PEEK[2]").await;
    assert!(
        r.untagged[0].ends_with("{16}\r\nAAECAwQFBgcICQ==)"),
        "{r:?}"
    );
    let r = ok(&mut raw, "FETCH 2 BODY.PEEK[2.MIME]").await;
    assert!(
        r.untagged[0].contains("Content-Disposition: attachment"),
        "{r:?}"
    );
    let r = ok(&mut raw, "FETCH 2 BODYSTRUCTURE").await;
    let bs = r.untagged[0].to_ascii_lowercase();
    assert!(bs.contains("\"mixed\" (\"boundary\" \"xyz\")"), "{bs}");
    assert!(bs.contains("(\"filename\" \"data.bin\")"), "{bs}");
    let r = ok(&mut raw, "FETCH 2 BODY").await;
    assert!(r.untagged[0].contains("BODY ("), "{r:?}");
    let r = ok(&mut raw, "FETCH 2 ENVELOPE").await;
    assert!(
        r.untagged[0].contains("\"=?UTF-8?B?UmVwb3J0IMOpdMOp?=\""),
        "{r:?}"
    );
    assert!(
        r.untagged[0].contains(
            "((\"Dave\" NIL \"dave\" \"example.org\")(\"Erin\" NIL \"erin\" \"example.org\"))"
        ),
        "{r:?}"
    );
    // A section that does not exist is empty, not an error.
    let r = ok(&mut raw, "FETCH 2 BODY.PEEK[9]").await;
    assert!(r.untagged[0].contains("BODY[9]"), "{r:?}");

    // Macros.
    let r = ok(&mut raw, "FETCH 1 FAST").await;
    for item in ["FLAGS", "INTERNALDATE", "RFC822.SIZE"] {
        assert!(r.untagged[0].contains(item), "{r:?}");
    }
    assert!(!r.untagged[0].contains("ENVELOPE"), "{r:?}");
    let r = ok(&mut raw, "FETCH 1 ALL").await;
    assert!(r.untagged[0].contains("ENVELOPE"), "{r:?}");
    assert!(!r.untagged[0].contains("BODY"), "{r:?}");
    let r = ok(&mut raw, "FETCH 1 FULL").await;
    assert!(
        r.untagged[0].contains("ENVELOPE") && r.untagged[0].contains("BODY ("),
        "{r:?}"
    );

    // UID FETCH names the UID even when not asked.
    let r = ok(&mut raw, "UID FETCH 2 FLAGS").await;
    assert!(
        r.untagged[0].starts_with("* 2 FETCH (") && r.untagged[0].contains("UID 2"),
        "{r:?}"
    );
    // UID FETCH of UIDs that do not exist is empty and OK; a sequence number past the end is not.
    let r = ok(&mut raw, "UID FETCH 50:60 FLAGS").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    let r = raw.cmd("FETCH 3 FLAGS").await;
    assert!(r.bad() || r.no(), "{r:?}");
    let r = ok(&mut raw, "FETCH 2:* UID").await;
    assert_eq!(r.untagged, ["* 2 FETCH (UID 2)"]);
    let r = ok(&mut raw, "UID FETCH 2:* UID").await;
    assert_eq!(r.untagged, ["* 2 FETCH (UID 2)"]);
    // `n:*` with n above the highest UID still names the last message (RFC 3501 6.4.8).
    let r = ok(&mut raw, "UID FETCH 99:* UID").await;
    assert_eq!(r.untagged, ["* 2 FETCH (UID 2)"], "{r:?}");
}

#[tokio::test]
async fn fetching_a_body_sets_seen_and_peek_does_not() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for i in 0..4 {
        raw.append("INBOX", "", &message(&format!("m{i}"), "body"))
            .await;
    }
    ok(&mut raw, "SELECT INBOX").await;
    ok(&mut raw, "FETCH 1 BODY.PEEK[]").await;
    ok(&mut raw, "FETCH 1 RFC822.HEADER").await;
    ok(&mut raw, "FETCH 1 RFC822.SIZE").await;
    let r = ok(&mut raw, "FETCH 1 FLAGS").await;
    assert_eq!(r.untagged, ["* 1 FETCH (FLAGS (\\Recent))"]);

    // BODY[] sets \Seen and the response says so.
    let r = ok(&mut raw, "FETCH 2 BODY[TEXT]").await;
    assert!(r.untagged[0].contains("FLAGS (\\Seen \\Recent)"), "{r:?}");
    let r = ok(&mut raw, "FETCH 3 RFC822.TEXT").await;
    assert!(r.untagged[0].contains("\\Seen"), "{r:?}");
    assert!(
        r.untagged[0].contains("RFC822.TEXT {6}\r\nbody\r\n"),
        "{r:?}"
    );
    let r = ok(&mut raw, "FETCH 4 RFC822").await;
    assert!(r.untagged[0].contains("\\Seen"), "{r:?}");
    let r = ok(&mut raw, "SEARCH UNSEEN").await;
    assert_eq!(r.search(), [1]);
}

#[tokio::test]
async fn store_flags_in_every_form() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for i in 0..3 {
        raw.append("INBOX", "", &message(&format!("m{i}"), "body"))
            .await;
    }
    ok(&mut raw, "SELECT INBOX").await;
    let r = ok(&mut raw, "STORE 1:2 +FLAGS (\\Flagged \\Seen)").await;
    assert_eq!(r.untagged.len(), 2, "{r:?}");
    for (i, line) in r.lines("* ").iter().enumerate() {
        assert!(
            line.starts_with(&format!("* {} FETCH (FLAGS (", i + 1)),
            "{line}"
        );
        assert!(
            line.contains("\\Seen") && line.contains("\\Flagged"),
            "{line}"
        );
    }
    let r = ok(&mut raw, "STORE 2 -FLAGS (\\Flagged)").await;
    assert_eq!(r.untagged, ["* 2 FETCH (FLAGS (\\Seen \\Recent))"]);
    // A keyword new to the mailbox comes with FLAGS and PERMANENTFLAGS first.
    let r = ok(&mut raw, "STORE 3 FLAGS ($Todo \\Answered)").await;
    let fetches: Vec<&String> = r.untagged.iter().filter(|l| l.contains("FETCH")).collect();
    assert_eq!(fetches.len(), 1, "{r:?}");
    assert!(
        fetches[0].contains("$Todo") && fetches[0].contains("\\Answered"),
        "{r:?}"
    );
    assert!(
        r.untagged[0].starts_with("* FLAGS") && r.untagged[0].contains("$Todo"),
        "{r:?}"
    );
    // .SILENT: no FETCH back.
    let r = ok(&mut raw, "STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    // UID STORE answers with the UID.
    let r = ok(&mut raw, "UID STORE 3 -FLAGS ($Todo)").await;
    assert_eq!(r.untagged.len(), 1, "{r:?}");
    assert!(
        r.untagged[0].starts_with("* 3 FETCH (") && r.untagged[0].contains("UID 3"),
        "{r:?}"
    );
    assert!(!r.untagged[0].contains("$Todo"), "{r:?}");
    // UID STORE on a missing UID does nothing and is OK.
    let r = ok(&mut raw, "UID STORE 77 +FLAGS (\\Seen)").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    // Errors: past the end, \Recent, a bad flag.
    let r = raw.cmd("STORE 9 +FLAGS (\\Seen)").await;
    assert!(r.bad() || r.no(), "{r:?}");
    let r = raw.cmd("STORE 1 +FLAGS (\\Recent)").await;
    assert!(r.bad() || r.no(), "{r:?}");
    let r = raw.cmd("STORE 1 +FLAGS (\\Bogus)").await;
    assert!(r.bad() || r.no(), "{r:?}");

    // What a fresh session sees.
    let mut session = server.session().await;
    session.select("INBOX").await.unwrap();
    let fetches: Vec<_> = session
        .fetch("1:3", "FLAGS")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    use async_imap::types::Flag;
    let flags: Vec<Vec<Flag<'_>>> = fetches.iter().map(|f| f.flags().collect()).collect();
    assert!(flags[0].contains(&Flag::Seen) && flags[0].contains(&Flag::Flagged));
    assert_eq!(flags[1], vec![Flag::Seen]);
    assert!(flags[2].contains(&Flag::Answered) && flags[2].contains(&Flag::Deleted));
    assert!(!flags[2].contains(&Flag::Custom("$Todo".into())));
    // async-imap's STORE.
    let updated: Vec<_> = session
        .store("2", "+FLAGS (\\Answered)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(updated[0].flags().any(|f| f == Flag::Answered));
}

/// Messages for the search tests: (flags, internal date, message).
fn search_corpus() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "\\Seen",
            "01-Jan-2020 10:00:00 +0000",
            message("Invoice March", "Please pay the invoice."),
        ),
        (
            "\\Flagged $Work",
            "15-Jun-2021 12:00:00 +0000",
            b"From: Zed <zed@example.net>\r\nTo: alice@example.com\r\nCc: Carol <carol@example.net>\r\nSubject: Lunch?\r\nDate: Tue, 15 Jun 2021 11:00:00 +0000\r\nX-Priority: 1\r\n\r\nShall we meet at noon? caf\xc3\xa9\r\n".to_vec(),
        ),
        (
            "\\Answered \\Seen",
            "31-Dec-2022 12:00:00 +0000",
            {
                let mut m = message("Big report", "");
                m.extend_from_slice(&b"0123456789".repeat(300));
                m.extend_from_slice(b"\r\n");
                m
            },
        ),
        ("\\Deleted \\Draft", "02-Jan-2023 09:00:00 +0000", message("draft reply", "Re: lunch")),
    ]
}

#[tokio::test]
async fn search_keys() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for (flags, date, body) in search_corpus() {
        let tag = raw.tag();
        raw.send(
            format!(
                "{tag} APPEND INBOX ({flags}) \"{date}\" {{{}}}\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await;
        assert!(raw.line().await.starts_with('+'));
        raw.send(&body).await;
        raw.send(b"\r\n").await;
        assert!(raw.read_reply(&tag).await.ok());
    }
    ok(&mut raw, "SELECT INBOX").await;
    let cases: &[(&str, &[u32])] = &[
        ("ALL", &[1, 2, 3, 4]),
        ("SEEN", &[1, 3]),
        ("UNSEEN", &[2, 4]),
        ("FLAGGED", &[2]),
        ("UNFLAGGED", &[1, 3, 4]),
        ("ANSWERED", &[3]),
        ("UNANSWERED", &[1, 2, 4]),
        ("DELETED", &[4]),
        ("UNDELETED", &[1, 2, 3]),
        ("DRAFT", &[4]),
        ("UNDRAFT", &[1, 2, 3]),
        ("KEYWORD $Work", &[2]),
        ("UNKEYWORD $Work", &[1, 3, 4]),
        ("KEYWORD $Nothing", &[]),
        ("SUBJECT invoice", &[1]),
        ("SUBJECT \"big REPORT\"", &[3]),
        ("FROM zed", &[2]),
        ("FROM alice@example.com", &[1, 3, 4]),
        ("TO alice", &[2]),
        ("CC carol", &[2]),
        ("BCC anyone", &[]),
        ("HEADER X-Priority 1", &[2]),
        ("HEADER X-Priority \"\"", &[2]),
        ("HEADER Message-ID \"<draft reply@\"", &[4]),
        ("BODY noon", &[2]),
        ("BODY invoice", &[1]),
        ("BODY Lunch", &[4]),
        ("TEXT lunch", &[2, 4]),
        ("TEXT zed@example.net", &[2]),
        ("LARGER 2000", &[3]),
        ("SMALLER 240", &[2, 4]),
        ("SMALLER 200", &[2]),
        ("BEFORE 15-Jun-2021", &[1]),
        ("ON 15-Jun-2021", &[2]),
        ("SINCE 15-Jun-2021", &[2, 3, 4]),
        ("SINCE 1-Jan-2030", &[]),
        ("SENTBEFORE 1-Jan-2000", &[1, 3, 4]),
        ("SENTON 15-Jun-2021", &[2]),
        ("SENTSINCE 1-Jan-2021", &[2]),
        ("OR FLAGGED ANSWERED", &[2, 3]),
        ("OR OR FLAGGED ANSWERED DRAFT", &[2, 3, 4]),
        ("NOT SEEN", &[2, 4]),
        ("NOT OR SEEN DELETED", &[2]),
        ("SEEN SUBJECT report", &[3]),
        ("(SEEN UNANSWERED)", &[1]),
        ("OR (SEEN UNANSWERED) DRAFT", &[1, 4]),
        ("2:3", &[2, 3]),
        ("2,4", &[2, 4]),
        ("*", &[4]),
        ("3:*", &[3, 4]),
        ("UID 1:2", &[1, 2]),
        ("UID 3:*", &[3, 4]),
        ("UID 100:*", &[4]),
        ("NOT UID 2", &[1, 3, 4]),
        ("5:9", &[]),
        // This session selected the mailbox first, so every message is recent to it
        // (RFC 3501 2.3.2); NEW is RECENT UNSEEN.
        ("NEW", &[2, 4]),
        ("RECENT", &[1, 2, 3, 4]),
        ("OLD", &[]),
        ("CHARSET US-ASCII SUBJECT lunch", &[2]),
    ];
    let mut failures = Vec::new();
    for (query, expected) in cases {
        let r = raw.cmd(&format!("SEARCH {query}")).await;
        if !r.ok() {
            failures.push(format!("SEARCH {query}: {}", r.tagged));
            continue;
        }
        let mut got = r.search();
        got.sort_unstable();
        if got != *expected {
            failures.push(format!(
                "SEARCH {query}: got {got:?}, expected {expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A literal search string (synchronizing).
    let tag = raw.tag();
    raw.send(format!("{tag} SEARCH CHARSET UTF-8 TEXT {{5}}\r\n").as_bytes())
        .await;
    assert!(raw.line().await.starts_with('+'));
    raw.send("caf\u{e9}\r\n".as_bytes()).await;
    let r = raw.read_reply(&tag).await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.search(), [2]);

    // UID SEARCH answers in UIDs; after an expunge they differ from sequence numbers.
    ok(&mut raw, "EXPUNGE").await;
    let r = ok(&mut raw, "UID SEARCH UNSEEN").await;
    assert_eq!(r.search(), [2]);
    ok(&mut raw, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    ok(&mut raw, "EXPUNGE").await;
    let r = ok(&mut raw, "UID SEARCH ALL").await;
    assert_eq!(r.search(), [2, 3]);
    let r = ok(&mut raw, "SEARCH ALL").await;
    assert_eq!(r.search(), [1, 2]);
    let r = ok(&mut raw, "SEARCH UID 3").await;
    assert_eq!(r.search(), [2]);

    // Errors.
    let r = raw.cmd("SEARCH CHARSET KOI8-R SUBJECT x").await;
    assert!(r.no(), "{r:?}");
    assert!(
        r.code().unwrap_or_default().starts_with("BADCHARSET"),
        "{r:?}"
    );
    let r = raw.cmd("SEARCH BOGUSKEY").await;
    assert!(r.bad(), "{r:?}");
    let r = raw.cmd("SEARCH SINCE 32-Jan-2020").await;
    assert!(r.bad(), "{r:?}");

    // async-imap's search.
    let mut session = server.session().await;
    session.select("INBOX").await.unwrap();
    let found = session.search("SUBJECT report").await.unwrap();
    assert_eq!(found.into_iter().collect::<Vec<_>>(), [2]);
    let found = session.uid_search("SUBJECT report").await.unwrap();
    assert_eq!(found.into_iter().collect::<Vec<_>>(), [3]);
}

#[tokio::test]
async fn copy_answers_copyuid_and_keeps_flags() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE Dest").await;
    // Make Dest's UIDs differ from INBOX's.
    raw.append("Dest", "", &message("already", "there")).await;
    let bodies: Vec<_> = (0..4).map(|i| message(&format!("c{i}"), "body")).collect();
    for b in &bodies {
        raw.append("INBOX", "\\Flagged", b).await;
    }
    ok(&mut raw, "SELECT INBOX").await;
    let r = ok(&mut raw, "STATUS Dest (UIDVALIDITY)").await;
    let validity = r.untagged[0]
        .split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    let r = ok(&mut raw, "COPY 2:3 Dest").await;
    assert_eq!(
        r.code(),
        Some(format!("COPYUID {validity} 2:3 2:3")),
        "{r:?}"
    );
    let r = ok(&mut raw, "UID COPY 1,4 Dest").await;
    assert_eq!(
        r.code(),
        Some(format!("COPYUID {validity} 1,4 4:5")),
        "{r:?}"
    );
    // The source is untouched.
    let r = ok(&mut raw, "FETCH 1:* FLAGS").await;
    assert_eq!(r.untagged.len(), 4, "{r:?}");
    // Missing destination: TRYCREATE.
    let r = raw.cmd("COPY 1 Nowhere").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("TRYCREATE"), "{r:?}");
    // Nothing to copy by UID: OK, no COPYUID.
    let r = ok(&mut raw, "UID COPY 99 Dest").await;
    assert!(r.code().is_none(), "{r:?}");
    // Past the end by sequence number: an error.
    let r = raw.cmd("COPY 9 Dest").await;
    assert!(r.bad() || r.no(), "{r:?}");

    // Bytes and flags arrived.
    ok(&mut raw, "SELECT Dest").await;
    let r = ok(&mut raw, "FETCH 2 (FLAGS BODY.PEEK[])").await;
    assert!(r.untagged[0].contains("\\Flagged"), "{r:?}");
    assert!(
        r.untagged[0].contains(std::str::from_utf8(&bodies[1]).unwrap()),
        "{r:?}"
    );

    // async-imap's copy into a selected-elsewhere mailbox.
    let mut session = server.session().await;
    session.select("INBOX").await.unwrap();
    session.copy("1", "Trash").await.unwrap();
    session.uid_copy("2", "Trash").await.unwrap();
    let mb = session.status("Trash", "(MESSAGES)").await.unwrap();
    assert_eq!(mb.exists, 2);
}

#[tokio::test]
async fn move_sends_copyuid_then_expunges() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for i in 1..=5 {
        raw.append("INBOX", "", &message(&format!("m{i}"), "body"))
            .await;
    }
    ok(&mut raw, "SELECT INBOX").await;
    let mut client_uids = uids(&mut raw).await;
    assert_eq!(client_uids, [1, 2, 3, 4, 5]);
    let r = ok(&mut raw, "MOVE 2,4 Archive").await;
    // RFC 6851 4.3: the COPYUID comes in an untagged OK before the EXPUNGEs.
    assert!(r.untagged.len() >= 3, "{r:?}");
    assert!(r.untagged[0].starts_with("* OK [COPYUID "), "{r:?}");
    assert!(r.untagged[0].contains(" 2,4 1:2]"), "{r:?}");
    assert_eq!(expunge_count(&r), 2, "{r:?}");
    assert!(r.untagged[1].ends_with(" EXPUNGE"), "{r:?}");
    apply_expunges(&mut client_uids, &r);
    assert_eq!(client_uids, [1, 3, 5]);
    assert_eq!(uids(&mut raw).await, client_uids);

    let r = ok(&mut raw, "UID MOVE 5 Archive").await;
    assert!(
        r.untagged[0].starts_with("* OK [COPYUID ") && r.untagged[0].contains(" 5 3]"),
        "{r:?}"
    );
    apply_expunges(&mut client_uids, &r);
    assert_eq!(client_uids, [1, 3]);
    assert_eq!(uids(&mut raw).await, client_uids);

    let r = raw.cmd("MOVE 1 Nowhere").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("TRYCREATE"), "{r:?}");
    assert_eq!(uids(&mut raw).await, client_uids);

    let r = ok(&mut raw, "STATUS Archive (MESSAGES)").await;
    assert!(r.has("(MESSAGES 3)"), "{r:?}");

    // MOVE in a read-only mailbox is refused.
    ok(&mut raw, "EXAMINE INBOX").await;
    let r = raw.cmd("MOVE 1 Archive").await;
    assert!(r.no(), "{r:?}");

    // async-imap's mv.
    let mut session = server.session().await;
    session.select("Archive").await.unwrap();
    session.mv("1", "Trash").await.unwrap();
    session.uid_mv("3", "Trash").await.unwrap();
    let mb = session.status("Trash", "(MESSAGES)").await.unwrap();
    assert_eq!(mb.exists, 2);
    let mb = session.status("Archive", "(MESSAGES)").await.unwrap();
    assert_eq!(mb.exists, 1);
}

#[tokio::test]
async fn expunge_renumbers_and_uid_expunge_only_touches_the_given_uids() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for i in 1..=8 {
        raw.append("INBOX", "", &message(&format!("m{i}"), "body"))
            .await;
    }
    ok(&mut raw, "SELECT INBOX").await;
    let mut client = uids(&mut raw).await;
    ok(&mut raw, "STORE 2,4,5,8 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut raw, "EXPUNGE").await;
    assert_eq!(expunge_count(&r), 4, "{r:?}");
    apply_expunges(&mut client, &r);
    assert_eq!(client, [1, 3, 6, 7]);
    assert_eq!(uids(&mut raw).await, client);
    // Sequence numbers moved up: message 2 is now UID 3.
    let r = ok(&mut raw, "FETCH 2 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])").await;
    assert!(
        r.untagged[0].contains("UID 3") && r.untagged[0].contains("Subject: m3"),
        "{r:?}"
    );
    // Nothing deleted: no EXPUNGE.
    let r = ok(&mut raw, "EXPUNGE").await;
    assert!(r.untagged.is_empty(), "{r:?}");

    // UID EXPUNGE: only the given UIDs that are \Deleted.
    ok(&mut raw, "STORE 1:4 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut raw, "UID EXPUNGE 3:6").await;
    apply_expunges(&mut client, &r);
    assert_eq!(client, [1, 7]);
    assert_eq!(uids(&mut raw).await, client);
    let r = ok(&mut raw, "SEARCH DELETED").await;
    assert_eq!(r.search(), [1, 2], "UIDs 1 and 7 keep \\Deleted");

    // async-imap's expunge streams.
    let mut session = server.session().await;
    session.select("INBOX").await.unwrap();
    let gone: Vec<u32> = session
        .uid_expunge("7")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(gone, [2], "async-imap reports the sequence number");
    let gone: Vec<u32> = session
        .expunge()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(gone, [1]);
    let mb = session.select("INBOX").await.unwrap();
    assert_eq!(mb.exists, 0);
}

#[tokio::test]
async fn close_expunges_silently_and_unselect_does_not() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for i in 1..=3 {
        raw.append("INBOX", "", &message(&format!("m{i}"), "body"))
            .await;
    }
    ok(&mut raw, "SELECT INBOX").await;
    ok(&mut raw, "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut raw, "UNSELECT").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 3)"), "UNSELECT must not expunge: {r:?}");
    // Back in the authenticated state.
    let r = raw.cmd("FETCH 1 FLAGS").await;
    assert!(r.bad() || r.no(), "{r:?}");

    // CLOSE under EXAMINE does not expunge.
    ok(&mut raw, "EXAMINE INBOX").await;
    let r = ok(&mut raw, "CLOSE").await;
    assert!(r.untagged.is_empty(), "{r:?}");
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 3)"), "{r:?}");

    ok(&mut raw, "SELECT INBOX").await;
    ok(&mut raw, "STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    let r = ok(&mut raw, "CHECK").await;
    assert!(!r.has("EXPUNGE"), "{r:?}");
    let r = ok(&mut raw, "CLOSE").await;
    assert!(r.untagged.is_empty(), "CLOSE sends no EXPUNGE: {r:?}");
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 1)"), "{r:?}");
    let r = raw.cmd("CLOSE").await;
    assert!(r.bad() || r.no(), "{r:?}");

    // async-imap's close.
    let mut session = server.session().await;
    session.select("INBOX").await.unwrap();
    session
        .store("1", "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    session.close().await.unwrap();
    let mb = session.status("INBOX", "(MESSAGES)").await.unwrap();
    assert_eq!(mb.exists, 0);
}

/// The gateway caches headers by (user, mailbox, UIDVALIDITY, UID): a mailbox made again
/// under an old name (after DELETE or RENAME) must show its own messages, never the
/// cached headers of the one before.
#[tokio::test]
async fn header_fetches_of_a_mailbox_made_again_show_its_own_messages() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let fetch = "FETCH 1 (ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])";
    let subject_of = |r: &Reply| -> String {
        let line = r
            .find("FETCH")
            .unwrap_or_else(|| panic!("no FETCH in {r:?}"));
        ["first", "second", "third"]
            .into_iter()
            .filter(|s| line.contains(&format!("\"{s}\"")))
            .collect::<Vec<_>>()
            .join(",")
    };
    ok(&mut raw, "CREATE Box").await;
    assert!(raw.append("Box", "", &message("first", "1")).await.ok());
    ok(&mut raw, "SELECT Box").await;
    assert_eq!(subject_of(&ok(&mut raw, fetch).await), "first");
    // Again: this time from the cache, the same answer.
    let again = ok(&mut raw, fetch).await;
    assert_eq!(subject_of(&again), "first");
    assert!(again.has("Subject: first"), "{again:?}");

    ok(&mut raw, "CLOSE").await;
    ok(&mut raw, "DELETE Box").await;
    ok(&mut raw, "CREATE Box").await;
    assert!(raw.append("Box", "", &message("second", "2")).await.ok());
    ok(&mut raw, "SELECT Box").await;
    let r = ok(&mut raw, fetch).await;
    assert_eq!(subject_of(&r), "second", "{r:?}");
    assert!(
        r.has("Subject: second") && !r.has("Subject: first"),
        "{r:?}"
    );

    ok(&mut raw, "CLOSE").await;
    ok(&mut raw, "RENAME Box Old").await;
    ok(&mut raw, "CREATE Box").await;
    assert!(raw.append("Box", "", &message("third", "3")).await.ok());
    ok(&mut raw, "SELECT Box").await;
    assert_eq!(subject_of(&ok(&mut raw, fetch).await), "third");
    ok(&mut raw, "SELECT Old").await;
    assert_eq!(subject_of(&ok(&mut raw, fetch).await), "second");
}

/// BODYSTRUCTURE and BODY come from the gateway's cache once a whole message was read for
/// them; the cached answer is byte for byte the one made from the message itself.
#[tokio::test]
async fn cached_bodystructure_is_the_same_as_a_fresh_one() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for body in [
        multipart(),
        message("plain", "Hello."),
        b"Subject: headers only\r\n".to_vec(),
    ] {
        assert!(raw.append("INBOX", "", &body).await.ok());
    }
    ok(&mut raw, "SELECT INBOX").await;
    // With BODY[] the answer is made from the message (no cache on that path).
    let fresh = ok(&mut raw, "FETCH 1:3 (BODYSTRUCTURE BODY BODY.PEEK[])").await;
    let structure_of = |line: &str| -> String {
        let at = line.find("BODYSTRUCTURE").unwrap();
        let end = line.find(" BODY[]").unwrap();
        line[at..end].to_owned()
    };
    let expected: Vec<String> = fresh.untagged.iter().map(|l| structure_of(l)).collect();
    assert_eq!(expected.len(), 3, "{fresh:?}");
    assert!(expected[0].contains("\"mixed\""), "{expected:?}");
    // Header entries first (no BODYSTRUCTURE in them), then: read whole and cached; then
    // from the cache.
    ok(&mut raw, "FETCH 1:3 ENVELOPE").await;
    for round in 0..2 {
        let r = ok(&mut raw, "FETCH 1:3 (UID BODYSTRUCTURE BODY ENVELOPE)").await;
        assert_eq!(r.untagged.len(), 3, "{r:?}");
        for (i, line) in r.untagged.iter().enumerate() {
            let prefix = format!("* {} FETCH (UID {} ", i + 1, i + 1);
            assert!(line.starts_with(&prefix), "round {round}: {line}");
            let at = line.find("BODYSTRUCTURE").unwrap();
            let end = line.find(" ENVELOPE (").unwrap();
            assert_eq!(
                line[at..end],
                expected[i],
                "round {round}, message {}",
                i + 1
            );
        }
    }
}
