//! The store's side of replication, called by the links: applying a peer's batch
//! (one log record per user, then the peer's cursor) or a peer's snapshot of a user,
//! the bodies still missing here, and what a sender reads: durable versions,
//! snapshot bytes, the users a peer holds, the cursors and acknowledgements.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pluto_crdt::{BodyRef, Op, OpKind, ReplicaId, VersionVector};

use super::recovery::encode_snapshot_file;
use super::{PeerInfo, ReplicatedStore, UserSlot, bytes_of, reshape_snapshot};
use crate::concurrency::{blocking_err, lock};
use crate::error::StoreResult;
use crate::fsutil::write_atomic;
use crate::replicated::convert::*;
use crate::replicated::oplog::{Entry, OpLog};
use crate::types::*;

impl ReplicatedStore {
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
            // The peer's progress first: it names the ops of this node's own id that
            // the peer holds, which the CRDT must hold before it issues anything (a
            // node that lost its data must not reuse their dots).
            let mut all = match progress_by.get(&user) {
                Some(v) => entry.crdt.report_progress(peer.replica, v),
                None => Vec::new(),
            };
            let fresh: Vec<Op> = ops
                .iter()
                .filter(|op| !entry.crdt.version().contains(op.id))
                .cloned()
                .collect();
            if !fresh.is_empty() {
                // All of them: the CRDT refuses one that reuses the dot of an op held
                // here (and ignores the ones it holds).
                match entry.crdt.apply_remote(ops) {
                    Ok(follow) => {
                        let mut step = fresh;
                        step.extend(all);
                        step.extend(follow);
                        all = step;
                    }
                    Err(e) => {
                        // Nothing of the batch was applied; the peer is wrong, not us.
                        tracing::warn!(peer = %peer.name, %user, error = %e, "refusing a peer's ops");
                    }
                }
            }
            if !all.is_empty() {
                self.count_renumberings(&all);
                // Relayed bodies are not sent along again: a peer that lacks one
                // asks for it.
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
        peer: &str,
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
        if self.users_await_peers() {
            state.await_peers();
        }
        // The snapshot is what the sender holds: evidence for the CRDT's own-history
        // check (and a recovering node's wait for its peers), not progress for
        // compaction (the sender may be recovering itself).
        let sender = self.membership().peer(peer).map(|p| p.replica);
        let mut follow_ups = match sender {
            Some(r) => state.hear_peer(r, &state.version().clone()),
            None => Vec::new(),
        };
        if !waiting.is_empty() {
            follow_ups.extend(state.apply_remote(waiting).map_err(error_from_crdt)?);
        }
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
                self.count_renumberings(&ops);
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
        let refs = entry.crdt.visible_bodies();
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
    /// must not name ops a crash could take back) and the replica has its own history
    /// (a replica recovering it may miss ops still to come from elsewhere: its version
    /// must not count for the peers' compaction).
    pub(crate) async fn durable_version(&self, user: &UserId) -> Option<VersionVector> {
        let slot = lock(&self.users).get(user).cloned()?;
        let entry = slot.state.lock().await;
        (entry.applied_lsn <= self.log.durable().lsn && entry.crdt.check_own_history().is_ok())
            .then(|| entry.crdt.version().clone())
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
}
