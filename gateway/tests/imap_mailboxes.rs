//! Black-box tests of the mailbox commands: the default mailboxes and their SPECIAL-USE
//! attributes, LIST with `%` and `*` (and a reference), CREATE, DELETE (and its rules),
//! RENAME of a hierarchy and of INBOX, SUBSCRIBE/UNSUBSCRIBE/LSUB, STATUS, SELECT and
//! EXAMINE, modified UTF-7 names, and names that must be refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, Reply, TestServer, message};
use futures::TryStreamExt;
use tokio::net::TcpStream;

/// `(name, attributes)` of every `* LIST`/`* LSUB` line, in the order sent.
fn listed(reply: &Reply, kind: &str) -> Vec<(String, String)> {
    let prefix = format!("* {kind} (");
    reply
        .untagged
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| {
            let rest = &l[prefix.len()..];
            let close = rest.find(')').unwrap();
            let attrs = rest[..close].to_owned();
            // ` "/" name`
            let after = rest[close + 1..].trim_start();
            let name = after.split_once(' ').unwrap().1;
            let name = name.trim_matches('"').to_owned();
            (name, attrs)
        })
        .collect()
}

fn names(reply: &Reply, kind: &str) -> Vec<String> {
    let mut n: Vec<String> = listed(reply, kind).into_iter().map(|(n, _)| n).collect();
    n.sort();
    n
}

fn attrs_of(reply: &Reply, kind: &str, name: &str) -> String {
    listed(reply, kind)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not listed: {reply:?}"))
        .1
}

async fn list(raw: &mut Client<TcpStream>, reference: &str, pattern: &str) -> Reply {
    let r = raw
        .cmd(&format!("LIST \"{reference}\" \"{pattern}\""))
        .await;
    assert!(r.ok(), "{r:?}");
    r
}

async fn ok(raw: &mut Client<TcpStream>, cmd: &str) -> Reply {
    let r = raw.cmd(cmd).await;
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

#[tokio::test]
async fn a_new_user_has_the_default_mailboxes_with_special_use() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = list(&mut raw, "", "*").await;
    assert_eq!(
        names(&r, "LIST"),
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"],
        "{r:?}"
    );
    for (name, attr) in [
        ("Archive", "\\Archive"),
        ("Drafts", "\\Drafts"),
        ("Junk", "\\Junk"),
        ("Sent", "\\Sent"),
        ("Trash", "\\Trash"),
    ] {
        let attrs = attrs_of(&r, "LIST", name);
        assert!(attrs.split(' ').any(|a| a == attr), "{name}: {attrs}");
        assert!(attrs.contains("\\HasNoChildren"), "{name}: {attrs}");
    }
    let inbox = attrs_of(&r, "LIST", "INBOX");
    assert!(!inbox.contains("\\Noselect"), "{inbox}");
    // Every line names "/" as the delimiter.
    assert!(
        r.lines("* LIST").iter().all(|l| l.contains(") \"/\" ")),
        "{r:?}"
    );
}

