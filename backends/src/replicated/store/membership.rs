//! Who this node replicates with: [`PeerInfo`] and [`Membership`] (the peers and
//! `replicas_of`, swapped as one value), the data moves a membership change leaves
//! (queued per peer, saved to survive a restart), reachability (the CRDT's leader
//! rule) and re-homing every user's members after a change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pluto_crdt::ReplicaId;
use tokio::sync::watch;

use super::{MOVES_FILE, ReplicatedStore, bytes_of, reshape_snapshot};
use crate::concurrency::{blocking_err, lock};
use crate::error::{StoreError, StoreResult};
use crate::fsutil::write_atomic;
use crate::replicated::config::{PeerConfig, ReplicasOf};
use crate::types::*;

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
pub(super) struct MembershipState {
    pub(super) current: Arc<Membership>,
    /// Per peer: users it newly holds and must get whole (a snapshot), because its
    /// cursor may already be past their older records, which were not sent to it then.
    pub(super) moves: BTreeMap<String, BTreeSet<UserId>>,
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

impl ReplicatedStore {
    /// The replica ids of a user's replicas, this node included.
    pub(super) fn members(&self, user: &UserId) -> Vec<ReplicaId> {
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
}

pub(super) fn members(
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
