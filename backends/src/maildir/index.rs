//! The per-mailbox index: a snapshot file plus an append-only journal.
//!
//! Why both: a flag change on one message must not rewrite an index of 100,000
//! messages. Each change is one checksummed record appended to `pluto-journal` and
//! fdatasync'd before the change is acknowledged (O(1)); every so often the whole state
//! is written to `pluto-index` atomically (tmp file, fsync, rename, fsync the directory)
//! and a new, empty journal replaces the old one the same way.
//!
//! - `pluto-index`: `PLUTOIX1`, crc32 of the payload (u32 LE), payload = postcard of
//!   [`Snapshot`]. Its `generation` names the journal that extends it.
//! - `pluto-journal`: `PLUTOJN1`, generation (u64 LE), then records, each
//!   `len (u32 LE) | crc32 (u32 LE) | postcard of` [`Batch`]. A journal whose generation
//!   is not the snapshot's is stale (a crash fell between the two renames of a
//!   compaction: the snapshot already holds its records) and is ignored. Replay stops at
//!   the first torn or corrupt record and cuts the file there: a torn record was never
//!   acknowledged, since its fdatasync did not return.
//!
//! Each batch also carries its modseq and is applied only above the state's highest
//! modseq, so replaying a record twice is harmless.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{is_not_found, write_atomic};
use crate::types::Flags;

pub(crate) const INDEX_FILE: &str = "pluto-index";
pub(crate) const JOURNAL_FILE: &str = "pluto-journal";
const INDEX_MAGIC: &[u8; 8] = b"PLUTOIX1";
const JOURNAL_MAGIC: &[u8; 8] = b"PLUTOJN1";
const JOURNAL_HEADER: u64 = 16;
/// A record larger than this is garbage (a batch of 1M appends is far below it).
const MAX_RECORD: u32 = 256 << 20;

/// One message in the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub uid: u32,
    /// The file's unique name (before `:2,`).
    pub unique: String,
    /// File-name letters we keep but do not map to flags.
    pub extra: String,
    pub flags: Flags,
    pub modseq: u64,
    /// Internal date: seconds since the epoch and the zone offset in seconds.
    pub date: i64,
    pub offset: i32,
    pub size: u32,
}

/// The whole state of a mailbox, as written to `pluto-index`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub generation: u64,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// Expunges at or below this modseq may have been forgotten.
    pub tombstone_floor: u64,
    /// Ascending by uid.
    pub messages: Vec<Entry>,
    /// (uid, modseq of its expunge), oldest first.
    pub tombstones: Vec<(u32, u64)>,
}

/// One durable change: everything one store operation did, under one new modseq.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub modseq: u64,
    pub uid_next: u32,
    pub appended: Vec<Entry>,
    /// (uid, new flags, new unmapped letters)
    pub flags: Vec<(u32, Flags, String)>,
    pub expunged: Vec<u32>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.appended.is_empty() && self.flags.is_empty() && self.expunged.is_empty()
    }
}

/// Why a snapshot could not be used.
pub(crate) enum SnapshotError {
    Io(io::Error),
    Corrupt(String),
}

fn encode_err(e: postcard::Error) -> io::Error {
    io::Error::other(format!("index encoding failed: {e}"))
}

/// Reads `pluto-index`; `Ok(None)` when there is none.
pub(crate) fn read_snapshot(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let bytes = match fs::read(dir.join(INDEX_FILE)) {
        Ok(b) => b,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(SnapshotError::Io(e)),
    };
    if bytes.len() < 12 || &bytes[..8] != INDEX_MAGIC {
        return Err(SnapshotError::Corrupt("bad header".into()));
    }
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let payload = &bytes[12..];
    if crc32fast::hash(payload) != crc {
        return Err(SnapshotError::Corrupt("checksum mismatch".into()));
    }
    postcard::from_bytes(payload)
        .map(Some)
        .map_err(|e| SnapshotError::Corrupt(format!("undecodable: {e}")))
}

/// Writes `pluto-index` atomically.
pub(crate) fn write_snapshot(dir: &Path, snapshot: &Snapshot) -> io::Result<()> {
    let payload = postcard::to_allocvec(snapshot).map_err(encode_err)?;
    let mut bytes = Vec::with_capacity(payload.len() + 12);
    bytes.extend_from_slice(INDEX_MAGIC);
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    write_atomic(&dir.join(INDEX_FILE), &bytes)
}

/// The open journal of one mailbox.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    pub generation: u64,
    len: u64,
    /// Records since the last snapshot.
    pub records: usize,
    /// Bytes of records since the last snapshot.
    pub bytes: u64,
}

impl Journal {
    /// Replaces the journal with an empty one of this generation (atomically).
    pub(super) fn create(dir: &Path, generation: u64) -> io::Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let mut header = Vec::with_capacity(JOURNAL_HEADER as usize);
        header.extend_from_slice(JOURNAL_MAGIC);
        header.extend_from_slice(&generation.to_le_bytes());
        write_atomic(&path, &header)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Journal {
            path,
            file,
            generation,
            len: JOURNAL_HEADER,
            records: 0,
            bytes: 0,
        })
    }

    /// Opens the journal of `generation` and returns the batches it holds. `Ok(None)` when
    /// there is no journal of that generation (missing, stale or unreadable header).
    pub(super) fn open(dir: &Path, generation: u64) -> io::Result<Option<(Journal, Vec<Batch>)>> {
        let path = dir.join(JOURNAL_FILE);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
        if bytes.len() < JOURNAL_HEADER as usize || &bytes[..8] != JOURNAL_MAGIC {
            return Ok(None);
        }
        let mut gen_bytes = [0u8; 8];
        gen_bytes.copy_from_slice(&bytes[8..16]);
        if u64::from_le_bytes(gen_bytes) != generation {
            return Ok(None);
        }
        let mut batches = Vec::new();
        let mut at = JOURNAL_HEADER as usize;
        while let Some(batch) = decode_record(&bytes, at) {
            let (b, next) = batch;
            batches.push(b);
            at = next;
        }
        if at < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                good = at,
                total = bytes.len(),
                "cutting a torn or corrupt journal tail"
            );
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(at as u64)?;
            f.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        let records = batches.len();
        Ok(Some((
            Journal {
                path,
                file,
                generation,
                len: at as u64,
                records,
                bytes: at as u64 - JOURNAL_HEADER,
            },
            batches,
        )))
    }

    /// Appends one batch durably. On failure the journal is cut back to where it was,
    /// so no half record is left for later records to follow.
    pub(super) fn append(&mut self, batch: &Batch) -> io::Result<()> {
        let payload = postcard::to_allocvec(batch).map_err(encode_err)?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| io::Error::other("journal record too large"))?;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let result = self
            .file
            .write_all(&frame)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += frame.len() as u64;
                self.records += 1;
                self.bytes += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.len) {
                    tracing::error!(path = %self.path.display(), error = %cut, "cannot cut the journal back after a failed write");
                    return Err(io::Error::other(format!(
                        "journal write failed ({e}) and could not be undone ({cut})"
                    )));
                }
                Err(e)
            }
        }
    }
}

fn decode_record(bytes: &[u8], at: usize) -> Option<(Batch, usize)> {
    let head = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD {
        return None;
    }
    let end = at + 8 + len as usize;
    let payload = bytes.get(at + 8..end)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let batch = postcard::from_bytes(payload).ok()?;
    Some((batch, end))
}
