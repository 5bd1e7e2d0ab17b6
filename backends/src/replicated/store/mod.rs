//! [`ReplicatedStore`]: the MailStore over per-user CRDT states, the op log and the
//! blob store.
//!
//! Every write runs the same path: bodies durable in the blob store → the user's lock →
//! the CRDT makes (and applies) the ops → the ops are queued on the log, which hands
//! back an LSN → lock released → wait for the group fsync → watchers notified → (with
//! `ack = Replica`) wait for a peer's acknowledgement or the timeout → answer.
//!
//! Nothing is shown before it is durable: a state remembers the LSN of the last record
//! applied to it, and every read waits until the log is durable up to that LSN before
//! it answers. So concurrent writers of one user share an fsync (they do not hold the
//! lock across it), yet no session ever sees a UID that a crash could take back.
//!
//! Restart = each user's snapshot + the log records after it, replayed (the CRDT's
//! `replay` issues nothing: the follow-ups owed then are in the log already).
//!
//! This file owns the store's shape: the [`ReplicatedStore`] struct, the per-user
//! slots, and the health check every call runs first. The rest is cut by concern:
//!
//! - `recovery`: opening a data directory (snapshots + log replay), snapshot files,
//!   checkpoints and close.
//! - `write_path`: the one write path and the read path (durable before shown), the
//!   `ack = Replica` wait, and checkpoint scheduling.
//! - `mail_store`: `impl MailStore`, each IMAP-facing call as a write or read.
//! - `replication`: what the replication links call: applying a peer's batch or
//!   snapshot, the cursors and acknowledgements, what to send a peer.
//! - `membership`: the peers, who holds which user, reachability, and the data moves
//!   a membership change leaves.

mod mail_store;
mod membership;
mod recovery;
mod replication;
mod write_path;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use pluto_crdt::{self as crdt, ReplicaId, UserState, VersionVector};
use tokio::sync::{Mutex, watch};

use super::blobs::BlobStore;
use super::concurrency::lock;
use super::config::AckMode;
use super::convert::*;
use super::oplog::OpLog;
use crate::error::{StoreError, StoreResult};
use crate::types::*;

use membership::MembershipState;
pub(crate) use membership::PeerInfo;
pub use recovery::CheckpointReport;
pub(crate) use recovery::reshape_snapshot;

/// The data moves still owed to peers (per peer, the users), so that a restart does
/// not forget them: the configuration that made them is not kept.
const MOVES_FILE: &str = "moves.meta";

/// One user's state and what the store knows about it.
pub(crate) struct UserEntry {
    pub(crate) crdt: UserState,
    /// The LSN of the last log record applied to `crdt`.
    pub(crate) applied_lsn: u64,
    /// The LSN the user's snapshot file covers.
    pub(crate) snapshot_lsn: u64,
}

pub(crate) struct UserSlot {
    pub(crate) state: Mutex<UserEntry>,
    /// Bumped after each durable change, for change feeds.
    pub(crate) changed: watch::Sender<u64>,
}

impl UserSlot {
    fn new(entry: UserEntry) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(entry),
            changed: watch::channel(0).0,
        })
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The replicated MailStore of one node.
pub struct ReplicatedStore {
    pub(crate) name: String,
    pub(crate) replica: ReplicaId,
    stride: u16,
    data_dir: PathBuf,
    pub(crate) blobs: Arc<BlobStore>,
    pub(crate) log: OpLog,
    /// Lock order: `membership` before `users` (a reconfiguration lists the users
    /// while it holds the membership).
    users: StdMutex<HashMap<UserId, Arc<UserSlot>>>,
    /// Who was told which message is `\Recent`: this node's sessions only.
    recent: crate::recent::RecentClaims,
    membership: StdMutex<MembershipState>,
    ack: AckMode,
    ack_timeout: Duration,
    /// Per peer: how far it has acknowledged this node's log.
    peer_acks: StdMutex<HashMap<String, watch::Sender<u64>>>,
    /// Per peer: how far its log has been received here.
    pub(crate) inbound: StdMutex<BTreeMap<String, u64>>,
    /// Peers believed reachable; `None` until the node knows.
    reachable: StdMutex<Option<BTreeSet<ReplicaId>>>,
    /// Writes under `ack = Replica` answered on the local fsync alone, because no
    /// replica of the user was reachable or none acknowledged within the timeout.
    local_only_acks: AtomicU64,
    poisoned: AtomicBool,
    checkpoint_lock: Mutex<()>,
    since_checkpoint: AtomicU64,
    checkpoint_every: u64,
    max_lag_records: u64,
    me: Weak<ReplicatedStore>,
    _lock: File,
}

impl ReplicatedStore {
    fn check(&self) -> StoreResult<()> {
        if self.poisoned.load(Ordering::Acquire) || self.log.failed() {
            return Err(StoreError::Unavailable(
                "this node's log failed; it no longer serves".into(),
            ));
        }
        Ok(())
    }

    fn poison(&self, why: &StoreError) {
        tracing::error!(error = %why, "a logged write failed after it was applied; refusing service");
        self.poisoned.store(true, Ordering::Release);
    }

    /// The user's slot, made (empty) when the user is new here.
    pub(crate) fn slot(&self, user: &UserId) -> StoreResult<Arc<UserSlot>> {
        if let Some(slot) = lock(&self.users).get(user) {
            return Ok(slot.clone());
        }
        let mut crdt = UserState::new(
            self.replica,
            crdt::Config {
                uid_stride: self.stride,
                members: self.members(user),
            },
        )
        .map_err(error_from_crdt)?;
        if let Some(reachable) = lock(&self.reachable).clone() {
            let members: BTreeSet<ReplicaId> = crdt.config().members.iter().copied().collect();
            // An empty state has nothing hidden: no ops come of this.
            let _ = crdt.set_reachable(reachable.intersection(&members).copied());
        }
        let mut users = lock(&self.users);
        Ok(users
            .entry(user.clone())
            .or_insert_with(|| {
                UserSlot::new(UserEntry {
                    crdt,
                    applied_lsn: 0,
                    snapshot_lsn: 0,
                })
            })
            .clone())
    }

    pub(crate) fn slots(&self) -> Vec<(UserId, Arc<UserSlot>)> {
        lock(&self.users)
            .iter()
            .map(|(u, s)| (u.clone(), s.clone()))
            .collect()
    }

    /// Every user this node holds, sorted.
    pub fn users(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = lock(&self.users).keys().cloned().collect();
        users.sort();
        users
    }

    /// The user's CRDT version here (for tests and status).
    pub async fn version(&self, user: &UserId) -> Option<VersionVector> {
        let slot = lock(&self.users).get(user).cloned()?;
        Some(slot.state.lock().await.crdt.version().clone())
    }

    /// The user's CRDT state counts (hidden messages, pending ops, tombstones).
    pub async fn stats(&self, user: &UserId) -> Option<crdt::StateStats> {
        let slot = lock(&self.users).get(user).cloned()?;
        Some(slot.state.lock().await.crdt.stats())
    }
}

fn bytes_of(state: &UserState) -> StoreResult<Vec<u8>> {
    state.encode_snapshot().map_err(error_from_crdt)
}
