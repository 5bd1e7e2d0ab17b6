//! One mailbox incarnation: its messages, its UID space and the view rule that decides
//! which UID (if any) shows each message, plus the modseq bookkeeping that lets
//! CONDSTORE clients ask what changed. See `crdt/README.md` for the argument.
//!
//! Everything here is a function of the set of operations applied, whatever their
//! (causal) order: this is what makes replicas converge.

use std::collections::{BTreeMap, BTreeSet};

use pluto_model::Usage;
use serde::{Deserialize, Serialize};

use crate::flags::{FlagChange, FlagState};
use crate::hash::IdMap;
use crate::ids::{Dot, MailboxId, MessageId, VersionVector};
use crate::op::{BodyRef, InternalDate, NewMessage, SpecialUse, Stamp};

/// One message of a mailbox, visible, hidden or expunged (a tombstone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Message {
    pub(crate) body: BodyRef,
    pub(crate) size: u32,
    pub(crate) internal_date: InternalDate,
    pub(crate) flags: FlagState,
    /// Every UID ever bound to the message. Almost always one.
    pub(crate) bindings: Bindings,
    /// The message is hidden at every binding up to this UID.
    pub(crate) floor: u32,
    /// The expunge (or delete) that removed it: it is then a tombstone.
    pub(crate) removed: Option<Dot>,
    /// The UID the message is shown at: derived from the fields above, kept for speed
    /// (and rebuilt, not stored, in snapshots).
    #[serde(skip)]
    pub(crate) shown: Option<u32>,
    pub(crate) modseq: u64,
}

/// A message's UID bindings: the highest inline, any others (rare: only re-bound
/// messages have them) ascending in a list that costs nothing while empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bindings {
    /// 0 while unbound (0 is never a UID).
    highest: u32,
    lower: Vec<u32>,
}

impl Bindings {
    fn insert(&mut self, uid: u32) {
        if uid == self.highest || self.lower.binary_search(&uid).is_ok() {
            return;
        }
        if uid > self.highest {
            if self.highest != 0 {
                self.lower.push(self.highest);
            }
            self.highest = uid;
        } else if let Err(at) = self.lower.binary_search(&uid) {
            self.lower.insert(at, uid);
        }
    }

    /// Highest first.
    pub(crate) fn descending(&self) -> impl Iterator<Item = u32> + '_ {
        (self.highest != 0)
            .then_some(self.highest)
            .into_iter()
            .chain(self.lower.iter().rev().copied())
    }
}

/// A mailbox incarnation (see [`MailboxId`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Mailbox {
    pub(crate) id: MailboxId,
    /// Its name: a last-writer-wins register over create and rename.
    pub(crate) name: String,
    name_stamp: Stamp,
    pub(crate) special_use: Option<SpecialUse>,
    special_use_stamp: Stamp,
    /// The highest UIDVALIDITY proposed by a create of this incarnation.
    pub(crate) uid_validity: u32,
    /// The ops that put something in the mailbox: its creates and every op that made a
    /// message in it. A delete that has not seen all of them leaves the mailbox alive.
    contents: VersionVector,
    /// The union of the causal contexts of the deletes of this mailbox.
    deleted: Option<VersionVector>,
    /// The deletes themselves, to know when they are causally stable.
    delete_ops: VersionVector,
    /// H: the highest UID of any binding ever made here. Never goes down.
    pub(crate) h: u32,
    /// HIGHESTMODSEQ: the number of operations applied to this mailbox.
    pub(crate) modseq: u64,
    /// The highest modseq of a tombstone that compaction dropped: changes since an
    /// older modseq can no longer be told exactly.
    pub(crate) forgotten_modseq: u64,
    pub(crate) messages: IdMap<MessageId, Message>,
    /// UID → the first message bound to it, for every binding (shown or not). An index
    /// over `messages`, rebuilt rather than stored in snapshots.
    #[serde(skip)]
    uids: BTreeMap<u32, MessageId>,
    /// UIDs bound to two messages: never shown again.
    retired: BTreeSet<u32>,
    /// Which op touched which message, for ops not yet causally stable.
    recent: Vec<(Dot, MessageId)>,
    /// The union of the dots in `recent`: an op whose context covers it is concurrent
    /// with no touch, the common case, and needs no scan.
    recent_vv: VersionVector,
    /// Messages whose shown UID changed since the state last looked, with the UID
    /// they had before.
    #[serde(skip)]
    pub(crate) shown_changes: Vec<(MessageId, Option<u32>)>,
    /// The sizes and the number of the messages not removed, shown or not (one hidden
    /// while it waits for a new UID is stored and counts): kept as messages arrive and
    /// are removed, so a quota check costs nothing per message (rebuilt, not stored, in
    /// snapshots).
    #[serde(skip)]
    pub(crate) usage: Usage,
}

