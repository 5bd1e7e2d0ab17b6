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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pluto_crdt::{self as crdt, BodyRef, Op, OpKind, ReplicaId, UserState, VersionVector};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::blobs::BlobStore;
use super::config::{AckMode, NodeConfig, PeerConfig, ReplicasOf};
use super::convert::*;
use super::oplog::{Entry, OpLog};
use crate::error::{StoreError, StoreResult};
use crate::fsutil::write_atomic;
use crate::store::{ChangeFeed, MailStore};
use crate::types::*;

const LOCK_FILE: &str = "node.lock";
const META_FILE: &str = "checkpoint.meta";
/// The data moves still owed to peers (per peer, the users), so that a restart does
/// not forget them: the configuration that made them is not kept.
const MOVES_FILE: &str = "moves.meta";
const SNAP_MAGIC: &[u8; 8] = b"PLUTOSN1";

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerInfo {
    pub(crate) name: String,
    pub(crate) replica: ReplicaId,
    pub(crate) addr: String,
}

impl From<&PeerConfig> for PeerInfo {
    fn from(p: &PeerConfig) -> Self {
        Self {
            name: p.name.clone(),
            replica: ReplicaId(p.replica_id),
            addr: p.replication_addr.clone(),
        }
    }
}

/// The configuration every replication decision reads: the peers, and which of them
/// hold which user. A reconfiguration replaces it as a whole, so one decision never
/// mixes an old peer list with a new `replicas_of`.
pub(crate) struct Membership {
    pub(crate) peers: Vec<PeerInfo>,
    pub(crate) replicas_of: ReplicasOf,
}

impl Membership {
    pub(crate) fn peer(&self, name: &str) -> Option<&PeerInfo> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// The configured peers holding a user (names `replicas_of` gives that are not
    /// peers are ignored, as they always were).
    pub(crate) fn holders(&self, user: &UserId) -> Vec<&PeerInfo> {
        let names = (self.replicas_of)(user);
        self.peers
            .iter()
            .filter(|p| names.contains(&p.name))
            .collect()
    }

    pub(crate) fn holds(&self, user: &UserId, peer: &str) -> bool {
        self.peer(peer).is_some() && (self.replicas_of)(user).iter().any(|n| n == peer)
    }
}

/// The membership and what a change of it left to do.
struct MembershipState {
    current: Arc<Membership>,
    /// Per peer: users it newly holds and must get whole (a snapshot), because its
    /// cursor may already be past their older records, which were not sent to it then.
    moves: BTreeMap<String, BTreeSet<UserId>>,
}

/// A sender's view of its peer's data moves, read in one step with the membership so
/// that a report of "nothing pending" never precedes the moves of the same change.
pub(crate) struct MovesView {
    /// This node and its peers (name, replica id), sorted: which configuration the
    /// count belongs to.
    pub(crate) cluster: Vec<(String, u16)>,
    pub(crate) pending: u64,
    pub(crate) next: Option<UserId>,
}

/// What a checkpoint keeps besides snapshots: cursors that must outlive the log.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    /// Per peer: its log has been received up to this LSN.
    inbound: BTreeMap<String, u64>,
    /// Per peer: it has acknowledged this node's log up to this LSN.
    acked: BTreeMap<String, u64>,
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

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn blocking_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("blocking task failed: {e}")))
}

fn encode_snapshot_file(lsn: u64, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(state.len() + 20);
    out.extend_from_slice(SNAP_MAGIC);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(state).to_le_bytes());
    out.extend_from_slice(state);
    out
}

fn decode_snapshot_file(bytes: &[u8]) -> Option<(u64, &[u8])> {
    if bytes.len() < 20 || &bytes[..8] != SNAP_MAGIC {
        return None;
    }
    let lsn = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    let state = &bytes[20..];
    (crc32fast::hash(state) == crc).then_some((lsn, state))
}

/// A snapshot with its header rewritten: the replica id (the first field after the
/// format version) and, when given, the members (the config after it). The CRDT has no
/// call for either — its members are fixed at creation, yet a reconfiguration changes
/// who holds a user, and compaction must wait for exactly the new holders.
pub(crate) fn reshape_snapshot(
    bytes: &[u8],
    replica: ReplicaId,
    members: Option<Vec<ReplicaId>>,
) -> StoreResult<UserState> {
    let bad = |e: postcard::Error| StoreError::Corrupt(format!("snapshot header: {e}"));
    let (version, rest): (u32, &[u8]) = postcard::take_from_bytes(bytes).map_err(bad)?;
    let (_theirs, rest): (u16, &[u8]) = postcard::take_from_bytes(rest).map_err(bad)?;
    let (mut config, rest): (crdt::Config, &[u8]) = postcard::take_from_bytes(rest).map_err(bad)?;
    if let Some(members) = members {
        config.members = members;
    }
    // decode_snapshot trusts its header; what UserState::new checks is checked here.
    if let Some(r) = config
        .members
        .iter()
        .chain([&replica])
        .find(|r| r.0 >= config.uid_stride)
    {
        return Err(StoreError::NotAllowed(format!(
            "replica id {} is not below the UID stride {}",
            r.0, config.uid_stride
        )));
    }
    let mut out = postcard::to_stdvec(&(version, replica.0, &config)).map_err(bad)?;
    out.extend_from_slice(rest);
    let state = UserState::decode_snapshot(&out).map_err(error_from_crdt)?;
    if state.replica() != replica || state.config() != &config {
        return Err(StoreError::Corrupt(
            "snapshot header: the replica id or members could not be rewritten".into(),
        ));
    }
    Ok(state)
}

/// What a checkpoint did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    pub snapshots_written: usize,
    pub segments_removed: usize,
    /// Records up to this LSN are covered by snapshots.
    pub covered_lsn: u64,
}

