//! The Maildir++ backend: plain files any Maildir program can read, plus a small index
//! per mailbox for what Maildir cannot hold (UIDs, keywords, modseqs).
//!
//! # Layout under the data root
//!
//! ```text
//! root/.pluto-maildir.lock       flock'd by the one process using this root
//! root/<user>/                   INBOX: cur/ new/ tmp/, pluto-index, pluto-journal
//! root/<user>/pluto-user.json    subscriptions, special-use, UIDVALIDITY counter
//! root/<user>/.Sent/             another mailbox (Maildir++ `.A.B`, see [`names`])
//! ```
//!
//! - [`names`]: mailbox name ↔ directory, with the reversible escaping that keeps every
//!   name inside the user's directory.
//! - [`filename`]: `unique:2,FLAGS` file names; system flags live in them.
//! - [`index`]: per-mailbox snapshot + checksummed journal (UIDVALIDITY, UIDNEXT,
//!   HIGHESTMODSEQ, uid ↔ file, flags, modseq, date, size, expunge tombstones).
//! - [`mailbox`]: one mailbox's in-memory state and every change to it, in a crash-safe
//!   order; picks up files other programs dropped or changed.
//! - [`user`]: the per-user file.
//!
//! # Concurrency
//!
//! Per user, an async RwLock over the mailbox tree: CREATE/DELETE/RENAME take it
//! exclusively, everything else shares it. Per mailbox, an async Mutex around its
//! cached state serialises readers and writers (the state is in memory, so readers hold
//! it only for a copy; message bytes are read after it is released). Two-mailbox
//! operations (COPY/MOVE) lock in name order. Blocking file work runs in
//! `spawn_blocking`, and the lock guards move into it, so a cancelled request never
//! leaves a half-done change unguarded. Each mailbox has a `watch` channel that carries
//! its highest modseq after every change made through this store.

mod dropwatch;
mod filename;
mod index;
mod mailbox;
mod names;
mod user;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::{Mutex, OwnedMutexGuard, RwLock, watch};

use self::index::INDEX_FILE;
use self::mailbox::{MailboxState, initialize, make_maildir};
use self::names::{mailbox_dir, parse_dir_name};
use self::user::{USER_FILE, UserMeta};
use crate::concurrency::lock;
use crate::error::{StoreError, StoreResult};
use crate::fsutil::sync_dir;
use crate::store::{ChangeFeed, MailStore};
use crate::types::*;
use pluto_model::rules;

/// The lock file that keeps a second process off the same root.
pub const LOCK_FILE: &str = ".pluto-maildir.lock";
const STAGING_PREFIX: &str = "pluto-new.";
const TRASH_PREFIX: &str = "pluto-trash.";

/// The Maildir++ [`MailStore`].
pub struct MaildirStore {
    root: PathBuf,
    /// Held for the store's life: the flock goes with the open file.
    _lock: File,
    users: StdMutex<HashMap<UserId, Arc<UserState>>>,
    recent: crate::recent::RecentClaims,
    /// Wakes change feeds when another program drops mail into `new/`.
    drops: dropwatch::DropWatch,
}

impl std::fmt::Debug for MaildirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildirStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

struct UserState {
    dir: PathBuf,
    tree: Arc<RwLock<()>>,
    meta: StdMutex<Option<UserMeta>>,
    mailboxes: StdMutex<HashMap<MailboxName, Arc<MailboxHandle>>>,
}

struct MailboxHandle {
    dir: PathBuf,
    state: Arc<Mutex<Option<MailboxState>>>,
    notify: watch::Sender<ModSeq>,
}

type Guard = OwnedMutexGuard<Option<MailboxState>>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?
}

