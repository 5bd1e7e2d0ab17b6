//! mbsync (isync) against the real `pluto` binary over implicit TLS: a local Maildir
//! of 200 corpus messages (`testdata/corpus/gen_mbox.py`) is synced up to pluto, then
//! down into a second, empty local Maildir; then flag changes travel both ways.
//!
//! What "byte for byte" means here, precisely:
//! - The corpus is LF-only; a local Maildir holds the LF form (as mbox-to-Maildir tools
//!   and mbsync itself store it). mbsync converts LF to CRLF when it uploads and back
//!   when it downloads, and it writes one `X-TUID:` header line (a random token it uses
//!   to find the message it just stored) into every message it copies, in either
//!   direction: the copy on pluto has one token, the downloaded copy in B another.
//! - So, with that single `X-TUID:` line removed: the downloaded copy B equals the
//!   original A exactly, and pluto's `BODY[]` equals A with LF turned into CRLF
//!   exactly. The body (after the first empty line) is compared with no exception at
//!   all, on both. B must contain no CR, and `BODY[]` no bare LF.
//!
//! Messages are matched by their top-level `Message-ID`. mbsync missing is a failure
//! that says how to install it, never a skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pluto_testkit::imap::Blocking;
use pluto_testkit::serve::{assert_success, run_with_timeout};
use support::{PASSWORD, Pluto, USER, client_script, repo_root};

const COUNT: usize = 200;

/// `isync 1.4.4` -> (1, 4). Fails the test, with the install hint, when mbsync is absent.
fn mbsync_version() -> (u32, u32) {
    let out = match Command::new("mbsync").arg("--version").output() {
        Ok(out) => out,
        Err(e) => panic!(
            "mbsync is not installed ({e}): this test needs it. Install it with \
             `apt-get install isync` (CI's .ci/run does so)."
        ),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("cannot read the version from `mbsync --version`: {text:?}"));
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The test corpus generator, `testdata/corpus/gen_mbox.py`.
fn gen_mbox_script() -> PathBuf {
    let path = repo_root()
        .join("testdata")
        .join("corpus")
        .join("gen_mbox.py");
    assert!(
        path.exists(),
        "the corpus generator is missing: expected {}",
        path.display()
    );
    path
}

/// Splits an mbox into messages: each runs from the line after a `From ` separator
/// to the empty line that precedes the next separator (which mbox adds, so it is
/// dropped). gen_mbox.py guarantees no body line starts with `From `.
fn split_mbox(mbox: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < mbox.len() {
        if mbox[pos..].starts_with(b"From ") {
            starts.push(pos);
        }
        match mbox[pos..].iter().position(|&b| b == b'\n') {
            Some(nl) => pos += nl + 1,
            None => break,
        }
    }
    let mut messages = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(mbox.len());
        let chunk = &mbox[start..end];
        let after_from = chunk
            .iter()
            .position(|&b| b == b'\n')
            .map_or(chunk.len(), |n| n + 1);
        let mut message = chunk[after_from..].to_vec();
        assert!(
            message.ends_with(b"\n\n"),
            "mbox message {i} does not end with the separating empty line"
        );
        message.pop();
        messages.push(message);
    }
    messages
}

/// The header section: up to the first empty line (LF or CRLF).
fn header_section(message: &[u8]) -> &[u8] {
    let lf = find(message, b"\n\n");
    let crlf = find(message, b"\r\n\r\n");
    let end = match (lf, crlf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(message.len()),
    };
    &message[..end]
}

/// The body: everything after the first empty line.
fn body_section(message: &[u8]) -> &[u8] {
    match find(message, b"\n\n") {
        Some(pos) => &message[pos + 2..],
        None => &[],
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The top-level Message-ID (not one inside an attached message/rfc822).
fn message_id(message: &[u8]) -> String {
    let header = String::from_utf8_lossy(header_section(message)).into_owned();
    header
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("message without Message-ID: {header}"))
}

/// Removes the one `X-TUID:` header line mbsync inserts into uploaded messages.
fn strip_tuid(message: &[u8]) -> Vec<u8> {
    let header_len = header_section(message).len();
    let mut out = Vec::with_capacity(message.len());
    let mut removed = 0;
    let mut pos = 0;
    while pos < message.len() {
        let end = message[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |n| pos + n + 1);
        let line = &message[pos..end];
        if pos < header_len && line.starts_with(b"X-TUID: ") {
            removed += 1;
        } else {
            out.extend_from_slice(line);
        }
        pos = end;
    }
    assert!(removed <= 1, "more than one X-TUID line");
    out
}

/// Where two byte strings first differ, with a little context of each, for messages.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(60);
    let show = |s: &[u8]| {
        String::from_utf8_lossy(&s[from.min(s.len())..(at + 60).min(s.len())]).into_owned()
    };
    format!(
        "{} vs {} bytes, first difference at byte {at}:\n  {:?}\n  {:?}",
        a.len(),
        b.len(),
        show(a),
        show(b)
    )
}

