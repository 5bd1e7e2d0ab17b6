//! A peer's operations: the causal-delivery buffer, applying each op, and what a batch changed
//! for the UID rules.

use std::collections::{BTreeMap, BTreeSet};

use super::{Batch, DEFAULT_UID_VALIDITY, UserState, add_messages};
use crate::error::CrdtError;
use crate::ids::{Dot, MailboxId, ReplicaId};
use crate::mailbox::Mailbox;
#[cfg(feature = "mutations")]
use crate::mutations::{Mutation, on as mutated};
use crate::op::{Op, OpKind};

impl UserState {
    /// Applies a batch of a peer's operations (any order, duplicates allowed). Ops whose
    /// dependencies are missing wait in the buffer. Returns the binds or floors this
    /// replica now owes (already applied here): persist them with the batch, in one
    /// step, before showing clients anything, and send them to the peers.
    pub fn apply_remote(
        &mut self,
        ops: impl IntoIterator<Item = Op>,
    ) -> Result<Vec<Op>, CrdtError> {
        let ops: Vec<Op> = ops.into_iter().collect();
        for op in &ops {
            self.validate(op)?;
            self.check_not_reused(op)?;
        }
        let mut batch = Batch::default();
        for op in ops {
            if self.clock.contains(op.id) || self.pending.contains_key(&op.id) {
                continue;
            }
            if self.is_ready(&op) {
                self.apply_ready(&op, &mut batch);
                if !self.pending.is_empty() {
                    self.deliver_pending(&mut batch);
                }
            } else {
                self.pending.insert(op.id, op);
            }
        }
        let mut follow = self.settle(batch);
        follow.extend(self.owed_binds());
        Ok(follow)
    }

    /// An op is ignored when its dot is held already; this refuses one that cannot be
    /// the op held under that dot: a different op waiting in the buffer, or one whose
    /// context this replica lacks although it applied the op of that dot (whose
    /// context it held then). Redelivery of the same op passes.
    pub(super) fn check_not_reused(&self, op: &Op) -> Result<(), CrdtError> {
        if let Some(held) = self.pending.get(&op.id)
            && held != op
        {
            return Err(CrdtError::DotReused(op.id));
        }
        if self.clock.contains(op.id) && !op.deps.le(&self.clock) {
            return Err(CrdtError::DotReused(op.id));
        }
        Ok(())
    }

    /// Re-applies this replica's own log after a restart (on top of its snapshot): each
    /// step exactly as it was written, local ops and remote batches with their
    /// follow-ups. Issues nothing: the follow-ups owed then are in the log. Call
    /// [`set_reachable`](Self::set_reachable) when done.
    pub fn replay(&mut self, ops: impl IntoIterator<Item = Op>) -> Result<(), CrdtError> {
        let ops: Vec<Op> = ops.into_iter().collect();
        for op in &ops {
            self.validate(op)?;
        }
        let mut batch = Batch::default();
        for op in ops {
            if !self.clock.contains(op.id) && !self.pending.contains_key(&op.id) {
                self.pending.insert(op.id, op);
            }
        }
        self.deliver_pending(&mut batch);
        #[cfg(feature = "mutations")]
        if mutated(Mutation::ReplayRederives) {
            // As the leader it may have been before the restart.
            let belief = self.reachable.replace(BTreeSet::new());
            let _ = self.settle(batch);
            self.reachable = belief;
        }
        Ok(())
    }

    /// Rejects what no correct replica sends: this keeps the "one binder per UID"
    /// argument true whatever a peer sends.
    pub(super) fn validate(&self, op: &Op) -> Result<(), CrdtError> {
        let k = self.config.uid_stride;
        let origin = op.id.replica;
        let bad = |reason| Err(CrdtError::InvalidOp { op: op.id, reason });
        if origin.0 >= k {
            return bad("origin replica id is not below the UID stride");
        }
        if op.id.seq == 0 || op.deps.get(origin) != op.id.seq - 1 {
            return bad("sequence number does not follow the origin's own dependencies");
        }
        let own = |u: u32| u % u32::from(k) == u32::from(origin.0);
        // u32::MAX is never a UID: UIDNEXT must stay above every UID and fit in 32 bits.
        // A UID outside the origin's residue is one it bound under its claim (dense
        // UIDs): whether the claim allowed it depends on acknowledgements only the
        // origin knows, so receipt cannot check it.
        let uid_ok = |u: u32| u != u32::MAX;
        let uids_ok = match &op.kind {
            OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => {
                messages.iter().all(|m| uid_ok(m.uid.get()))
            }
            OpKind::Bind { bindings, .. } => bindings.iter().all(|(_, u)| uid_ok(u.get())),
            // A first incarnation may carry the shared default UIDVALIDITY: it has no
            // earlier incarnation to stay above, and concurrent first creates of a name
            // are one incarnation anyway.
            OpKind::Create {
                mailbox,
                uid_validity,
                ..
            } => {
                own(uid_validity.get())
                    || (mailbox.incarnation == 0 && uid_validity.get() == DEFAULT_UID_VALIDITY)
            }
            _ => true,
        };
        #[cfg(feature = "mutations")]
        let uids_ok = uids_ok || mutated(Mutation::NoResidue);
        if !uids_ok {
            return bad(
                "proposes a UIDVALIDITY of another replica's residue, or binds UID 4294967295",
            );
        }
        Ok(())
    }