fn staging_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl UserState {
    fn handle(&self, name: &MailboxName) -> StoreResult<Arc<MailboxHandle>> {
        let mut map = lock(&self.mailboxes);
        if let Some(h) = map.get(name) {
            return Ok(h.clone());
        }
        let h = Arc::new(MailboxHandle {
            dir: mailbox_dir(&self.dir, name)?,
            state: Arc::new(Mutex::new(None)),
            notify: watch::Sender::new(ModSeq(0)),
        });
        map.insert(name.clone(), h.clone());
        Ok(h)
    }

    fn forget(&self, name: &MailboxName) {
        lock(&self.mailboxes).remove(name);
    }

    fn meta_get(&self) -> StoreResult<UserMeta> {
        let mut slot = lock(&self.meta);
        if slot.is_none() {
            *slot = Some(UserMeta::load(&self.dir)?.unwrap_or_default());
        }
        Ok(slot.clone().unwrap_or_default())
    }

    /// Changes the user file durably; memory follows only once it is written.
    fn meta_update<T>(&self, f: impl FnOnce(&mut UserMeta) -> StoreResult<T>) -> StoreResult<T> {
        let mut slot = lock(&self.meta);
        let mut meta = match slot.take() {
            Some(m) => m,
            None => UserMeta::load(&self.dir)?.unwrap_or_default(),
        };
        let mut changed = meta.clone();
        let result = f(&mut changed);
        // Nothing to write when nothing changed and the file is there (so undoing a
        // step, or a no-op SUBSCRIBE, works on a full disk too).
        let unchanged = changed == meta && self.dir.join(USER_FILE).exists();
        let result = result.and_then(|v| {
            if unchanged {
                Ok(v)
            } else {
                changed.save(&self.dir).map(|()| v)
            }
        });
        if result.is_ok() {
            meta = changed;
        }
        *slot = Some(meta);
        result
    }

    fn alloc_uid_validity(&self) -> StoreResult<u32> {
        self.meta_update(|m| m.next_uid_validity())
    }

    fn exists(&self, name: &MailboxName) -> StoreResult<bool> {
        Ok(mailbox_dir(&self.dir, name)?.join("cur").is_dir())
    }

    /// Every mailbox on disk, sorted.
    fn names(&self) -> StoreResult<Vec<MailboxName>> {
        let mut out = Vec::new();
        if !self.dir.join("cur").is_dir() {
            return Ok(out);
        }
        out.push(MailboxName::inbox());
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let Ok(file) = entry.file_name().into_string() else {
                continue;
            };
            if let Some(name) = parse_dir_name(&file) {
                if entry.path().join("cur").is_dir() {
                    out.push(name);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Creates one mailbox (not its parents): built in a staging directory, then renamed
    /// into place, so a crash never leaves a half-made mailbox.
    /// Returns the new mailbox's UIDVALIDITY.
    fn create_one(&self, name: &MailboxName) -> StoreResult<u32> {
        let dir = mailbox_dir(&self.dir, name)?;
        let staging = self.dir.join(staging_name(STAGING_PREFIX));
        let build = || -> StoreResult<u32> {
            fs::create_dir(&staging)?;
            make_maildir(&staging)?;
            // Courier and Dovecot mark Maildir++ sub-folders so.
            File::create(staging.join("maildirfolder"))?;
            let uid_validity = self.alloc_uid_validity()?;
            initialize(&staging, uid_validity)?;
            sync_dir(&staging)?;
            fs::rename(&staging, &dir)?;
            sync_dir(&self.dir)?;
            Ok(uid_validity)
        };
        let result = build();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        self.forget(name);
        result
    }

    /// Takes back mailboxes made by a call that then failed (newest first): renamed
    /// away atomically, then removed, like DELETE.
    fn remove_created(&self, created: &[MailboxName]) {
        for name in created.iter().rev() {
            let Ok(dir) = mailbox_dir(&self.dir, name) else {
                continue;
            };
            let trash = self.dir.join(staging_name(TRASH_PREFIX));
            match fs::rename(&dir, &trash) {
                Ok(()) => {
                    if let Err(e) = fs::remove_dir_all(&trash) {
                        tracing::warn!(dir = %trash.display(), error = %e, "cannot remove an undone mailbox's files; will retry at next login");
                    }
                }
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot undo a mailbox made by a failed command");
                }
            }
            self.forget(name);
        }
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot sync after undoing a CREATE");
        }
    }

    /// Removes what a crash may have left: half-made and half-deleted mailboxes.
    fn clean_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(STAGING_PREFIX) || name.starts_with(TRASH_PREFIX) {
                tracing::info!(dir = %entry.path().display(), "removing a leftover directory");
                if let Err(e) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove a leftover directory");
                }
            }
        }
    }
}

