//! [`UserState`]: one replica's copy of a user's mail state. Local writes become
//! operations applied at once; remote batches go through the causal-delivery buffer;
//! after each batch the UID rules add the binds or floors this replica owes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::CrdtError;
use crate::flags::{Flag, FlagChange};
use crate::ids::{
    Dot, MailboxId, MessageId, ModSeq, ReplicaId, Uid, UidValidity, VersionVector, fresh,
};
use crate::mailbox::{Mailbox, Message};
use crate::op::{MessageData, NewMessage, Op, OpKind, SpecialUse};
use crate::view::{
    AppendOutcome, Applied, Changes, CompactionReport, CopyOutcome, MailboxInfo, MailboxSnapshot,
    MailboxStatus, MessageView, StateStats, StoreOutcome,
};

/// The snapshot format this code writes (and the only one it reads).
pub const SNAPSHOT_VERSION: u32 = 1;

/// Settings every replica of a user must share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// K: replica `r` binds only UIDs `≡ r (mod K)`. Every replica id must be below it.
    /// Fixed for the life of the user's state.
    pub uid_stride: u16,
    /// Every replica of the user: compaction waits until all of them have reported.
    pub members: Vec<ReplicaId>,
}

/// What one remote batch changed, for the UID rules that run after it.
#[derive(Default)]
struct Batch {
    /// Per mailbox: T (its H before the batch) and the messages whose shown UID
    /// changed, with the UID they had before the batch.
    mailboxes: BTreeMap<MailboxId, (u32, BTreeMap<MessageId, Option<u32>>)>,
    /// False for this replica's own writes, which owe no follow-ups.
    local: bool,
}

impl Batch {
    fn local() -> Self {
        Batch {
            local: true,
            ..Batch::default()
        }
    }
}

/// A replica's progress as reported: the latest report, and the latest one usable for
/// causal stability (usable once this replica holds every op of the reporter that the
/// report includes: any op of it still to come was then made after the report).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Progress {
    latest: VersionVector,
    usable: Option<VersionVector>,
}

/// The UIDVALIDITY of the mailboxes a user starts with
/// ([`UserState::create_default_mailbox`]); the same on every replica.
pub const DEFAULT_UID_VALIDITY: u32 = 1;

/// One replica's state of one user's mail.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserState {
    replica: ReplicaId,
    config: Config,
    /// The operations applied here (a causally closed set).
    clock: VersionVector,
    mailboxes: BTreeMap<MailboxId, Mailbox>,
    /// Display name → mailbox, for live mailboxes. Derived from `mailboxes`.
    names: BTreeMap<String, MailboxId>,
    /// The highest incarnation of each creation name ever seen.
    incarnations: BTreeMap<String, u32>,
    max_uid_validity: u32,
    /// Subscribed names, add-wins: the subscribe ops no unsubscribe has seen.
    subscriptions: BTreeMap<String, Vec<Dot>>,
    /// Remote ops waiting for their causal dependencies.
    pending: BTreeMap<Dot, Op>,
    progress: BTreeMap<ReplicaId, Progress>,
    /// The peers this replica believes reachable; `None` until the caller says
    /// (volatile: told again after a restart). A replica never told is not leader.
    #[serde(skip)]
    reachable: Option<BTreeSet<ReplicaId>>,
}

impl UserState {
    /// An empty state for `replica`.
    pub fn new(replica: ReplicaId, config: Config) -> Result<Self, CrdtError> {
        if config.uid_stride == 0 {
            return Err(CrdtError::InvalidConfig(
                "the UID stride must be at least 1".into(),
            ));
        }
        if let Some(r) = config
            .members
            .iter()
            .chain([&replica])
            .find(|r| r.0 >= config.uid_stride)
        {
            return Err(CrdtError::InvalidConfig(format!(
                "replica id {} is not below the UID stride {}",
                r.0, config.uid_stride
            )));
        }
        Ok(Self {
            replica,
            config,
            clock: VersionVector::new(),
            mailboxes: BTreeMap::new(),
            names: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            max_uid_validity: 0,
            subscriptions: BTreeMap::new(),
            pending: BTreeMap::new(),
            progress: BTreeMap::new(),
            reachable: None,
        })
    }

    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The operations applied here: what to report to peers as this replica's progress.
    pub fn version(&self) -> &VersionVector {
        &self.clock
    }

