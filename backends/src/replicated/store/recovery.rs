//! Opening a node's data directory and keeping restarts short: the snapshot file
//! format, [`ReplicatedStore::open`] (lock the directory, load snapshots, replay the
//! log after each, take the configured members), checkpoints (snapshots, the saved
//! cursors, log truncation) and close.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex as StdMutex};

use pluto_crdt::{self as crdt, Op, ReplicaId, UserState};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::membership::{Membership, MembershipState, PeerInfo, members};
use super::{
    MAX_LOG_PADDING, MOVES_FILE, RECOVERED_FILE, ReplicatedStore, UserEntry, UserSlot, bytes_of,
};
use crate::concurrency::{blocking_err, lock};
use crate::error::{StoreError, StoreResult};
use crate::fsutil::write_atomic;
use crate::replicated::blobs::{BlobStore, Swept};
use crate::replicated::config::NodeConfig;
use crate::replicated::convert::*;
use crate::replicated::oplog::{Entry, OpLog};
use crate::types::*;

const LOCK_FILE: &str = "node.lock";
const META_FILE: &str = "checkpoint.meta";
const SNAP_MAGIC: &[u8; 8] = b"PLUTOSN1";

/// What a checkpoint keeps besides snapshots: cursors that must outlive the log.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    /// Per peer: its log has been received up to this LSN.
    inbound: BTreeMap<String, u64>,
    /// Per peer: it has acknowledged this node's log up to this LSN.
    acked: BTreeMap<String, u64>,
}

