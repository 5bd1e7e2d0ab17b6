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
use super::config::AckMode;
use super::convert::*;
use super::oplog::OpLog;
use crate::concurrency::lock;
use crate::error::{StoreError, StoreResult};
use crate::types::*;

use membership::MembershipState;
pub(crate) use membership::PeerInfo;
pub use recovery::CheckpointReport;
pub(crate) use recovery::reshape_snapshot;

/// The data moves still owed to peers (per peer, the users), so that a restart does
/// not forget them: the configuration that made them is not kept.
const MOVES_FILE: &str = "moves.meta";

/// Written once a node with peers has heard every peer after starting on a data
/// directory without it: from then on a restart is an ordinary one (see
/// [`ReplicatedStore::recovering`]).
const RECOVERED_FILE: &str = "recovered.meta";

/// A recovering node pads its log up to what its peers already hold of it at most this
/// many records; beyond, it refuses service (see `recovery::confirm_recovered`).
const MAX_LOG_PADDING: u64 = 1_000_000;

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
    /// Messages this node hid (floors) or gave new UIDs (binds) because another
    /// replica bound UIDs of their mailbox concurrently.
    uid_renumberings: AtomicU64,
    poisoned: AtomicBool,
    /// The node started without [`RECOVERED_FILE`] and has peers: its data directory
    /// may have been lost, and its peers may hold ops of its replica id that it does
    /// not. Until every peer has been heard (their logs, its own ops included, have
    /// reached it) it answers no write and every user's CRDT issues nothing
    /// (`UserState::await_peers`). Set at open, cleared once, by
    /// [`ReplicatedStore::confirm_recovered`].
    recovering: watch::Sender<bool>,
    /// While set, every user state made or installed here awaits its peers
    /// (`UserState::await_peers`). Cleared by [`ReplicatedStore::confirm_recovered`]
    /// under the `users` lock, before it counts the peers as heard in every user it
    /// holds: a user made after that needs no wait (every peer has been heard), and
    /// one made before is in the list it walks.
    users_await_peers: AtomicBool,
    /// Per peer, while recovering: how far it holds this node's log (its cursor, from
    /// its welcome). The log continues above the highest before any new op is made.
    peer_holds: StdMutex<BTreeMap<String, u64>>,
    /// Why this node refuses service for good, when its recovery could not be done.
    refused: StdMutex<Option<String>>,
    checkpoint_lock: Mutex<()>,
    since_checkpoint: AtomicU64,
    checkpoint_every: u64,
    /// See [`NodeConfig::body_grace`](crate::replicated::NodeConfig::body_grace).
    body_grace: std::time::Duration,
    max_lag_records: u64,
    /// How long a write waits for a recovery under way before it is refused.
    recovery_wait: Duration,
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
        if let Some(why) = lock(&self.refused).clone() {
            return Err(StoreError::Unavailable(why));
        }
        Ok(())
    }

    /// A write may go ahead: the node is not recovering its history. A recovering node
    /// waits for the recovery a while (a new cluster's nodes hear each other within a
    /// few link timeouts), then refuses.
    async fn check_writable(&self) -> StoreResult<()> {
        let mut rx = self.recovering.subscribe();
        if !*rx.borrow() {
            return Ok(());
        }
        let wait = rx.wait_for(|recovering| !*recovering);
        match tokio::time::timeout(self.recovery_wait, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(StoreError::Unavailable(
                "this node started without its data and is recovering its history from its \
                 peers: it takes writes once every peer has been heard"
                    .into(),
            )),
        }
    }

    /// True once the node refuses service for good (its recovery could not be done).
    pub(crate) fn refuses(&self) -> bool {
        lock(&self.refused).is_some()
    }

    /// True while the node may lack its own history (it started on a data directory
    /// that had not been confirmed with its peers): it takes no write.
    pub fn recovering(&self) -> bool {
        *self.recovering.borrow()
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
        // Decided under the `users` lock, where `confirm_recovered` clears it.
        let mut users = lock(&self.users);
        if let Some(slot) = users.get(user) {
            return Ok(slot.clone());
        }
        if self.users_await_peers.load(Ordering::Acquire) {
            crdt.await_peers();
        }
        let slot = UserSlot::new(UserEntry {
            crdt,
            applied_lsn: 0,
            snapshot_lsn: 0,
        });
        users.insert(user.clone(), slot.clone());
        Ok(slot)
    }

    /// Whether a user state made or installed now must await its peers (the node is
    /// recovering and has not yet counted every peer as heard).
    pub(crate) fn users_await_peers(&self) -> bool {
        self.users_await_peers.load(Ordering::Acquire)
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
