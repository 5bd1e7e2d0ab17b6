//! Replaying a script of IMAP commands the way `testdata/dovecot/extensions/record.py`
//! recorded Dovecot's answers to it, and comparing the answers with that golden file;
//! the set-up that script's `list.script` runs after.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::imap::Client;

/// The setup `record.py` makes for `list.script`, on a new user's session (after the
/// default mailboxes): RFC 5258's example mailboxes, subscriptions (the default mailboxes,
/// whether or not the store subscribed them, and one to a name that is no mailbox),
/// four messages.
pub async fn list_setup<S: AsyncRead + AsyncWrite + Unpin>(raw: &mut Client<S>) {
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
        "Drafts",
        "Sent",
        "Trash",
        "Junk",
        "Archive",
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
}

/// The untagged lines of one command as `record.py` normalises them for `list.script`:
/// sorted by mailbox, each LIST line with the STATUS line after it; the values of
/// UIDVALIDITY and HIGHESTMODSEQ become `N`.
pub fn list_normalised(lines: &[String]) -> Vec<String> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for line in lines {
        let mut line = line.clone();
        for item in ["UIDVALIDITY ", "HIGHESTMODSEQ "] {
            if let Some(at) = line.find(item) {
                let start = at + item.len();
                let end = line[start..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(line.len(), |e| start + e);
                if end > start {
                    line.replace_range(start..end, "N");
                }
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

/// The tagged line as `testdata/dovecot/extensions/record.py` writes it: the status and
/// a code's name.
pub fn golden_tagged(line: &str) -> String {
    let mut words = line.splitn(3, ' ');
    let status = words.nth(1).unwrap_or_default().to_owned();
    let rest = words.next().unwrap_or_default();
    match rest.strip_prefix('[') {
        Some(code) => {
            let name = code.split([']', ' ']).next().unwrap_or_default();
            format!("{status} [{name}]")
        }
        None => status,
    }
}

/// Replays a script (one command a line, `#` comments) as
/// `testdata/dovecot/extensions/record.py` does, and writes the answers in its format,
/// the untagged lines of each command passed through `normalise` (as record.py does
/// for that script).
pub async fn replay_script<S: AsyncRead + AsyncWrite + Unpin>(
    raw: &mut Client<S>,
    script: &str,
    normalise: impl Fn(&[String]) -> Vec<String>,
) -> String {
    let mut out = String::new();
    for (n, text) in script.lines().enumerate() {
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let tag = format!("t{n}");
        raw.send(format!("{tag} {text}\r\n").as_bytes()).await;
        let reply = raw.read_reply(&tag).await;
        out.push_str(&format!("C: {text}\n"));
        for line in normalise(&reply.untagged) {
            out.push_str(&format!("S: {line}\n"));
        }
        out.push_str(&format!("S: {}\n", golden_tagged(&reply.tagged)));
    }
    out
}

/// Compares a replayed script's answers with a golden file (its `#` lines left out),
/// line by line, showing all of pluto's answers at the first difference.
pub fn assert_golden(ours: &str, golden: &str) {
    let golden: Vec<&str> = golden.lines().filter(|l| !l.starts_with('#')).collect();
    let ours: Vec<&str> = ours.lines().collect();
    for (i, (a, b)) in ours.iter().zip(&golden).enumerate() {
        assert_eq!(
            a,
            b,
            "line {} differs from Dovecot's; pluto's answers:\n{}",
            i + 1,
            ours.join("\n")
        );
    }
    assert_eq!(ours.len(), golden.len(), "{}", ours.join("\n"));
}
