//! The messages the bench APPENDs: the test corpus (`testdata/corpus/gen_mbox.py`),
//! generated once into an mbox and split into CRLF messages, as a client sends them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{BenchError, Result};

/// The generator's place in the repository: `testdata/corpus/`.
pub fn default_generator() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/corpus/gen_mbox.py")
}

/// Loads `count` corpus messages: from `mbox` when given, else by running the
/// generator with python3 into a temporary file.
pub fn load(mbox: Option<&Path>, generator: &Path, count: usize) -> Result<Vec<Vec<u8>>> {
    let messages = match mbox {
        Some(path) => split(
            &std::fs::read(path)
                .map_err(|e| BenchError::Corpus(format!("{}: {e}", path.display())))?,
        ),
        None => {
            if !generator.exists() {
                return Err(BenchError::Corpus(format!(
                    "the corpus generator {} is missing (pass --corpus-mbox FILE or --corpus-generator PATH)",
                    generator.display()
                )));
            }
            // Unique per call: several loads may run at once in one process (tests).
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let out_path = std::env::temp_dir().join(format!(
                "pluto-bench-corpus-{}-{}.mbox",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let out = Command::new("python3")
                .arg(generator)
                .arg(&out_path)
                .arg(count.to_string())
                .output()
                .map_err(|e| BenchError::Corpus(format!("running python3: {e}")))?;
            let text = std::fs::read(&out_path);
            let _ = std::fs::remove_file(&out_path);
            if !out.status.success() {
                return Err(BenchError::Corpus(format!(
                    "gen_mbox.py failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            split(&text.map_err(|e| BenchError::Corpus(format!("reading the mbox: {e}")))?)
        }
    };
    let messages: Vec<Vec<u8>> = messages.into_iter().take(count.max(1)).collect();
    if messages.is_empty() {
        return Err(BenchError::Corpus("the corpus has no message".into()));
    }
    Ok(messages)
}

/// Splits an mbox into messages with CRLF line ends. The generator never starts a
/// body line with "From ", so no `>From` unescaping is needed.
pub fn split(mbox: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let body = mbox.strip_suffix(b"\n").unwrap_or(mbox);
    for line in body.split(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            if let Some(done) = current.take() {
                out.push(trim_separator(done));
            }
            current = Some(Vec::new());
            continue;
        }
        if let Some(cur) = current.as_mut() {
            cur.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            cur.extend_from_slice(b"\r\n");
        }
    }
    if let Some(done) = current {
        out.push(trim_separator(done));
    }
    out
}

/// The blank line before the next "From " belongs to the mbox, not the message.
fn trim_separator(mut m: Vec<u8>) -> Vec<u8> {
    if m.ends_with(b"\r\n\r\n") {
        m.truncate(m.len() - 2);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_crlf_messages() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nx\n";
        let m = split(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], b"Subject: one\r\n\r\nbody\r\n");
        assert_eq!(m[1], b"Subject: two\r\n\r\nx\r\n");
    }
}
