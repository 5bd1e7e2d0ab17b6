//! One mailbox's state in memory, kept in step with its directory and its index.
//!
//! All of this is synchronous, blocking code: the store runs it under the mailbox's
//! async lock inside `spawn_blocking`, so one writer at a time touches a mailbox.
//!
//! Durability order (what a crash at any point leaves):
//! - append: body to `tmp/`, fsync, rename into `cur/` with its flag letters, fsync
//!   `cur/`, journal record fdatasync'd, then answer. A crash before the record leaves a
//!   file in `cur/` unknown to the index: the next scan takes it in with a fresh UID.
//! - expunge: unlink, fsync `cur/`, then the record. A crash between leaves index
//!   entries without files: the next scan expunges them. (Recording first would let a
//!   surviving file come back as a new message.)
//! - flag change: rename the file to its new letters, then the record. The file name
//!   wins over the index for system flags whenever they disagree (that is also how a
//!   change made by another Maildir program is seen), so a crash between the two keeps
//!   the change.
//!
//! Files other programs drop into `new/` are taken into `cur/` with CRLF line ends
//! (bare LFs converted in place first, so sizes are the CRLF sizes everywhere); empty
//! files there are not messages and are left alone.
//!
//! Cheap change detection: `new/` is listed at every refresh (it is normally empty) and
//! `cur/` is scanned in full only when its mtime moved since our own last change, or
//! every [`FULL_SCAN_EVERY`] as a safety net for changes within one mtime tick.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset, Utc};

use super::filename::{FileName, file_name, letters, new_unique, split_letters, with_system_flags};
use super::index::{Batch, Entry, Journal, Snapshot, SnapshotError, read_snapshot, write_snapshot};
use crate::error::{StoreError, StoreResult};
use crate::fsutil::{convert_to_crlf, has_bare_lf, is_not_found, now_micros, sync_dir};
use crate::types::*;

/// How many expunges are remembered for `changes_since` deltas.
pub(crate) const MAX_TOMBSTONES: usize = 10_000;
/// A full scan of `cur/` at least this often, whatever its mtime says.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(30);
/// Files in `tmp/` older than this are leftovers of a crash (the Maildir spec's 36 h).
const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

/// Hands out a fresh UIDVALIDITY for this user.
pub(crate) type UidValidityAlloc<'a> = &'a dyn Fn() -> StoreResult<u32>;

/// A message to be copied: where its bytes are and what goes with them.
pub(crate) struct Source {
    pub uid: u32,
    /// The file's unique name (before `:2,`).
    pub unique: String,
    pub path: PathBuf,
    pub flags: Flags,
    pub extra: String,
    pub date: i64,
    pub offset: i32,
    pub size: u32,
}

pub(crate) struct MailboxState {
    dir: PathBuf,
    cur: PathBuf,
    new: PathBuf,
    tmp: PathBuf,
    uid_validity: u32,
    uid_next: u32,
    highest_modseq: u64,
    tombstone_floor: u64,
    /// Ascending by uid.
    messages: Vec<Entry>,
    by_unique: HashMap<String, u32>,
    tombstones: VecDeque<(u32, u64)>,
    journal: Journal,
    cur_mtime: Option<SystemTime>,
    last_full_scan: Instant,
    /// Memory may no longer match the files: the owner must drop this state and reload.
    pub poisoned: bool,
}

fn mtime(path: &Path) -> io::Result<SystemTime> {
    fs::metadata(path)?.modified()
}

