//! The UID rules: the leader binds hidden messages, the others issue floors; who leads.

use std::collections::BTreeMap;

use super::{Batch, UserState, uid_of};
use crate::ids::{MessageId, ReplicaId};
#[cfg(feature = "mutations")]
use crate::mutations::{Mutation, on as mutated};
use crate::op::{Op, OpKind};

impl UserState {
    /// The leader is the lowest replica id this replica believes reachable (itself
    /// included). Only the leader gives messages new UIDs; the others hide them.
    pub fn is_leader(&self) -> bool {
        self.reachable
            .as_ref()
            .is_some_and(|peers| peers.iter().all(|r| *r > self.replica))
    }

    /// Tells the state which peers it can reach. A replica that becomes leader gives
    /// every hidden message a new UID at once: persist and send the returned ops.
    pub fn set_reachable(&mut self, peers: impl IntoIterator<Item = ReplicaId>) -> Vec<Op> {
        let was_leader = self.is_leader();
        self.reachable = Some(peers.into_iter().filter(|r| *r != self.replica).collect());
        if was_leader || !self.is_leader() {
            return self.owed_binds();
        }
        #[cfg(feature = "mutations")]
        if mutated(Mutation::LeaderSkipsHidden) {
            return Vec::new();
        }
        self.bind_hidden()
    }

    /// The leader's duty, run in full: a new UID for every hidden live message.
    pub fn bind_hidden(&mut self) -> Vec<Op> {
        if !self.is_leader() {
            return Vec::new();
        }
        if self.check_own_history().is_err() {
            self.owed = true;
            return Vec::new();
        }
        let mut batch = Batch::default();
        for (id, mb) in &self.mailboxes {
            let hidden: BTreeMap<MessageId, Option<u32>> = mb
                .messages
                .iter()
                .filter(|(_, m)| m.removed.is_none() && m.shown.is_none())
                .map(|(msg, _)| (*msg, None))
                .collect();
            if !hidden.is_empty() {
                batch.mailboxes.insert(id.clone(), (mb.h, hidden));
            }
        }
        self.settle(batch)
    }

    /// After a batch, with T = H before it: a live message needs a new UID if it is
    /// hidden, or if it would appear or move at a UID ≤ T (a client may have seen
    /// higher UIDs already). The leader binds `fresh(max(H, floor))`; any other replica
    /// hides the message with `floor(m, T)` until the leader's bind arrives.
    pub(super) fn settle(&mut self, batch: Batch) -> Vec<Op> {
        if self.check_own_history().is_err() {
            // Nothing may be issued now: the leader binds what is hidden once it can.
            // A floor not issued costs only this replica's view, which its caller does
            // not serve meanwhile.
            self.owed |= !batch.mailboxes.is_empty();
            return Vec::new();
        }
        let leader = self.is_leader();
        #[cfg(feature = "mutations")]
        let leader = leader || mutated(Mutation::NaiveRebind);
        let mut ops = Vec::new();
        for (id, (t, changed)) in batch.mailboxes {
            let Some(mb) = self.mailboxes.get(&id) else {
                continue;
            };
            if !mb.is_live() {
                continue;
            }
            let mut h = mb.h;
            let mut binds = Vec::new();
            let mut floors = Vec::new();
            for (msg, before) in changed {
                let Some(m) = mb.messages.get(&msg) else {
                    continue;
                };
                if m.removed.is_some() {
                    continue;
                }
                let needs = match m.shown {
                    None => true,
                    Some(u) => m.shown != before && u <= t,
                };
                #[cfg(feature = "mutations")]
                let needs = needs
                    || (mutated(Mutation::ThresholdAfterBatch)
                        && m.shown.is_some_and(|u| m.shown != before && u <= mb.h));
                if !needs {
                    continue;
                }
                if leader {
                    if let Some(u) = self.next_uid(&id, h.max(m.floor)) {
                        h = u;
                        binds.push((msg, uid_of(u)));
                        continue;
                    }
                    // The UID space is used up: the message is hidden, as by a
                    // non-leader, and stays so (shown at or below T it would break
                    // invariant 3).
                }
                if m.shown.is_some() {
                    floors.push((msg, uid_of(t)));
                }
            }
            if !binds.is_empty() {
                ops.push(self.issue(OpKind::Bind {
                    mailbox: id.clone(),
                    bindings: binds,
                }));
            }
            if !floors.is_empty() {
                ops.push(self.issue(OpKind::Floor {
                    mailbox: id,
                    floors,
                }));
            }
        }
        ops
    }
}
