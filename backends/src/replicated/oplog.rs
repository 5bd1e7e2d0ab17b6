//! The node's operation log: one append-only, checksummed file sequence that every
//! write step goes through before anyone sees it.
//!
//! - **Records.** Each record has a log sequence number (LSN, 1, 2, 3, … with no gaps)
//!   and an [`Entry`]: a user's CRDT ops for one step (a local write; or a peer's batch
//!   with the follow-ups it triggered, in one record as DESIGN.md asks), or a note of
//!   how far a peer's log has been received.
//! - **Frames.** `len u32 | crc32 u32 | lsn u64 | postcard payload`, the CRC covering
//!   the LSN and the payload.
//! - **Segments.** `log/<first lsn>.seg`, each starting with a header (magic, first LSN,
//!   the log's byte offset where it starts, for lag in bytes). A new segment starts once
//!   one passes the size limit; whole segments are deleted by [`OpLog::truncate_through`].
//! - **Group commit.** Writers [`submit`](OpLog::submit) records; one writer thread
//!   writes every record waiting, calls fsync once for all of them, then answers them
//!   all. Concurrent sessions thus share one fsync. LSNs are handed out under one small
//!   lock together with the queueing, so the queue's order is the LSN order and a
//!   reader that sees LSN n durable knows every record before it is durable too.
//! - **Recovery.** Opening checks every frame; a bad frame in the last segment is a torn
//!   tail (a crash mid-write, never acknowledged) and is cut off; a bad frame anywhere
//!   else is corruption and refuses to start.
//! - **Failure.** When a write or fsync fails the log is marked failed and every later
//!   submit fails: memory may then be ahead of disk, so the node must stop serving.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pluto_crdt::{BodyRef, Op};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::concurrency::lock;
use crate::error::{StoreError, StoreResult};
use crate::fsutil::sync_dir;
use crate::types::UserId;

const MAGIC: &[u8; 8] = b"PLUTOLG1";
const HEADER_LEN: u64 = 24;
const FRAME_HEADER: usize = 16;
/// A record larger than this is refused on write and taken for garbage on read.
pub const MAX_RECORD: usize = 96 * 1024 * 1024;

/// What one record holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Entry {
    /// One write step of one user: its ops, and the bodies this step stored here first
    /// (so replication can send them along with the ops that need them).
    Step {
        user: UserId,
        ops: Vec<Op>,
        blobs: Vec<BodyRef>,
    },
    /// Everything in `peer`'s log up to `upto` has been received and is in this log.
    Received { peer: String, upto: u64 },
}

/// How far the log is durable: the last durable record and where it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    pub lsn: u64,
    /// First LSN of the segment holding that record.
    pub segment: u64,
    /// End of that record in its segment file.
    pub offset: u64,
    /// End of that record in the whole log's byte count (never goes back).
    pub bytes: u64,
}

struct Request {
    lsn: u64,
    payload: Vec<u8>,
    reply: oneshot::Sender<Result<u64, String>>,
}

struct Submitter {
    next_lsn: u64,
    tx: Option<mpsc::UnboundedSender<Request>>,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    first: u64,
    base: u64,
}

/// The log of one node. Cheap to share behind an `Arc`.
pub struct OpLog {
    dir: PathBuf,
    submitter: Mutex<Submitter>,
    durable: watch::Receiver<Durable>,
    failed: Arc<AtomicBool>,
    segments: Arc<Mutex<Vec<Segment>>>,
    /// The first LSN still in the log (records before it were truncated).
    start: AtomicU64,
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// One frame read: `Ok(None)` at a clean end of file, `Err(reason)` for a torn or
/// corrupt frame.
type FrameRead = Result<Option<(u64, Vec<u8>)>, String>;

/// Reads one frame at the reader's position.
fn read_frame(r: &mut impl Read) -> std::io::Result<FrameRead> {
    let mut head = [0u8; FRAME_HEADER];
    let mut got = 0;
    while got < FRAME_HEADER {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 0 {
        return Ok(Ok(None));
    }
    if got < FRAME_HEADER {
        return Ok(Err("short frame header".into()));
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&head[8..16]);
    let lsn = u64::from_le_bytes(lsn_bytes);
    if len > MAX_RECORD {
        return Ok(Err(format!("frame length {len} is too large")));
    }
    let mut payload = vec![0u8; len];
    if let Err(e) = r.read_exact(&mut payload) {
        if e.kind() == ErrorKind::UnexpectedEof {
            return Ok(Err("short frame payload".into()));
        }
        return Err(e);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn_bytes);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(Err(format!("checksum mismatch in record {lsn}")));
    }
    Ok(Ok(Some((lsn, payload))))
}

fn encode_frame(lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
    let lsn_bytes = lsn.to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn_bytes);
    hasher.update(payload);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(&lsn_bytes);
    out.extend_from_slice(payload);
}