fn lf_to_crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 40);
    for &b in message {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// A Maildir message on disk: its path and its flag letters (after `:2,`).
struct MaildirFile {
    path: PathBuf,
    flags: String,
    bytes: Vec<u8>,
}

fn make_maildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

/// Every message in `cur/` and `new/`, by Message-ID.
fn read_maildir(dir: &Path) -> BTreeMap<String, MaildirFile> {
    let mut out = BTreeMap::new();
    for sub in ["cur", "new"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let flags = name
                .rsplit_once(":2,")
                .map(|(_, f)| f.to_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&path).unwrap();
            let id = message_id(&bytes);
            let previous = out.insert(id.clone(), MaildirFile { path, flags, bytes });
            assert!(previous.is_none(), "{} holds {id} twice", dir.display());
        }
    }
    out
}

/// Runs one mbsync channel and fails the test with its output if it fails.
fn mbsync(rc: &Path, channel: &str, pluto: &Pluto) {
    let out = run_with_timeout(
        Command::new("mbsync").arg("-c").arg(rc).arg(channel),
        Duration::from_secs(50),
    );
    if !out.status.success() {
        panic!(
            "mbsync {channel} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            pluto.logs()
        );
    }
}

/// pluto's INBOX: Message-ID -> (UID, BODY[]).
fn server_messages(client: &mut Blocking) -> BTreeMap<String, (u32, Vec<u8>)> {
    client.select("INBOX").unwrap();
    let mut out = BTreeMap::new();
    for (uid, body) in client.fetch_bodies("1:*").unwrap() {
        let id = message_id(&body);
        assert!(
            out.insert(id.clone(), (uid, body)).is_none(),
            "pluto's INBOX holds {id} twice"
        );
    }
    out
}

fn server_flags(client: &mut Blocking, uid: u32) -> Vec<String> {
    client.select("INBOX").unwrap();
    let flags = client.fetch_flags(&uid.to_string()).unwrap();
    assert_eq!(flags.len(), 1, "UID {uid}: {flags:?}");
    stored_flags(flags.into_iter().next().unwrap().1)
}

/// Drops `\Recent`: it belongs to a session, not to the message, and mbsync does not
/// sync it.
fn stored_flags(flags: Vec<String>) -> Vec<String> {
    flags
        .into_iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect()
}

fn sorted(letters: &str) -> String {
    let set: BTreeSet<char> = letters.chars().collect();
    set.into_iter().collect()
}