/// Loads the mailbox state into its guard if it is not there yet.
fn load<'g>(
    user: &UserState,
    handle: &MailboxHandle,
    name: &MailboxName,
    guard: &'g mut Guard,
) -> StoreResult<&'g mut MailboxState> {
    if guard.is_none() {
        if !handle.dir.join("cur").is_dir() {
            return Err(StoreError::NoSuchMailbox(name.clone()));
        }
        let alloc = || user.alloc_uid_validity();
        let state = MailboxState::open(&handle.dir, &alloc)?;
        handle.notify.send_replace(ModSeq(state.highest_modseq()));
        **guard = Some(state);
    }
    guard
        .as_mut()
        .ok_or_else(|| StoreError::NoSuchMailbox(name.clone()))
}

/// After an operation: drop a state that no longer matches the disk, notify watchers
/// of a new modseq, and name a mailbox that vanished under us.
fn finish<T>(
    handle: &MailboxHandle,
    name: &MailboxName,
    guard: &mut Guard,
    before: u64,
    result: StoreResult<T>,
) -> StoreResult<T> {
    if let Some(state) = guard.as_ref() {
        let now = state.highest_modseq();
        if now != before {
            handle.notify.send_replace(ModSeq(now));
        }
        if state.poisoned {
            tracing::warn!(dir = %handle.dir.display(), "mailbox state dropped after a failed write; it will be reloaded");
            **guard = None;
        }
    }
    match result {
        Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            if handle.dir.join("cur").is_dir() {
                Err(StoreError::Io(e))
            } else {
                **guard = None;
                Err(StoreError::NoSuchMailbox(name.clone()))
            }
        }
        other => other,
    }
}