#[tokio::test]
async fn async_imap_list_sees_special_use_attributes() {
    use async_imap::types::NameAttribute;
    let server = TestServer::start().await;
    let mut session = server.session().await;
    let names: Vec<_> = session
        .list(Some(""), Some("*"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let find = |n: &str| names.iter().find(|x| x.name() == n).unwrap();
    assert!(find("Sent").attributes().contains(&NameAttribute::Sent));
    assert!(find("Trash").attributes().contains(&NameAttribute::Trash));
    assert!(find("Drafts").attributes().contains(&NameAttribute::Drafts));
    assert!(find("Junk").attributes().contains(&NameAttribute::Junk));
    assert!(
        find("Archive")
            .attributes()
            .contains(&NameAttribute::Archive)
    );
    assert_eq!(find("INBOX").delimiter(), Some("/"));
}

#[tokio::test]
async fn list_wildcards_percent_and_star() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE Work").await;
    ok(&mut raw, "CREATE Work/Projects").await;
    ok(&mut raw, "CREATE Work/Projects/Alpha").await;
    ok(&mut raw, "CREATE Workshop").await;

    // % does not cross the delimiter.
    let r = list(&mut raw, "", "%").await;
    assert_eq!(
        names(&r, "LIST"),
        [
            "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Work", "Workshop"
        ]
    );
    let r = list(&mut raw, "", "Work/%").await;
    assert_eq!(names(&r, "LIST"), ["Work/Projects"]);
    // * does.
    let r = list(&mut raw, "", "Work*").await;
    assert_eq!(
        names(&r, "LIST"),
        ["Work", "Work/Projects", "Work/Projects/Alpha", "Workshop"]
    );
    let r = list(&mut raw, "", "Work/*").await;
    assert_eq!(names(&r, "LIST"), ["Work/Projects", "Work/Projects/Alpha"]);
    let r = list(&mut raw, "", "*Alpha").await;
    assert_eq!(names(&r, "LIST"), ["Work/Projects/Alpha"]);
    let r = list(&mut raw, "", "W%k").await;
    assert_eq!(names(&r, "LIST"), ["Work"]);
    // A reference ending in the delimiter is a prefix.
    let r = list(&mut raw, "Work/", "%").await;
    assert_eq!(names(&r, "LIST"), ["Work/Projects"]);
    // CHILDREN attributes.
    let r = list(&mut raw, "", "*").await;
    assert!(attrs_of(&r, "LIST", "Work").contains("\\HasChildren"));
    assert!(attrs_of(&r, "LIST", "Work/Projects").contains("\\HasChildren"));
    assert!(attrs_of(&r, "LIST", "Work/Projects/Alpha").contains("\\HasNoChildren"));
    assert!(attrs_of(&r, "LIST", "Workshop").contains("\\HasNoChildren"));
    // No match is not an error.
    let r = list(&mut raw, "", "Nothing*").await;
    assert!(r.lines("* LIST").is_empty(), "{r:?}");
}

#[tokio::test]
async fn list_empty_pattern_gives_the_delimiter_and_inbox_is_case_insensitive() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = list(&mut raw, "", "").await;
    assert_eq!(
        r.lines("* LIST"),
        ["* LIST (\\Noselect) \"/\" \"\""],
        "{r:?}"
    );
    let r = list(&mut raw, "", "inbox").await;
    assert_eq!(names(&r, "LIST"), ["INBOX"], "{r:?}");
    // SELECT of "inbox" in any case is INBOX.
    let r = ok(&mut raw, "SELECT iNbOx").await;
    assert!(r.tagged.contains("[READ-WRITE]"), "{r:?}");
}

#[tokio::test]
async fn create_errors_carry_response_codes() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE Projects").await;
    let r = raw.cmd("CREATE Projects").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("ALREADYEXISTS"), "{r:?}");
    let r = raw.cmd("CREATE INBOX").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("ALREADYEXISTS"), "{r:?}");
    let r = raw.cmd("CREATE inbox").await;
    assert!(r.no(), "{r:?}");
    // INBOX may have children.
    ok(&mut raw, "CREATE INBOX/Sub").await;
    let r = list(&mut raw, "", "INBOX*").await;
    assert_eq!(names(&r, "LIST"), ["INBOX", "INBOX/Sub"]);
    assert!(
        attrs_of(&r, "LIST", "INBOX").contains("\\HasChildren"),
        "{r:?}"
    );
}

#[tokio::test]
async fn create_with_a_trailing_delimiter_creates_the_name() {
    // RFC 3501 6.3.3: a trailing delimiter declares that names will be created below;
    // "Server implementations that do not require this declaration MUST ignore the
    // declaration." (Dovecot creates "Folder".)
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.cmd("CREATE Folder/").await;
    assert!(r.ok(), "CREATE Folder/ should act as CREATE Folder: {r:?}");
    let r = list(&mut raw, "", "Folder*").await;
    assert_eq!(names(&r, "LIST"), ["Folder"], "{r:?}");
}

