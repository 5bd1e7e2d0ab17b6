//! Operations: what a replica persists and sends to its peers. Every IMAP write becomes
//! one or more [`Op`]s; the UID-binding rules add [`OpKind::Bind`] and
//! [`OpKind::Floor`], and dense UIDs [`OpKind::Claim`].

use serde::{Deserialize, Serialize};

use crate::flags::{FlagChange, FlagSet};
use crate::ids::{Dot, MailboxId, MessageId, Uid, UidValidity, VersionVector};

/// A message body's reference: a content hash the caller computes and stores the
/// bytes under. The CRDT never sees the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BodyRef(pub [u8; 32]);

/// An internal date: seconds since the Unix epoch and the zone offset in minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InternalDate {
    pub seconds: i64,
    pub offset_minutes: i16,
}

pub use pluto_model::SpecialUse;

/// A message's immutable content as the caller describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageData {
    pub body: BodyRef,
    pub size: u32,
    pub internal_date: InternalDate,
    /// Its flags when it arrives.
    pub flags: FlagSet,
}

/// A message an operation creates, with the UID its origin bound it to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub data: MessageData,
    pub uid: Uid,
}

/// One operation: its unique id, the operations it depends on (the version vector of
/// its origin when it was made), and what it does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub id: Dot,
    pub deps: VersionVector,
    pub kind: OpKind,
}

/// What an operation does. Mailboxes are named by id, not by name, so an operation
/// follows its mailbox through a concurrent rename.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    /// Creates a mailbox incarnation, proposing a UIDVALIDITY (the highest proposal wins).
    Create {
        mailbox: MailboxId,
        special_use: Option<SpecialUse>,
        uid_validity: UidValidity,
    },
    /// Deletes these mailboxes and every message in them that the operation has seen.
    Delete {
        mailboxes: Vec<MailboxId>,
    },
    /// Gives mailboxes new names (a hierarchy is renamed as one operation).
    Rename {
        renames: Vec<(MailboxId, String)>,
    },
    Subscribe {
        name: String,
    },
    /// Removes the subscriptions the operation has seen (a concurrent subscribe wins).
    Unsubscribe {
        name: String,
    },
    /// APPEND or COPY: new messages, message `i` getting id `(op.id, i)`.
    Append {
        mailbox: MailboxId,
        messages: Vec<NewMessage>,
    },
    /// MOVE: expunges `sources` from `from` and creates `messages` in `to`.
    Move {
        from: MailboxId,
        sources: Vec<MessageId>,
        to: MailboxId,
        messages: Vec<NewMessage>,
    },
    Expunge {
        mailbox: MailboxId,
        messages: Vec<MessageId>,
    },
    StoreFlags {
        mailbox: MailboxId,
        messages: Vec<MessageId>,
        change: FlagChange,
    },
    /// The leader's new UIDs for messages that could not be shown where they were.
    Bind {
        mailbox: MailboxId,
        bindings: Vec<(MessageId, Uid)>,
    },
    /// Hides each message at every UID up to the given one, until a higher binding.
    Floor {
        mailbox: MailboxId,
        floors: Vec<(MessageId, Uid)>,
    },
    /// Claims the UIDs up to `base + window` of every mailbox (its H when claimed; 0
    /// for one not named) for dense binding by the origin, once every member holds it.
    Claim {
        window: u32,
        bases: Vec<(MailboxId, u32)>,
    },
}

impl OpKind {
    /// The mailboxes the operation touches, each once.
    pub fn mailboxes(&self) -> Vec<&MailboxId> {
        match self {
            OpKind::Create { mailbox, .. }
            | OpKind::Append { mailbox, .. }
            | OpKind::Expunge { mailbox, .. }
            | OpKind::StoreFlags { mailbox, .. }
            | OpKind::Bind { mailbox, .. }
            | OpKind::Floor { mailbox, .. } => vec![mailbox],
            OpKind::Move { from, to, .. } if from == to => vec![from],
            OpKind::Move { from, to, .. } => vec![from, to],
            OpKind::Delete { mailboxes } => {
                let mut out: Vec<&MailboxId> = mailboxes.iter().collect();
                out.sort();
                out.dedup();
                out
            }
            OpKind::Rename { renames } => {
                let mut out: Vec<&MailboxId> = renames.iter().map(|(m, _)| m).collect();
                out.sort();
                out.dedup();
                out
            }
            OpKind::Subscribe { .. } | OpKind::Unsubscribe { .. } | OpKind::Claim { .. } => {
                Vec::new()
            }
        }
    }
}

impl Op {
    /// The op's place in a total order that extends causality: used where concurrent
    /// writes to one register (a mailbox's name) must pick a winner everywhere alike.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            lamport: self.deps.sum().saturating_add(1),
            dot: self.id,
        }
    }
}

/// See [`Op::stamp`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    pub lamport: u64,
    pub dot: Dot,
}