impl MaildirStore {
    /// Opens (creating if needed) a data root and locks it for this process. A second
    /// store on the same root, in this process or another, gets
    /// [`StoreError::Unavailable`].
    pub fn open(root: PathBuf) -> Result<Self, StoreError> {
        fs::create_dir_all(&root)?;
        let lock_path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |e| {
                StoreError::Unavailable(format!(
                    "the mail directory {} is in use by another pluto process (cannot lock {}: {e})",
                    root.display(),
                    lock_path.display()
                ))
            },
        )?;
        Ok(Self {
            root,
            _lock: file,
            users: StdMutex::new(HashMap::new()),
            recent: crate::recent::RecentClaims::default(),
            drops: dropwatch::DropWatch::new(),
        })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn user(&self, user: &UserId) -> Arc<UserState> {
        lock(&self.users)
            .entry(user.clone())
            .or_insert_with(|| {
                Arc::new(UserState {
                    dir: self.root.join(user.as_str()),
                    tree: Arc::new(RwLock::new(())),
                    meta: StdMutex::new(None),
                    mailboxes: StdMutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// These messages' files as `read` reads them (whole, or only the header), in the
    /// order asked; UIDs not in the mailbox are left out.
    async fn read_messages(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        read: fn(&Path) -> std::io::Result<Vec<u8>>,
    ) -> StoreResult<Vec<MessageBody>> {
        let wanted = uids.to_vec();
        let paths = self
            .on_mailbox(user, name, move |s| Ok(s.paths(&wanted)))
            .await?;
        let (mut found, missing) = blocking(move || read_files(paths, read)).await?;
        if !missing.is_empty() {
            // Renamed meanwhile (a flag change) or changed by another program: look again.
            let again = self
                .on_mailbox(user, name, move |s| {
                    s.full_scan()?;
                    Ok(s.paths(&missing))
                })
                .await?;
            let (more, _) = blocking(move || read_files(again, read)).await?;
            found.extend(more);
        }
        let mut by_uid: HashMap<Uid, MessageBody> = found.into_iter().map(|b| (b.uid, b)).collect();
        Ok(uids.iter().filter_map(|u| by_uid.remove(u)).collect())
    }

    /// Runs `f` on one mailbox's state under its lock, in a blocking thread.
    async fn on_mailbox<T, F>(&self, user: &UserId, name: &MailboxName, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut MailboxState) -> StoreResult<T> + Send + 'static,
    {
        let u = self.user(user);
        let tree = u.tree.clone().read_owned().await;
        let h = u.handle(name)?;
        let mut guard = h.state.clone().lock_owned().await;
        let name = name.clone();
        blocking(move || {
            let _tree = tree;
            let result = load(&u, &h, &name, &mut guard);
            let (before, result) = match result {
                Ok(state) => {
                    let before = state.highest_modseq();
                    (before, f(state))
                }
                Err(e) => (0, Err(e)),
            };
            let result = finish(&h, &name, &mut guard, before, result);
            if matches!(result, Err(StoreError::NoSuchMailbox(_))) && guard.is_none() {
                // Keep the map small; nobody can create it while we hold the tree lock.
                u.forget(&name);
            }
            result
        })
        .await
    }

    /// Runs `f` on two mailboxes (source, destination) locked in name order; the
    /// destination is `None` when it is the source.
    async fn on_two<T, F>(
        &self,
        user: &UserId,
        from: &MailboxName,
        to: &MailboxName,
        f: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut MailboxState, Option<&mut MailboxState>) -> StoreResult<T> + Send + 'static,
    {
        if from == to {
            return self.on_mailbox(user, from, |s| f(s, None)).await;
        }
        let u = self.user(user);
        let tree = u.tree.clone().read_owned().await;
        let hf = u.handle(from)?;
        let ht = u.handle(to)?;
        let (mut gf, mut gt) = if from < to {
            let a = hf.state.clone().lock_owned().await;
            let b = ht.state.clone().lock_owned().await;
            (a, b)
        } else {
            let b = ht.state.clone().lock_owned().await;
            let a = hf.state.clone().lock_owned().await;
            (a, b)
        };
        let (from, to) = (from.clone(), to.clone());
        blocking(move || {
            let _tree = tree;
            load(&u, &hf, &from, &mut gf)?;
            load(&u, &ht, &to, &mut gt)?;
            let bf = gf.as_ref().map_or(0, |s| s.highest_modseq());
            let bt = gt.as_ref().map_or(0, |s| s.highest_modseq());
            let result = match (gf.as_mut(), gt.as_mut()) {
                (Some(sf), Some(st)) => f(sf, Some(st)),
                _ => Err(StoreError::NoSuchMailbox(from.clone())),
            };
            let result = finish(&ht, &to, &mut gt, bt, result);
            finish(&hf, &from, &mut gf, bf, result)
        })
        .await
    }

    /// Moves every message of `from` into `to` (both exist); for RENAME INBOX.
    async fn move_all(
        &self,
        user: &UserId,
        from: &MailboxName,
        to: &MailboxName,
    ) -> StoreResult<()> {
        self.on_two(user, from, to, |src, dst| {
            let dst = dst.ok_or_else(|| {
                StoreError::NotAllowed("cannot move a mailbox into itself".into())
            })?;
            let uids = src.all_uids();
            let sources = src.sources(&uids);
            let mapping = dst.add_copies(&sources)?;
            let moved: Vec<u32> = mapping.iter().map(|(s, _)| s.get()).collect();
            src.remove(&moved)
        })
        .await
    }

    /// The tree part of RENAME: everything but INBOX's special case. Runs under the
    /// user's exclusive tree lock.
    fn rename_tree(u: &UserState, from: &MailboxName, to: &MailboxName) -> StoreResult<()> {
        let rename = rules::rename(from, to, u.names()?)?;
        let moving = &rename.moves;
        let mut plan = Vec::with_capacity(moving.len());
        for (old, new) in moving {
            plan.push((mailbox_dir(&u.dir, old)?, mailbox_dir(&u.dir, new)?));
        }
        // Every step is undone if a later one fails (a full disk): an error answer
        // means nothing changed.
        let mut created = Vec::new();
        let mut renamed = 0;
        let result = (|| {
            for parent in &rename.parents {
                u.create_one(parent)?;
                created.push(parent.clone());
            }
            for (old_dir, new_dir) in &plan {
                fs::rename(old_dir, new_dir)?;
                renamed += 1;
            }
            sync_dir(&u.dir)?;
            u.meta_update(|m| {
                for (old, new) in moving {
                    if let Some(su) = m.special_use.remove(old) {
                        m.special_use.insert(new.clone(), su);
                    }
                    if m.subscriptions.remove(old) {
                        m.subscriptions.insert(new.clone());
                    }
                }
                Ok(())
            })
        })();
        if result.is_err() {
            for (old_dir, new_dir) in plan[..renamed].iter().rev() {
                if let Err(e) = fs::rename(new_dir, old_dir) {
                    tracing::error!(from = %new_dir.display(), to = %old_dir.display(), error = %e, "cannot undo a failed RENAME");
                }
            }
            if let Err(e) = sync_dir(&u.dir) {
                tracing::warn!(dir = %u.dir.display(), error = %e, "cannot sync after undoing a RENAME");
            }
            u.remove_created(&created);
        }
        for (old, new) in moving {
            u.forget(old);
            u.forget(new);
        }
        result
    }
}

#[async_trait]
impl MailStore for MaildirStore {
    async fn open_user(&self, user: &UserId) -> StoreResult<()> {
        let u = self.user(user);
        let tree = u.tree.clone().write_owned().await;
        blocking(move || {
            let _tree = tree;
            fs::create_dir_all(&u.dir)?;
            make_maildir(&u.dir)?;
            u.clean_leftovers();
            if u.dir.join(USER_FILE).exists() {
                return Ok(());
            }
            // First time: INBOX's index, then the default mailboxes, then the user file
            // last, so a crash half-way simply repeats this.
            if !u.dir.join(INDEX_FILE).exists() {
                initialize(&u.dir, u.alloc_uid_validity()?)?;
            }
            for (name, special_use) in DEFAULT_MAILBOXES {
                let name = MailboxName::new(name)?;
                if !u.exists(&name)? {
                    u.create_one(&name)?;
                }
                u.meta_update(|m| {
                    if let Some(su) = special_use {
                        m.special_use.entry(name.clone()).or_insert(su);
                    }
                    m.subscriptions.insert(name.clone());
                    Ok(())
                })?;
            }
            u.meta_update(|_| Ok(()))
        })
        .await
    }

    async fn list(&self, user: &UserId) -> StoreResult<MailboxList> {
        let u = self.user(user);
        let tree = u.tree.clone().read_owned().await;
        blocking(move || {
            let _tree = tree;
            let meta = u.meta_get()?;
            let mailboxes = u
                .names()?
                .into_iter()
                .map(|name| MailboxInfo {
                    special_use: meta.special_use.get(&name).copied(),
                    name,
                })
                .collect();
            Ok(MailboxList {
                mailboxes,
                subscriptions: meta.subscriptions.into_iter().collect(),
            })
        })
        .await
    }

    async fn create_mailbox(
        &self,
        user: &UserId,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<ObjectId> {
        let u = self.user(user);
        let tree = u.tree.clone().write_owned().await;
        let name = name.clone();
        blocking(move || {
            let _tree = tree;
            if !u.dir.join("cur").is_dir() {
                return Err(StoreError::NotAllowed(
                    "this user's mail has not been set up (open_user first)".into(),
                ));
            }
            let names = u.names()?;
            let made = rules::create(&name, |n| names.contains(n))?;
            // A failure half-way (a full disk) removes what this call made: an error
            // answer means nothing changed.
            let mut created = Vec::new();
            let result = (|| {
                let mut id = None;
                for n in made {
                    let uid_validity = u.create_one(&n)?;
                    if n == name {
                        id = Some(crate::objectid::maildir_mailbox(uid_validity));
                    }
                    created.push(n);
                }
                u.meta_update(|m| {
                    match special_use {
                        Some(su) => m.special_use.insert(name.clone(), su),
                        None => m.special_use.remove(&name),
                    };
                    Ok(())
                })?;
                id.ok_or_else(|| StoreError::Corrupt("CREATE made no mailbox of its name".into()))
            })();
            if result.is_err() {
                u.remove_created(&created);
            }
            result
        })
        .await
    }

    async fn delete_mailbox(&self, user: &UserId, name: &MailboxName) -> StoreResult<()> {
        rules::deletable(name)?;
        let u = self.user(user);
        let tree = u.tree.clone().write_owned().await;
        let name = name.clone();
        blocking(move || {
            let _tree = tree;
            rules::delete(&name, u.exists(&name)?)?;
            // Mailboxes below it stay (RFC 3501 6.3.4): in Maildir++ they are
            // directories of their own.
            // Rename away first (atomic), then remove at leisure.
            let dir = mailbox_dir(&u.dir, &name)?;
            let trash = u.dir.join(staging_name(TRASH_PREFIX));
            fs::rename(&dir, &trash)?;
            u.forget(&name);
            // Subscriptions stay (RFC 3501 6.3.4); the special use goes with the mailbox.
            let result = sync_dir(&u.dir).map_err(StoreError::from).and_then(|()| {
                u.meta_update(|m| {
                    m.special_use.remove(&name);
                    Ok(())
                })
            });
            if result.is_err() {
                // A full disk: put the mailbox back, so the error answer is true.
                if let Err(e) = fs::rename(&trash, &dir) {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot undo a failed DELETE");
                }
                return result;
            }
            if let Err(e) = fs::remove_dir_all(&trash) {
                tracing::warn!(dir = %trash.display(), error = %e, "cannot remove a deleted mailbox's files; will retry at next login");
            }
            Ok(())
        })
        .await
    }

    async fn rename_mailbox(
        &self,
        user: &UserId,
        from: &MailboxName,
        to: &MailboxName,
    ) -> StoreResult<()> {
        rules::rename_target(from, to)?;
        let u = self.user(user);
        if from.is_inbox() {
            // RFC 3501: a new mailbox gets INBOX's messages; INBOX stays, empty, and
            // its children are not affected.
            self.create_mailbox(user, to, None).await?;
            let moved = self.move_all(user, from, to).await;
            if moved.is_err() && self.status(user, to).await.is_ok_and(|s| s.messages == 0) {
                // Nothing was moved (a full disk stops the copies before any is made):
                // take the new mailbox back, so the error answer is true.
                if let Err(e) = self.delete_mailbox(user, to).await {
                    tracing::warn!(mailbox = %to, error = %e, "cannot undo the mailbox of a failed RENAME INBOX");
                }
            }
            return moved;
        }
        let tree = u.tree.clone().write_owned().await;
        let (from, to) = (from.clone(), to.clone());
        blocking(move || {
            let _tree = tree;
            Self::rename_tree(&u, &from, &to)
        })
        .await
    }

    async fn set_subscribed(
        &self,
        user: &UserId,
        name: &MailboxName,
        subscribed: bool,
    ) -> StoreResult<()> {
        let u = self.user(user);
        let name = name.clone();
        blocking(move || {
            u.meta_update(|m| {
                if subscribed {
                    m.subscriptions.insert(name);
                } else {
                    m.subscriptions.remove(&name);
                }
                Ok(())
            })
        })
        .await
    }

    async fn status(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxStatus> {
        self.on_mailbox(user, name, |s| {
            s.refresh()?;
            s.status()
        })
        .await
    }

    async fn recent(
        &self,
        user: &UserId,
        name: &MailboxName,
        claim: bool,
    ) -> StoreResult<RecentRange> {
        let status = self.status(user, name).await?;
        Ok(self.recent.take(user, name, &status, claim))
    }

    async fn select(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxSnapshot> {
        self.on_mailbox(user, name, |s| {
            s.refresh()?;
            s.snapshot()
        })
        .await
    }

    async fn changes_since(
        &self,
        user: &UserId,
        name: &MailboxName,
        since: ModSeq,
    ) -> StoreResult<Changes> {
        self.on_mailbox(user, name, move |s| {
            s.refresh()?;
            s.changes_since(since)
        })
        .await
    }

    async fn watch(&self, user: &UserId, name: &MailboxName) -> StoreResult<ChangeFeed> {
        // Loading the mailbox proves it exists and primes the channel's value.
        self.on_mailbox(user, name, |_| Ok(())).await?;
        let handle = self.user(user).handle(name)?;
        let rx = handle.notify.subscribe();
        // Mail another program drops into new/ wakes the feed too (with the modseq
        // unchanged): the session's refresh then takes it in.
        let drops = self.drops.subscribe(&handle.dir.join("new"));
        drop(handle);
        let stream = futures::stream::unfold((rx, drops), |(mut rx, mut drops)| async move {
            loop {
                let dropped = async {
                    match drops.as_mut() {
                        Some(d) => d.changed().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = rx.changed() => {
                        changed.ok()?;
                        let value = *rx.borrow_and_update();
                        return Some((value, (rx, drops)));
                    }
                    seen = dropped => {
                        if seen.is_err() {
                            drops = None;
                            continue;
                        }
                        let value = *rx.borrow();
                        return Some((value, (rx, drops)));
                    }
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn fetch(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.read_messages(user, name, uids, |p| fs::read(p)).await
    }

    async fn fetch_headers(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.read_messages(user, name, uids, crate::fsutil::read_header)
            .await
    }

    async fn append(
        &self,
        user: &UserId,
        name: &MailboxName,
        messages: Vec<NewMessage>,
    ) -> StoreResult<AppendOutcome> {
        self.on_mailbox(user, name, move |s| {
            // Take in other programs' changes first, so that recording our own change's
            // mtime cannot hide them.
            s.refresh()?;
            let uids = s.append(messages)?;
            Ok(AppendOutcome {
                uid_validity: s.uid_validity()?,
                uids,
            })
        })
        .await
    }

    async fn store_flags(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<StoreOutcome> {
        let uids = uids.to_vec();
        let change = change.clone();
        self.on_mailbox(user, name, move |s| {
            s.refresh()?;
            s.store_flags(&uids, &change, unchanged_since)
        })
        .await
    }

    async fn copy(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        let uids = uids.to_vec();
        self.on_two(user, from, to, move |src, mut dst| {
            src.refresh()?;
            if let Some(d) = dst.as_deref_mut() {
                d.refresh()?;
            }
            let sources = src.sources(&uids);
            let dst = match dst {
                Some(d) => d,
                None => src,
            };
            let mapping = dst.add_copies(&sources)?;
            Ok(CopyOutcome {
                uid_validity: dst.uid_validity()?,
                mapping,
            })
        })
        .await
    }

    async fn move_messages(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        let uids = uids.to_vec();
        self.on_two(user, from, to, move |src, mut dst| {
            src.refresh()?;
            if let Some(d) = dst.as_deref_mut() {
                d.refresh()?;
            }
            let sources = src.sources(&uids);
            let (mapping, uid_validity) = match dst {
                Some(dst) => (dst.add_copies(&sources)?, dst.uid_validity()?),
                None => (src.add_copies(&sources)?, src.uid_validity()?),
            };
            let moved: Vec<u32> = mapping.iter().map(|(s, _)| s.get()).collect();
            src.remove(&moved)?;
            Ok(CopyOutcome {
                uid_validity,
                mapping,
            })
        })
        .await
    }

    async fn expunge(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: Option<&[Uid]>,
    ) -> StoreResult<Vec<Uid>> {
        let uids = uids.map(|u| u.to_vec());
        self.on_mailbox(user, name, move |s| {
            s.refresh()?;
            s.expunge(uids.as_deref())
        })
        .await
    }
}

/// Reads message files with `read` (whole: `fs::read`; header only:
/// `fsutil::read_header`); returns what was read and the UIDs whose file was not found.
fn read_files(
    paths: Vec<(Uid, PathBuf)>,
    read: fn(&Path) -> std::io::Result<Vec<u8>>,
) -> StoreResult<(Vec<MessageBody>, Vec<Uid>)> {
    let mut found = Vec::with_capacity(paths.len());
    let mut missing = Vec::new();
    for (uid, path) in paths {
        match read(&path) {
            Ok(bytes) => found.push(MessageBody {
                uid,
                bytes: bytes.into(),
            }),
            Err(e) if crate::fsutil::is_not_found(&e) => missing.push(uid),
            Err(e) => return Err(e.into()),
        }
    }
    Ok((found, missing))
}