#[tokio::test]
async fn bad_mailbox_names_are_refused_and_nothing_escapes() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for name in [
        "../escape",
        "a/../../b",
        "/absolute",
        "a//b",
        ".",
        "..",
        "\"x*y\"",
        "\"x%y\"",
        "\"bad&name\"",
    ] {
        let r = raw.cmd(&format!("CREATE {name}")).await;
        assert!(r.no() || r.bad(), "CREATE {name} was accepted: {r:?}");
    }
    // Control characters in a literal name.
    let r = raw.cmd_bytes(b"CREATE {3+}\r\na\x01b\r\n").await;
    assert!(r.no() || r.bad(), "{r:?}");
    // The session goes on, and only the defaults exist.
    let r = list(&mut raw, "", "*").await;
    assert_eq!(
        names(&r, "LIST"),
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"],
        "{r:?}"
    );
    // Nothing was created outside the mail directory.
    let top: Vec<String> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !top.iter().any(|n| n.contains("escape") || n == "b"),
        "{top:?}"
    );
}

#[tokio::test]
async fn modified_utf7_names_round_trip() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    // "Été" and "日本語" and "a&b".
    for wire in ["&AMk-t&AOk-", "&ZeVnLIqe-", "a&-b"] {
        ok(&mut raw, &format!("CREATE \"{wire}\"")).await;
        let r = list(&mut raw, "", "*").await;
        assert!(
            names(&r, "LIST").contains(&wire.to_owned()),
            "{wire}: {r:?}"
        );
        let r = ok(&mut raw, &format!("SELECT \"{wire}\"")).await;
        assert!(r.has("0 EXISTS"), "{r:?}");
        let r = ok(&mut raw, &format!("STATUS \"{wire}\" (MESSAGES)")).await;
        assert!(
            r.has(&format!("* STATUS \"{wire}\" (MESSAGES 0)"))
                || r.has(&format!("* STATUS {wire} (MESSAGES 0)")),
            "{r:?}"
        );
    }
    let r = raw.append("&ZeVnLIqe-", "", &message("utf7", "body")).await;
    assert!(r.ok(), "{r:?}");
    // A hierarchy under a non-ASCII name.
    ok(&mut raw, "CREATE \"&AMk-t&AOk-/Sous-dossier\"").await;
    let r = list(&mut raw, "", "*").await;
    assert!(
        names(&r, "LIST").contains(&"&AMk-t&AOk-/Sous-dossier".to_owned()),
        "{r:?}"
    );
    // Invalid modified UTF-7 (base64 of printable ASCII, unterminated run).
    for bad in ["&AGE-", "&AMk"] {
        let r = raw.cmd(&format!("CREATE \"{bad}\"")).await;
        assert!(r.no(), "CREATE {bad}: {r:?}");
    }
}

#[tokio::test]
async fn delete_rules() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.cmd("DELETE INBOX").await;
    assert!(r.no(), "{r:?}");
    let r = raw.cmd("DELETE NoSuchBox").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("NONEXISTENT"), "{r:?}");

    ok(&mut raw, "CREATE Old").await;
    raw.append("Old", "", &message("old", "x")).await;
    ok(&mut raw, "DELETE Old").await;
    let r = list(&mut raw, "", "Old").await;
    assert!(r.lines("* LIST").is_empty(), "{r:?}");
    let r = raw.cmd("SELECT Old").await;
    assert!(r.no(), "{r:?}");
    // Re-created, it is empty and has a fresh UIDVALIDITY or at least no old mail.
    ok(&mut raw, "CREATE Old").await;
    let r = ok(&mut raw, "STATUS Old (MESSAGES)").await;
    assert!(r.has("(MESSAGES 0)"), "{r:?}");

    // Deleting the selected mailbox leaves the selected state.
    ok(&mut raw, "SELECT Old").await;
    ok(&mut raw, "DELETE Old").await;
    let r = raw.cmd("FETCH 1:* FLAGS").await;
    assert!(r.bad() || r.no(), "{r:?}");
}