fn read_header(file: &mut File) -> std::io::Result<Option<(u64, u64)>> {
    let mut head = [0u8; HEADER_LEN as usize];
    match file.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if &head[..8] != MAGIC {
        return Ok(None);
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&head[8..16]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&head[16..24]);
    Ok(Some((u64::from_le_bytes(a), u64::from_le_bytes(b))))
}

fn create_segment(dir: &Path, first: u64, base: u64) -> std::io::Result<File> {
    let path = segment_path(dir, first);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .read(true)
        .open(&path)?;
    let mut head = Vec::with_capacity(HEADER_LEN as usize);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&first.to_le_bytes());
    head.extend_from_slice(&base.to_le_bytes());
    file.write_all(&head)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// What opening found: the log, and every record still in it, in LSN order.
pub struct Recovered {
    pub log: OpLog,
    pub records: Vec<(u64, Entry)>,
    /// Bytes cut off a torn tail (0 after a clean stop).
    pub torn_bytes: u64,
}

impl OpLog {
    /// Opens (or creates) the log in `dir`, cutting a torn tail, and starts its writer.
    pub fn open(dir: PathBuf, segment_limit: u64) -> StoreResult<Recovered> {
        fs::create_dir_all(&dir)?;
        let mut firsts: Vec<u64> = fs::read_dir(&dir)?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse::<u64>().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut segments = Vec::new();
        let mut records = Vec::new();
        let mut torn_bytes = 0;
        let mut expected: Option<u64> = None;
        let mut tail: Option<(u64, u64, u64)> = None; // (first, base, end offset)
        let count = firsts.len();
        for (i, first) in firsts.iter().copied().enumerate() {
            let last = i + 1 == count;
            let path = segment_path(&dir, first);
            let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
            let Some((hfirst, base)) = read_header(&mut file)? else {
                if last {
                    // A crash while a new segment was being started: it holds nothing.
                    tracing::warn!(path = %path.display(), "removing a segment with a torn header");
                    drop(file);
                    fs::remove_file(&path)?;
                    sync_dir(&dir)?;
                    continue;
                }
                return Err(corrupt(format!("{}: bad segment header", path.display())));
            };
            if hfirst != first || expected.is_some_and(|e| e != first) {
                return Err(corrupt(format!(
                    "{}: segment does not continue the log (expected LSN {expected:?})",
                    path.display()
                )));
            }
            let mut reader = BufReader::new(&mut file);
            let mut offset = HEADER_LEN;
            let mut next = first;
            loop {
                match read_frame(&mut reader)? {
                    Ok(None) => break,
                    Ok(Some((lsn, payload))) if lsn == next => {
                        let entry: Entry = match postcard::from_bytes(&payload) {
                            Ok(e) => e,
                            Err(e) => {
                                return Err(corrupt(format!(
                                    "{}: record {lsn} is undecodable: {e}",
                                    path.display()
                                )));
                            }
                        };
                        offset += (FRAME_HEADER + payload.len()) as u64;
                        records.push((lsn, entry));
                        next += 1;
                    }
                    Ok(Some((lsn, _))) => {
                        if !last {
                            return Err(corrupt(format!(
                                "{}: record {lsn} where {next} was expected",
                                path.display()
                            )));
                        }
                        torn_bytes += cut(&mut file, offset)?;
                        break;
                    }
                    Err(why) => {
                        if !last {
                            return Err(corrupt(format!("{}: {why}", path.display())));
                        }
                        tracing::warn!(path = %path.display(), %why, "cutting a torn tail");
                        drop(reader);
                        torn_bytes += cut(&mut file, offset)?;
                        break;
                    }
                }
            }
            segments.push(Segment { first, base });
            expected = Some(next);
            tail = Some((first, base, offset));
        }
        let (first, base, end) = match tail {
            Some(t) => t,
            None => {
                let first = expected.unwrap_or(1);
                create_segment(&dir, first, 0)?;
                segments.push(Segment { first, base: 0 });
                (first, 0, HEADER_LEN)
            }
        };
        let next_lsn = expected.unwrap_or(first);
        let start = segments.first().map_or(first, |s| s.first);
        let mut file = OpenOptions::new()
            .write(true)
            .open(segment_path(&dir, first))?;
        file.seek(SeekFrom::Start(end))?;
        let durable = Durable {
            lsn: next_lsn - 1,
            segment: first,
            offset: end,
            bytes: base + end - HEADER_LEN,
        };
        let (durable_tx, durable_rx) = watch::channel(durable);
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(AtomicBool::new(false));
        let segments = Arc::new(Mutex::new(segments));
        let writer = Writer {
            dir: dir.clone(),
            file,
            segment: Segment { first, base },
            offset: end,
            limit: segment_limit.max(HEADER_LEN + 1),
            durable: durable_tx,
            failed: failed.clone(),
            segments: segments.clone(),
        };
        std::thread::Builder::new()
            .name("pluto-oplog".into())
            .spawn(move || writer.run(rx))?;
        Ok(Recovered {
            log: OpLog {
                dir,
                submitter: Mutex::new(Submitter {
                    next_lsn,
                    tx: Some(tx),
                }),
                durable: durable_rx,
                failed,
                segments,
                start: AtomicU64::new(start),
            },
            records,
            torn_bytes,
        })
    }