    // ---------------------------------------------------------------- local writes

    /// CREATE. Parents are not created: the caller creates each missing level.
    pub fn create_mailbox(
        &mut self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Vec<Op>, CrdtError> {
        if self.names.contains_key(name) {
            return Err(CrdtError::MailboxExists(name.to_owned()));
        }
        Ok(vec![self.create_op(name, special_use)?])
    }

    /// A mailbox every user starts with (INBOX and the special-use defaults), created
    /// the same on every replica: incarnation 0 with [`DEFAULT_UID_VALIDITY`]. Two
    /// replicas that both create a user's defaults (one had not caught up yet) thus make
    /// the *same* mailbox with the same UIDVALIDITY, so no client's UIDVALIDITY changes
    /// because another replica appeared. Nothing is created (no op) for a name that
    /// has, or ever had, an incarnation here.
    pub fn create_default_mailbox(
        &mut self,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Vec<Op> {
        if self.incarnations.contains_key(name) || self.names.contains_key(name) {
            return Vec::new();
        }
        vec![self.issue(OpKind::Create {
            mailbox: MailboxId {
                name: name.to_owned(),
                incarnation: 0,
            },
            special_use,
            uid_validity: UidValidity(DEFAULT_UID_VALIDITY),
        })]
    }

    fn create_op(&mut self, name: &str, special_use: Option<SpecialUse>) -> Result<Op, CrdtError> {
        let incarnation = self
            .incarnations
            .get(name)
            .map_or(0, |i| i.saturating_add(1));
        let uid_validity = fresh(
            self.max_uid_validity,
            self.replica.0,
            self.config.uid_stride,
        )
        .ok_or_else(|| CrdtError::UidsExhausted(name.to_owned()))?;
        Ok(self.issue(OpKind::Create {
            mailbox: MailboxId {
                name: name.to_owned(),
                incarnation,
            },
            special_use,
            uid_validity: UidValidity(uid_validity),
        }))
    }

    /// DELETE of one mailbox (the caller refuses INBOX and mailboxes with children).
    pub fn delete_mailbox(&mut self, name: &str) -> Result<Vec<Op>, CrdtError> {
        let id = self.resolve(name)?.clone();
        Ok(vec![self.issue(OpKind::Delete {
            mailboxes: vec![id],
        })])
    }

    /// RENAME, with everything below the mailbox. Renaming INBOX moves its messages to
    /// a new mailbox and leaves INBOX empty (RFC 3501).
    pub fn rename_mailbox(&mut self, from: &str, to: &str) -> Result<Vec<Op>, CrdtError> {
        let id = self.resolve(from)?.clone();
        if self.names.contains_key(to) {
            return Err(CrdtError::MailboxExists(to.to_owned()));
        }
        if from == "INBOX" {
            let special_use = self.mailboxes.get(&id).and_then(|m| m.special_use);
            let create = self.create_op(to, special_use)?;
            let uids: Vec<Uid> = self.visible_uids(&id);
            let moved = self.move_messages(from, &uids, to)?;
            return Ok(std::iter::once(create).chain(moved.ops).collect());
        }
        let prefix = format!("{from}/");
        let mut renames = vec![(id, to.to_owned())];
        for (name, child) in self.names.range(prefix.clone()..) {
            let Some(rest) = name.strip_prefix(&prefix) else {
                break;
            };
            let new_name = format!("{to}/{rest}");
            if self.names.contains_key(&new_name) {
                return Err(CrdtError::MailboxExists(new_name));
            }
            renames.push((child.clone(), new_name));
        }
        Ok(vec![self.issue(OpKind::Rename { renames })])
    }

    pub fn subscribe(&mut self, name: &str) -> Vec<Op> {
        vec![self.issue(OpKind::Subscribe {
            name: name.to_owned(),
        })]
    }

    pub fn unsubscribe(&mut self, name: &str) -> Vec<Op> {
        vec![self.issue(OpKind::Unsubscribe {
            name: name.to_owned(),
        })]
    }

    /// APPEND: each message gets a fresh UID of this replica, shown at once.
    pub fn append(
        &mut self,
        mailbox: &str,
        messages: Vec<MessageData>,
    ) -> Result<Applied<AppendOutcome>, CrdtError> {
        let id = self.resolve(mailbox)?.clone();
        let (uid_validity, new) = self.fresh_messages(&id, messages)?;
        let uids = new.iter().map(|n| n.uid).collect();
        let ops = if new.is_empty() {
            Vec::new()
        } else {
            vec![self.issue(OpKind::Append {
                mailbox: id,
                messages: new,
            })]
        };
        Ok(Applied {
            ops,
            outcome: AppendOutcome { uid_validity, uids },
        })
    }

    /// COPY: new messages in `to` with the sources' bodies, dates and flags.
    pub fn copy(
        &mut self,
        from: &str,
        uids: &[Uid],
        to: &str,
    ) -> Result<Applied<CopyOutcome>, CrdtError> {
        self.transfer(from, uids, to, false)
    }

    /// MOVE: a copy and an expunge of the sources, as one operation.
    pub fn move_messages(
        &mut self,
        from: &str,
        uids: &[Uid],
        to: &str,
    ) -> Result<Applied<CopyOutcome>, CrdtError> {
        self.transfer(from, uids, to, true)
    }

    fn transfer(
        &mut self,
        from: &str,
        uids: &[Uid],
        to: &str,
        is_move: bool,
    ) -> Result<Applied<CopyOutcome>, CrdtError> {
        let from_id = self.resolve(from)?.clone();
        let to_id = self.resolve(to)?.clone();
        let sources = self.pick(&from_id, uids);
        let data = sources
            .iter()
            .map(|(_, _, m)| MessageData {
                body: m.body,
                size: m.size,
                internal_date: m.internal_date,
                flags: m.flags.visible.clone(),
            })
            .collect();
        let source_uids: Vec<Uid> = sources.iter().map(|(u, _, _)| *u).collect();
        let source_ids: Vec<MessageId> = sources.iter().map(|(_, id, _)| *id).collect();
        let (uid_validity, new) = self.fresh_messages(&to_id, data)?;
        let mapping = source_uids
            .into_iter()
            .zip(new.iter().map(|n| n.uid))
            .collect();
        let ops = if new.is_empty() {
            Vec::new()
        } else if is_move {
            vec![self.issue(OpKind::Move {
                from: from_id,
                sources: source_ids,
                to: to_id,
                messages: new,
            })]
        } else {
            vec![self.issue(OpKind::Append {
                mailbox: to_id,
                messages: new,
            })]
        };
        Ok(Applied {
            ops,
            outcome: CopyOutcome {
                uid_validity,
                mapping,
            },
        })
    }

    /// STORE. With `unchanged_since`, messages whose modseq is above it are left alone.
    pub fn store_flags(
        &mut self,
        mailbox: &str,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> Result<Applied<StoreOutcome>, CrdtError> {
        let id = self.resolve(mailbox)?.clone();
        let mut targets = Vec::new();
        let mut modified = Vec::new();
        for (uid, msg, m) in self.pick(&id, uids) {
            if unchanged_since.is_some_and(|since| m.modseq > since.0) {
                modified.push(uid);
            } else {
                targets.push((uid, msg));
            }
        }
        if targets.is_empty() {
            return Ok(Applied {
                ops: Vec::new(),
                outcome: StoreOutcome {
                    updated: Vec::new(),
                    modified,
                },
            });
        }
        let op = self.issue(OpKind::StoreFlags {
            mailbox: id.clone(),
            messages: targets.iter().map(|(_, msg)| *msg).collect(),
            change: change.clone(),
        });
        let mb = self.mailbox(&id)?;
        let updated = targets
            .iter()
            .filter_map(|(uid, msg)| Some(view(uid.0, *msg, mb.messages.get(msg)?)))
            .collect();
        Ok(Applied {
            ops: vec![op],
            outcome: StoreOutcome { updated, modified },
        })
    }

    /// EXPUNGE of exactly these UIDs (the caller picks the `\Deleted` ones). Returns
    /// the UIDs expunged, ascending.
    pub fn expunge(&mut self, mailbox: &str, uids: &[Uid]) -> Result<Applied<Vec<Uid>>, CrdtError> {
        let id = self.resolve(mailbox)?.clone();
        let targets: Vec<(Uid, MessageId)> = self
            .pick(&id, uids)
            .into_iter()
            .map(|(u, m, _)| (u, m))
            .collect();
        let ops = if targets.is_empty() {
            Vec::new()
        } else {
            vec![self.issue(OpKind::Expunge {
                mailbox: id,
                messages: targets.iter().map(|(_, m)| *m).collect(),
            })]
        };
        Ok(Applied {
            ops,
            outcome: targets.into_iter().map(|(u, _)| u).collect(),
        })
    }

    /// Makes an operation of this replica and applies it.
    fn issue(&mut self, kind: OpKind) -> Op {
        let op = Op {
            id: Dot::new(self.replica, self.clock.get(self.replica).saturating_add(1)),
            deps: self.clock.clone(),
            kind,
        };
        self.apply_ready(&op, &mut Batch::local());
        op
    }

    /// Fresh UIDs of this replica for new messages of a mailbox, ascending.
    fn fresh_messages(
        &self,
        id: &MailboxId,
        messages: Vec<MessageData>,
    ) -> Result<(UidValidity, Vec<NewMessage>), CrdtError> {
        let mb = self.mailbox(id)?;
        let mut h = mb.h;
        let mut out = Vec::with_capacity(messages.len());
        for data in messages {
            h = fresh(h, self.replica.0, self.config.uid_stride)
                .ok_or_else(|| CrdtError::UidsExhausted(mb.name.clone()))?;
            out.push(NewMessage { data, uid: Uid(h) });
        }
        Ok((UidValidity(mb.uid_validity), out))
    }

    /// The visible messages among `uids`, ascending and each once.
    fn pick(&self, id: &MailboxId, uids: &[Uid]) -> Vec<(Uid, MessageId, &Message)> {
        let Some(mb) = self.mailboxes.get(id) else {
            return Vec::new();
        };
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        uids.into_iter()
            .filter_map(|u| mb.visible(u.0).map(|(msg, m)| (u, msg, m)))
            .collect()
    }

    fn visible_uids(&self, id: &MailboxId) -> Vec<Uid> {
        self.mailboxes
            .get(id)
            .map(|mb| mb.visible_messages().map(|(u, _, _)| Uid(u)).collect())
            .unwrap_or_default()
    }

    // ---------------------------------------------------------------- remote ops

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
        Ok(self.settle(batch))
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
        Ok(())
    }

    /// Rejects what no correct replica sends: this keeps the "one binder per UID"
    /// argument true whatever a peer sends.
    fn validate(&self, op: &Op) -> Result<(), CrdtError> {
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
        let uids_ok = match &op.kind {
            OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => {
                messages.iter().all(|m| own(m.uid.0))
            }
            OpKind::Bind { bindings, .. } => bindings.iter().all(|(_, u)| own(u.0)),
            // A first incarnation may carry the shared default UIDVALIDITY: it has no
            // earlier incarnation to stay above, and concurrent first creates of a name
            // are one incarnation anyway.
            OpKind::Create {
                mailbox,
                uid_validity,
                ..
            } => {
                own(uid_validity.0)
                    || (mailbox.incarnation == 0 && uid_validity.0 == DEFAULT_UID_VALIDITY)
            }
            _ => true,
        };
        if !uids_ok {
            return bad("binds a UID or UIDVALIDITY of another replica's residue");
        }
        Ok(())
    }

    fn is_ready(&self, op: &Op) -> bool {
        self.clock.get(op.id.replica).checked_add(1) == Some(op.id.seq) && op.deps.le(&self.clock)
    }

    fn deliver_pending(&mut self, batch: &mut Batch) {
        loop {
            let mut progressed = false;
            let mut origin = self.pending.keys().next().map(|d| d.replica);
            while let Some(r) = origin {
                let next = Dot::new(r, self.clock.get(r).saturating_add(1));
                if let Some(op) = self.pending.get(&next).filter(|op| op.deps.le(&self.clock)) {
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
    fn apply_ready(&mut self, op: &Op, batch: &mut Batch) {
        for id in op.kind.mailboxes() {
            if let Some(mb) = self.mailboxes.get(id) {
                if !batch.local && !batch.mailboxes.contains_key(id) {
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
                self.max_uid_validity = self.max_uid_validity.max(uid_validity.0);
                let mb = self
                    .mailboxes
                    .entry(mailbox.clone())
                    .or_insert_with(|| Mailbox::new(mailbox.clone()));
                mb.begin(&op.deps);
                mb.apply_create(op.stamp(), *special_use, uid_validity.0, dot);
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
                        mb.bind(*id, uid.0, dot);
                    }
                }
            }
            OpKind::Floor { mailbox, floors } => {
                if let Some(mb) = self.mailboxes.get_mut(mailbox) {
                    mb.begin(&op.deps);
                    for (id, uid) in floors {
                        mb.floor(*id, uid.0, dot);
                    }
                }
            }
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

    fn targets<'a>(&'a mut self, ids: impl Iterator<Item = &'a MailboxId>) -> Vec<&'a mut Mailbox> {
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
    fn rebuild_names(&mut self) {
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

    // ---------------------------------------------------------------- UID rules

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
            return Vec::new();
        }
        self.bind_hidden()
    }

    /// The leader's duty, run in full: a new UID for every hidden live message.
    pub fn bind_hidden(&mut self) -> Vec<Op> {
        if !self.is_leader() {
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
    fn settle(&mut self, batch: Batch) -> Vec<Op> {
        let leader = self.is_leader();
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
                if !needs {
                    continue;
                }
                if leader {
                    match fresh(h.max(m.floor), self.replica.0, self.config.uid_stride) {
                        Some(u) => {
                            h = u;
                            binds.push((msg, Uid(u)));
                        }
                        // The UID space is used up: the message stays hidden.
                        None => continue,
                    }
                } else if m.shown.is_some() {
                    floors.push((msg, Uid(t)));
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

    // ---------------------------------------------------------------- queries

    fn resolve(&self, name: &str) -> Result<&MailboxId, CrdtError> {
        self.names
            .get(name)
            .ok_or_else(|| CrdtError::MailboxNotFound(name.to_owned()))
    }

    fn mailbox(&self, id: &MailboxId) -> Result<&Mailbox, CrdtError> {
        self.mailboxes
            .get(id)
            .ok_or_else(|| CrdtError::MailboxNotFound(id.name.clone()))
    }

    fn by_name(&self, name: &str) -> Result<&Mailbox, CrdtError> {
        self.mailbox(self.resolve(name)?)
    }

    /// Every live mailbox, sorted by name.
    pub fn mailboxes(&self) -> Vec<MailboxInfo> {
        self.names
            .iter()
            .filter_map(|(name, id)| {
                let mb = self.mailboxes.get(id)?;
                Some(MailboxInfo {
                    name: name.clone(),
                    id: id.clone(),
                    special_use: mb.special_use,
                    subscribed: self.subscriptions.contains_key(name),
                    uid_validity: UidValidity(mb.uid_validity),
                    uid_next: uid_next(mb),
                    highest_modseq: ModSeq(mb.modseq),
                })
            })
            .collect()
    }

    /// Subscribed names, sorted (they need not exist).
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscriptions.keys().cloned().collect()
    }

    /// The whole mailbox as SELECT needs it.
    pub fn snapshot(&self, mailbox: &str) -> Result<MailboxSnapshot, CrdtError> {
        let mb = self.by_name(mailbox)?;
        Ok(MailboxSnapshot {
            name: mailbox.to_owned(),
            uid_validity: UidValidity(mb.uid_validity),
            uid_next: uid_next(mb),
            highest_modseq: ModSeq(mb.modseq),
            messages: mb
                .visible_messages()
                .map(|(u, id, m)| view(u, id, m))
                .collect(),
        })
    }

    /// What changed after `since`: messages that appeared or changed, and UIDs that no
    /// longer show a message.
    pub fn changes_since(&self, mailbox: &str, since: ModSeq) -> Result<Changes, CrdtError> {
        let mb = self.by_name(mailbox)?;
        if since.0 < mb.forgotten_modseq {
            return Ok(Changes::TooOld);
        }
        let mut updated = Vec::new();
        let mut expunged = Vec::new();
        for (id, m) in mb.messages.iter().filter(|(_, m)| m.modseq > since.0) {
            if let Some(u) = m.shown {
                updated.push(view(u, *id, m));
            }
            expunged.extend(
                m.bindings
                    .descending()
                    .filter(|&u| Some(u) != m.shown)
                    .map(Uid),
            );
        }
        updated.sort_by_key(|v| v.uid);
        expunged.sort_unstable();
        expunged.dedup();
        Ok(Changes::Delta {
            highest_modseq: ModSeq(mb.modseq),
            uid_next: uid_next(mb),
            updated,
            expunged,
        })
    }

    pub fn status(&self, mailbox: &str) -> Result<MailboxStatus, CrdtError> {
        let mb = self.by_name(mailbox)?;
        let mut status = MailboxStatus {
            messages: 0,
            unseen: 0,
            deleted: 0,
            size: 0,
            uid_next: uid_next(mb),
            uid_validity: UidValidity(mb.uid_validity),
            highest_modseq: ModSeq(mb.modseq),
        };
        for (_, _, m) in mb.visible_messages() {
            status.messages += 1;
            status.unseen += u32::from(!m.flags.visible.contains(&Flag::Seen));
            status.deleted += u32::from(m.flags.visible.contains(&Flag::Deleted));
            status.size += u64::from(m.size);
        }
        Ok(status)
    }

    /// The visible messages among `uids`, ascending (for FETCH).
    pub fn messages(&self, mailbox: &str, uids: &[Uid]) -> Result<Vec<MessageView>, CrdtError> {
        let id = self.resolve(mailbox)?;
        Ok(self
            .pick(id, uids)
            .into_iter()
            .map(|(u, msg, m)| view(u.0, msg, m))
            .collect())
    }

    pub fn stats(&self) -> StateStats {
        let mut stats = StateStats {
            pending_ops: self.pending.len(),
            ..StateStats::default()
        };
        for mb in self.mailboxes.values() {
            if mb.is_live() {
                stats.mailboxes += 1;
            } else {
                stats.dead_mailboxes += 1;
            }
            for m in mb.messages.values() {
                match (m.removed, m.shown) {
                    (Some(_), _) => stats.tombstones += 1,
                    (None, Some(_)) => stats.visible_messages += 1,
                    (None, None) => stats.hidden_messages += 1,
                }
            }
            stats.unstable_dots += mb.unstable_dots();
        }
        stats
    }

    // ---------------------------------------------------------------- compaction

    /// Records what `replica` has applied (its [`version`](Self::version)), as the
    /// replication layer learns it.
    pub fn report_progress(&mut self, replica: ReplicaId, applied: &VersionVector) {
        self.progress
            .entry(replica)
            .or_default()
            .latest
            .join(applied);
    }

    /// The operations every member has applied, if every member has reported.
    pub fn stable_version(&mut self) -> Option<VersionVector> {
        let mut stable = self.clock.clone();
        for member in self.config.members.clone() {
            if member == self.replica {
                continue;
            }
            let progress = self.progress.get_mut(&member)?;
            if self.clock.get(member) >= progress.latest.get(member) {
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

    /// The whole state in the versioned snapshot format (postcard).
    /// The remote ops waiting here for their causal dependencies (copies). A replica
    /// that installs a peer's snapshot applies these again on top of it.
    pub fn pending_ops(&self) -> Vec<Op> {
        self.pending.values().cloned().collect()
    }

    pub fn encode_snapshot(&self) -> Result<Vec<u8>, CrdtError> {
        postcard::to_allocvec(&(SNAPSHOT_VERSION, self))
            .map_err(|e| CrdtError::Snapshot(e.to_string()))
    }

    /// Reads a snapshot. Peer reachability is not in it: call
    /// [`set_reachable`](Self::set_reachable) after.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Self, CrdtError> {
        let (version, rest): (u32, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| CrdtError::Snapshot(e.to_string()))?;
        if version != SNAPSHOT_VERSION {
            return Err(CrdtError::SnapshotVersion(version));
        }
        let mut state: UserState =
            postcard::from_bytes(rest).map_err(|e| CrdtError::Snapshot(e.to_string()))?;
        for mb in state.mailboxes.values_mut() {
            mb.rebuild_indexes();
        }
        Ok(state)
    }
}

fn add_messages(mb: &mut Mailbox, dot: Dot, messages: &[NewMessage]) {
    for (index, new) in messages.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        mb.add_message(MessageId { op: dot, index }, new, dot);
    }
}

fn uid_next(mb: &Mailbox) -> Uid {
    Uid(mb.h.saturating_add(1))
}

fn view(uid: u32, id: MessageId, m: &Message) -> MessageView {
    MessageView {
        uid: Uid(uid),
        id,
        flags: m.flags.visible.clone(),
        modseq: ModSeq(m.modseq),
        body: m.body,
        size: m.size,
        internal_date: m.internal_date,
    }
}