#[tokio::test]
async fn delete_a_parent_keeps_its_children() {
    // RFC 3501 6.3.4: "It is permitted to delete a name that has inferior hierarchical
    // names and does not have the \Noselect mailbox name attribute. In this case, all
    // messages in that mailbox are removed, and the name will acquire the \Noselect
    // mailbox name attribute." The DELETE MUST NOT remove inferior names.
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE Parent").await;
    ok(&mut raw, "CREATE Parent/Child").await;
    raw.append("Parent", "", &message("p", "x")).await;
    let r = raw.cmd("DELETE Parent").await;
    assert!(
        r.ok(),
        "DELETE of a selectable parent should succeed: {r:?}"
    );
    let r = list(&mut raw, "", "Parent*").await;
    assert!(
        names(&r, "LIST").contains(&"Parent/Child".to_owned()),
        "{r:?}"
    );
    let listed = listed(&r, "LIST");
    if let Some((_, attrs)) = listed.iter().find(|(n, _)| n == "Parent") {
        assert!(attrs.contains("\\Noselect"), "{r:?}");
    }
}

#[tokio::test]
async fn rename_moves_a_hierarchy_with_its_mail() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE Lists").await;
    ok(&mut raw, "CREATE Lists/rust").await;
    ok(&mut raw, "CREATE Lists/rust/announce").await;
    let body = message("in rust", "hello");
    let r = raw.append("Lists/rust", "\\Flagged", &body).await;
    assert!(r.ok(), "{r:?}");

    ok(&mut raw, "RENAME Lists Archive/Lists").await;
    let r = list(&mut raw, "", "*").await;
    let all = names(&r, "LIST");
    assert!(!all.iter().any(|n| n.starts_with("Lists")), "{all:?}");
    for n in [
        "Archive/Lists",
        "Archive/Lists/rust",
        "Archive/Lists/rust/announce",
    ] {
        assert!(all.contains(&n.to_owned()), "{n} missing: {all:?}");
    }
    assert!(
        attrs_of(&r, "LIST", "Archive").contains("\\HasChildren"),
        "{r:?}"
    );
    // The mail moved with its mailbox, flags and bytes intact.
    let r = ok(&mut raw, "SELECT Archive/Lists/rust").await;
    assert!(r.has("* 1 EXISTS"), "{r:?}");
    let r = ok(&mut raw, "FETCH 1 (FLAGS BODY.PEEK[])").await;
    assert!(r.untagged[0].contains("\\Flagged"), "{r:?}");
    assert!(
        r.untagged[0].contains(std::str::from_utf8(&body).unwrap()),
        "{r:?}"
    );
}

#[tokio::test]
async fn rename_errors() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.cmd("RENAME NoSuch Other").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("NONEXISTENT"), "{r:?}");
    let r = raw.cmd("RENAME Drafts Sent").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("ALREADYEXISTS"), "{r:?}");
    ok(&mut raw, "CREATE A").await;
    let r = raw.cmd("RENAME A A/B").await;
    assert!(r.no(), "into itself: {r:?}");
    let r = raw.cmd("RENAME A INBOX").await;
    assert!(r.no(), "{r:?}");
    let r = list(&mut raw, "", "A").await;
    assert_eq!(names(&r, "LIST"), ["A"], "{r:?}");
    let r = list(&mut raw, "", "A/*").await;
    assert!(r.lines("* LIST").is_empty(), "{r:?}");
}

#[tokio::test]
async fn rename_inbox_moves_its_mail_and_leaves_inbox_empty() {
    // RFC 3501 6.3.5: renaming INBOX moves all its messages to the new name, and INBOX
    // stays (empty). (Dovecot refuses with NO [CANNOT]; both are seen in the wild.)
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    raw.append("INBOX", "", &message("one", "1")).await;
    raw.append("INBOX", "", &message("two", "2")).await;
    let r = raw.cmd("RENAME INBOX Saved").await;
    if r.no() {
        // Refusing is allowed in practice; then nothing may have moved.
        let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
        assert!(r.has("(MESSAGES 2)"), "{r:?}");
        return;
    }
    assert!(r.ok(), "{r:?}");
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES)").await;
    assert!(r.has("(MESSAGES 0)"), "{r:?}");
    let r = ok(&mut raw, "STATUS Saved (MESSAGES)").await;
    assert!(r.has("(MESSAGES 2)"), "{r:?}");
    let r = list(&mut raw, "", "INBOX").await;
    assert_eq!(names(&r, "LIST"), ["INBOX"]);
}