    /// Queues a record; returns its LSN and a receiver that resolves once it is durable.
    /// Call it while holding the lock of the state the record changes, so that state
    /// knows the LSN it must wait for before showing anything.
    pub fn submit(
        &self,
        entry: &Entry,
    ) -> StoreResult<(u64, oneshot::Receiver<Result<u64, String>>)> {
        if self.failed() {
            return Err(StoreError::Unavailable(
                "the operation log failed; this node no longer accepts writes".into(),
            ));
        }
        let payload = postcard::to_stdvec(entry)
            .map_err(|e| corrupt(format!("cannot encode a log record: {e}")))?;
        if payload.len() > MAX_RECORD {
            return Err(StoreError::TooBig {
                limit: MAX_RECORD as u64,
            });
        }
        let (reply, rx) = oneshot::channel();
        let mut sub = lock(&self.submitter);
        let lsn = sub.next_lsn;
        let Some(tx) = sub.tx.as_ref() else {
            return Err(StoreError::Unavailable(
                "the operation log is closed".into(),
            ));
        };
        tx.send(Request {
            lsn,
            payload,
            reply,
        })
        .map_err(|_| StoreError::Unavailable("the operation log writer stopped".into()))?;
        sub.next_lsn += 1;
        Ok((lsn, rx))
    }

    /// Waits for a submitted record's durability.
    pub async fn wait(rx: oneshot::Receiver<Result<u64, String>>) -> StoreResult<u64> {
        match rx.await {
            Ok(Ok(lsn)) => Ok(lsn),
            Ok(Err(why)) => Err(StoreError::Io(std::io::Error::other(why))),
            Err(_) => Err(StoreError::Unavailable(
                "the operation log writer stopped".into(),
            )),
        }
    }

    /// Waits until every record up to `lsn` is durable.
    pub async fn wait_durable(&self, lsn: u64) -> StoreResult<()> {
        let mut rx = self.durable.clone();
        if rx.borrow().lsn >= lsn {
            return Ok(());
        }
        let failed = self.failed.clone();
        match rx
            .wait_for(|d| d.lsn >= lsn || failed.load(Ordering::Acquire))
            .await
        {
            Ok(d) if d.lsn >= lsn => Ok(()),
            _ => Err(StoreError::Unavailable("the operation log failed".into())),
        }
    }

    pub fn durable(&self) -> Durable {
        *self.durable.borrow()
    }