impl Mailbox {
    pub(crate) fn new(id: MailboxId) -> Self {
        Self {
            name: id.name.clone(),
            id,
            name_stamp: Stamp::default(),
            special_use: None,
            special_use_stamp: Stamp::default(),
            uid_validity: 0,
            contents: VersionVector::new(),
            deleted: None,
            delete_ops: VersionVector::new(),
            h: 0,
            modseq: 0,
            forgotten_modseq: 0,
            messages: IdMap::default(),
            uids: BTreeMap::new(),
            retired: BTreeSet::new(),
            recent: Vec::new(),
            recent_vv: VersionVector::new(),
            shown_changes: Vec::new(),
            usage: Usage::default(),
        }
    }

    /// True unless every create and message of the mailbox was seen by a delete.
    pub(crate) fn is_live(&self) -> bool {
        self.deleted
            .as_ref()
            .is_none_or(|deleted| !self.contents.le(deleted))
    }

    /// Counts an operation on this mailbox (before its effects): HIGHESTMODSEQ grows by
    /// one, and every message touched by an operation concurrent with this one gets
    /// one more too. So a message's modseq is the number of this mailbox's operations
    /// that are not causally after all of its touches: a function of the set of
    /// operations, and above any HIGHESTMODSEQ a replica showed before the message last
    /// changed there.
    pub(crate) fn begin(&mut self, deps: &VersionVector) {
        self.modseq = self.modseq.saturating_add(1);
        if self.recent_vv.le(deps) {
            return;
        }
        #[cfg(feature = "mutations")]
        if crate::mutations::on(crate::mutations::Mutation::NoConcurrentModseqBump) {
            return;
        }
        let mut bumped: Vec<MessageId> = self
            .recent
            .iter()
            .filter(|(dot, _)| !deps.contains(*dot))
            .map(|(_, id)| *id)
            .collect();
        bumped.sort_unstable();
        bumped.dedup();
        for id in bumped {
            if let Some(m) = self.messages.get_mut(&id) {
                m.modseq = m.modseq.saturating_add(1);
            }
        }
    }

    fn touch(&mut self, dot: Dot, id: MessageId) {
        if let Some(m) = self.messages.get_mut(&id) {
            m.modseq = self.modseq;
            self.recent.push((dot, id));
            self.recent_vv.add(dot);
        }
    }

    /// The view rule: a message is shown at its highest binding that is not retired,
    /// if that binding is above its floor and the message is not removed.
    fn view_of(&self, m: &Message) -> Option<u32> {
        view_of(&self.retired, m)
    }

    fn refresh(&mut self, id: MessageId) {
        let Some(m) = self.messages.get(&id) else {
            return;
        };
        let now = self.view_of(m);
        let before = m.shown;
        if now != before {
            self.shown_changes.push((id, before));
            if let Some(m) = self.messages.get_mut(&id) {
                m.shown = now;
            }
        }
    }

