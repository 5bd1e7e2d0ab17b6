//! Peers' progress, causal stability and compaction; the snapshot format.

use super::{SNAPSHOT_VERSION, UserState};
use crate::error::CrdtError;
use crate::ids::{ReplicaId, VersionVector};
#[cfg(feature = "mutations")]
use crate::mutations::{Mutation, on as mutated};
use crate::op::Op;
use crate::view::CompactionReport;

impl UserState {
    /// Records what `replica` has applied (its [`version`](Self::version)), as the
    /// replication layer learns it. A report naming ops of this replica's own id that it
    /// does not hold stops it from issuing until it holds them
    /// ([`check_own_history`](Self::check_own_history)). Returns the binds owed once
    /// the last awaited report arrives ([`await_peers`](Self::await_peers)): persist and
    /// send them.
    #[must_use = "the binds owed once this replica may issue again: persist and send them"]
    pub fn report_progress(&mut self, replica: ReplicaId, applied: &VersionVector) -> Vec<Op> {
        let progress = self.progress.entry(replica).or_default();
        if progress.latest.le(applied) {
            progress.latest.join(applied);
        } else {
            // A replica's version never shrinks (a restart brings back everything it
            // reported, from its snapshot and log): the reporter lost its history and
            // restarted. What it reported before is no longer true.
            progress.latest = applied.clone();
            progress.usable = None;
        }
        self.hear_peer(replica, applied)
    }

    /// Records what `replica` holds, as evidence only: it counts for
    /// [`await_peers`](Self::await_peers) and for the ops of this replica's own id that
    /// exist, never for compaction. For a peer that lacks its own history itself
    /// (its version may miss ops still to come from elsewhere, so it must not count
    /// for causal stability) — or any peer, when only this is known. Returns the binds
    /// owed once the last awaited peer is heard.
    #[must_use = "the binds owed once this replica may issue again: persist and send them"]
    pub fn hear_peer(&mut self, replica: ReplicaId, holds: &VersionVector) -> Vec<Op> {
        let shrank = self.heard.get(&replica).is_some_and(|v| !v.le(holds));
        let before = self.heard.insert(replica, holds.clone());
        self.note_shrink(replica, before.filter(|_| shrank));
        if let Some(reports) = self.recovery.as_mut()
            && (self.awaiting.remove(&replica) || (shrank && reports.contains_key(&replica)))
        {
            // A peer that now holds less than before lost its history too.
            reports.insert(replica, holds.clone());
        }
        self.owed_binds()
    }

    /// Keeps what a shrunk report said until every other member has been heard since
    /// (see `UserState::shrunk`).
    fn note_shrink(&mut self, replica: ReplicaId, lost: Option<VersionVector>) {
        if let Some(before) = lost {
            let (evidence, since) = self.shrunk.get_or_insert_with(Default::default);
            evidence.join(&before);
            since.clear();
        }
        let Some((_, since)) = self.shrunk.as_mut() else {
            return;
        };
        since.insert(replica);
        let me = self.replica;
        let everyone = self
            .config
            .members
            .iter()
            .all(|m| *m == me || since.contains(m));
        if everyone {
            self.shrunk = None;
        }
    }

    /// The operations every member has applied, if every member has reported. `None`
    /// too while this replica lacks its own history ([`check_own_history`](Self::check_own_history)):
    /// its own lost ops are still to come, concurrent with what it holds, so nothing it
    /// holds is stable yet.
    pub fn stable_version(&mut self) -> Option<VersionVector> {
        if self.check_own_history().is_err() {
            return None;
        }
        let mut stable = self.clock.clone();
        for member in self.config.members.clone() {
            if member == self.replica {
                continue;
            }
            let progress = self.progress.get_mut(&member)?;
            if self.clock.get(member) >= progress.latest.get(member) {
                progress.usable = Some(progress.latest.clone());
            }
            #[cfg(feature = "mutations")]
            if mutated(Mutation::EarlyTombstoneDrop) {
                progress.usable = Some(progress.latest.clone());
            }
            stable = stable.meet(progress.usable.as_ref()?);
        }
        Some(stable)
    }

    /// Drops what every replica has seen: tombstones, deleted mailboxes, flag dots.
    pub fn compact(&mut self) -> CompactionReport {
        let Some(stable) = self.stable_version() else {
            return CompactionReport::default();
        };
        let mut report = CompactionReport::default();
        for mb in self.mailboxes.values_mut() {
            let (tombstones, dots) = mb.compact(&stable);
            report.tombstones_dropped += tombstones;
            report.dots_dropped += dots;
        }
        let before = self.mailboxes.len();
        self.mailboxes.retain(|_, mb| !mb.is_collectable(&stable));
        report.mailboxes_dropped = before - self.mailboxes.len();
        for dots in self.subscriptions.values_mut() {
            // Every remove still to come has seen stable subscribes: one stands for all.
            if dots.len() > 1 && dots.iter().all(|d| stable.contains(*d)) {
                let keep = dots.iter().copied().max();
                dots.retain(|d| Some(*d) == keep);
            }
        }
        report.stable = Some(stable);
        report
    }

    // ---------------------------------------------------------------- snapshots

    /// The remote ops waiting here for their causal dependencies (copies). A replica
    /// that installs a peer's snapshot applies these again on top of it.
    pub fn pending_ops(&self) -> Vec<Op> {
        self.pending.values().cloned().collect()
    }

    /// The whole state in the versioned snapshot format (postcard).
    pub fn encode_snapshot(&self) -> Result<Vec<u8>, CrdtError> {
        postcard::to_allocvec(&(SNAPSHOT_VERSION, self))
            .map_err(|e| CrdtError::Snapshot(e.to_string()))
    }

    /// Reads a snapshot (this version, or version 1 from before dense UIDs, read as a
    /// state without claims). Peer reachability is not in it: call
    /// [`set_reachable`](Self::set_reachable) after.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Self, CrdtError> {
        let (version, rest): (u32, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| CrdtError::Snapshot(e.to_string()))?;
        let upgraded;
        let rest = match version {
            SNAPSHOT_VERSION => rest,
            // Version 1 had no UID claims: the same fields, then two empty collections.
            1 => {
                upgraded = [rest, &[0, 0]].concat();
                &upgraded[..]
            }
            _ => return Err(CrdtError::SnapshotVersion(version)),
        };
        let mut state: UserState =
            postcard::from_bytes(rest).map_err(|e| CrdtError::Snapshot(e.to_string()))?;
        for mb in state.mailboxes.values_mut() {
            mb.rebuild_indexes();
        }
        Ok(state)
    }
}