    /// A receiver that changes whenever more of the log is durable.
    pub fn durable_watch(&self) -> watch::Receiver<Durable> {
        self.durable.clone()
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The first LSN still in the log.
    pub fn start(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// The LSN the next record will get.
    pub fn next_lsn(&self) -> u64 {
        lock(&self.submitter).next_lsn
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes every whole segment whose records all have LSNs `<= lsn`. The segment
    /// being written is never deleted. Returns how many segments went.
    pub fn truncate_through(&self, lsn: u64) -> StoreResult<usize> {
        let mut segments = lock(&self.segments);
        let mut removed = 0;
        while segments.len() > 1 && segments[1].first <= lsn + 1 {
            let gone = segments.remove(0);
            match fs::remove_file(segment_path(&self.dir, gone.first)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    segments.insert(0, gone);
                    return Err(e.into());
                }
            }
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
            self.start
                .store(segments.first().map_or(0, |s| s.first), Ordering::Release);
        }
        Ok(removed)
    }

    /// Stops taking records; the writer finishes what is queued and exits.
    pub fn close(&self) {
        lock(&self.submitter).tx = None;
    }
}

fn cut(file: &mut File, offset: u64) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    file.set_len(offset)?;
    file.sync_all()?;
    Ok(len.saturating_sub(offset))
}

/// The one thread that writes the log.
struct Writer {
    dir: PathBuf,
    file: File,
    segment: Segment,
    offset: u64,
    limit: u64,
    durable: watch::Sender<Durable>,
    failed: Arc<AtomicBool>,
    segments: Arc<Mutex<Vec<Segment>>>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let mut group = Vec::new();
        let mut buf = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            // Everything queued while the last fsync ran shares the next one.
            while group.len() < 8192 {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            if self.failed.load(Ordering::Acquire) {
                for r in group.drain(..) {
                    let _ = r.reply.send(Err("the operation log failed earlier".into()));
                }
                continue;
            }
            match self.write_group(&group, &mut buf) {
                Ok(durable) => {
                    self.durable.send_replace(durable);
                    for r in group.drain(..) {
                        let _ = r.reply.send(Ok(r.lsn));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing the operation log failed; refusing further writes");
                    self.failed.store(true, Ordering::Release);
                    // Wake waiters so they see the failure.
                    self.durable.send_modify(|_| {});
                    for r in group.drain(..) {
                        let _ = r.reply.send(Err(format!("writing the operation log: {e}")));
                    }
                }
            }
        }
        let _ = self.file.sync_all();
    }

    fn write_group(&mut self, group: &[Request], buf: &mut Vec<u8>) -> std::io::Result<Durable> {
        buf.clear();
        let mut last = 0;
        for r in group {
            let frame_len = (FRAME_HEADER + r.payload.len()) as u64;
            let pending = buf.len() as u64;
            if self.offset + pending > HEADER_LEN && self.offset + pending + frame_len > self.limit
            {
                self.flush(buf)?;
                self.rotate(r.lsn)?;
            }
            encode_frame(r.lsn, &r.payload, buf);
            last = r.lsn;
        }
        self.flush(buf)?;
        self.file.sync_data()?;
        Ok(Durable {
            lsn: last,
            segment: self.segment.first,
            offset: self.offset,
            bytes: self.segment.base + self.offset - HEADER_LEN,
        })
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if !buf.is_empty() {
            self.file.write_all(buf)?;
            self.offset += buf.len() as u64;
            buf.clear();
        }
        Ok(())
    }

    fn rotate(&mut self, first: u64) -> std::io::Result<()> {
        self.file.sync_data()?;
        let base = self.segment.base + self.offset - HEADER_LEN;
        let file = create_segment(&self.dir, first, base)?;
        self.file = file;
        self.segment = Segment { first, base };
        self.offset = HEADER_LEN;
        lock(&self.segments).push(self.segment);
        Ok(())
    }
}

/// One record as a reader sees it.
pub struct ReadRecord {
    pub lsn: u64,
    pub entry: Entry,
    /// The record's size on disk.
    pub size: u64,
    /// Where it ends in the whole log's byte count.
    pub end: u64,
}

/// Reads the log forward from an LSN, never past what is durable. Blocking: use it
/// from a blocking task.
pub struct LogReader {
    dir: PathBuf,
    file: Option<BufReader<File>>,
    segment: Segment,
    offset: u64,
    next: u64,
}

impl LogReader {
    /// A reader positioned at `from`, or `None` when records before `from` are needed
    /// but truncated away (`from < start`).
    pub fn open(log: &OpLog, from: u64) -> StoreResult<Option<LogReader>> {
        let from = from.max(1);
        let segment = {
            let segments = lock(&log.segments);
            match segments.iter().rev().find(|s| s.first <= from) {
                Some(s) => *s,
                None => return Ok(None),
            }
        };
        let mut reader = LogReader {
            dir: log.dir.clone(),
            file: None,
            segment,
            offset: HEADER_LEN,
            next: segment.first,
        };
        match reader.open_segment() {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // Skip to `from`.
        let durable = log.durable();
        while reader.next < from {
            if reader.next_frame(&durable)?.is_none() {
                break;
            }
        }
        Ok(Some(reader))
    }

    fn open_segment(&mut self) -> std::io::Result<()> {
        let mut file = File::open(segment_path(&self.dir, self.segment.first))?;
        file.seek(SeekFrom::Start(HEADER_LEN))?;
        self.file = Some(BufReader::new(file));
        self.offset = HEADER_LEN;
        Ok(())
    }

    /// The LSN of the next record this reader returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    fn next_frame(&mut self, durable: &Durable) -> StoreResult<Option<ReadRecord>> {
        if self.next > durable.lsn {
            return Ok(None);
        }
        loop {
            if self.segment.first == durable.segment && self.offset >= durable.offset {
                return Ok(None);
            }
            let Some(file) = self.file.as_mut() else {
                return Ok(None);
            };
            match read_frame(file)? {
                Ok(Some((lsn, payload))) => {
                    if lsn != self.next {
                        return Err(corrupt(format!(
                            "log reader found record {lsn} where {} was expected",
                            self.next
                        )));
                    }
                    let size = (FRAME_HEADER + payload.len()) as u64;
                    self.offset += size;
                    self.next += 1;
                    let entry = postcard::from_bytes(&payload)
                        .map_err(|e| corrupt(format!("record {lsn} is undecodable: {e}")))?;
                    return Ok(Some(ReadRecord {
                        lsn,
                        entry,
                        size,
                        end: self.segment.base + self.offset - HEADER_LEN,
                    }));
                }
                Ok(None) => {
                    // A finished segment: go on with the next one.
                    let base = self.segment.base + self.offset - HEADER_LEN;
                    self.segment = Segment {
                        first: self.next,
                        base,
                    };
                    self.open_segment().map_err(|e| {
                        if e.kind() == ErrorKind::NotFound {
                            StoreError::Unavailable(format!(
                                "log segment {} was truncated under a reader",
                                self.next
                            ))
                        } else {
                            e.into()
                        }
                    })?;
                }
                Err(why) => return Err(corrupt(format!("log reader: {why}"))),
            }
        }
    }