    pub(super) fn is_ready(&self, op: &Op) -> bool {
        self.clock.get(op.id.replica).checked_add(1) == Some(op.id.seq) && self.has_context(op)
    }

    pub(super) fn has_context(&self, op: &Op) -> bool {
        #[cfg(feature = "mutations")]
        if mutated(Mutation::NoCausalBuffer) {
            return true;
        }
        op.deps.le(&self.clock)
    }

    pub(super) fn deliver_pending(&mut self, batch: &mut Batch) {
        loop {
            let mut progressed = false;
            let mut origin = self.pending.keys().next().map(|d| d.replica);
            while let Some(r) = origin {
                let next = Dot::new(r, self.clock.get(r).saturating_add(1));
                if let Some(op) = self.pending.get(&next).filter(|op| self.has_context(op)) {
                    let op = op.clone();
                    self.pending.remove(&next);
                    self.apply_ready(&op, batch);
                    progressed = true;
                }
                origin = r.0.checked_add(1).and_then(|n| {
                    self.pending
                        .range(Dot::new(ReplicaId(n), 0)..)
                        .next()
                        .map(|(d, _)| d.replica)
                });
            }
            if !progressed {
                break;
            }
        }
    }

    /// Applies an op whose dependencies are all here.
    pub(super) fn apply_ready(&mut self, op: &Op, batch: &mut Batch) {
        for id in op.kind.mailboxes() {
            if let Some(mb) = self.mailboxes.get(id) {
                if !batch.local && !batch.mailboxes.contains_key(id) {
                    #[cfg(feature = "mutations")]
                    if mutated(Mutation::VolatileThreshold) {
                        let shown = mb.visible_messages().map(|(u, _, _)| u).max();
                        batch
                            .mailboxes
                            .insert(id.clone(), (shown.unwrap_or(0), BTreeMap::new()));
                        continue;
                    }
                    batch.mailboxes.insert(id.clone(), (mb.h, BTreeMap::new()));
                }
            }
        }
        let dot = op.id;
        let mut names_may_change = false;
        match &op.kind {
            OpKind::Create {
                mailbox,
                special_use,
                uid_validity,
            } => {
                let seen = self.incarnations.entry(mailbox.name.clone()).or_insert(0);
                *seen = (*seen).max(mailbox.incarnation);
                self.max_uid_validity = self.max_uid_validity.max(uid_validity.get());
                let mb = self
                    .mailboxes
                    .entry(mailbox.clone())
                    .or_insert_with(|| Mailbox::new(mailbox.clone()));
                mb.begin(&op.deps);
                mb.apply_create(op.stamp(), *special_use, uid_validity.get(), dot);
                if !batch.local {
                    batch
                        .mailboxes
                        .entry(mailbox.clone())
                        .or_insert((0, BTreeMap::new()));
                }
                names_may_change = true;
            }
            OpKind::Delete { mailboxes } => {
                for mb in self.targets(mailboxes.iter()) {
                    mb.begin(&op.deps);
                    mb.delete(dot, &op.deps);
                }
                names_may_change = true;
            }
            OpKind::Rename { renames } => {
                let stamp = op.stamp();
                for (id, name) in renames {
                    if let Some(mb) = self.mailboxes.get_mut(id) {
                        mb.begin(&op.deps);
                        mb.rename(name, stamp);
                    }
                }
                names_may_change = true;
            }
            OpKind::Subscribe { name } => {
                self.subscriptions
                    .entry(name.clone())
                    .or_default()
                    .push(dot);
            }
            OpKind::Unsubscribe { name } => {
                if let Some(dots) = self.subscriptions.get_mut(name) {
                    dots.retain(|d| !op.deps.contains(*d));
                    if dots.is_empty() {
                        self.subscriptions.remove(name);
                    }
                }
            }
            OpKind::Append { mailbox, messages } => {
                if let Some(mb) = self.mailboxes.get_mut(mailbox) {
                    let was_live = mb.is_live();
                    mb.begin(&op.deps);
                    add_messages(mb, dot, messages);
                    names_may_change = was_live != mb.is_live();
                }
            }
            OpKind::Move {
                from,
                sources,
                to,
                messages,
            } => {
                if let Some(mb) = self.mailboxes.get_mut(from) {
                    mb.begin(&op.deps);
                    for id in sources {
                        mb.expunge(*id, dot);
                    }
                }
                if let Some(mb) = self.mailboxes.get_mut(to) {
                    let was_live = mb.is_live();
                    if from != to {
                        mb.begin(&op.deps);
                    }
                    add_messages(mb, dot, messages);
                    names_may_change = was_live != mb.is_live();
                }
            }
            OpKind::Expunge { mailbox, messages } => {
                if let Some(mb) = self.mailboxes.get_mut(mailbox) {
                    mb.begin(&op.deps);
                    for id in messages {
                        mb.expunge(*id, dot);
                    }
                }
            }
            OpKind::StoreFlags {
                mailbox,
                messages,
                change,
            } => {
                if let Some(mb) = self.mailboxes.get_mut(mailbox) {
                    mb.begin(&op.deps);
                    for id in messages {
                        mb.store(*id, change, dot, &op.deps);
                    }
                }
            }
            OpKind::Bind { mailbox, bindings } => {
                if let Some(mb) = self.mailboxes.get_mut(mailbox) {
                    mb.begin(&op.deps);
                    for (id, uid) in bindings {
                        mb.bind(*id, uid.get(), dot);
                    }
                }
            }
            OpKind::Floor { mailbox, floors } => {
                if let Some(mb) = self.mailboxes.get_mut(mailbox) {
                    mb.begin(&op.deps);
                    for (id, uid) in floors {
                        mb.floor(*id, uid.get(), dot);
                    }
                }
            }
            OpKind::Claim { window, bases } => self.apply_claim(op, *window, bases),
        }
        self.clock.add(dot);
        for id in op.kind.mailboxes() {
            let Some(mb) = self.mailboxes.get_mut(id) else {
                continue;
            };
            let Some((t, changed)) = batch.mailboxes.get_mut(id) else {
                mb.shown_changes.clear();
                continue;
            };
            for (msg, before) in mb.shown_changes.drain(..) {
                // A message that newly appears above T owes nothing: skipping it keeps
                // big catch-up batches cheap. Were it to change again in this batch,
                // that change is recorded, and differs from this state as it would
                // from the batch's start.
                let appeared_above_t = before.is_none()
                    && !changed.contains_key(&msg)
                    && mb
                        .messages
                        .get(&msg)
                        .and_then(|m| m.shown)
                        .is_some_and(|u| u > *t);
                if !appeared_above_t {
                    changed.entry(msg).or_insert(before);
                }
            }
        }
        if names_may_change {
            self.rebuild_names();
        }
    }