pub(super) fn encode_snapshot_file(lsn: u64, state: &[u8]) -> Vec<u8> {
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
    /// Bodies no state needs any more, removed.
    pub bodies_removed: u64,
    pub body_bytes_removed: u64,
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
        // Without the marker the data directory may be a lost one's replacement: the
        // peers may hold ops of this replica id that it does not (see `recovering`).
        // A node without peers has nobody to recover from.
        let marked = dir.join(RECOVERED_FILE).exists();
        let recovering = !peers.is_empty() && !marked && !config.trust_empty_data_dir;
        if !marked && !recovering {
            write_atomic(&dir.join(RECOVERED_FILE), b"recovered\n")?;
        }
        if recovering {
            tracing::warn!(
                data_dir = %dir.display(),
                "no {RECOVERED_FILE}: this node may have lost its data; it takes no write \
                 until every peer has been heard"
            );
        }

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
            if recovering {
                entry.crdt.await_peers();
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
            uid_renumberings: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            recovering: watch::channel(recovering).0,
            users_await_peers: AtomicBool::new(recovering),
            peer_holds: StdMutex::new(BTreeMap::new()),
            refused: StdMutex::new(None),
            checkpoint_lock: Mutex::new(()),
            since_checkpoint: AtomicU64::new(0),
            checkpoint_every: config.checkpoint_every.max(1),
            body_grace: config.body_grace,
            max_lag_records: config.max_lag_records,
            recovery_wait: config.link_timeout * 4,
            me: me.clone(),
            _lock: lock_file,
        });
        Ok(store)
    }

    // ------------------------------------------------------------ recovery

    /// While recovering: `peer` holds this node's log up to `lsn` (its welcome said
    /// so). A log that ends below is a lost one's replacement; it is padded past `lsn`
    /// before this node makes any op, so that the peer's cursor skips nothing new.
    pub(crate) fn peer_holds_log(&self, peer: &str, lsn: u64) {
        if !self.recovering() {
            return;
        }
        let mut holds = lock(&self.peer_holds);
        let at = holds.entry(peer.to_owned()).or_insert(0);
        *at = (*at).max(lsn);
    }

    /// Ends the recovery, once every peer has been heard (its welcome seen, its whole
    /// backlog delivered here, this node's own ops included): the log is padded up to
    /// what any peer holds of it, every user's CRDT counts each member as heard (those
    /// that sent nothing of a user hold nothing of it) and logs the binds it held
    /// back, and [`RECOVERED_FILE`] is written. A peer holding more than
    /// [`MAX_LOG_PADDING`] records beyond this log refuses the node service for good
    /// (the operator's way out: a new node name and replica id).
    pub(crate) async fn confirm_recovered(&self) -> StoreResult<()> {
        if !self.recovering() {
            return Ok(());
        }
        self.check()?;
        let held = lock(&self.peer_holds).values().copied().max().unwrap_or(0);
        let next = self.log.next_lsn();
        if held >= next {
            let gap = held + 1 - next;
            if gap > MAX_LOG_PADDING {
                let why = format!(
                    "this node's log ends at LSN {} but a peer holds it up to {held}: its data \
                     directory was lost long after it began; it refuses service (give the node \
                     a new name and replica id)",
                    next - 1
                );
                tracing::error!("{why}");
                *lock(&self.refused) = Some(why.clone());
                return Err(StoreError::Unavailable(why));
            }
            tracing::warn!(
                from = next,
                to = held,
                "this node's log restarted below what its peers hold of it: padding it"
            );
            let mut last = None;
            for _ in 0..gap {
                let (_, rx) = self
                    .log
                    .submit(&Entry::Received {
                        peer: self.name.clone(),
                        upto: 0,
                    })
                    .inspect_err(|e| self.poison(e))?;
                last = Some(rx);
            }
            if let Some(rx) = last {
                OpLog::wait(rx).await.inspect_err(|e| self.poison(e))?;
            }
        }
        // Users made from here on need not wait; those made before are all listed.
        let slots: Vec<_> = {
            let users = lock(&self.users);
            self.users_await_peers
                .store(false, std::sync::atomic::Ordering::Release);
            users.iter().map(|(u, s)| (u.clone(), s.clone())).collect()
        };
        for (user, slot) in slots {
            let mut entry = slot.state.lock().await;
            let mut ops = Vec::new();
            for member in entry.crdt.config().members.clone() {
                if member != self.replica {
                    ops.extend(
                        entry
                            .crdt
                            .report_progress(member, &crdt::VersionVector::new()),
                    );
                }
            }
            self.log_own_step(&user, &slot, entry, ops).await?;
        }
        let path = self.data_dir.join(RECOVERED_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&path, b"recovered\n"))
            .await
            .map_err(blocking_err)??;
        self.recovering.send_replace(false);
        tracing::info!("every peer has been heard: this node has its history and takes writes");
        Ok(())
    }

    // ------------------------------------------------------------ checkpoints

    pub(super) fn snapshot_path(&self, user: &UserId) -> PathBuf {
        self.data_dir
            .join("snapshots")
            .join(format!("{}.snap", user.as_str()))
    }

    /// Compacts every user and writes a snapshot of each that changed since its last
    /// one (or whose compaction dropped something), saves the cursors, truncates the
    /// log behind both the snapshots and the slowest peer, and removes the bodies no
    /// state needs any more.
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
            // Compaction may drop what became stable since (peers' progress came in),
            // also for a user whose state has not changed otherwise.
            let compacted = entry.crdt.compact();
            let dropped =
                compacted.tombstones_dropped + compacted.mailboxes_dropped + compacted.dots_dropped;
            if entry.applied_lsn <= entry.snapshot_lsn && dropped == 0 {
                continue;
            }
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
        let swept = self.sweep_bodies().await?;
        report.bodies_removed = swept.bodies;
        report.body_bytes_removed = swept.bytes;
        Ok(report)
    }

    /// Removes the bodies no user's state references any more (compaction has just
    /// forgotten the removals every replica applied), except those stored within the
    /// grace period: see [`BlobStore`](crate::replicated::blobs::BlobStore).
    async fn sweep_bodies(&self) -> StoreResult<Swept> {
        // The time first: a body stored after it is kept whatever the scan finds.
        let stored_before = std::time::SystemTime::now()
            .checked_sub(self.body_grace)
            .unwrap_or(std::time::UNIX_EPOCH);
        let mut keep = BTreeSet::new();
        for (_, slot) in self.slots() {
            keep.extend(slot.state.lock().await.crdt.referenced_bodies());
        }
        let blobs = self.blobs.clone();
        let swept = tokio::task::spawn_blocking(move || blobs.sweep(&keep, stored_before))
            .await
            .map_err(blocking_err)??;
        if swept.bodies > 0 {
            tracing::info!(
                bodies = swept.bodies,
                bytes = swept.bytes,
                "removed bodies no replica needs"
            );
        }
        Ok(swept)
    }

    /// Stops the log writer after a last checkpoint.
    pub async fn close(&self) {
        if let Err(e) = self.checkpoint().await {
            tracing::warn!(error = %e, "final checkpoint failed");
        }
        self.log.close();
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
        theirs.create_mailbox(&MailboxName::inbox(), None).unwrap();
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
        theirs.create_mailbox(&MailboxName::inbox(), None).unwrap();
        theirs
            .create_mailbox(&MailboxName::new("Work").unwrap(), None)
            .unwrap();
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
