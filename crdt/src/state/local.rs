//! CREATE, DELETE, RENAME, APPEND, COPY, MOVE, STORE, EXPUNGE and subscriptions made on this
//! replica: each checks the rules, becomes an op and is applied at once.

use std::collections::BTreeSet;

use pluto_model::MailboxName;
use pluto_model::rules::namespace;

#[cfg(feature = "mutations")]
use super::fresh;
use super::{Batch, DEFAULT_UID_VALIDITY, UserState, uid_of, view};
use crate::error::CrdtError;
use crate::flags::FlagChange;
#[cfg(not(feature = "mutations"))]
use crate::ids::fresh;
use crate::ids::{Dot, MailboxId, MessageId, ModSeq, Uid, UidValidity, nonzero};
use crate::mailbox::Message;
#[cfg(feature = "mutations")]
use crate::mutations::{Mutation, on as mutated};
use crate::op::{MessageData, NewMessage, Op, OpKind, SpecialUse};
use crate::view::{AppendOutcome, Applied, CopyOutcome, StoreOutcome};

impl UserState {
    /// CREATE. Parents are not created: the caller creates each missing level. Only
    /// the namespace rule holds here (the name must be free); INBOX is a name like any
    /// other (the RFC rules are the caller's, `pluto_model::rules`).
    pub fn create_mailbox(
        &mut self,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> Result<Vec<Op>, CrdtError> {
        self.check_own_history()?;
        namespace::free(name, self.names.contains_key(name.as_str()))?;
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
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> Result<Vec<Op>, CrdtError> {
        let name = name.as_str();
        if self.incarnations.contains_key(name) || self.names.contains_key(name) {
            return Ok(Vec::new());
        }
        self.check_own_history()?;
        Ok(vec![self.issue(OpKind::Create {
            mailbox: MailboxId {
                name: name.to_owned(),
                incarnation: 0,
            },
            special_use,
            uid_validity: UidValidity(nonzero(DEFAULT_UID_VALIDITY)),
        })])
    }

    pub(super) fn create_op(
        &mut self,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> Result<Op, CrdtError> {
        let incarnation = self
            .incarnations
            .get(name.as_str())
            .map_or(0, |i| i.saturating_add(1));
        #[cfg(feature = "mutations")]
        let incarnation = if mutated(Mutation::IncarnationPerReplica) {
            incarnation.saturating_add(u32::from(self.replica.0))
        } else {
            incarnation
        };
        let uid_validity = fresh(
            self.max_uid_validity,
            self.replica.0,
            self.config.uid_stride,
        )
        .ok_or_else(|| CrdtError::UidsExhausted(name.clone()))?;
        Ok(self.issue(OpKind::Create {
            mailbox: MailboxId {
                name: name.as_str().to_owned(),
                incarnation,
            },
            special_use,
            uid_validity: UidValidity(nonzero(uid_validity)),
        }))
    }

    /// DELETE of one mailbox (the caller refuses INBOX and mailboxes with children).
    pub fn delete_mailbox(&mut self, name: &MailboxName) -> Result<Vec<Op>, CrdtError> {
        self.check_own_history()?;
        let id = self.resolve(name)?.clone();
        Ok(vec![self.issue(OpKind::Delete {
            mailboxes: vec![id],
        })])
    }

    /// RENAME, with everything below the mailbox. Renaming INBOX moves its messages to
    /// a new mailbox and leaves INBOX empty (RFC 3501). Only the namespace rules hold
    /// here (`from` exists, every new name is free); renaming below itself is the
    /// caller's to refuse. A name below `from` that is not a valid mailbox name (a
    /// `name~UIDVALIDITY` variant grown too long, which no caller can name) stays where
    /// it is.
    pub fn rename_mailbox(
        &mut self,
        from: &MailboxName,
        to: &MailboxName,
    ) -> Result<Vec<Op>, CrdtError> {
        self.check_own_history()?;
        let id = self.resolve(from)?.clone();
        if from.is_inbox() {
            namespace::free(to, self.names.contains_key(to.as_str()))?;
            let special_use = self.mailboxes.get(&id).and_then(|m| m.special_use);
            let create = self.create_op(to, special_use)?;
            let uids: Vec<Uid> = self.visible_uids(&id);
            let moved = self.move_messages(from, &uids, to)?;
            return Ok(std::iter::once(create).chain(moved.ops).collect());
        }
        let existing: BTreeSet<MailboxName> = self
            .names
            .keys()
            .filter_map(|name| MailboxName::new(name.as_str()).ok())
            .collect();
        let mut renames = Vec::new();
        for (old, new) in namespace::subtree_moves(from, to, &existing)? {
            let id = self.resolve(&old)?.clone();
            renames.push((id, String::from(new)));
        }
        Ok(vec![self.issue(OpKind::Rename { renames })])
    }

    pub fn subscribe(&mut self, name: &MailboxName) -> Result<Vec<Op>, CrdtError> {
        self.check_own_history()?;
        Ok(vec![self.issue(OpKind::Subscribe {
            name: name.as_str().to_owned(),
        })])
    }

    pub fn unsubscribe(&mut self, name: &MailboxName) -> Result<Vec<Op>, CrdtError> {
        self.check_own_history()?;
        Ok(vec![self.issue(OpKind::Unsubscribe {
            name: name.as_str().to_owned(),
        })])
    }

    /// APPEND: each message gets a fresh UID of this replica, shown at once.
    pub fn append(
        &mut self,
        mailbox: &MailboxName,
        messages: Vec<MessageData>,
    ) -> Result<Applied<AppendOutcome>, CrdtError> {
        self.check_own_history()?;
        let id = self.resolve(mailbox)?.clone();
        let (uid_validity, new) = self.fresh_messages(mailbox, &id, messages)?;
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
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> Result<Applied<CopyOutcome>, CrdtError> {
        self.transfer(from, uids, to, false)
    }

    /// MOVE: a copy and an expunge of the sources, as one operation.
    pub fn move_messages(
        &mut self,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> Result<Applied<CopyOutcome>, CrdtError> {
        self.transfer(from, uids, to, true)
    }

    pub(super) fn transfer(
        &mut self,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
        is_move: bool,
    ) -> Result<Applied<CopyOutcome>, CrdtError> {
        self.check_own_history()?;
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
        let (uid_validity, new) = self.fresh_messages(to, &to_id, data)?;
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
        mailbox: &MailboxName,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> Result<Applied<StoreOutcome>, CrdtError> {
        self.check_own_history()?;
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
        let mb = self.mailbox(mailbox, &id)?;
        let updated = targets
            .iter()
            .filter_map(|(uid, msg)| Some(view(uid.get(), *msg, mb.messages.get(msg)?)))
            .collect();
        Ok(Applied {
            ops: vec![op],
            outcome: StoreOutcome { updated, modified },
        })
    }

    /// EXPUNGE of exactly these UIDs (the caller picks the `\Deleted` ones). Returns
    /// the UIDs expunged, ascending.
    pub fn expunge(
        &mut self,
        mailbox: &MailboxName,
        uids: &[Uid],
    ) -> Result<Applied<Vec<Uid>>, CrdtError> {
        self.check_own_history()?;
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
    pub(super) fn issue(&mut self, kind: OpKind) -> Op {
        let op = Op {
            id: Dot::new(self.replica, self.clock.get(self.replica).saturating_add(1)),
            deps: self.clock.clone(),
            kind,
        };
        self.apply_ready(&op, &mut Batch::local());
        op
    }

    /// Fresh UIDs of this replica for new messages of a mailbox, ascending.
    pub(super) fn fresh_messages(
        &self,
        name: &MailboxName,
        id: &MailboxId,
        messages: Vec<MessageData>,
    ) -> Result<(UidValidity, Vec<NewMessage>), CrdtError> {
        let mb = self.mailbox(name, id)?;
        let mut h = mb.h;
        let mut out = Vec::with_capacity(messages.len());
        for data in messages {
            h = self
                .next_uid(id, h)
                .ok_or_else(|| CrdtError::UidsExhausted(name.clone()))?;
            out.push(NewMessage {
                data,
                uid: uid_of(h),
            });
        }
        Ok((UidValidity(nonzero(mb.uid_validity)), out))
    }

    /// The visible messages among `uids`, ascending and each once.
    pub(super) fn pick(&self, id: &MailboxId, uids: &[Uid]) -> Vec<(Uid, MessageId, &Message)> {
        let Some(mb) = self.mailboxes.get(id) else {
            return Vec::new();
        };
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        uids.into_iter()
            .filter_map(|u| mb.visible(u.get()).map(|(msg, m)| (u, msg, m)))
            .collect()
    }

    pub(super) fn visible_uids(&self, id: &MailboxId) -> Vec<Uid> {
        self.mailboxes
            .get(id)
            .map(|mb| mb.visible_messages().map(|(u, _, _)| uid_of(u)).collect())
            .unwrap_or_default()
    }
}