    pub(crate) fn apply_create(
        &mut self,
        stamp: Stamp,
        special_use: Option<SpecialUse>,
        uid_validity: u32,
        dot: Dot,
    ) {
        self.uid_validity = self.uid_validity.max(uid_validity);
        self.contents.add(dot);
        if stamp > self.name_stamp {
            self.name = self.id.name.clone();
            self.name_stamp = stamp;
        }
        if stamp > self.special_use_stamp {
            self.special_use = special_use;
            self.special_use_stamp = stamp;
        }
    }

    pub(crate) fn rename(&mut self, name: &str, stamp: Stamp) {
        if stamp > self.name_stamp {
            self.name = name.to_owned();
            self.name_stamp = stamp;
        }
    }

    /// A delete removes the mailbox and every message it has seen; messages it has not
    /// seen (a concurrent append, copy or move) keep the mailbox alive.
    pub(crate) fn delete(&mut self, dot: Dot, deps: &VersionVector) {
        self.deleted
            .get_or_insert_with(VersionVector::new)
            .join(deps);
        self.delete_ops.add(dot);
        // Every message it has seen, removed or not: which messages an op touches must
        // not depend on the order ops arrived in, or modseqs would diverge.
        let seen: Vec<MessageId> = self
            .messages
            .keys()
            .filter(|id| deps.contains(id.op))
            .copied()
            .collect();
        for id in seen {
            self.remove(id, dot);
            self.touch(dot, id);
            self.refresh(id);
        }
    }

    pub(crate) fn add_message(&mut self, id: MessageId, new: &NewMessage, dot: Dot) {
        if self.messages.contains_key(&id) {
            return;
        }
        self.contents.add(dot);
        self.usage = self.usage.plus(Usage::new(u64::from(new.data.size), 1));
        self.messages.insert(
            id,
            Message {
                body: new.data.body,
                size: new.data.size,
                internal_date: new.data.internal_date,
                flags: FlagState::new(new.data.flags.clone(), dot),
                bindings: Bindings::default(),
                floor: 0,
                removed: None,
                shown: None,
                modseq: 0,
            },
        );
        // Binding the UID touches the message.
        self.bind(id, new.uid.get(), dot);
    }

    /// Binds `uid` to a message. A UID bound to two messages is retired: neither keeps
    /// it. (With fresh UIDs `≡ origin (mod K)` this never happens; it is the safety net.)
    pub(crate) fn bind(&mut self, id: MessageId, uid: u32, dot: Dot) {
        let Some(m) = self.messages.get_mut(&id) else {
            return;
        };
        m.bindings.insert(uid);
        self.h = self.h.max(uid);
        self.touch(dot, id);
        match self.uids.get(&uid) {
            None => {
                self.uids.insert(uid, id);
            }
            Some(&other) if other != id => {
                self.retired.insert(uid);
                self.touch(dot, other);
                self.refresh(other);
            }
            Some(_) => {}
        }
        self.refresh(id);
    }

    pub(crate) fn floor(&mut self, id: MessageId, floor: u32, dot: Dot) {
        let Some(m) = self.messages.get_mut(&id) else {
            return;
        };
        m.floor = m.floor.max(floor);
        self.touch(dot, id);
        self.refresh(id);
    }

    pub(crate) fn expunge(&mut self, id: MessageId, dot: Dot) {
        if !self.messages.contains_key(&id) {
            return;
        }
        self.remove(id, dot);
        self.touch(dot, id);
        self.refresh(id);
    }

    /// Marks a message removed (by the first op that removed it) and takes it out of
    /// the usage.
    fn remove(&mut self, id: MessageId, dot: Dot) {
        if let Some(m) = self.messages.get_mut(&id)
            && m.removed.is_none()
        {
            m.removed = Some(dot);
            self.usage = self.usage.minus(Usage::new(u64::from(m.size), 1));
        }
    }

    /// A flag change on a removed message changes nothing anyone sees: expunge wins.
    pub(crate) fn store(
        &mut self,
        id: MessageId,
        change: &FlagChange,
        dot: Dot,
        deps: &VersionVector,
    ) {
        let Some(m) = self.messages.get_mut(&id) else {
            return;
        };
        m.flags.apply(change, dot, deps);
        self.touch(dot, id);
    }

