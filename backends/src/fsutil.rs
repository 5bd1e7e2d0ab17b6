//! Small durable-filesystem helpers the backends (and the gateway's few files) build on:
//! fsync of a directory, atomic replacement of a file, clocks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Makes a directory's entries (creations, renames, unlinks) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically: a reader (or a crash) sees either the old or
/// the new content, never a mix. Write a temporary file, fsync it, rename it over the
/// target, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`] with the file's permission bits (0o600 for keys).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("atomic write target has no parent directory"))?;
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("atomic write target has no file name"))?
        .to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch: a modseq base that exceeds any modseq a session
/// could remember from before an index was lost.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// True when the error says the file or directory is not there.
pub fn is_not_found(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

/// Reads a message file only as far as the empty line that ends its header (the whole
/// file when it has none): the header section as [`header_len`](crate::header_len)
/// counts it. For ENVELOPE and header FETCHes, which need nothing else.
pub fn read_header(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut bytes = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk[..n]);
        // Done once the empty line that ends the header is in (headers are small:
        // scanning again per 8 KiB read costs nothing).
        let end = crate::header_len(&bytes);
        if end < bytes.len() || bytes.ends_with(b"\n\n") || bytes.ends_with(b"\n\r\n") {
            bytes.truncate(end);
            // Callers keep headers (the gateway caches them): not the 8 KiB read buffer.
            bytes.shrink_to_fit();
            return Ok(bytes);
        }
    }
}

/// True when `path` holds a line feed not preceded by a carriage return (a file another
/// program wrote with Unix line ends). Reads the file in chunks, never whole.
pub fn has_bare_lf(path: &Path) -> io::Result<bool> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut previous = 0u8;
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        for &b in &chunk[..n] {
            if b == b'\n' && previous != b'\r' {
                return Ok(true);
            }
            previous = b;
        }
    }
}

/// Rewrites `path` in place with every bare LF turned into CRLF (IMAP needs CRLF), crash
/// safely: the converted copy is written to `tmp` (a path on the same file system),
/// fsynced, given the original's mtime, then renamed over `path`. Streams in chunks.
pub fn convert_to_crlf(path: &Path, tmp: &Path) -> io::Result<()> {
    use std::io::{BufWriter, Read};
    let mut source = File::open(path)?;
    let modified = source.metadata()?.modified()?;
    let result = (|| -> io::Result<()> {
        let file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut previous = 0u8;
        loop {
            let n = source.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            let mut start = 0;
            for (i, &b) in chunk[..n].iter().enumerate() {
                let before = if i == 0 { previous } else { chunk[i - 1] };
                if b == b'\n' && before != b'\r' {
                    out.write_all(&chunk[start..i])?;
                    out.write_all(b"\r\n")?;
                    start = i + 1;
                }
            }
            out.write_all(&chunk[start..n])?;
            previous = chunk[n - 1];
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.set_modified(modified)?;
        file.sync_all()?;
        fs::rename(tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bare_line_feeds_become_crlf_and_crlf_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut input = b"A: b\n\r\nline\r\nbare\n".to_vec();
        // Past one chunk, with a CRLF split across the chunk boundary.
        input.resize(64 * 1024 - 1, b'x');
        input.extend_from_slice(b"\r\nend\n");
        fs::write(&path, &input).unwrap();
        assert!(has_bare_lf(&path).unwrap());
        convert_to_crlf(&path, &dir.path().join("t")).unwrap();
        let out = fs::read(&path).unwrap();
        let mut expected = b"A: b\r\n\r\nline\r\nbare\r\n".to_vec();
        expected.resize(64 * 1024 + 1, b'x');
        expected.extend_from_slice(b"\r\nend\r\n");
        assert_eq!(out, expected);
        assert!(!has_bare_lf(&path).unwrap());
        assert!(!dir.path().join("t").exists());
    }
}