impl ReplicatedStore {
    /// Opens the node's data directory: blobs, log (cutting a torn tail), snapshots,
    /// replay. Without peers the node is at once its users' leader; with peers, the
    /// node's links say who is reachable ([`Node`](super::Node) does this).
    pub fn open(config: &NodeConfig) -> StoreResult<Arc<ReplicatedStore>> {
        if config.replica_id >= config.uid_stride {
            return Err(StoreError::NotAllowed(format!(
                "replica id {} is not below the UID stride {}",
                config.replica_id, config.uid_stride
            )));
        }
        let dir = config.data_dir.clone();
        fs::create_dir_all(dir.join("snapshots"))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        rustix::fs::flock(
            &lock_file,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "the data directory {} is in use by another process (cannot lock {}: {e})",
                dir.display(),
                lock_path.display()
            ))
        })?;
        let blobs = Arc::new(BlobStore::open(dir.join("blobs"))?);
        let recovered = OpLog::open(dir.join("log"), config.segment_bytes)?;
        if recovered.torn_bytes > 0 {
            tracing::warn!(
                bytes = recovered.torn_bytes,
                "cut a torn tail off the operation log"
            );
        }
        let meta: Meta = match fs::read(dir.join(META_FILE)) {
            Ok(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{META_FILE}: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(e.into()),
        };
        let mut moves: BTreeMap<String, BTreeSet<UserId>> = match fs::read(dir.join(MOVES_FILE)) {
            Ok(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{MOVES_FILE}: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let replica = ReplicaId(config.replica_id);
        let peers: Vec<PeerInfo> = config.peers.iter().map(PeerInfo::from).collect();

        // Snapshots, then the log after each.
        let mut entries: HashMap<UserId, UserEntry> = HashMap::new();
        for file in fs::read_dir(dir.join("snapshots"))?.flatten() {
            let Some(name) = file
                .file_name()
                .into_string()
                .ok()
                .and_then(|n| n.strip_suffix(".snap").map(str::to_owned))
            else {
                continue;
            };
            let Ok(user) = UserId::new(name) else {
                continue;
            };
            let bytes = fs::read(file.path())?;
            let Some((lsn, state)) = decode_snapshot_file(&bytes) else {
                return Err(StoreError::Corrupt(format!(
                    "snapshot {} is damaged",
                    file.path().display()
                )));
            };
            let crdt = UserState::decode_snapshot(state).map_err(error_from_crdt)?;
            entries.insert(
                user,
                UserEntry {
                    crdt,
                    applied_lsn: lsn,
                    snapshot_lsn: lsn,
                },
            );
        }
        let mut inbound = meta.inbound.clone();
        let mut replay: HashMap<UserId, Vec<Op>> = HashMap::new();
        let mut last_lsn: HashMap<UserId, u64> = HashMap::new();
        for (lsn, entry) in recovered.records {
            match entry {
                Entry::Step { user, ops, .. } => {
                    let covered = entries.get(&user).is_some_and(|e| e.snapshot_lsn >= lsn);
                    if !covered {
                        replay.entry(user.clone()).or_default().extend(ops);
                        last_lsn.insert(user, lsn);
                    }
                }
                Entry::Received { peer, upto } => {
                    let at = inbound.entry(peer).or_insert(0);
                    *at = (*at).max(upto);
                }
            }
        }
        let members_of = |user: &UserId| members(replica, &peers, &config.replicas_of, user);
        for (user, ops) in replay {
            let entry = match entries.entry(user.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(UserEntry {
                    crdt: UserState::new(
                        replica,
                        crdt::Config {
                            uid_stride: config.uid_stride,
                            members: members_of(&user),
                        },
                    )
                    .map_err(error_from_crdt)?,
                    applied_lsn: 0,
                    snapshot_lsn: 0,
                }),
            };
            entry.crdt.replay(ops).map_err(error_from_crdt)?;
            entry.applied_lsn = last_lsn.get(&user).copied().unwrap_or(0);
        }
        // A node restarted with another configuration: its users' members follow it.
        for (user, entry) in entries.iter_mut() {
            let want = members_of(user);
            if entry.crdt.config().members != want {
                let bytes = bytes_of(&entry.crdt)?;
                entry.crdt = reshape_snapshot(&bytes, replica, Some(want))?;
            }
        }
        // Without peers this node is every user's leader at once; with peers, the
        // links decide (a restarted replica does not bind before it knows them).
        let reachable = config.peers.is_empty().then(BTreeSet::new);
        if reachable.is_some() {
            for (user, entry) in entries.iter_mut() {
                let ops = entry.crdt.set_reachable([]);
                if !ops.is_empty() {
                    let (lsn, _durable) = recovered.log.submit(&Entry::Step {
                        user: user.clone(),
                        ops,
                        blobs: Vec::new(),
                    })?;
                    // Reads of this user wait for this LSN to be durable.
                    entry.applied_lsn = lsn;
                }
            }
        }
        let users_map: HashMap<UserId, Arc<UserSlot>> = entries
            .into_iter()
            .map(|(u, e)| (u, UserSlot::new(e)))
            .collect();
        let peer_acks = peers
            .iter()
            .map(|p| {
                let at = meta.acked.get(&p.name).copied().unwrap_or(0);
                (p.name.clone(), watch::channel(at).0)
            })
            .collect();
        let current = Arc::new(Membership {
            peers,
            replicas_of: config.replicas_of.clone(),
        });
        // Moves left by a reconfiguration before the restart, where they still apply
        // (one already done is sent again: an extra snapshot, installed as a no-op).
        moves.retain(|peer, users| {
            users.retain(|u| users_map.contains_key(u) && current.holds(u, peer));
            !users.is_empty()
        });
        if !moves.is_empty() {
            tracing::info!(moves = ?moves.iter().map(|(p, u)| (p, u.len())).collect::<Vec<_>>(), "data moves left from before the restart");
        }
        let membership = MembershipState { current, moves };
        let store = Arc::new_cyclic(|me| ReplicatedStore {
            recent: crate::recent::RecentClaims::default(),
            name: config.name.clone(),
            replica,
            stride: config.uid_stride,
            data_dir: dir,
            blobs,
            log: recovered.log,
            users: StdMutex::new(users_map),
            membership: StdMutex::new(membership),
            ack: config.ack,
            ack_timeout: config.ack_timeout,
            peer_acks: StdMutex::new(peer_acks),
            inbound: StdMutex::new(inbound),
            reachable: StdMutex::new(reachable),
            local_only_acks: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            checkpoint_lock: Mutex::new(()),
            since_checkpoint: AtomicU64::new(0),
            checkpoint_every: config.checkpoint_every.max(1),
            max_lag_records: config.max_lag_records,
            me: me.clone(),
            _lock: lock_file,
        });
        Ok(store)
    }

    /// The replica ids of a user's replicas, this node included.
    fn members(&self, user: &UserId) -> Vec<ReplicaId> {
        let m = self.membership();
        members(self.replica, &m.peers, &m.replicas_of, user)
    }

    /// The current peers and `replicas_of`, as one consistent value.
    pub(crate) fn membership(&self) -> Arc<Membership> {
        lock(&self.membership).current.clone()
    }

    /// This node and its peers, (name, replica id) sorted: the configuration as peers
    /// compare it.
    pub(crate) fn cluster(&self) -> Vec<(String, u16)> {
        cluster_of(&self.name, self.replica, &self.membership())
    }

    /// The configuration and the data moves still owed to `peer`, read together.
    pub(crate) fn moves_for(&self, peer: &str) -> MovesView {
        let state = lock(&self.membership);
        let queue = state.moves.get(peer);
        MovesView {
            cluster: cluster_of(&self.name, self.replica, &state.current),
            pending: queue.map_or(0, |q| q.len() as u64),
            next: queue.and_then(|q| q.first().cloned()),
        }
    }

    /// Writes the queued moves durably (after a reconfiguration, and at checkpoints,
    /// which also forget the moves done since).
    pub(crate) async fn save_moves(&self) -> StoreResult<()> {
        let moves = lock(&self.membership).moves.clone();
        let bytes = postcard::to_stdvec(&moves)
            .map_err(|e| StoreError::Corrupt(format!("encoding {MOVES_FILE}: {e}")))?;
        let path = self.data_dir.join(MOVES_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(blocking_err)??;
        Ok(())
    }

    /// Every user queued for `peer`.
    pub(crate) fn queued_moves(&self, peer: &str) -> BTreeSet<UserId> {
        lock(&self.membership)
            .moves
            .get(peer)
            .cloned()
            .unwrap_or_default()
    }

    /// `user`'s whole state has reached `peer` (acknowledged there).
    pub(crate) fn move_done(&self, peer: &str, user: &UserId) {
        let mut state = lock(&self.membership);
        if let Some(queue) = state.moves.get_mut(peer) {
            queue.remove(user);
            if queue.is_empty() {
                state.moves.remove(peer);
            }
        }
    }

    /// Replaces the peers and `replicas_of` in one step and queues, for every peer, the
    /// users this node has that the peer holds now and did not before: each must get
    /// that user's whole state, since its cursor may be past the user's older records
    /// (they were filtered out then). Returns how many users were queued per peer.
    /// The queueing happens under the same lock as the swap, so a sender never sees
    /// the new configuration without its moves.
    pub(crate) fn set_membership(
        &self,
        peers: Vec<PeerInfo>,
        replicas_of: ReplicasOf,
    ) -> BTreeMap<String, usize> {
        let next = Arc::new(Membership { peers, replicas_of });
        let mut state = lock(&self.membership);
        let old = state.current.clone();
        let users: Vec<UserId> = lock(&self.users).keys().cloned().collect();
        let mut queued: BTreeMap<String, usize> = BTreeMap::new();
        for user in users {
            let before: BTreeSet<&str> = old
                .holders(&user)
                .into_iter()
                .map(|p| p.name.as_str())
                .collect();
            for p in next.holders(&user) {
                if !before.contains(p.name.as_str()) {
                    state
                        .moves
                        .entry(p.name.clone())
                        .or_default()
                        .insert(user.clone());
                    *queued.entry(p.name.clone()).or_default() += 1;
                }
            }
        }
        // Moves left from an earlier change go only where the user is still held.
        for (peer, users) in state.moves.iter_mut() {
            users.retain(|u| next.holds(u, peer));
        }
        state.moves.retain(|_, users| !users.is_empty());
        {
            let mut acks = lock(&self.peer_acks);
            acks.retain(|p, _| next.peer(p).is_some());
            for p in &next.peers {
                acks.entry(p.name.clone())
                    .or_insert_with(|| watch::channel(0).0);
            }
        }
        state.current = next;
        queued
    }

    /// Gives every user's CRDT the members of the current configuration (compaction
    /// waits for exactly these), and tells the rebuilt states who is reachable again:
    /// a replica that becomes a user's leader by this logs its binds as usual.
    pub(crate) async fn refresh_members(&self) -> StoreResult<()> {
        for (user, slot) in self.slots() {
            let members = self.members(&user);
            let mut entry = slot.state.lock().await;
            if entry.crdt.config().members == members {
                continue;
            }
            let bytes = bytes_of(&entry.crdt)?;
            let mut state = reshape_snapshot(&bytes, self.replica, Some(members.clone()))?;
            let reachable = lock(&self.reachable).clone();
            let ops = match reachable {
                Some(r) => {
                    let members: BTreeSet<ReplicaId> = members.into_iter().collect();
                    state.set_reachable(r.intersection(&members).copied())
                }
                None => Vec::new(),
            };
            entry.crdt = state;
            self.log_own_step(&user, &slot, entry, ops).await?;
        }
        Ok(())
    }

    /// Logs `user`'s own follow-up ops (no bodies) that changed `entry`, which stays
    /// locked until they have an LSN; then waits until they are durable and wakes the
    /// user's watchers. A log failure stops the store from serving.
    async fn log_own_step(
        &self,
        user: &UserId,
        slot: &UserSlot,
        mut entry: tokio::sync::MutexGuard<'_, UserEntry>,
        ops: Vec<Op>,
    ) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let (lsn, rx) = self
            .log
            .submit(&Entry::Step {
                user: user.clone(),
                ops,
                blobs: Vec::new(),
            })
            .inspect_err(|e| self.poison(e))?;
        entry.applied_lsn = lsn;
        drop(entry);
        OpLog::wait(rx).await.inspect_err(|e| self.poison(e))?;
        slot.notify();
        Ok(())
    }

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

    /// Runs a write: `f` changes the state and pushes the ops it made (also when it then
    /// fails: what was applied must be logged). Answers once durable (and replicated,
    /// per the ack mode).
    async fn write<T>(
        &self,
        user: &UserId,
        blobs: Vec<BodyRef>,
        f: impl FnOnce(&mut UserState, &mut Vec<Op>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.check()?;
        let slot = self.slot(user)?;
        let mut entry = slot.state.lock().await;
        let mut ops = Vec::new();
        let result = f(&mut entry.crdt, &mut ops);
        if ops.is_empty() {
            let applied = entry.applied_lsn;
            drop(entry);
            self.log.wait_durable(applied).await?;
            return result;
        }
        let submitted = self.log.submit(&Entry::Step {
            user: user.clone(),
            ops,
            blobs,
        });
        let (lsn, rx) = match submitted {
            Ok(s) => s,
            Err(e) => {
                self.poison(&e);
                return Err(e);
            }
        };
        entry.applied_lsn = lsn;
        drop(entry);
        if let Err(e) = OpLog::wait(rx).await {
            self.poison(&e);
            return Err(e);
        }
        slot.notify();
        self.after_records(1);
        self.await_replica(user, lsn).await;
        result
    }

    /// The bodies (or, with [`BlobStore::get_header`], the headers) of these messages,
    /// in the order asked; UIDs not in the mailbox are left out.
    async fn read_bodies(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        read: fn(&BlobStore, &BodyRef) -> StoreResult<Bytes>,
    ) -> StoreResult<Vec<MessageBody>> {
        let found = self
            .read(user, |st| {
                let views = st
                    .messages(name.as_str(), &crdt_uids(uids))
                    .map_err(error_from_crdt)?;
                let by_uid: HashMap<u32, BodyRef> =
                    views.iter().map(|v| (v.uid.0, v.body)).collect();
                Ok(uids
                    .iter()
                    .filter_map(|u| by_uid.get(&u.get()).map(|b| (*u, *b)))
                    .collect::<Vec<_>>())
            })
            .await?;
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || {
            found
                .into_iter()
                .map(|(uid, body)| {
                    Ok(MessageBody {
                        uid,
                        bytes: read(&blobs, &body)?,
                    })
                })
                .collect()
        })
        .await
        .map_err(blocking_err)?
    }

    /// Runs a read; answers only once everything it may have seen is durable.
    async fn read<T>(
        &self,
        user: &UserId,
        f: impl FnOnce(&UserState) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.check()?;
        let slot = self.slot(user)?;
        let entry = slot.state.lock().await;
        let result = f(&entry.crdt);
        let applied = entry.applied_lsn;
        drop(entry);
        self.log.wait_durable(applied).await?;
        result
    }

    /// With `ack = Replica`: waits until a peer holding the user has acknowledged the
    /// log through `lsn`, or the timeout. Only peers whose link is up are waited for: a
    /// replica known to be down would cost every write the whole timeout, so then the
    /// write is answered on the local fsync alone (and counted, see
    /// [`Self::local_only_acks`]); the record still reaches the replica once it is back.
    async fn await_replica(&self, user: &UserId, lsn: u64) {
        if self.ack == AckMode::Local {
            return;
        }
        let holders: Vec<(String, ReplicaId)> = self
            .membership()
            .holders(user)
            .into_iter()
            .map(|p| (p.name.clone(), p.replica))
            .collect();
        if holders.is_empty() {
            return;
        }
        // Before the node knows who is reachable (just started), every holder counts.
        let reachable = lock(&self.reachable).clone();
        let acks: Vec<watch::Sender<u64>> = {
            let all = lock(&self.peer_acks);
            holders
                .iter()
                .filter(|(_, id)| reachable.as_ref().is_none_or(|r| r.contains(id)))
                .filter_map(|(p, _)| all.get(p).cloned())
                .collect()
        };
        let waits: Vec<_> = acks
            .iter()
            .map(|tx| {
                let mut rx = tx.subscribe();
                Box::pin(async move {
                    if rx.wait_for(|a| *a >= lsn).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                })
            })
            .collect();
        if waits.is_empty() {
            tracing::debug!(%user, lsn, "no replica reachable; answering after the local write");
            self.local_only_acks.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let acked = tokio::time::timeout(self.ack_timeout, futures::future::select_all(waits));
        if acked.await.is_err() {
            tracing::debug!(%user, lsn, "no replica acknowledged in time; answering after the local write");
            self.local_only_acks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many writes under `ack = Replica` were answered on the local fsync alone
    /// since the node started: no replica of the user was reachable, or none
    /// acknowledged within `ack_timeout`.
    pub fn local_only_acks(&self) -> u64 {
        self.local_only_acks.load(Ordering::Relaxed)
    }

    /// Counts records toward the next checkpoint and starts one when due.
    fn after_records(&self, n: u64) {
        let since = self.since_checkpoint.fetch_add(n, Ordering::Relaxed) + n;
        if since >= self.checkpoint_every {
            self.since_checkpoint.store(0, Ordering::Relaxed);
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(async move {
                    if let Err(e) = me.checkpoint().await {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                });
            }
        }
    }

    // ------------------------------------------------------------ reachability

    /// Tells every user's state which of its peers are reachable (the leader rule), and
    /// logs the binds a new leader owes.
    pub async fn set_reachable(&self, peers: BTreeSet<ReplicaId>) -> StoreResult<()> {
        *lock(&self.reachable) = Some(peers.clone());
        for (user, slot) in self.slots() {
            let mut entry = slot.state.lock().await;
            let members: BTreeSet<ReplicaId> =
                entry.crdt.config().members.iter().copied().collect();
            let ops = entry
                .crdt
                .set_reachable(peers.intersection(&members).copied());
            self.log_own_step(&user, &slot, entry, ops).await?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ replication

    /// Applies a peer's batch: per user, its ops and the follow-ups they trigger go to
    /// the log as one record; then the peer's cursor; answered once all is durable.
    pub(crate) async fn apply_batch(
        &self,
        peer: &PeerInfo,
        records: Vec<(UserId, Vec<Op>)>,
        progress: Vec<(UserId, VersionVector)>,
        upto: u64,
    ) -> StoreResult<()> {
        self.check()?;
        let mut by_user: BTreeMap<UserId, Vec<Op>> = BTreeMap::new();
        for (user, ops) in records {
            by_user.entry(user).or_default().extend(ops);
        }
        let mut progress_by: HashMap<UserId, VersionVector> = HashMap::new();
        for (user, v) in progress {
            by_user.entry(user.clone()).or_default();
            progress_by.entry(user).or_default().join(&v);
        }
        let mut waits = Vec::new();
        let mut touched = Vec::new();
        let mut count = 0;
        for (user, ops) in by_user {
            let slot = self.slot(&user)?;
            let mut entry = slot.state.lock().await;
            let ops: Vec<Op> = ops
                .into_iter()
                .filter(|op| !entry.crdt.version().contains(op.id))
                .collect();
            if !ops.is_empty() {
                match entry.crdt.apply_remote(ops.clone()) {
                    Ok(follow) => {
                        let mut all = ops;
                        all.extend(follow);
                        // Relayed bodies are not sent along again: a peer that
                        // lacks one asks for it.
                        let (lsn, rx) = match self.log.submit(&Entry::Step {
                            user: user.clone(),
                            ops: all,
                            blobs: Vec::new(),
                        }) {
                            Ok(s) => s,
                            Err(e) => {
                                self.poison(&e);
                                return Err(e);
                            }
                        };
                        entry.applied_lsn = lsn;
                        waits.push(rx);
                        touched.push(slot.clone());
                        count += 1;
                    }
                    Err(e) => {
                        // Nothing of the batch was applied; the peer is wrong, not us.
                        tracing::warn!(peer = %peer.name, %user, error = %e, "refusing a peer's ops");
                    }
                }
            }
            if let Some(v) = progress_by.get(&user) {
                entry.crdt.report_progress(peer.replica, v);
            }
        }
        // The cursor is logged only with ops: a batch of records this node does not
        // need moves it in memory (saved by the next checkpoint). Logging it each time
        // would make a record the peer must skip, whose batch would make a record
        // here, and so on forever. A cursor left behind by a crash only means that
        // some skipped records are read again.
        if count > 0 && upto > self.inbound_cursor(&peer.name) {
            let (_, rx) = self.log.submit(&Entry::Received {
                peer: peer.name.clone(),
                upto,
            })?;
            waits.push(rx);
        }
        for rx in waits {
            if let Err(e) = OpLog::wait(rx).await {
                self.poison(&e);
                return Err(e);
            }
        }
        {
            let mut inbound = lock(&self.inbound);
            let at = inbound.entry(peer.name.clone()).or_insert(0);
            *at = (*at).max(upto);
        }
        for slot in touched {
            slot.notify();
        }
        self.after_records(count);
        Ok(())
    }

    /// Installs a peer's snapshot of a user when this replica has nothing the snapshot
    /// lacks. Returns whether it was installed, and the bodies its messages need that
    /// are not here.
    pub(crate) async fn install_snapshot(
        &self,
        user: &UserId,
        bytes: &[u8],
    ) -> StoreResult<(bool, Vec<BodyRef>)> {
        self.check()?;
        // The sender's members are its view; this replica's configuration decides.
        let mut state = reshape_snapshot(bytes, self.replica, Some(self.members(user)))?;
        let slot = self.slot(user)?;
        let mut entry = slot.state.lock().await;
        let local = &entry.crdt;
        if !local.version().le(state.version()) {
            return Ok((false, Vec::new()));
        }
        // Ops that wait here for their history (a moved user's new writes can arrive
        // before its snapshot): the snapshot brings that history, so they are applied
        // again on top of it instead of making the snapshot look incomplete.
        let waiting = local.pending_ops();
        if local.version() == state.version()
            && waiting.is_empty()
            && state.stats().pending_ops == 0
        {
            return Ok((true, Vec::new()));
        }
        let mut follow_ups = if waiting.is_empty() {
            Vec::new()
        } else {
            state.apply_remote(waiting).map_err(error_from_crdt)?
        };
        self.log.wait_durable(entry.applied_lsn).await?;
        let lsn = entry.applied_lsn;
        let path = self.snapshot_path(user);
        let file = encode_snapshot_file(lsn, bytes_of(&state)?.as_slice());
        tokio::task::spawn_blocking(move || write_atomic(&path, &file))
            .await
            .map_err(blocking_err)??;
        let reachable = lock(&self.reachable).clone();
        if let Some(reachable) = reachable {
            let members: BTreeSet<ReplicaId> = state.config().members.iter().copied().collect();
            follow_ups.extend(state.set_reachable(reachable.intersection(&members).copied()));
        }
        {
            let ops = follow_ups;
            if !ops.is_empty() {
                entry.crdt = state;
                entry.snapshot_lsn = lsn;
                let (lsn, rx) = self.log.submit(&Entry::Step {
                    user: user.clone(),
                    ops,
                    blobs: Vec::new(),
                })?;
                entry.applied_lsn = lsn;
                drop(entry);
                OpLog::wait(rx).await?;
                slot.notify();
                return Ok((true, self.missing_bodies(&slot).await));
            }
        }
        entry.crdt = state;
        entry.snapshot_lsn = lsn;
        drop(entry);
        slot.notify();
        Ok((true, self.missing_bodies(&slot).await))
    }

    async fn missing_bodies(&self, slot: &UserSlot) -> Vec<BodyRef> {
        let entry = slot.state.lock().await;
        let mut refs = BTreeSet::new();
        for mb in entry.crdt.mailboxes() {
            if let Ok(snap) = entry.crdt.snapshot(&mb.name) {
                refs.extend(snap.messages.iter().map(|m| m.body));
            }
        }
        drop(entry);
        refs.into_iter()
            .filter(|r| !self.blobs.contains(r))
            .collect()
    }

    /// The bodies named by these ops that are not here.
    pub(crate) fn missing_for(&self, ops: &[Op]) -> Vec<BodyRef> {
        let mut refs = BTreeSet::new();
        for op in ops {
            match &op.kind {
                OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => {
                    refs.extend(messages.iter().map(|m| m.data.body));
                }
                _ => {}
            }
        }
        refs.into_iter()
            .filter(|r| !self.blobs.contains(r))
            .collect()
    }

    /// This replica's version of a user, when all of it is durable (a progress report
    /// must not name ops a crash could take back).
    pub(crate) async fn durable_version(&self, user: &UserId) -> Option<VersionVector> {
        let slot = lock(&self.users).get(user).cloned()?;
        let entry = slot.state.lock().await;
        (entry.applied_lsn <= self.log.durable().lsn).then(|| entry.crdt.version().clone())
    }

    /// A user's state as snapshot bytes, durable.
    pub(crate) async fn snapshot_bytes(&self, user: &UserId) -> StoreResult<Option<Vec<u8>>> {
        let Some(slot) = lock(&self.users).get(user).cloned() else {
            return Ok(None);
        };
        let entry = slot.state.lock().await;
        if entry.crdt.version().is_empty() {
            return Ok(None);
        }
        let bytes = entry.crdt.encode_snapshot().map_err(error_from_crdt)?;
        let applied = entry.applied_lsn;
        drop(entry);
        self.log.wait_durable(applied).await?;
        Ok(Some(bytes))
    }

    pub(crate) fn users_held_by(&self, peer: &str) -> Vec<UserId> {
        let membership = self.membership();
        let mut users: Vec<UserId> = lock(&self.users)
            .keys()
            .filter(|u| membership.holds(u, peer))
            .cloned()
            .collect();
        users.sort();
        users
    }

    pub(crate) fn inbound_cursor(&self, peer: &str) -> u64 {
        lock(&self.inbound).get(peer).copied().unwrap_or(0)
    }

    pub(crate) fn record_ack(&self, peer: &str, lsn: u64) {
        if let Some(tx) = lock(&self.peer_acks).get(peer) {
            tx.send_if_modified(|at| {
                if lsn > *at {
                    *at = lsn;
                    true
                } else {
                    false
                }
            });
        }
    }

    pub(crate) fn acked(&self, peer: &str) -> u64 {
        lock(&self.peer_acks).get(peer).map_or(0, |tx| *tx.borrow())
    }

    // ------------------------------------------------------------ checkpoints

    fn snapshot_path(&self, user: &UserId) -> PathBuf {
        self.data_dir
            .join("snapshots")
            .join(format!("{}.snap", user.as_str()))
    }

    /// Writes a snapshot of every user changed since its last one (compacting first),
    /// saves the cursors, and truncates the log behind both the snapshots and the
    /// slowest peer.
    pub async fn checkpoint(&self) -> StoreResult<CheckpointReport> {
        self.check()?;
        let _one = self.checkpoint_lock.lock().await;
        let covered = self.log.durable().lsn;
        let mut report = CheckpointReport {
            covered_lsn: covered,
            ..CheckpointReport::default()
        };
        for (user, slot) in self.slots() {
            let mut entry = slot.state.lock().await;
            if entry.applied_lsn <= entry.snapshot_lsn {
                continue;
            }
            entry.crdt.compact();
            let bytes = entry.crdt.encode_snapshot().map_err(error_from_crdt)?;
            let lsn = entry.applied_lsn;
            drop(entry);
            self.log.wait_durable(lsn).await?;
            let path = self.snapshot_path(&user);
            let file = encode_snapshot_file(lsn, &bytes);
            tokio::task::spawn_blocking(move || write_atomic(&path, &file))
                .await
                .map_err(blocking_err)??;
            let mut entry = slot.state.lock().await;
            entry.snapshot_lsn = entry.snapshot_lsn.max(lsn);
            report.snapshots_written += 1;
        }
        let meta = Meta {
            inbound: lock(&self.inbound).clone(),
            acked: lock(&self.peer_acks)
                .iter()
                .map(|(p, tx)| (p.clone(), *tx.borrow()))
                .collect(),
        };
        let bytes = postcard::to_stdvec(&meta)
            .map_err(|e| StoreError::Corrupt(format!("encoding {META_FILE}: {e}")))?;
        let path = self.data_dir.join(META_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(blocking_err)??;
        self.save_moves().await?;
        let floor = covered.saturating_sub(self.max_lag_records);
        let through = meta
            .acked
            .values()
            .map(|a| (*a).max(floor))
            .fold(covered, u64::min);
        report.segments_removed = self.log.truncate_through(through)?;
        Ok(report)
    }

    /// Stops the log writer after a last checkpoint.
    pub async fn close(&self) {
        if let Err(e) = self.checkpoint().await {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        self.log.close();
    }

    // ------------------------------------------------------------ tests and status

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

fn members(
    me: ReplicaId,
    peers: &[PeerInfo],
    replicas_of: &ReplicasOf,
    user: &UserId,
) -> Vec<ReplicaId> {
    let names = replicas_of(user);
    let mut out: Vec<ReplicaId> = peers
        .iter()
        .filter(|p| names.contains(&p.name))
        .map(|p| p.replica)
        .chain([me])
        .collect();
    out.sort();
    out.dedup();
    out
}

fn cluster_of(me: &str, replica: ReplicaId, m: &Membership) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = m
        .peers
        .iter()
        .map(|p| (p.name.clone(), p.replica.0))
        .chain([(me.to_owned(), replica.0)])
        .collect();
    out.sort();
    out
}

fn names_of(state: &UserState) -> HashSet<String> {
    state.mailboxes().into_iter().map(|m| m.name).collect()
}

fn crdt_uids(uids: &[Uid]) -> Vec<crdt::Uid> {
    uids.iter().copied().map(uid_to_crdt).collect()
}

fn all_uids(state: &UserState, name: &MailboxName) -> StoreResult<Vec<crdt::Uid>> {
    Ok(state
        .snapshot(name.as_str())
        .map_err(error_from_crdt)?
        .messages
        .iter()
        .map(|m| m.uid)
        .collect())
}

fn copy_outcome(o: crdt::CopyOutcome) -> StoreResult<CopyOutcome> {
    Ok(CopyOutcome {
        uid_validity: validity_from_crdt(o.uid_validity)?,
        mapping: o
            .mapping
            .into_iter()
            .map(|(a, b)| Ok((uid_from_crdt(a)?, uid_from_crdt(b)?)))
            .collect::<StoreResult<_>>()?,
    })
}

#[async_trait]
impl MailStore for ReplicatedStore {
    async fn open_user(&self, user: &UserId) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            // Only a user nobody has written yet gets the defaults: a replica that is
            // merely behind must not re-create what the user deleted elsewhere. A
            // replica that has no state yet although others do (new, or it lost its
            // data) creates the very mailboxes the first replica created: same
            // incarnation, same UIDVALIDITY, so nothing changes for the user's clients.
            if !st.version().is_empty() {
                return Ok(());
            }
            for (name, special) in DEFAULT_MAILBOXES {
                ops.extend(st.create_default_mailbox(name, special.map(special_to_crdt)));
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, user: &UserId) -> StoreResult<MailboxList> {
        self.read(user, |st| {
            let mut mailboxes: Vec<MailboxInfo> = st
                .mailboxes()
                .into_iter()
                .filter_map(|m| {
                    Some(MailboxInfo {
                        name: MailboxName::new(m.name).ok()?,
                        special_use: m.special_use.map(special_from_crdt),
                    })
                })
                .collect();
            mailboxes.sort_by(|a, b| a.name.cmp(&b.name));
            let mut subscriptions: Vec<MailboxName> = st
                .subscriptions()
                .into_iter()
                .filter_map(|n| MailboxName::new(n).ok())
                .collect();
            subscriptions.sort();
            Ok(MailboxList {
                mailboxes,
                subscriptions,
            })
        })
        .await
    }

    async fn create_mailbox(
        &self,
        user: &UserId,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            let names = names_of(st);
            if names.contains(name.as_str()) {
                return Err(StoreError::MailboxExists(name.clone()));
            }
            for parent in name.ancestors() {
                if !names.contains(parent.as_str()) {
                    ops.extend(
                        st.create_mailbox(parent.as_str(), None)
                            .map_err(error_from_crdt)?,
                    );
                }
            }
            ops.extend(
                st.create_mailbox(name.as_str(), special_use.map(special_to_crdt))
                    .map_err(error_from_crdt)?,
            );
            Ok(())
        })
        .await
    }

    async fn delete_mailbox(&self, user: &UserId, name: &MailboxName) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            if name.is_inbox() {
                return Err(StoreError::NotAllowed("INBOX cannot be deleted".into()));
            }
            let names = names_of(st);
            if !names.contains(name.as_str()) {
                return Err(StoreError::NoSuchMailbox(name.clone()));
            }
            // Mailboxes below it stay (RFC 3501 6.3.4).
            ops.extend(st.delete_mailbox(name.as_str()).map_err(error_from_crdt)?);
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
        self.write(user, Vec::new(), |st, ops| {
            let names = names_of(st);
            if !names.contains(from.as_str()) {
                return Err(StoreError::NoSuchMailbox(from.clone()));
            }
            if names.contains(to.as_str()) {
                return Err(StoreError::MailboxExists(to.clone()));
            }
            if to == from || to.is_below(from) {
                return Err(StoreError::NotAllowed(format!(
                    "{from} cannot be renamed below itself"
                )));
            }
            if !from.is_inbox() {
                for n in &names {
                    let Ok(n) = MailboxName::new(n.as_str()) else {
                        continue;
                    };
                    if let Some(target) = n.rebase(from, to).filter(|_| n.is_below(from))
                        && names.contains(target.as_str())
                    {
                        return Err(StoreError::MailboxExists(target));
                    }
                }
            }
            for parent in to.ancestors() {
                if !names.contains(parent.as_str()) {
                    ops.extend(
                        st.create_mailbox(parent.as_str(), None)
                            .map_err(error_from_crdt)?,
                    );
                }
            }
            ops.extend(
                st.rename_mailbox(from.as_str(), to.as_str())
                    .map_err(error_from_crdt)?,
            );
            Ok(())
        })
        .await
    }

    async fn set_subscribed(
        &self,
        user: &UserId,
        name: &MailboxName,
        subscribed: bool,
    ) -> StoreResult<()> {
        self.write(user, Vec::new(), |st, ops| {
            let now = st.subscriptions().iter().any(|n| n == name.as_str());
            if subscribed && !now {
                ops.extend(st.subscribe(name.as_str()));
            } else if !subscribed && now {
                ops.extend(st.unsubscribe(name.as_str()));
            }
            Ok(())
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

    async fn status(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxStatus> {
        self.read(user, |st| {
            let s = st.status(name.as_str()).map_err(error_from_crdt)?;
            Ok(MailboxStatus {
                messages: s.messages,
                unseen: s.unseen,
                deleted: s.deleted,
                uid_next: uid_from_crdt(s.uid_next)?,
                uid_validity: validity_from_crdt(s.uid_validity)?,
                highest_modseq: ModSeq(s.highest_modseq.0),
                size: s.size,
            })
        })
        .await
    }

    async fn select(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxSnapshot> {
        self.read(user, |st| {
            snapshot_from_crdt(&st.snapshot(name.as_str()).map_err(error_from_crdt)?)
        })
        .await
    }

    async fn changes_since(
        &self,
        user: &UserId,
        name: &MailboxName,
        since: ModSeq,
    ) -> StoreResult<Changes> {
        self.read(user, |st| {
            match st
                .changes_since(name.as_str(), crdt::ModSeq(since.0))
                .map_err(error_from_crdt)?
            {
                crdt::Changes::Delta {
                    highest_modseq,
                    uid_next,
                    updated,
                    expunged,
                } => Ok(Changes::Delta {
                    highest_modseq: ModSeq(highest_modseq.0),
                    uid_next: uid_from_crdt(uid_next)?,
                    updated: updated
                        .iter()
                        .map(meta_from_crdt)
                        .collect::<StoreResult<_>>()?,
                    expunged: expunged
                        .into_iter()
                        .map(uid_from_crdt)
                        .collect::<StoreResult<_>>()?,
                }),
                crdt::Changes::TooOld => Ok(Changes::Snapshot(snapshot_from_crdt(
                    &st.snapshot(name.as_str()).map_err(error_from_crdt)?,
                )?)),
            }
        })
        .await
    }

    async fn watch(&self, user: &UserId, name: &MailboxName) -> StoreResult<ChangeFeed> {
        let first = self
            .read(user, |st| {
                Ok(st
                    .mailboxes()
                    .into_iter()
                    .find(|m| m.name == name.as_str())
                    .map(|m| m.highest_modseq.0))
            })
            .await?;
        let Some(first) = first else {
            return Err(StoreError::NoSuchMailbox(name.clone()));
        };
        let slot = self.slot(user)?;
        let rx = slot.changed.subscribe();
        let name = name.as_str().to_owned();
        let feed = futures::stream::unfold(
            (rx, slot, name, first),
            |(mut rx, slot, name, last)| async move {
                loop {
                    if rx.changed().await.is_err() {
                        return None;
                    }
                    let now = {
                        let entry = slot.state.lock().await;
                        entry
                            .crdt
                            .mailboxes()
                            .into_iter()
                            .find(|m| m.name == name)
                            .map(|m| m.highest_modseq.0)
                    };
                    if let Some(now) = now.filter(|n| *n != last) {
                        return Some((ModSeq(now), (rx, slot, name, now)));
                    }
                }
            },
        );
        Ok(Box::pin(feed))
    }

    async fn fetch(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.read_bodies(user, name, uids, BlobStore::get).await
    }

    async fn fetch_headers(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        self.read_bodies(user, name, uids, BlobStore::get_header)
            .await
    }

    async fn append(
        &self,
        user: &UserId,
        name: &MailboxName,
        messages: Vec<NewMessage>,
    ) -> StoreResult<AppendOutcome> {
        self.check()?;
        if messages.is_empty() {
            let validity = self
                .read(user, |st| {
                    Ok(st
                        .status(name.as_str())
                        .map_err(error_from_crdt)?
                        .uid_validity)
                })
                .await?;
            return Ok(AppendOutcome {
                uid_validity: validity_from_crdt(validity)?,
                uids: Vec::new(),
            });
        }
        for m in &messages {
            if u32::try_from(m.body.len()).is_err() {
                return Err(StoreError::TooBig {
                    limit: u64::from(u32::MAX),
                });
            }
        }
        // Bodies first, durable: an op must never name a body that a crash could lose.
        let blobs = self.blobs.clone();
        let bodies: Vec<Bytes> = messages.iter().map(|m| m.body.clone()).collect();
        let stored = tokio::task::spawn_blocking(move || {
            bodies
                .iter()
                .map(|b| blobs.put(b))
                .collect::<StoreResult<Vec<_>>>()
        })
        .await
        .map_err(blocking_err)??;
        let fresh: Vec<BodyRef> = stored.iter().filter(|(_, n)| *n).map(|(r, _)| *r).collect();
        let now = now();
        let data: Vec<crdt::MessageData> = messages
            .iter()
            .zip(&stored)
            .map(|(m, (body, _))| crdt::MessageData {
                body: *body,
                size: u32::try_from(m.body.len()).unwrap_or(u32::MAX),
                internal_date: m.internal_date.as_ref().map_or(now, date_to_crdt),
                flags: flags_to_crdt(&m.flags),
            })
            .collect();
        self.write(user, fresh, |st, ops| {
            let applied = st.append(name.as_str(), data).map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            Ok(AppendOutcome {
                uid_validity: validity_from_crdt(applied.outcome.uid_validity)?,
                uids: applied
                    .outcome
                    .uids
                    .into_iter()
                    .map(uid_from_crdt)
                    .collect::<StoreResult<_>>()?,
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
        self.write(user, Vec::new(), |st, ops| {
            let views = st
                .messages(name.as_str(), &crdt_uids(uids))
                .map_err(error_from_crdt)?;
            let mut modified = Vec::new();
            let mut targets = Vec::new();
            for v in &views {
                if unchanged_since.is_some_and(|since| v.modseq.0 > since.0) {
                    modified.push(uid_from_crdt(v.uid)?);
                    continue;
                }
                // A STORE that changes nothing makes no op and reports no update.
                let mut after = flags_from_crdt(&v.flags);
                if after.apply(change) {
                    targets.push(v.uid);
                }
            }
            if targets.is_empty() {
                return Ok(StoreOutcome {
                    updated: Vec::new(),
                    modified,
                });
            }
            let applied = st
                .store_flags(name.as_str(), &targets, &change_to_crdt(change), None)
                .map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            Ok(StoreOutcome {
                updated: applied
                    .outcome
                    .updated
                    .iter()
                    .map(meta_from_crdt)
                    .collect::<StoreResult<_>>()?,
                modified,
            })
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
        self.write(user, Vec::new(), |st, ops| {
            let applied = st
                .copy(from.as_str(), &crdt_uids(uids), to.as_str())
                .map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            copy_outcome(applied.outcome)
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
        self.write(user, Vec::new(), |st, ops| {
            let applied = st
                .move_messages(from.as_str(), &crdt_uids(uids), to.as_str())
                .map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            copy_outcome(applied.outcome)
        })
        .await
    }

    async fn expunge(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: Option<&[Uid]>,
    ) -> StoreResult<Vec<Uid>> {
        self.write(user, Vec::new(), |st, ops| {
            let asked = match uids {
                Some(u) => crdt_uids(u),
                None => all_uids(st, name)?,
            };
            let deleted: Vec<crdt::Uid> = st
                .messages(name.as_str(), &asked)
                .map_err(error_from_crdt)?
                .into_iter()
                .filter(|v| v.flags.contains(&crdt::Flag::Deleted))
                .map(|v| v.uid)
                .collect();
            if deleted.is_empty() {
                return Ok(Vec::new());
            }
            let applied = st
                .expunge(name.as_str(), &deleted)
                .map_err(error_from_crdt)?;
            ops.extend(applied.ops);
            applied.outcome.into_iter().map(uid_from_crdt).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_peer_snapshot_is_rehomed() {
        let cfg = crdt::Config {
            uid_stride: 4,
            members: vec![ReplicaId(1), ReplicaId(2)],
        };
        let mut theirs = UserState::new(ReplicaId(2), cfg).unwrap();
        theirs.create_mailbox("INBOX", None).unwrap();
        let bytes = theirs.encode_snapshot().unwrap();
        let mine = reshape_snapshot(&bytes, ReplicaId(1), None).unwrap();
        assert_eq!(mine.replica(), ReplicaId(1));
        assert_eq!(mine.config().members, vec![ReplicaId(1), ReplicaId(2)]);
        assert_eq!(mine.version(), theirs.version());
        assert_eq!(mine.mailboxes().len(), 1);
    }

    #[test]
    fn a_snapshot_takes_new_members_and_keeps_its_state() {
        let cfg = crdt::Config {
            uid_stride: 4,
            members: vec![ReplicaId(1), ReplicaId(2)],
        };
        let mut theirs = UserState::new(ReplicaId(2), cfg).unwrap();
        theirs.create_mailbox("INBOX", None).unwrap();
        theirs.create_mailbox("Work", None).unwrap();
        let bytes = theirs.encode_snapshot().unwrap();
        let members = vec![ReplicaId(1), ReplicaId(3)];
        let mine = reshape_snapshot(&bytes, ReplicaId(3), Some(members.clone())).unwrap();
        assert_eq!(mine.replica(), ReplicaId(3));
        assert_eq!(mine.config().members, members);
        assert_eq!(mine.config().uid_stride, 4);
        assert_eq!(mine.version(), theirs.version());
        assert_eq!(mine.mailboxes(), theirs.mailboxes());
        // A member id at or above the stride is refused, as at creation.
        assert!(reshape_snapshot(&bytes, ReplicaId(3), Some(vec![ReplicaId(9)])).is_err());
    }
}