#[tokio::test]
async fn subscribe_unsubscribe_lsub() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE News").await;
    ok(&mut raw, "CREATE News/rust").await;
    let r = ok(&mut raw, "LSUB \"\" \"News*\"").await;
    assert!(
        r.lines("* LSUB").is_empty(),
        "nothing subscribed yet: {r:?}"
    );

    ok(&mut raw, "SUBSCRIBE News/rust").await;
    let r = ok(&mut raw, "LSUB \"\" \"*\"").await;
    assert!(names(&r, "LSUB").contains(&"News/rust".to_owned()), "{r:?}");
    // RFC 3501 6.3.9: with %, an unsubscribed parent of a subscribed name is \Noselect.
    let r = ok(&mut raw, "LSUB \"\" \"News%\"").await;
    assert_eq!(names(&r, "LSUB"), ["News"], "{r:?}");
    assert!(attrs_of(&r, "LSUB", "News").contains("\\Noselect"), "{r:?}");

    let r = raw.cmd("SUBSCRIBE NoSuchBox").await;
    assert!(r.no(), "{r:?}");
    ok(&mut raw, "UNSUBSCRIBE News/rust").await;
    let r = ok(&mut raw, "LSUB \"\" \"News*\"").await;
    assert!(r.lines("* LSUB").is_empty(), "{r:?}");

    // A subscription outlives its mailbox (RFC 3501 6.3.6): LSUB still names it.
    ok(&mut raw, "SUBSCRIBE News").await;
    ok(&mut raw, "DELETE News/rust").await;
    ok(&mut raw, "DELETE News").await;
    let r = ok(&mut raw, "LSUB \"\" \"News\"").await;
    assert_eq!(names(&r, "LSUB"), ["News"], "{r:?}");

    // async-imap's view.
    ok(&mut raw, "SUBSCRIBE Sent").await;
    let mut session = server.session().await;
    let subs: Vec<_> = session
        .lsub(Some(""), Some("*"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(subs.iter().any(|n| n.name() == "Sent"));
}

#[tokio::test]
async fn status_counts_messages_unseen_and_uidnext() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = ok(
        &mut raw,
        "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)",
    )
    .await;
    let line = r.find("* STATUS INBOX").unwrap().clone();
    for item in [
        "MESSAGES 0",
        "UIDNEXT 1",
        "UNSEEN 0",
        "RECENT 0",
        "UIDVALIDITY ",
    ] {
        assert!(line.contains(item), "{item} in {line}");
    }
    raw.append("INBOX", "\\Seen", &message("a", "1")).await;
    raw.append("INBOX", "", &message("b", "2")).await;
    raw.append("INBOX", "\\Deleted", &message("c", "3")).await;
    let r = ok(&mut raw, "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)").await;
    let line = r.find("* STATUS INBOX").unwrap();
    assert!(line.contains("MESSAGES 3"), "{line}");
    assert!(line.contains("UIDNEXT 4"), "{line}");
    assert!(line.contains("UNSEEN 2"), "{line}");

    let mut session = server.session().await;
    let mb = session
        .status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        .await
        .unwrap();
    assert_eq!(mb.exists, 3);
    assert_eq!(mb.uid_next, Some(4));
    assert_eq!(mb.unseen, Some(2));
    assert!(mb.uid_validity.is_some());

    let r = raw.cmd("STATUS NoSuch (MESSAGES)").await;
    assert!(r.no(), "{r:?}");
    let r = raw.cmd("STATUS INBOX (BOGUS)").await;
    assert!(r.bad(), "{r:?}");
}

