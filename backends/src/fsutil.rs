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
