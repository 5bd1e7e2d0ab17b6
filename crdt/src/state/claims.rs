//! Dense UIDs: claims. A replica that takes a user's writes claims a window of UIDs
//! above each mailbox's H; once every other member has acknowledged the claim, it binds
//! 1, 2, 3, … inside the window. Everyone else binds in its own residue, above every
//! window it knows of. The argument is in `crdt/README.md` ("Dense UIDs: claims").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{UserState, fresh_uid};
use crate::error::CrdtError;
use crate::ids::{Dot, MailboxId, ReplicaId};
#[cfg(feature = "mutations")]
use crate::mutations::{Mutation, on as mutated};
use crate::op::{Op, OpKind, Stamp};

/// The window a store claims: UIDs a failover replica skips (once) to stay clear of it.
pub const DEFAULT_CLAIM_WINDOW: u32 = 4096;

/// The own claims kept for use at most.
const MAX_OWN_CLAIMS: usize = 8;

/// What this replica knows of one origin's claims: the newest one's stamp, and per
/// mailbox the highest UID any of them reserved. A join: it depends only on the set
/// of claim ops applied.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct OriginClaims {
    latest: Stamp,
    /// Per mailbox, the highest `base + window` of the origin's claims.
    reach: BTreeMap<MailboxId, u32>,
    /// The highest window of its claims: the reach in a mailbox no claim named (it did
    /// not exist for the claimer then, so its base was 0).
    default_reach: u32,
}

impl OriginClaims {
    fn reach(&self, mailbox: &MailboxId) -> u32 {
        self.reach
            .get(mailbox)
            .copied()
            .unwrap_or(0)
            .max(self.default_reach)
    }
}

/// One of this replica's own claims, still usable (no newer own claim is acknowledged).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct OwnClaim {
    dot: Dot,
    stamp: Stamp,
    window: u32,
    bases: BTreeMap<MailboxId, u32>,
}

impl OwnClaim {
    /// The highest UID the claim lets its maker bind densely in `mailbox`.
    fn limit(&self, mailbox: &MailboxId) -> u32 {
        self.bases
            .get(mailbox)
            .copied()
            .unwrap_or(0)
            .saturating_add(self.window)
    }
}

impl UserState {
    /// Claims dense UIDs for this replica's writes when it needs to: it holds no claim
    /// yet, a newer claim of another replica superseded its own, or a mailbox's H came
    /// within half a window of its claim's end. Nothing while its newest claim waits
    /// for acknowledgement. The store calls this when a replica starts taking a user's
    /// writes and after each write; persist and send the returned op like any other.
    pub fn claim_uids(&mut self, window: u32) -> Result<Vec<Op>, CrdtError> {
        self.check_own_history()?;
        self.prune_own_claims();
        let window = window.max(2);
        if let Some(newest) = self.own_claims.last() {
            let superseded = self.superseded(newest.stamp);
            if !superseded {
                if !self.acknowledged(newest.dot) {
                    return Ok(Vec::new());
                }
                let room = self.mailboxes.iter().all(|(id, mb)| {
                    !mb.is_live()
                        || u64::from(mb.h) + u64::from(window / 2) <= u64::from(newest.limit(id))
                });
                if room {
                    return Ok(Vec::new());
                }
            }
        }
        let bases = self
            .mailboxes
            .iter()
            .filter(|(_, mb)| mb.is_live() && mb.h > 0)
            .map(|(id, mb)| (id.clone(), mb.h))
            .collect();
        Ok(vec![self.issue(OpKind::Claim { window, bases })])
    }

    /// Whether this replica now binds densely (for tests and metrics): it holds an
    /// acknowledged claim no other replica's claim superseded.
    pub fn holds_uid_claim(&self) -> bool {
        self.usable_claim().is_some()
    }

    /// Applies a claim op (own or remote).
    pub(super) fn apply_claim(&mut self, op: &Op, window: u32, bases: &[(MailboxId, u32)]) {
        let origin = op.id.replica;
        let stamp = op.stamp();
        let known = self.claims.entry(origin).or_default();
        known.latest = known.latest.max(stamp);
        known.default_reach = known.default_reach.max(window);
        for (id, base) in bases {
            let reach = base.saturating_add(window);
            let r = known.reach.entry(id.clone()).or_insert(0);
            *r = (*r).max(reach);
        }
        if origin == self.replica {
            self.own_claims.push(OwnClaim {
                dot: op.id,
                stamp,
                window,
                bases: bases.iter().cloned().collect(),
            });
            self.own_claims.sort_by_key(|c| c.stamp);
            // Unacknowledged claims pile up only while claims leapfrog and a member
            // stays silent; the oldest can go (a claim not kept is only not used).
            if self.own_claims.len() > MAX_OWN_CLAIMS {
                self.own_claims.remove(0);
            }
        }
    }

    /// The UID this replica binds next in `mailbox` above `above`: `above + 1` under a
    /// usable claim with room, else the next of its residue above every other replica's
    /// claimed window. `None` when the mailbox has no such UID left.
    pub(super) fn next_uid(&self, mailbox: &MailboxId, above: u32) -> Option<u32> {
        if let Some(claim) = self.usable_claim() {
            let next = above.checked_add(1).filter(|u| *u < u32::MAX);
            if let Some(u) = next
                && u <= claim.limit(mailbox)
            {
                return Some(u);
            }
        }
        let mut floor = above;
        for (origin, claims) in &self.claims {
            #[cfg(feature = "mutations")]
            if mutated(Mutation::ClaimsIgnored) {
                break;
            }
            if *origin != self.replica {
                floor = floor.max(claims.reach(mailbox));
            }
        }
        fresh_uid(floor, self.replica.0, self.config.uid_stride)
    }

    /// The newest own claim that every other member acknowledged, unless a claim of
    /// another replica is newer (then that one's maker may bind densely, not this one).
    fn usable_claim(&self) -> Option<&OwnClaim> {
        let claim = self.own_claims.iter().rev().find(|c| {
            #[cfg(feature = "mutations")]
            if mutated(Mutation::UnacknowledgedClaim) {
                return true;
            }
            self.acknowledged(c.dot)
        })?;
        (!self.superseded(claim.stamp)).then_some(claim)
    }

    fn superseded(&self, stamp: Stamp) -> bool {
        self.claims
            .iter()
            .any(|(origin, c)| *origin != self.replica && c.latest > stamp)
    }

    /// Every other member reported holding `dot`, in a report this replica can use:
    /// it holds every op of the reporter that the report includes, so it knows every
    /// UID the reporter bound before it knew of the claim.
    fn acknowledged(&self, dot: Dot) -> bool {
        self.config
            .members
            .iter()
            .filter(|m| **m != self.replica)
            .all(|m| self.reported_holding(*m, dot))
    }

    fn reported_holding(&self, member: ReplicaId, dot: Dot) -> bool {
        self.progress.get(&member).is_some_and(|p| {
            p.latest.contains(dot) && self.clock.get(member) >= p.latest.get(member)
        })
    }

    /// Drops the own claims older than the newest acknowledged one: they can no longer
    /// be the usable one.
    pub(super) fn prune_own_claims(&mut self) {
        if let Some(pos) = self
            .own_claims
            .iter()
            .rposition(|c| self.acknowledged(c.dot))
        {
            self.own_claims.drain(..pos);
        }
    }
}