fn to_system_time(date: &DateTime<FixedOffset>) -> Option<SystemTime> {
    let secs = date.timestamp();
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

fn from_system_time(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The mailbox directories every Maildir has.
pub(crate) fn make_maildir(dir: &Path) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        match fs::create_dir(dir.join(sub)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the index of a new, empty mailbox in `dir`.
pub(crate) fn initialize(dir: &Path, uid_validity: u32) -> io::Result<()> {
    let snapshot = Snapshot {
        generation: 1,
        uid_validity,
        uid_next: 1,
        highest_modseq: 1,
        ..Snapshot::default()
    };
    write_snapshot(dir, &snapshot)?;
    Journal::create(dir, 1)?;
    Ok(())
}

impl MailboxState {
    /// Loads a mailbox: snapshot, journal, then a full scan of its files. A missing or
    /// corrupt index is rebuilt from the files under a new UIDVALIDITY.
    pub(super) fn open(dir: &Path, alloc: UidValidityAlloc<'_>) -> StoreResult<MailboxState> {
        let snapshot = match read_snapshot(dir) {
            Ok(s) => s,
            Err(SnapshotError::Io(e)) => return Err(e.into()),
            Err(SnapshotError::Corrupt(why)) => {
                tracing::warn!(dir = %dir.display(), why, "mailbox index is corrupt; rebuilding it from the files under a new UIDVALIDITY");
                None
            }
        };
        let (mut state, batches) = match snapshot {
            Some(s) => {
                let (journal, batches) = match Journal::open(dir, s.generation)? {
                    Some(found) => found,
                    None => (Journal::create(dir, s.generation)?, Vec::new()),
                };
                (Self::from_snapshot(dir, s, journal), batches)
            }
            None => {
                // No usable index: every file will get a new UID, so the UIDVALIDITY must
                // change, and modseqs restart above anything a session may remember.
                let base = now_micros().max(2);
                let snapshot = Snapshot {
                    generation: 1,
                    uid_validity: alloc()?,
                    uid_next: 1,
                    highest_modseq: base,
                    tombstone_floor: base,
                    ..Snapshot::default()
                };
                write_snapshot(dir, &snapshot)?;
                let journal = Journal::create(dir, 1)?;
                (Self::from_snapshot(dir, snapshot, journal), Vec::new())
            }
        };
        for batch in batches {
            state.apply(batch);
        }
        state.clean_tmp();
        state.full_scan()?;
        Ok(state)
    }

    fn from_snapshot(dir: &Path, s: Snapshot, journal: Journal) -> MailboxState {
        let mut messages = s.messages;
        messages.sort_by_key(|e| e.uid);
        messages.dedup_by_key(|e| e.uid);
        let by_unique = messages.iter().map(|e| (e.unique.clone(), e.uid)).collect();
        MailboxState {
            dir: dir.to_path_buf(),
            cur: dir.join("cur"),
            new: dir.join("new"),
            tmp: dir.join("tmp"),
            uid_validity: s.uid_validity,
            uid_next: s.uid_next.max(1),
            highest_modseq: s.highest_modseq,
            tombstone_floor: s.tombstone_floor,
            messages,
            by_unique,
            tombstones: s.tombstones.into(),
            journal,
            cur_mtime: None,
            last_full_scan: Instant::now(),
            poisoned: false,
        }
    }

    fn to_snapshot(&self, generation: u64) -> Snapshot {
        Snapshot {
            generation,
            uid_validity: self.uid_validity,
            uid_next: self.uid_next,
            highest_modseq: self.highest_modseq,
            tombstone_floor: self.tombstone_floor,
            messages: self.messages.clone(),
            tombstones: self.tombstones.iter().copied().collect(),
        }
    }

    pub(super) fn highest_modseq(&self) -> u64 {
        self.highest_modseq
    }

    fn find(&self, uid: u32) -> Result<usize, usize> {
        self.messages.binary_search_by_key(&uid, |e| e.uid)
    }

    fn path_of(&self, e: &Entry) -> PathBuf {
        self.cur.join(file_name(&e.unique, &e.flags, &e.extra))
    }

    /// Applies a batch to memory (it is already durable, or being replayed).
    fn apply(&mut self, b: Batch) {
        if b.modseq <= self.highest_modseq {
            return;
        }
        if !b.expunged.is_empty() {
            let gone: HashSet<u32> = b.expunged.iter().copied().collect();
            let by_unique = &mut self.by_unique;
            self.messages.retain(|e| {
                let keep = !gone.contains(&e.uid);
                if !keep {
                    by_unique.remove(&e.unique);
                }
                keep
            });
            let mut uids = b.expunged;
            uids.sort_unstable();
            for uid in uids {
                self.tombstones.push_back((uid, b.modseq));
            }
            while self.tombstones.len() > MAX_TOMBSTONES {
                if let Some((_, m)) = self.tombstones.pop_front() {
                    self.tombstone_floor = self.tombstone_floor.max(m);
                }
            }
        }
        for (uid, flags, extra) in b.flags {
            if let Ok(i) = self.find(uid) {
                let e = &mut self.messages[i];
                e.flags = flags;
                e.extra = extra;
                e.modseq = b.modseq;
            }
        }
        for e in b.appended {
            self.by_unique.insert(e.unique.clone(), e.uid);
            match self.find(e.uid) {
                Ok(i) => self.messages[i] = e,
                Err(i) => self.messages.insert(i, e),
            }
        }
        self.uid_next = self.uid_next.max(b.uid_next);
        self.highest_modseq = b.modseq;
    }

    /// Makes a batch durable, then applies it.
    fn commit(&mut self, mut batch: Batch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.uid_next = batch.uid_next.max(self.uid_next);
        if let Err(e) = self.journal.append(&batch) {
            if e.kind() == io::ErrorKind::Other {
                // The journal could not be cut back: reload from disk next time.
                self.poisoned = true;
            }
            return Err(e.into());
        }
        self.apply(batch);
        self.maybe_compact();
        Ok(())
    }

    fn maybe_compact(&mut self) {
        // Rewrite once the journal outgrows the snapshot (about 64 bytes a message):
        // the rewrite costs O(n) every Ω(n) records, O(1) per change amortised.
        let threshold = (self.messages.len() as u64 * 64).max(64 * 1024);
        if self.journal.records < 64 || self.journal.bytes < threshold {
            return;
        }
        if let Err(e) = self.compact() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "index compaction failed");
        }
    }

    fn compact(&mut self) -> io::Result<()> {
        let generation = self.journal.generation + 1;
        write_snapshot(&self.dir, &self.to_snapshot(generation))?;
        match Journal::create(&self.dir, generation) {
            Ok(j) => {
                self.journal = j;
                Ok(())
            }
            Err(e) => {
                // The new snapshot is in place but the old journal is still open:
                // records appended to it would be ignored at the next load.
                self.poisoned = true;
                Err(e)
            }
        }
    }

    fn next_modseq(&self) -> u64 {
        self.highest_modseq + 1
    }

    fn reserve_uids(&self, n: usize) -> StoreResult<u32> {
        if u64::from(self.uid_next) + n as u64 > u64::from(u32::MAX) {
            return Err(StoreError::NotAllowed(
                "this mailbox has used up its UIDs; recreate it".into(),
            ));
        }
        Ok(self.uid_next)
    }

    /// Records the mtime of `cur/` after a change of ours, so that only other programs'
    /// changes trigger a full scan.
    fn note_own_change(&mut self) {
        self.cur_mtime = mtime(&self.cur).ok();
    }

    fn clean_tmp(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > TMP_MAX_AGE);
            if old {
                tracing::info!(file = %entry.path().display(), "removing a stale file from tmp/");
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Takes in what other programs did, cheaply when nothing happened.
    pub(super) fn refresh(&mut self) -> StoreResult<()> {
        let new_pending = fs::read_dir(&self.new)?.flatten().any(|e| {
            !e.file_name().to_string_lossy().starts_with('.')
                && e.metadata().is_ok_and(|m| m.len() > 0)
        });
        let cur_mtime = mtime(&self.cur)?;
        if new_pending
            || Some(cur_mtime) != self.cur_mtime
            || self.last_full_scan.elapsed() > FULL_SCAN_EVERY
        {
            self.full_scan()?;
        }
        Ok(())
    }

    /// Moves files delivered to `new/` into `cur/`; returns how many.
    fn take_in_new(&mut self) -> StoreResult<usize> {
        let mut moved = 0;
        for entry in fs::read_dir(&self.new)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(file = %entry.path().display(), "ignoring a file whose name is not UTF-8");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let len = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            if len == 0 {
                // Not a message (an aborted delivery, a `touch`): left where it is and
                // never shown as an empty message.
                tracing::debug!(file = %entry.path().display(), "ignoring an empty file in new/");
                continue;
            }
            // IMAP needs CRLF line ends; files other programs drop here may have bare
            // LFs. Converted in place, in new/, before anything else sees them, so the
            // size in the index is the size served.
            let converted = match has_bare_lf(&entry.path()) {
                Ok(false) => false,
                Ok(true) => {
                    let tmp = self.tmp.join(format!("{name}.crlf"));
                    match convert_to_crlf(&entry.path(), &tmp) {
                        Ok(()) => true,
                        Err(e) if is_not_found(&e) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let parsed = FileName::parse(&name);
            let (system, extra) = split_letters(&parsed.letters);
            let mut unique = parsed.unique;
            if converted && unique.contains(",S=") {
                // The name's Maildir++ size is the LF size: other readers trust it.
                let size = fs::metadata(entry.path()).map_or(len, |m| m.len());
                unique = new_unique(size);
            }
            let mut target = self.cur.join(file_name(&unique, &system, &extra));
            if self.by_unique.contains_key(&unique) || target.exists() {
                unique = new_unique(entry.metadata().map(|m| m.len()).unwrap_or(0));
                target = self.cur.join(file_name(&unique, &system, &extra));
            }
            match fs::rename(entry.path(), &target) {
                Ok(()) => moved += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if moved > 0 {
            sync_dir(&self.cur)?;
            sync_dir(&self.new)?;
        }
        Ok(moved)
    }

    /// Reconciles the index with `cur/` (and `new/`): files gone are expunged, letters
    /// changed are flag changes, unknown files are new messages with fresh UIDs.
    pub(super) fn full_scan(&mut self) -> StoreResult<()> {
        self.last_full_scan = Instant::now();
        self.take_in_new()?;
        // mtime first: a change after it moves the mtime again and triggers a rescan.
        let cur_mtime = mtime(&self.cur)?;
        let mut on_disk: HashMap<String, (String, String)> = HashMap::new();
        for entry in fs::read_dir(&self.cur)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                tracing::warn!(file = %entry.path().display(), "ignoring a file whose name is not UTF-8");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let parsed = FileName::parse(&name);
            if on_disk.contains_key(&parsed.unique) {
                tracing::warn!(file = %name, "two files share one unique name; ignoring one");
                continue;
            }
            on_disk.insert(parsed.unique, (parsed.letters, name));
        }

        let modseq = self.next_modseq();
        let mut batch = Batch {
            modseq,
            ..Batch::default()
        };
        for e in &self.messages {
            match on_disk.remove(&e.unique) {
                None => batch.expunged.push(e.uid),
                Some((disk_letters, disk_name)) => {
                    let (system, extra) = split_letters(&disk_letters);
                    let flags = with_system_flags(&e.flags, &system);
                    let canonical = file_name(&e.unique, &flags, &extra);
                    if canonical != disk_name {
                        self.canonicalize(&disk_name, &canonical)?;
                    }
                    if flags != e.flags || extra != e.extra {
                        batch.flags.push((e.uid, flags, extra));
                    }
                }
            }
        }

        // What is left is unknown to the index.
        let mut fresh = Vec::new();
        for (unique, (disk_letters, disk_name)) in on_disk {
            let meta = match fs::metadata(self.cur.join(&disk_name)) {
                Ok(m) => m,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let Ok(size) = u32::try_from(meta.len()) else {
                tracing::warn!(file = %disk_name, "ignoring a message larger than 4 GiB");
                continue;
            };
            let date = meta.modified().map(from_system_time).unwrap_or(0);
            let (system, extra) = split_letters(&disk_letters);
            let canonical = file_name(&unique, &system, &extra);
            if canonical != disk_name {
                self.canonicalize(&disk_name, &canonical)?;
            }
            fresh.push((date, unique, system, extra, size));
        }
        fresh.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut uid = self.reserve_uids(fresh.len())?;
        for (date, unique, flags, extra, size) in fresh {
            tracing::info!(dir = %self.dir.display(), file = %unique, uid, "taking in a message found on disk");
            batch.appended.push(Entry {
                uid,
                unique,
                extra,
                flags,
                modseq,
                date,
                offset: 0,
                size,
            });
            uid += 1;
        }
        batch.uid_next = uid;
        if !batch.expunged.is_empty() {
            tracing::info!(dir = %self.dir.display(), count = batch.expunged.len(), "messages vanished from disk; expunging them");
        }
        self.commit(batch)?;
        self.cur_mtime = Some(cur_mtime);
        Ok(())
    }

    fn canonicalize(&self, from: &str, to: &str) -> StoreResult<()> {
        match fs::rename(self.cur.join(from), self.cur.join(to)) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn meta(&self, e: &Entry) -> Option<MessageMeta> {
        let offset = FixedOffset::east_opt(e.offset).or_else(|| FixedOffset::east_opt(0))?;
        let date = DateTime::from_timestamp(e.date, 0)
            .unwrap_or_default()
            .with_timezone(&offset);
        Some(MessageMeta {
            uid: Uid::new(e.uid)?,
            flags: e.flags.clone(),
            modseq: ModSeq(e.modseq),
            internal_date: date,
            size: e.size,
            email_id: crate::objectid::maildir_email(&e.unique),
        })
    }

    fn uid_next_value(&self) -> Uid {
        Uid::new(self.uid_next).unwrap_or(Uid::MIN)
    }

    fn uid_validity_value(&self) -> StoreResult<UidValidity> {
        UidValidity::new(self.uid_validity)
            .ok_or_else(|| StoreError::Corrupt("the index holds UIDVALIDITY 0".into()))
    }

    pub(super) fn snapshot(&self) -> StoreResult<MailboxSnapshot> {
        Ok(MailboxSnapshot {
            uid_validity: self.uid_validity_value()?,
            mailbox_id: crate::objectid::maildir_mailbox(self.uid_validity),
            uid_next: self.uid_next_value(),
            highest_modseq: ModSeq(self.highest_modseq),
            messages: self.messages.iter().filter_map(|e| self.meta(e)).collect(),
        })
    }

    pub(super) fn status(&self) -> StoreResult<MailboxStatus> {
        let count = |f: &Flag| self.messages.iter().filter(|e| e.flags.contains(f)).count();
        let n = self.messages.len();
        Ok(MailboxStatus {
            messages: u32::try_from(n).unwrap_or(u32::MAX),
            unseen: u32::try_from(n - count(&Flag::Seen)).unwrap_or(u32::MAX),
            deleted: u32::try_from(count(&Flag::Deleted)).unwrap_or(u32::MAX),
            uid_next: self.uid_next_value(),
            uid_validity: self.uid_validity_value()?,
            highest_modseq: ModSeq(self.highest_modseq),
            size: self.messages.iter().map(|e| u64::from(e.size)).sum(),
            mailbox_id: crate::objectid::maildir_mailbox(self.uid_validity),
        })
    }

    pub(super) fn changes_since(&self, since: ModSeq) -> StoreResult<Changes> {
        let since = since.get();
        if since < self.tombstone_floor || since > self.highest_modseq {
            return Ok(Changes::Snapshot(self.snapshot()?));
        }
        let updated = self
            .messages
            .iter()
            .filter(|e| e.modseq > since)
            .filter_map(|e| self.meta(e))
            .collect();
        let mut expunged: Vec<Uid> = self
            .tombstones
            .iter()
            .filter(|(_, m)| *m > since)
            .filter_map(|(u, _)| Uid::new(*u))
            .collect();
        expunged.sort_unstable();
        expunged.dedup();
        Ok(Changes::Delta {
            highest_modseq: ModSeq(self.highest_modseq),
            uid_next: self.uid_next_value(),
            updated,
            expunged,
        })
    }

    /// Where the bytes of these messages are, in the order asked; unknown UIDs left out.
    pub(super) fn paths(&self, uids: &[Uid]) -> Vec<(Uid, PathBuf)> {
        uids.iter()
            .filter_map(|u| {
                let i = self.find(u.get()).ok()?;
                Some((*u, self.path_of(&self.messages[i])))
            })
            .collect()
    }

    pub(super) fn uid_validity(&self) -> StoreResult<UidValidity> {
        self.uid_validity_value()
    }

    /// Appends messages durably (see the module doc for the order of steps).
    pub(super) fn append(&mut self, messages: Vec<NewMessage>) -> StoreResult<Vec<Uid>> {
        let first = self.reserve_uids(messages.len())?;
        let modseq = self.next_modseq();
        let mut written: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(messages.len());
        let mut entries = Vec::with_capacity(messages.len());
        let result = (|| -> StoreResult<()> {
            for (i, m) in messages.into_iter().enumerate() {
                let size = u32::try_from(m.body.len()).map_err(|_| StoreError::TooBig {
                    limit: u64::from(u32::MAX),
                })?;
                let date = m.internal_date.unwrap_or_else(|| Utc::now().fixed_offset());
                let unique = new_unique(u64::from(size));
                let tmp = self.tmp.join(&unique);
                let target = self.cur.join(file_name(&unique, &m.flags, ""));
                written.push((tmp.clone(), target));
                let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
                file.write_all(&m.body)?;
                // The mtime carries the internal date, as other Maildir programs expect.
                if let Some(t) = to_system_time(&date) {
                    file.set_modified(t)?;
                }
                file.sync_all()?;
                entries.push(Entry {
                    uid: first + i as u32,
                    unique,
                    extra: String::new(),
                    flags: m.flags,
                    modseq,
                    date: date.timestamp(),
                    offset: date.offset().local_minus_utc(),
                    size,
                });
            }
            Ok(())
        })();
        if let Err(e) = result {
            for (tmp, _) in &written {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
        let mut renamed = 0;
        let result = (|| -> StoreResult<()> {
            for (tmp, target) in &written {
                fs::rename(tmp, target)?;
                renamed += 1;
            }
            sync_dir(&self.cur)?;
            Ok(())
        })();
        let result = result.and_then(|()| {
            let uid_next = first + entries.len() as u32;
            self.commit(Batch {
                modseq,
                uid_next,
                appended: entries,
                ..Batch::default()
            })
        });
        if let Err(e) = result {
            // Not acknowledged: take the files back out so they do not turn up later.
            for (i, (tmp, target)) in written.iter().enumerate() {
                let _ = fs::remove_file(if i < renamed { target } else { tmp });
            }
            return Err(e);
        }
        self.note_own_change();
        let n = written.len() as u32;
        Ok((first..first + n).filter_map(Uid::new).collect())
    }

    /// Changes flags (see [`crate::MailStore::store_flags`]).
    pub(super) fn store_flags(
        &mut self,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<StoreOutcome> {
        let modseq = self.next_modseq();
        let mut wanted: Vec<u32> = uids.iter().map(|u| u.get()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut outcome = StoreOutcome::default();
        let mut batch = Batch {
            modseq,
            ..Batch::default()
        };
        let mut failure = None;
        for uid in wanted {
            let Ok(i) = self.find(uid) else { continue };
            let e = &self.messages[i];
            if unchanged_since.is_some_and(|u| e.modseq > u.get()) {
                outcome.modified.extend(Uid::new(uid));
                continue;
            }
            let mut flags = e.flags.clone();
            if !flags.apply(change) {
                continue;
            }
            if letters(&flags, &e.extra) != letters(&e.flags, &e.extra) {
                let from = self.path_of(e);
                let to = self.cur.join(file_name(&e.unique, &flags, &e.extra));
                match fs::rename(&from, &to) {
                    Ok(()) => {}
                    // Gone meanwhile (another program expunged it): the next scan tells.
                    Err(err) if is_not_found(&err) => continue,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                }
            }
            batch.flags.push((uid, flags, e.extra.clone()));
        }
        let changed: Vec<u32> = batch.flags.iter().map(|(uid, ..)| *uid).collect();
        self.commit(batch)?;
        self.note_own_change();
        if let Some(err) = failure {
            return Err(err.into());
        }
        for uid in changed {
            if let Ok(i) = self.find(uid) {
                outcome.updated.extend(self.meta(&self.messages[i]));
            }
        }
        Ok(outcome)
    }

    /// Expunges messages flagged \Deleted (among `uids` when given).
    pub(super) fn expunge(&mut self, uids: Option<&[Uid]>) -> StoreResult<Vec<Uid>> {
        let only: Option<HashSet<u32>> = uids.map(|u| u.iter().map(|u| u.get()).collect());
        let doomed: Vec<u32> = self
            .messages
            .iter()
            .filter(|e| e.flags.contains(&Flag::Deleted))
            .filter(|e| only.as_ref().is_none_or(|o| o.contains(&e.uid)))
            .map(|e| e.uid)
            .collect();
        self.remove(&doomed)?;
        Ok(doomed.into_iter().filter_map(Uid::new).collect())
    }

    /// Removes these messages, whatever their flags (ascending uids).
    pub(super) fn remove(&mut self, uids: &[u32]) -> StoreResult<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let mut removed = Vec::with_capacity(uids.len());
        let mut failure = None;
        for uid in uids {
            let Ok(i) = self.find(*uid) else { continue };
            match fs::remove_file(self.path_of(&self.messages[i])) {
                Ok(()) => removed.push(*uid),
                Err(e) if is_not_found(&e) => removed.push(*uid),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        sync_dir(&self.cur)?;
        let modseq = self.next_modseq();
        self.commit(Batch {
            modseq,
            expunged: removed,
            ..Batch::default()
        })?;
        self.note_own_change();
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The messages to copy, ascending by uid; unknown UIDs left out.
    pub(super) fn sources(&self, uids: &[Uid]) -> Vec<Source> {
        let mut wanted: Vec<u32> = uids.iter().map(|u| u.get()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .filter_map(|uid| {
                let e = &self.messages[self.find(uid).ok()?];
                Some(Source {
                    uid,
                    unique: e.unique.clone(),
                    path: self.path_of(e),
                    flags: e.flags.clone(),
                    extra: e.extra.clone(),
                    date: e.date,
                    offset: e.offset,
                    size: e.size,
                })
            })
            .collect()
    }

    /// Adds copies of these messages (hard links when the filesystem allows, since the
    /// bytes never change; else a durable copy). Returns (source uid, new uid) pairs.
    ///
    /// A copy keeps its source's unique name where this mailbox has no file of that
    /// name (a Maildir's unique names are unique within one folder), so a COPY or MOVE
    /// to another mailbox keeps the message's EMAILID (RFC 8474 5.1); a copy into its
    /// own mailbox gets a new name, hence a new EMAILID.
    pub(super) fn add_copies(&mut self, sources: &[Source]) -> StoreResult<Vec<(Uid, Uid)>> {
        let first = self.reserve_uids(sources.len())?;
        let modseq = self.next_modseq();
        let mut made: Vec<PathBuf> = Vec::new();
        let mut entries = Vec::new();
        let mut mapping = Vec::new();
        let mut taken: std::collections::HashSet<String> =
            self.messages.iter().map(|e| e.unique.clone()).collect();
        let result = (|| -> StoreResult<()> {
            for s in sources {
                let unique = if taken.insert(s.unique.clone()) {
                    s.unique.clone()
                } else {
                    new_unique(u64::from(s.size))
                };
                let target = self.cur.join(file_name(&unique, &s.flags, &s.extra));
                match fs::hard_link(&s.path, &target) {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => continue,
                    Err(_) => {
                        let tmp = self.tmp.join(&unique);
                        match fs::copy(&s.path, &tmp) {
                            Ok(_) => {}
                            Err(e) if is_not_found(&e) => continue,
                            Err(e) => return Err(e.into()),
                        }
                        let file = File::options().write(true).open(&tmp)?;
                        if let Some(t) = DateTime::from_timestamp(s.date, 0)
                            .and_then(|d| to_system_time(&d.fixed_offset()))
                        {
                            file.set_modified(t)?;
                        }
                        file.sync_all()?;
                        fs::rename(&tmp, &target)?;
                    }
                }
                made.push(target);
                let uid = first + entries.len() as u32;
                mapping.push((s.uid, uid));
                entries.push(Entry {
                    uid,
                    unique,
                    extra: s.extra.clone(),
                    flags: s.flags.clone(),
                    modseq,
                    date: s.date,
                    offset: s.offset,
                    size: s.size,
                });
            }
            sync_dir(&self.cur)?;
            let uid_next = first + entries.len() as u32;
            self.commit(Batch {
                modseq,
                uid_next,
                appended: std::mem::take(&mut entries),
                ..Batch::default()
            })
        })();
        if let Err(e) = result {
            for path in &made {
                let _ = fs::remove_file(path);
            }
            return Err(e);
        }
        self.note_own_change();
        Ok(mapping
            .into_iter()
            .filter_map(|(a, b)| Some((Uid::new(a)?, Uid::new(b)?)))
            .collect())
    }

    /// Every uid, ascending (to move a whole mailbox).
    pub(super) fn all_uids(&self) -> Vec<Uid> {
        self.messages
            .iter()
            .filter_map(|e| Uid::new(e.uid))
            .collect()
    }
}