#[test]
fn mbsync_round_trip_and_flags() {
    let (major, minor) = mbsync_version();
    let tls_key = if (major, minor) >= (1, 5) {
        "TLSType"
    } else {
        "SSLType"
    };
    let generator = gen_mbox_script();

    let pluto = support::start();
    let work = tempfile::tempdir().unwrap();

    // The corpus, split into local Maildir A.
    let mbox = work.path().join("corpus.mbox");
    let out = Command::new("python3")
        .arg(&generator)
        .arg(&mbox)
        .arg(COUNT.to_string())
        .output()
        .expect("running python3 gen_mbox.py");
    assert_success("gen_mbox.py", &out);
    let originals = split_mbox(&std::fs::read(&mbox).unwrap());
    assert_eq!(originals.len(), COUNT, "messages in the generated mbox");
    let local_a = work.path().join("local-a");
    let local_b = work.path().join("local-b");
    make_maildir(&local_a);
    make_maildir(&local_b);
    let mut by_id = BTreeMap::new();
    for (i, message) in originals.iter().enumerate() {
        assert!(!message.contains(&b'\r'), "the corpus is LF-only");
        // Half in cur/ (seen by a client before), half in new/ (just delivered).
        let sub = if i % 2 == 0 { "cur" } else { "new" };
        let info = if sub == "cur" { ":2," } else { "" };
        std::fs::write(
            local_a
                .join(sub)
                .join(format!("1700000000.corpus{i}.host{info}")),
            message,
        )
        .unwrap();
        assert!(
            by_id.insert(message_id(message), message.clone()).is_none(),
            "duplicate Message-ID in the corpus"
        );
    }

    let template = std::fs::read_to_string(client_script("mbsyncrc.template")).unwrap();
    let rc_text = template
        .replace("@TLS_KEY@", tls_key)
        .replace("@PORT@", &pluto.imaps.port().to_string())
        .replace("@USER@", USER)
        .replace("@PASS@", PASSWORD)
        .replace("@CERT@", &pluto.cert_path().display().to_string())
        .replace("@LOCAL_A@", &local_a.display().to_string())
        .replace("@LOCAL_B@", &local_b.display().to_string());
    assert!(
        !rc_text
            .lines()
            .any(|l| !l.starts_with('#') && l.contains('@')),
        "unfilled placeholder in {rc_text}"
    );
    let rc = work.path().join("mbsyncrc");
    std::fs::write(&rc, rc_text).unwrap();

    // Up: A -> pluto.
    mbsync(&rc, "up", &pluto);
    let mut client = Blocking::login(pluto.imap, USER, PASSWORD);
    let on_server = server_messages(&mut client);
    assert_eq!(
        on_server.len(),
        COUNT,
        "messages in pluto's INBOX after syncing up"
    );

    // Down: pluto -> B (empty).
    mbsync(&rc, "down", &pluto);
    let a = read_maildir(&local_a);
    let b = read_maildir(&local_b);
    assert_eq!(a.len(), COUNT, "messages in local Maildir A");
    assert_eq!(
        b.len(),
        COUNT,
        "messages in local Maildir B after syncing down"
    );

    for (id, original) in &by_id {
        let a_file = a.get(id).unwrap_or_else(|| panic!("{id} vanished from A"));
        assert!(
            a_file.bytes == *original,
            "{id}: mbsync changed the local original"
        );
        let b_file = b
            .get(id)
            .unwrap_or_else(|| panic!("{id} did not arrive in B"));
        assert!(!b_file.bytes.contains(&b'\r'), "{id}: CR in the local copy");
        assert!(
            body_section(&b_file.bytes) == body_section(original),
            "{id}: body differs after the round trip: {}",
            first_difference(body_section(&b_file.bytes), body_section(original))
        );
        assert!(
            strip_tuid(&b_file.bytes) == *original,
            "{id}: message differs after the round trip (beyond mbsync's X-TUID line):\n\
             --- original header ---\n{}\n--- B header ---\n{}",
            String::from_utf8_lossy(header_section(original)),
            String::from_utf8_lossy(header_section(&b_file.bytes))
        );
        let (uid, server_body) = on_server
            .get(id)
            .unwrap_or_else(|| panic!("{id} not in pluto's INBOX"));
        assert!(
            find(header_section(server_body), b"\nX-TUID: ").is_some(),
            "{id} (UID {uid}): the X-TUID line mbsync uploaded is not in BODY[]"
        );
        let crlf_original = lf_to_crlf(original);
        assert!(
            strip_tuid(server_body) == crlf_original,
            "{id} (UID {uid}): pluto's BODY[] is not the CRLF form of the original: {}",
            first_difference(&strip_tuid(server_body), &crlf_original)
        );
        let crlf_body = find(server_body, b"\r\n\r\n").map(|p| &server_body[p + 4..]);
        assert!(
            crlf_body == Some(&lf_to_crlf(body_section(original))[..]),
            "{id} (UID {uid}): the body in BODY[] differs from the original's"
        );
        assert_eq!(b_file.flags, "", "{id}: unexpected flags in B");
    }

    // A flag set locally in A travels to pluto and on to B.
    let ids: Vec<&String> = by_id.keys().collect();
    let local_change = ids[7].clone();
    let file = &a[&local_change];
    let info = if file.path.to_string_lossy().contains(":2,") {
        ""
    } else {
        ":2,"
    };
    // A message in new/ with flags belongs in cur/ (Maildir spec).
    let renamed = local_a.join("cur").join(format!(
        "{}{info}FS",
        file.path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::rename(&file.path, &renamed).unwrap();
    mbsync(&rc, "up", &pluto);
    let uid = on_server[&local_change].0;
    let flags = server_flags(&mut client, uid);
    assert_eq!(
        flags,
        vec!["\\Flagged".to_owned(), "\\Seen".to_owned()],
        "{local_change} (UID {uid}) on pluto after F+S was set in local Maildir A"
    );
    mbsync(&rc, "down", &pluto);
    let b = read_maildir(&local_b);
    assert_eq!(
        sorted(&b[&local_change].flags),
        "FS",
        "{local_change}: flags in B after the change in A went up and down"
    );

    // A flag set on the server (IMAP STORE) travels down to B and to A.
    let server_change = ids[42].clone();
    let uid = on_server[&server_change].0;
    let reply = client
        .cmd(&format!("UID STORE {uid} +FLAGS (\\Answered \\Seen)"))
        .unwrap();
    assert!(reply.ok(), "UID STORE: {}", reply.tagged);
    mbsync(&rc, "down", &pluto);
    mbsync(&rc, "up", &pluto);
    let a = read_maildir(&local_a);
    let b = read_maildir(&local_b);
    assert_eq!(
        sorted(&b[&server_change].flags),
        "RS",
        "{server_change}: flags in B after STORE on pluto"
    );
    assert_eq!(
        sorted(&a[&server_change].flags),
        "RS",
        "{server_change}: flags in A after STORE on pluto"
    );

    // Nothing else changed: every other message is flagless everywhere.
    let all_flags = client.fetch_flags("1:*").unwrap();
    let changed: BTreeSet<u32> = [on_server[&local_change].0, uid].into();
    for (u, f) in &all_flags {
        if !changed.contains(u) {
            let f = stored_flags(f.clone());
            assert!(f.is_empty(), "UID {u} gained flags {f:?}");
        }
    }
    for (id, file) in b.iter() {
        if *id != local_change && *id != server_change {
            assert_eq!(file.flags, "", "{id}: flags in B");
        }
    }
    assert_eq!(all_flags.len(), COUNT, "messages on pluto at the end");
}