    /// Up to `max_records` durable records (fewer once `max_bytes` is reached).
    pub fn read(
        &mut self,
        durable: &Durable,
        max_records: usize,
        max_bytes: u64,
    ) -> StoreResult<Vec<ReadRecord>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_records && bytes < max_bytes {
            match self.next_frame(durable)? {
                Some(r) => {
                    bytes += r.size;
                    out.push(r);
                }
                None => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn step(n: usize) -> Entry {
        Entry::Received {
            peer: format!("p{n}"),
            upto: n as u64,
        }
    }

    #[tokio::test]
    async fn group_commit_recovery_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let rec = OpLog::open(dir.path().join("log"), 1024).unwrap();
        assert!(rec.records.is_empty());
        let log = Arc::new(rec.log);
        let mut waits = Vec::new();
        for i in 0..200 {
            let (lsn, rx) = log.submit(&step(i)).unwrap();
            assert_eq!(lsn, i as u64 + 1);
            waits.push(rx);
        }
        for rx in waits {
            OpLog::wait(rx).await.unwrap();
        }
        assert_eq!(log.durable().lsn, 200);
        // Several segments were made; a reader crosses them.
        let mut reader = LogReader::open(&log, 150).unwrap().unwrap();
        let got = reader.read(&log.durable(), 1000, u64::MAX).unwrap();
        assert_eq!(got.first().map(|r| r.lsn), Some(150));
        assert_eq!(got.len(), 51);
        log.close();
        drop(log);
        std::thread::sleep(std::time::Duration::from_millis(50));
        // A torn tail: garbage after the last record.
        let mut segs: Vec<_> = fs::read_dir(dir.path().join("log"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        segs.sort();
        assert!(segs.len() > 2);
        let last = segs.last().unwrap();
        let mut f = OpenOptions::new().append(true).open(last).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let rec = OpLog::open(dir.path().join("log"), 1024).unwrap();
        assert_eq!(rec.records.len(), 200);
        assert_eq!(rec.torn_bytes, 7);
        assert_eq!(rec.log.next_lsn(), 201);
        // Truncation keeps the current segment and everything after the LSN.
        let removed = rec.log.truncate_through(100).unwrap();
        assert!(removed > 0);
        assert!(rec.log.start() <= 101);
        assert!(LogReader::open(&rec.log, 1).unwrap().is_none());
        let rec2 = {
            rec.log.close();
            drop(rec);
            OpLog::open(dir.path().join("log"), 1024).unwrap()
        };
        assert_eq!(rec2.records.last().map(|r| r.0), Some(200));
        assert!(rec2.records.first().unwrap().0 <= 101);
    }
}