#[tokio::test]
async fn select_reports_the_mailbox_and_examine_is_read_only() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    raw.append("INBOX", "\\Seen", &message("a", "1")).await;
    raw.append("INBOX", "", &message("b", "2")).await;
    raw.append("INBOX", "$Important", &message("c", "3")).await;

    let r = ok(&mut raw, "SELECT INBOX").await;
    assert!(r.tagged.contains("[READ-WRITE]"), "{r:?}");
    assert!(r.has("* 3 EXISTS"), "{r:?}");
    // The first session to select them is told the three are recent (RFC 3501 2.3.2).
    assert!(r.has("* 3 RECENT"), "{r:?}");
    assert!(r.has("[UIDNEXT 4]"), "{r:?}");
    assert!(r.has("[UIDVALIDITY "), "{r:?}");
    assert!(r.has("[UNSEEN 2]"), "first unseen is message 2: {r:?}");
    let flags = r.find("* FLAGS (").unwrap();
    assert!(flags.contains("$Important"), "{flags}");
    let perm = r.find("[PERMANENTFLAGS (").unwrap();
    assert!(perm.contains("\\*") && perm.contains("\\Seen"), "{perm}");

    // EXAMINE: read-only; fetching a body does not set \Seen, STORE is refused.
    let r = ok(&mut raw, "EXAMINE INBOX").await;
    assert!(r.tagged.contains("[READ-ONLY]"), "{r:?}");
    assert!(r.has("[PERMANENTFLAGS ()]"), "{r:?}");
    ok(&mut raw, "FETCH 2 BODY[TEXT]").await;
    let r = ok(&mut raw, "FETCH 2 FLAGS").await;
    assert!(!r.untagged[0].contains("\\Seen"), "{r:?}");
    let r = raw.cmd("STORE 2 +FLAGS (\\Flagged)").await;
    assert!(r.no(), "{r:?}");
    let r = raw.cmd("EXPUNGE").await;
    assert!(!r.ok() || r.untagged.is_empty(), "{r:?}");

    // async-imap's Mailbox.
    let mut session = server.session().await;
    let mb = session.select("INBOX").await.unwrap();
    assert_eq!(mb.exists, 3);
    assert_eq!(mb.uid_next, Some(4));
    assert_eq!(mb.unseen, Some(2));
    assert_eq!(mb.recent, 0, "claimed by the first session");
    let mb = session.examine("INBOX").await.unwrap();
    assert!(mb.permanent_flags.is_empty());

    // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
    ok(&mut raw, "SELECT INBOX").await;
    let r = raw.cmd("SELECT NoSuch").await;
    assert!(r.no(), "{r:?}");
    let r = raw.cmd("FETCH 1 FLAGS").await;
    assert!(r.bad() || r.no(), "{r:?}");
}

#[tokio::test]
async fn list_with_a_non_ascii_pattern() {
    // A pattern that decodes to non-ASCII text ("日本語", "Été/…") must match like any
    // other, and must not end the session.
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE \"&ZeVnLIqe-\"").await;
    ok(&mut raw, "CREATE \"&AMk-t&AOk-/Sous-dossier\"").await;
    let r = list(&mut raw, "", "&ZeVnLIqe-").await;
    assert_eq!(names(&r, "LIST"), ["&ZeVnLIqe-"], "{r:?}");
    let r = list(&mut raw, "", "&ZeVnLIqe-*").await;
    assert_eq!(names(&r, "LIST"), ["&ZeVnLIqe-"], "{r:?}");
    let r = list(&mut raw, "", "&AMk-t&AOk-/%").await;
    assert_eq!(names(&r, "LIST"), ["&AMk-t&AOk-/Sous-dossier"], "{r:?}");
    let r = list(&mut raw, "", "%&AOk-").await;
    assert_eq!(names(&r, "LIST"), ["&AMk-t&AOk-"], "{r:?}");
}

#[tokio::test]
async fn lsub_star_lists_only_subscribed_names() {
    // RFC 3501 6.3.9: LSUB returns names from the subscribed set; only a `%` that stops at
    // an unsubscribed parent of a subscribed name returns that parent (\Noselect).
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    ok(&mut raw, "CREATE News/rust").await;
    ok(&mut raw, "SUBSCRIBE News/rust").await;
    let r = ok(&mut raw, "LSUB \"\" \"*\"").await;
    let subscribed = names(&r, "LSUB");
    assert!(subscribed.contains(&"News/rust".to_owned()), "{r:?}");
    assert!(
        !subscribed.contains(&"News".to_owned()),
        "News was never subscribed: {r:?}"
    );
}
