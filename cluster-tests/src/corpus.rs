//! The test corpus (`testdata/corpus/gen_mbox.py`), split into messages with
//! CRLF line endings, as a client would APPEND them.

use std::path::PathBuf;
use std::process::Command;

/// Path of the generator, from this crate's folder.
pub fn generator() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/corpus/gen_mbox.py");
    assert!(
        path.exists(),
        "the corpus generator {} is missing",
        path.display()
    );
    path
}

/// `count` messages of the corpus, CRLF, each with its Message-ID.
pub fn messages(count: usize) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("corpus.mbox");
    let out = Command::new("python3")
        .arg(generator())
        .arg(&mbox)
        .arg(count.to_string())
        .output()
        .expect("python3 runs the corpus generator");
    assert!(
        out.status.success(),
        "gen_mbox.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read(&mbox).unwrap();
    split(&text)
}

/// Splits an mbox (no >From escaping needed: the generator never starts a body line
/// with "From ") into CRLF messages.
fn split(mbox: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut started = false;
    for line in mbox.split(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            if started {
                out.push(finish(std::mem::take(&mut current)));
            }
            started = true;
            continue;
        }
        if started {
            current.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            current.extend_from_slice(b"\r\n");
        }
    }
    if started {
        out.push(finish(current));
    }
    out
}

fn finish(mut message: Vec<u8>) -> (String, Vec<u8>) {
    // The mbox separator's blank line before the next "From " is not part of the message.
    while message.ends_with(b"\r\n\r\n") {
        message.truncate(message.len() - 2);
    }
    let id = message_id(&message).unwrap_or_default();
    (id, message)
}

/// The Message-ID header's value.
pub fn message_id(message: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    for line in text.split("\r\n") {
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("message-id:") {
            let start = line.len() - v.len();
            return Some(line[start..].trim().to_owned());
        }
    }
    None
}