    pub(super) fn targets<'a>(
        &'a mut self,
        ids: impl Iterator<Item = &'a MailboxId>,
    ) -> Vec<&'a mut Mailbox> {
        let wanted: BTreeSet<&MailboxId> = ids.collect();
        self.mailboxes
            .iter_mut()
            .filter(|(id, _)| wanted.contains(id))
            .map(|(_, mb)| mb)
            .collect()
    }

    /// Display names: each live mailbox under its name; when several live mailboxes
    /// share one (a rename onto a name created concurrently), the one with the highest
    /// UIDVALIDITY keeps it and each other shows as `name~UIDVALIDITY`, so no mail is
    /// hidden and the choice is the same everywhere.
    pub(super) fn rebuild_names(&mut self) {
        let mut claims: BTreeMap<&str, Vec<&Mailbox>> = BTreeMap::new();
        for mb in self.mailboxes.values().filter(|mb| mb.is_live()) {
            claims.entry(mb.name.as_str()).or_default().push(mb);
        }
        let mut names = BTreeMap::new();
        let mut losers = Vec::new();
        for (name, mut mbs) in claims.clone() {
            mbs.sort_by(|a, b| (b.uid_validity, &b.id).cmp(&(a.uid_validity, &a.id)));
            names.insert(name.to_owned(), mbs[0].id.clone());
            losers.extend(
                mbs[1..]
                    .iter()
                    .map(|mb| (name, mb.uid_validity, mb.id.clone())),
            );
        }
        for (name, uid_validity, id) in losers {
            let mut alt = format!("{name}~{uid_validity}");
            while names.contains_key(&alt) || claims.contains_key(alt.as_str()) {
                alt.push('~');
            }
            names.insert(alt, id);
        }
        self.names = names;
    }
}
