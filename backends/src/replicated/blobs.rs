//! Message bodies on disk, content-addressed: the SHA-256 of the bytes names the file
//! `blobs/ab/cdef…` (first byte as a fan-out directory). A body is written once (a
//! second APPEND of the same bytes, a COPY, a MOVE and a replica's copy all share it)
//! and durably (temporary file, fsync, rename, fsync of the directory) before any
//! operation that names it is logged, so a logged operation never points at nothing.
//!
//! Bodies no state needs any more are removed by [`BlobStore::sweep`] (run after each
//! checkpoint): a body is kept while any user's state references it, and for a grace
//! period after it was last stored — a write stores its body before its operation is
//! applied, and storing a body that is already here renews its time, so a sweep never
//! takes a body a write in progress is about to name.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use pluto_crdt::BodyRef;
use sha2::{Digest, Sha256};

use crate::error::{StoreError, StoreResult};
use crate::fsutil::sync_dir;

/// The content hash of a body.
pub fn body_ref(bytes: &[u8]) -> BodyRef {
    let digest = Sha256::digest(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    BodyRef(out)
}

/// Bodies removed by a sweep, or stored (their count and bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub bodies: u64,
    pub bytes: u64,
}

/// Whether a body is stored at `path`; if so its time is set to now, so that a sweep
/// running meanwhile keeps it for the grace period.
fn renew(path: &std::path::Path) -> StoreResult<bool> {
    match OpenOptions::new().write(true).open(path) {
        Ok(file) => {
            file.set_modified(SystemTime::now())?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The body a file of the fan-out directory `prefix` names.
fn parse_ref(prefix: &str, rest: &str) -> Option<BodyRef> {
    let name = format!("{prefix}{rest}");
    if name.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(BodyRef(out))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The blob directory of one node.
pub struct BlobStore {
    root: PathBuf,
    /// Makes temporary names unique among concurrent writers of this process.
    tmp_counter: AtomicU64,
}

impl BlobStore {
    pub fn open(root: PathBuf) -> StoreResult<Self> {
        fs::create_dir_all(root.join("tmp"))?;
        // Temporary files left by a crash are garbage: no operation names them.
        if let Ok(entries) = fs::read_dir(root.join("tmp")) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            root,
            tmp_counter: AtomicU64::new(0),
        })
    }

    fn path(&self, body: &BodyRef) -> PathBuf {
        let name = hex(&body.0);
        self.root.join(&name[..2]).join(&name[2..])
    }

    pub fn contains(&self, body: &BodyRef) -> bool {
        self.path(body).exists()
    }

    /// Stores `bytes` durably under their hash; returns the hash and whether this call
    /// wrote them (false: they were already here). Blocking: call from a blocking task.
    pub fn put(&self, bytes: &[u8]) -> StoreResult<(BodyRef, bool)> {
        let body = body_ref(bytes);
        let written = self.put_as(&body, bytes)?;
        Ok((body, written))
    }

    /// Stores bytes a peer sent under the hash it named, after checking it.
    pub fn put_checked(&self, body: &BodyRef, bytes: &[u8]) -> StoreResult<bool> {
        if body_ref(bytes) != *body {
            return Err(StoreError::Corrupt(format!(
                "a peer sent body {} with other bytes",
                hex(&body.0)
            )));
        }
        self.put_as(body, bytes)
    }

    /// Stores many bodies a peer sent, after checking each hash. All files are written
    /// first, then made durable with one `syncfs`, renamed into place, and the renames
    /// made durable with a second `syncfs`: two flushes per batch instead of two fsyncs
    /// per body, which is what lets a peer keep up with an origin's concurrent writers.
    /// Blocking.
    pub fn put_many_checked(&self, bodies: &[(BodyRef, Bytes)]) -> StoreResult<usize> {
        let mut staged = Vec::new();
        for (body, bytes) in bodies {
            if body_ref(bytes) != *body {
                return Err(StoreError::Corrupt(format!(
                    "a peer sent body {} with other bytes",
                    hex(&body.0)
                )));
            }
            let path = self.path(body);
            if staged.iter().any(|(_, p): &(PathBuf, PathBuf)| *p == path) || renew(&path)? {
                continue;
            }
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
            let tmp = self.root.join("tmp").join(format!(
                "{}-{}-{n}",
                hex(&body.0[..8]),
                std::process::id()
            ));
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(bytes)?;
            staged.push((tmp, path));
        }
        if staged.is_empty() {
            return Ok(0);
        }
        let root = File::open(&self.root)?;
        rustix::fs::syncfs(&root).map_err(std::io::Error::from)?;
        for (tmp, path) in &staged {
            fs::rename(tmp, path)?;
        }
        rustix::fs::syncfs(&root).map_err(std::io::Error::from)?;
        Ok(staged.len())
    }

    fn put_as(&self, body: &BodyRef, bytes: &[u8]) -> StoreResult<bool> {
        let path = self.path(body);
        if renew(&path)? {
            return Ok(false);
        }
        let dir = path
            .parent()
            .ok_or_else(|| StoreError::Corrupt("blob path has no parent".into()))?;
        let fresh_dir = !dir.exists();
        if fresh_dir {
            fs::create_dir_all(dir)?;
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{}-{}-{n}", hex(&body.0[..8]), std::process::id()));
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        if fresh_dir {
            sync_dir(&self.root)?;
        }
        Ok(true)
    }

    /// The bytes of a body. Blocking.
    pub fn get(&self, body: &BodyRef) -> StoreResult<Bytes> {
        match fs::read(self.path(body)) {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Corrupt(format!(
                "message body {} is missing",
                hex(&body.0)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The header section of a body (see [`crate::fsutil::read_header`]). Blocking.
    pub fn get_header(&self, body: &BodyRef) -> StoreResult<Bytes> {
        match crate::fsutil::read_header(&self.path(body)) {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Corrupt(format!(
                "message body {} is missing",
                hex(&body.0)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes every body not in `keep` that was last stored before `stored_before`.
    /// Returns how many and their bytes. Blocking.
    pub fn sweep(&self, keep: &BTreeSet<BodyRef>, stored_before: SystemTime) -> StoreResult<Swept> {
        let mut swept = Swept::default();
        for fan in fs::read_dir(&self.root)?.flatten() {
            let fan_name = fan.file_name();
            let Some(prefix) = fan_name.to_str().filter(|n| n.len() == 2) else {
                continue;
            };
            for file in fs::read_dir(fan.path())?.flatten() {
                let name = file.file_name();
                let Some(body) = name.to_str().and_then(|rest| parse_ref(prefix, rest)) else {
                    continue;
                };
                if keep.contains(&body) {
                    continue;
                }
                let meta = file.metadata()?;
                if meta.modified()? >= stored_before {
                    continue;
                }
                match fs::remove_file(file.path()) {
                    Ok(()) => {
                        swept.bodies += 1;
                        swept.bytes += meta.len();
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(swept)
    }

    /// How many bodies are stored here, and their bytes. Blocking.
    pub fn usage(&self) -> StoreResult<Swept> {
        let mut total = Swept::default();
        for fan in fs::read_dir(&self.root)?.flatten() {
            if fan.file_name().len() != 2 {
                continue;
            }
            for file in fs::read_dir(fan.path())?.flatten() {
                total.bodies += 1;
                total.bytes += file.metadata()?.len();
            }
        }
        Ok(total)
    }

    /// The bytes of a body, or `None` when this node does not hold it. Blocking.
    pub fn try_get(&self, body: &BodyRef) -> StoreResult<Option<Bytes>> {
        match fs::read(self.path(body)) {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stores_once_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path().join("blobs")).unwrap();
        let (r, new) = blobs.put(b"hello").unwrap();
        assert!(new);
        let (r2, new2) = blobs.put(b"hello").unwrap();
        assert_eq!(r, r2);
        assert!(!new2, "the second put writes nothing");
        assert_eq!(&blobs.get(&r).unwrap()[..], b"hello");
        let other = body_ref(b"other");
        assert!(blobs.try_get(&other).unwrap().is_none());
        assert!(blobs.put_checked(&other, b"not other").is_err());
        let name = hex(&r.0);
        assert!(
            dir.path()
                .join("blobs")
                .join(&name[..2])
                .join(&name[2..])
                .exists()
        );
    }
}
