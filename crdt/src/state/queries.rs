//! Reads: mailbox lists, snapshots, statuses, changes since a modseq, usage and stats.

use std::collections::BTreeSet;

use pluto_model::rules::namespace;
use pluto_model::{MailboxName, Usage};

use super::{UserState, uid_next, uid_of, view};
use crate::error::CrdtError;
use crate::flags::Flag;
use crate::ids::{MailboxId, ModSeq, Uid, UidValidity, nonzero};
use crate::mailbox::Mailbox;
use crate::op::{BodyRef, OpKind};
use crate::view::{Changes, MailboxInfo, MailboxSnapshot, MailboxStatus, MessageView, StateStats};

impl UserState {
    pub(super) fn resolve(&self, name: &MailboxName) -> Result<&MailboxId, CrdtError> {
        Ok(namespace::found(name, self.names.get(name.as_str()))?)
    }

    /// The mailbox `id`, which `name` resolved to.
    pub(super) fn mailbox(
        &self,
        name: &MailboxName,
        id: &MailboxId,
    ) -> Result<&Mailbox, CrdtError> {
        Ok(namespace::found(name, self.mailboxes.get(id))?)
    }

    pub(super) fn by_name(&self, name: &MailboxName) -> Result<&Mailbox, CrdtError> {
        self.mailbox(name, self.resolve(name)?)
    }

    /// The identity `name` resolves to (a mailbox's incarnation, kept through renames).
    pub fn mailbox_id(&self, name: &MailboxName) -> Result<&MailboxId, CrdtError> {
        self.resolve(name)
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
                    uid_validity: UidValidity(nonzero(mb.uid_validity)),
                    uid_next: uid_next(mb),
                    highest_modseq: ModSeq(mb.modseq),
                })
            })
            .collect()
    }

    /// Every body this state may still need: of every message it keeps (shown, hidden,
    /// or removed but not yet compacted away, in any mailbox, live or not) and of the
    /// ops waiting in the causal buffer. A body outside this set is needed by no one
    /// once no write in progress names it: a removal is forgotten only when every
    /// replica has applied it.
    pub fn referenced_bodies(&self) -> BTreeSet<BodyRef> {
        let kept = self
            .mailboxes
            .values()
            .flat_map(|mb| mb.messages.values().map(|m| m.body));
        let waiting = self.pending.values().flat_map(|op| match &op.kind {
            OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => {
                messages.iter().map(|m| m.data.body).collect::<Vec<_>>()
            }
            _ => Vec::new(),
        });
        kept.chain(waiting).collect()
    }

    /// The bodies of every visible message of every live mailbox, whatever its display
    /// name (a `name~UIDVALIDITY` variant may be too long to be a [`MailboxName`]).
    pub fn visible_bodies(&self) -> BTreeSet<BodyRef> {
        self.names
            .values()
            .filter_map(|id| self.mailboxes.get(id))
            .flat_map(|mb| mb.visible_messages().map(|(_, _, m)| m.body))
            .collect()
    }

    /// What the user's mail uses: the sizes and the number of the messages of every
    /// live mailbox that are not removed (shown, or hidden while they wait for a new
    /// UID: stored all the same). A function of the operations applied, like the view, so
    /// replicas that applied the same ones agree; kept per mailbox as messages appear
    /// and disappear, so this costs one addition per mailbox.
    pub fn usage(&self) -> Usage {
        self.names
            .values()
            .filter_map(|id| self.mailboxes.get(id))
            .fold(Usage::default(), |total, mb| total.plus(mb.usage))
    }

    /// Subscribed names, sorted (they need not exist).
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscriptions.keys().cloned().collect()
    }

    /// The whole mailbox as SELECT needs it.
    pub fn snapshot(&self, mailbox: &MailboxName) -> Result<MailboxSnapshot, CrdtError> {
        let mb = self.by_name(mailbox)?;
        Ok(MailboxSnapshot {
            name: mailbox.clone(),
            uid_validity: UidValidity(nonzero(mb.uid_validity)),
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
    pub fn changes_since(
        &self,
        mailbox: &MailboxName,
        since: ModSeq,
    ) -> Result<Changes, CrdtError> {
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
                    .map(uid_of),
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

    pub fn status(&self, mailbox: &MailboxName) -> Result<MailboxStatus, CrdtError> {
        let mb = self.by_name(mailbox)?;
        let mut status = MailboxStatus {
            messages: 0,
            unseen: 0,
            deleted: 0,
            size: 0,
            uid_next: uid_next(mb),
            uid_validity: UidValidity(nonzero(mb.uid_validity)),
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
    pub fn messages(
        &self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<Vec<MessageView>, CrdtError> {
        let id = self.resolve(mailbox)?;
        Ok(self
            .pick(id, uids)
            .into_iter()
            .map(|(u, msg, m)| view(u.get(), msg, m))
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
}
