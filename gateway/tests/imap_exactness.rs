//! Black-box tests of IMAP4rev1 details where clients and Dovecot's imaptest expect
//! exact answers: LIST/LSUB with a reference, names that are valid syntax but invalid
//! modified UTF-7, `\Recent`, and SEARCH FROM/TO/CC/BCC on envelope addresses. The
//! expected answers were taken from Dovecot 2.3.19 (maildir, `/` separator) given the
//! same commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Reply, TestServer};
use tokio::net::TcpStream;

async fn ok(raw: &mut Client<TcpStream>, cmd: &str) -> Reply {
    let r = raw.cmd(cmd).await;
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

/// The sorted `* LIST`/`* LSUB` lines a command got.
async fn listed(raw: &mut Client<TcpStream>, cmd: &str) -> Vec<String> {
    let r = ok(raw, cmd).await;
    let mut lines: Vec<String> = r
        .untagged
        .iter()
        .filter(|l| l.starts_with("* LIST ") || l.starts_with("* LSUB "))
        .cloned()
        .collect();
    lines.sort();
    lines
}

/// The mailboxes of the Dovecot session the answers below were recorded from.
async fn reference_tree(server: &TestServer) -> Client<TcpStream> {
    let mut raw = server.login().await;
    for cmd in [
        "CREATE RefTest",
        "CREATE RefTest/Child",
        "CREATE Foo",
        "CREATE Foo/Bar/Baz",
        "SUBSCRIBE RefTest",
        "SUBSCRIBE RefTest/Child",
        "SUBSCRIBE Foo/Bar/Baz",
        "SUBSCRIBE INBOX",
    ] {
        ok(&mut raw, cmd).await;
    }
    raw
}

#[tokio::test]
async fn list_joins_reference_and_pattern_as_dovecot_does() {
    let server = TestServer::start().await;
    let mut raw = reference_tree(&server).await;
    let ref_test = r#"* LIST (\HasChildren) "/" RefTest"#;
    let child = r#"* LIST (\HasNoChildren) "/" RefTest/Child"#;
    let inbox = r#"* LIST (\HasNoChildren) "/" INBOX"#;
    let cases: &[(&str, &[&str])] = &[
        (r#"LIST "RefTest" "*""#, &[ref_test, child]),
        (r#"LIST "RefTest/" "*""#, &[child]),
        (r#"LIST "RefTest" "%""#, &[ref_test]),
        (r#"LIST "RefTest/" "%""#, &[child]),
        (r#"LIST "INBOX" "*""#, &[inbox]),
        (r#"LIST "INBOX" "%""#, &[inbox]),
        (r#"LIST "inbox" "*""#, &[inbox]),
        (r#"LIST "INBOX/" "*""#, &[]),
        (r#"LIST "Foo" "%""#, &[r#"* LIST (\HasChildren) "/" Foo"#]),
        // pluto's CREATE makes the superior Foo/Bar a mailbox (RFC 3501 6.3.3's SHOULD);
        // Dovecot's maildir leaves it \Noselect. The joining is what is checked here.
        (
            r#"LIST "Foo/" "%""#,
            &[r#"* LIST (\HasChildren) "/" Foo/Bar"#],
        ),
        (r#"LIST "Foo" "/Bar""#, &[]),
        (r#"LIST "Foo" "Bar""#, &[]),
        (
            r#"LIST "Foo/" "Bar/%""#,
            &[r#"* LIST (\HasNoChildren) "/" Foo/Bar/Baz"#],
        ),
        (
            r#"LIST "Foo/Bar" "*""#,
            &[
                r#"* LIST (\HasNoChildren) "/" Foo/Bar/Baz"#,
                r#"* LIST (\HasChildren) "/" Foo/Bar"#,
            ],
        ),
        (r#"LIST "Ref" "*""#, &[ref_test, child]),
        (r#"LIST "Ref" "Test*""#, &[ref_test, child]),
        (r#"LIST "Re%" "*""#, &[ref_test, child]),
        (r#"LIST "RefTest" "/Child""#, &[]),
        // An empty pattern: the root of the reference (up to its last separator).
        (r#"LIST "RefTest" """#, &[r#"* LIST (\Noselect) "/" """#]),
        (
            r#"LIST "RefTest/" """#,
            &[r#"* LIST (\Noselect) "/" RefTest/"#],
        ),
        (r#"LIST "Foo/Bar" """#, &[r#"* LIST (\Noselect) "/" Foo/"#]),
    ];
    for (cmd, want) in cases {
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(listed(&mut raw, cmd).await, want, "{cmd}");
    }
}

#[tokio::test]
async fn lsub_joins_reference_and_pattern_as_dovecot_does() {
    let server = TestServer::start().await;
    let mut raw = reference_tree(&server).await;
    let ref_test = r#"* LSUB () "/" RefTest"#;
    let child = r#"* LSUB () "/" RefTest/Child"#;
    let cases: &[(&str, &[&str])] = &[
        (r#"LSUB "RefTest" "*""#, &[ref_test, child]),
        (r#"LSUB "RefTest/" "*""#, &[child]),
        (r#"LSUB "RefTest" "%""#, &[ref_test]),
        (r#"LSUB "RefTest/" "%""#, &[child]),
        (r#"LSUB "INBOX" "*""#, &[r#"* LSUB () "/" INBOX"#]),
        (r#"LSUB "Foo" "%""#, &[r#"* LSUB (\Noselect) "/" Foo"#]),
        (r#"LSUB "Foo/" "%""#, &[r#"* LSUB (\Noselect) "/" Foo/Bar"#]),
        (r#"LSUB "Foo" "*""#, &[r#"* LSUB () "/" Foo/Bar/Baz"#]),
        (r#"LSUB "" "Foo/%""#, &[r#"* LSUB (\Noselect) "/" Foo/Bar"#]),
    ];
    for (cmd, want) in cases {
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(listed(&mut raw, cmd).await, want, "{cmd}");
    }
}

#[tokio::test]
async fn an_atom_that_is_not_modified_utf7_gets_no_and_list_gets_ok() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let name = "!#$&'+,-.0123456789:;<=>?@^_`|[}";
    for cmd in [
        format!("SELECT {name}"),
        format!("EXAMINE {name}"),
        format!("CREATE {name}"),
        format!("STATUS {name} (MESSAGES)"),
        format!("SUBSCRIBE {name}"),
        format!("DELETE {name}"),
        format!("RENAME {name} x"),
        format!("RENAME INBOX {name}"),
        "SELECT \"&Jjo\"".to_owned(),
        "CREATE \"&AGE-\"".to_owned(),
    ] {
        let r = raw.cmd(&cmd).await;
        assert!(r.no(), "{cmd}: {r:?}");
        assert!(r.tagged.contains("mUTF-7"), "{cmd}: {r:?}");
    }
    for cmd in [
        format!("LIST \"\" {name}"),
        format!("LSUB \"\" {name}"),
        "LIST \"\" \"&Jjo\"".to_owned(),
        "LIST \"!#$&'+\" \"*\"".to_owned(),
    ] {
        let r = ok(&mut raw, &cmd).await;
        assert!(r.untagged.is_empty(), "{cmd}: {r:?}");
    }
    // The session goes on.
    ok(&mut raw, "SELECT INBOX").await;
}

/// The three messages of the Dovecot session the SEARCH answers were recorded from.
fn address_messages() -> [&'static str; 3] {
    [
        "From: <user-from (comment)@ (comment) domain.org>\r\n\
         To: \"Doe, John\" <john.doe@example.com>, =?utf-8?q?Caf=C3=A9_M=C3=BCller?= <cafe@example.net>\r\n\
         Cc: Friends: alice@example.com, Bob <bob@example.org>;\r\n\
         Bcc: \"=?iso-8859-1?q?J=F6rg?=\" <joerg@example.de>\r\n\
         Subject: s1\r\n\r\nbody\r\n",
        "From: Plain Name <plain@example.com>\r\n\
         To: undisclosed-recipients:;\r\n\
         Subject: s2\r\n\r\nbody\r\n",
        "From: bare@example.com\r\n\
         To: J. Doe <jd@example.com>, \"quoted \\\"x\\\" name\" <qx@example.com>, <@route.example:routed@example.org>\r\n\
         Cc: \"Comma, Name\" <cn@example.com>\r\n\
         Subject: s3\r\n\r\nbody\r\n",
    ]
}

#[tokio::test]
async fn search_from_to_cc_bcc_match_envelope_addresses_as_dovecot_does() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE srch").await;
    for m in address_messages() {
        let r = raw.append("srch", "", m.as_bytes()).await;
        assert!(r.ok(), "{r:?}");
    }
    ok(&mut raw, "SELECT srch").await;
    let cases: &[(&str, &[u32])] = &[
        ("FROM user-from@domain.org", &[1]),
        ("FROM \"user-from (comment)\"", &[]),
        ("FROM comment", &[]),
        ("FROM \"<user-from\"", &[1]),
        ("FROM domain.org", &[1]),
        ("TO \"Doe, John\"", &[1]),
        ("TO \"John Doe\"", &[]),
        ("TO \"\\\"Doe\"", &[1]),
        ("TO Café", &[1]),
        ("TO Müller <cafe@", &[1]),
        ("TO \"=?utf-8\"", &[]),
        ("TO \"Caf=C3\"", &[]),
        ("TO john.doe@example.com", &[1]),
        ("TO \"<john.doe@example.com>\"", &[1]),
        ("TO \"Doe, John <john\"", &[]),
        ("CC friends", &[1]),
        ("CC \"Friends:\"", &[1]),
        ("CC alice@example.com", &[1]),
        ("CC \"Bob <bob\"", &[1]),
        ("BCC Jörg", &[1]),
        ("BCC Jörg <joerg", &[1]),
        ("TO undisclosed", &[2]),
        ("FROM \"Plain Name <plain@example.com>\"", &[]),
        ("FROM \"Name <plain\"", &[]),
        ("FROM \"PLAIN@EXAMPLE\"", &[2]),
        ("FROM \"\"", &[1, 2, 3]),
        ("CC \"\"", &[1, 3]),
        ("BCC \"\"", &[1]),
        ("TO MISSING", &[]),
        ("FROM \"<bare\"", &[3]),
        ("FROM bare@example.com", &[3]),
        ("TO \"\\\"J. Doe\\\"\"", &[3]),
        ("TO \"J. Doe <jd\"", &[]),
        ("TO \"quoted \\\\\\\"x\"", &[3]),
        ("TO \"quoted \\\"x\"", &[]),
        ("TO \"@route.example\"", &[3]),
        ("TO \"<routed@\"", &[]),
        ("CC \"\\\"Comma, Name\\\" <cn@\"", &[3]),
        ("TO \"jd@example.com>, \"", &[3]),
    ];
    for (criteria, want) in cases {
        // A non-ASCII value goes as a UTF-8 literal (LITERAL+).
        let r = match criteria.split_once(' ') {
            Some((key, value)) if !value.is_ascii() => {
                let cmd = format!(
                    "SEARCH CHARSET UTF-8 {key} {{{}+}}\r\n{value}\r\n",
                    value.len()
                );
                raw.cmd_bytes(cmd.as_bytes()).await
            }
            _ => raw.cmd(&format!("SEARCH {criteria}")).await,
        };
        let cmd = criteria;
        assert!(r.ok(), "{cmd}: {r:?}");
        assert_eq!(r.search(), *want, "{cmd}: {r:?}");
    }
}

/// `* n FETCH (FLAGS (…))` lines of a FETCH 1:* FLAGS, in order.
async fn flags(raw: &mut Client<TcpStream>) -> Vec<String> {
    let r = ok(raw, "FETCH 1:* FLAGS").await;
    r.untagged
        .iter()
        .filter(|l| l.contains(" FETCH "))
        .cloned()
        .collect()
}

fn recent_lines(r: &Reply) -> Vec<&str> {
    r.lines("* ")
        .into_iter()
        .filter(|l| l.ends_with(" RECENT"))
        .collect()
}

const RECENT_MSG: &[u8] = b"From: a@example.com\r\nSubject: r\r\n\r\nbody\r\n";

/// The two-session transcript Dovecot 2.3.19 gave (RFC 3501 2.3.2): EXAMINE and STATUS
/// look without claiming, SELECT claims, a second SELECT sees nothing recent, new mail
/// is recent for the one session that learns of it first, a COPY's target is recent
/// for the next session that selects it.
#[tokio::test]
async fn recent_is_told_to_exactly_one_session_as_dovecot_does() {
    let server = TestServer::start().await;
    let mut a = server.login().await;
    let mut b = server.login().await;
    ok(&mut a, "CREATE rt").await;
    ok(&mut a, "CREATE rt2").await;
    for _ in 0..2 {
        assert!(a.append("rt", "", RECENT_MSG).await.ok());
    }
    let r = ok(&mut a, "EXAMINE rt").await;
    assert_eq!(recent_lines(&r), ["* 2 RECENT"], "{r:?}");
    assert_eq!(
        flags(&mut a).await,
        [
            "* 1 FETCH (FLAGS (\\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))"
        ]
    );
    assert_eq!(ok(&mut a, "SEARCH RECENT").await.search(), [1, 2]);
    let r = ok(&mut b, "STATUS rt (RECENT MESSAGES)").await;
    assert!(r.has("RECENT 2"), "EXAMINE claimed nothing: {r:?}");

    let r = ok(&mut a, "SELECT rt").await;
    assert_eq!(recent_lines(&r), ["* 2 RECENT"], "{r:?}");
    assert_eq!(ok(&mut a, "SEARCH NEW").await.search(), [1, 2]);
    let r = ok(&mut a, "STORE 1 +FLAGS (\\Seen)").await;
    assert!(r.has("* 1 FETCH (FLAGS (\\Seen \\Recent))"), "{r:?}");
    assert_eq!(ok(&mut a, "SEARCH NEW").await.search(), [2]);
    assert_eq!(ok(&mut a, "SEARCH OLD").await.search(), Vec::<u32>::new());
    let r = ok(&mut b, "STATUS rt (RECENT)").await;
    assert!(r.has("(RECENT 0)"), "{r:?}");

    let r = ok(&mut b, "SELECT rt").await;
    assert_eq!(recent_lines(&r), ["* 0 RECENT"], "{r:?}");
    assert_eq!(
        flags(&mut b).await,
        ["* 1 FETCH (FLAGS (\\Seen))", "* 2 FETCH (FLAGS ())"]
    );
    assert_eq!(ok(&mut b, "SEARCH OLD").await.search(), [1, 2]);
    // B's own APPEND to the mailbox it has selected: B learns of it first.
    let r = b.append("rt", "", RECENT_MSG).await;
    assert!(r.ok(), "{r:?}");
    assert!(r.has("* 3 EXISTS"), "{r:?}");
    assert_eq!(recent_lines(&r), ["* 1 RECENT"], "{r:?}");
    let r = ok(&mut a, "NOOP").await;
    assert!(r.has("* 3 EXISTS"), "{r:?}");
    assert!(
        recent_lines(&r).is_empty(),
        "A's count did not change: {r:?}"
    );
    assert_eq!(
        flags(&mut a).await,
        [
            "* 1 FETCH (FLAGS (\\Seen \\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))",
            "* 3 FETCH (FLAGS ())"
        ]
    );
    assert_eq!(
        flags(&mut b).await,
        [
            "* 1 FETCH (FLAGS (\\Seen))",
            "* 2 FETCH (FLAGS ())",
            "* 3 FETCH (FLAGS (\\Recent))"
        ]
    );

    // COPY: the target's next session is told; EXAMINE looks, SELECT claims.
    ok(&mut b, "COPY 1 rt2").await;
    let r = ok(&mut b, "EXAMINE rt2").await;
    assert_eq!(recent_lines(&r), ["* 1 RECENT"], "{r:?}");
    assert_eq!(flags(&mut b).await, ["* 1 FETCH (FLAGS (\\Seen \\Recent))"]);
    let r = ok(&mut a, "SELECT rt2").await;
    assert_eq!(recent_lines(&r), ["* 1 RECENT"], "{r:?}");
    // A COPY into the mailbox A has selected is recent for A, not for B (read-only).
    let r = ok(&mut a, "COPY 1 rt2").await;
    assert!(r.has("* 2 EXISTS"), "{r:?}");
    assert_eq!(recent_lines(&r), ["* 2 RECENT"], "{r:?}");
    assert_eq!(
        flags(&mut a).await,
        [
            "* 1 FETCH (FLAGS (\\Seen \\Recent))",
            "* 2 FETCH (FLAGS (\\Seen \\Recent))"
        ]
    );
    let r = ok(&mut b, "NOOP").await;
    assert!(r.has("* 2 EXISTS"), "{r:?}");
    assert_eq!(
        flags(&mut b).await,
        [
            "* 1 FETCH (FLAGS (\\Seen \\Recent))",
            "* 2 FETCH (FLAGS (\\Seen))"
        ]
    );
    ok(&mut a, "CLOSE").await;
    let r = ok(&mut a, "STATUS rt2 (RECENT)").await;
    assert!(r.has("(RECENT 0)"), "{r:?}");
}