    /// The message shown at `uid`, if any.
    pub(crate) fn visible(&self, uid: u32) -> Option<(MessageId, &Message)> {
        let id = *self.uids.get(&uid)?;
        let m = self.messages.get(&id)?;
        (m.shown == Some(uid)).then_some((id, m))
    }

    /// The shown messages, ascending by UID.
    pub(crate) fn visible_messages(&self) -> impl Iterator<Item = (u32, MessageId, &Message)> + '_ {
        self.uids.iter().filter_map(|(&uid, id)| {
            let m = self.messages.get(id)?;
            (m.shown == Some(uid)).then_some((uid, *id, m))
        })
    }

    /// Rebuilds what snapshots do not store: the UID index and each message's shown UID.
    pub(crate) fn rebuild_indexes(&mut self) {
        let mut pairs: Vec<(u32, MessageId)> = Vec::with_capacity(self.messages.len());
        let mut usage = Usage::default();
        for (id, m) in self.messages.iter_mut() {
            pairs.extend(m.bindings.descending().map(|uid| (uid, *id)));
            m.shown = view_of(&self.retired, m);
            if m.removed.is_none() {
                usage = usage.plus(Usage::new(u64::from(m.size), 1));
            }
        }
        self.usage = usage;
        // Sorted input lets the map be built in bulk. Which message a retired UID
        // points to does not matter: no message is shown at it.
        pairs.sort_unstable();
        pairs.dedup_by_key(|(uid, _)| *uid);
        self.uids = pairs.into_iter().collect();
    }

    /// Drops what every replica has seen: tombstones whose removal is causally stable,
    /// flag dots, and the touch log. Returns (tombstones dropped, dots dropped).
    pub(crate) fn compact(&mut self, stable: &VersionVector) -> (usize, usize) {
        let gone: Vec<MessageId> = self
            .messages
            .iter()
            .filter(|(_, m)| m.removed.is_some_and(|d| stable.contains(d)))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some(m) = self.messages.remove(id) {
                self.forgotten_modseq = self.forgotten_modseq.max(m.modseq);
                for uid in m.bindings.descending() {
                    if self.uids.get(&uid) == Some(id) {
                        self.uids.remove(&uid);
                    }
                }
            }
        }
        let mut dots = 0;
        for m in self.messages.values_mut() {
            dots += m.flags.compact(stable);
        }
        let before = self.recent.len();
        self.recent.retain(|(d, _)| !stable.contains(*d));
        dots += before - self.recent.len();
        self.recent_vv = self
            .recent
            .iter()
            .map(|(d, _)| (d.replica, d.seq))
            .collect();
        (gone.len(), dots)
    }

    /// True when the mailbox is dead and its deletion is known everywhere, so no op can
    /// ever bring it back: it can be forgotten.
    pub(crate) fn is_collectable(&self, stable: &VersionVector) -> bool {
        !self.is_live() && self.delete_ops.le(stable)
    }

    pub(crate) fn unstable_dots(&self) -> usize {
        self.messages
            .values()
            .map(|m| m.flags.unstable_len())
            .sum::<usize>()
            + self.recent.len()
    }
}

/// The view rule (see [`Mailbox::view_of`]), as a function of the retired UIDs.
fn view_of(retired: &BTreeSet<u32>, m: &Message) -> Option<u32> {
    if m.removed.is_some() {
        return None;
    }
    #[cfg(feature = "mutations")]
    if crate::mutations::on(crate::mutations::Mutation::LowestBindingShown) {
        let lowest = m
            .bindings
            .descending()
            .filter(|u| !retired.contains(u))
            .last()?;
        return (lowest > m.floor).then_some(lowest);
    }
    let highest = m.bindings.descending().find(|u| !retired.contains(u))?;
    (highest > m.floor).then_some(highest)
}
