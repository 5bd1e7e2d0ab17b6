//! What queries return: plain values a backend turns into its own types.

use pluto_model::MailboxName;
use serde::{Deserialize, Serialize};

use crate::flags::FlagSet;
use crate::ids::{MailboxId, MessageId, ModSeq, Uid, UidValidity, VersionVector};
use crate::op::{BodyRef, InternalDate, SpecialUse};

/// One mailbox as LIST and STATUS see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    /// The display name: the mailbox's name, or `name~UIDVALIDITY` when live
    /// mailboxes share a name (see `UserState::mailboxes`), which may be too long to be
    /// a [`MailboxName`]; hence a string.
    pub name: String,
    pub id: MailboxId,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
    pub uid_validity: UidValidity,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
}

/// One visible message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub uid: Uid,
    pub id: MessageId,
    pub flags: FlagSet,
    pub modseq: ModSeq,
    pub body: BodyRef,
    pub size: u32,
    pub internal_date: InternalDate,
}

/// A mailbox as SELECT sees it: its visible messages ascending by UID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxSnapshot {
    pub name: MailboxName,
    pub uid_validity: UidValidity,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    pub messages: Vec<MessageView>,
}

/// What changed in a mailbox after a modseq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Changes {
    Delta {
        highest_modseq: ModSeq,
        uid_next: Uid,
        /// Visible messages that appeared or changed, ascending by UID.
        updated: Vec<MessageView>,
        /// UIDs that stopped showing a message (ascending). May name UIDs the client
        /// never saw, as RFC 7162's VANISHED (EARLIER) allows.
        expunged: Vec<Uid>,
    },
    /// Compaction forgot some expunges since then: take a [`MailboxSnapshot`].
    TooOld,
}

/// STATUS counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxStatus {
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
    /// Sum of the visible messages' sizes.
    pub size: u64,
    pub uid_next: Uid,
    pub uid_validity: UidValidity,
    pub highest_modseq: ModSeq,
}

/// UIDPLUS's APPENDUID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub uid_validity: UidValidity,
    pub uids: Vec<Uid>,
}

/// UIDPLUS's COPYUID: (source UID, new UID), ascending by source UID; source UIDs that
/// showed nothing are left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOutcome {
    pub uid_validity: UidValidity,
    pub mapping: Vec<(Uid, Uid)>,
}

/// The answer to a STORE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOutcome {
    /// The messages the STORE changed, with their flags and modseq after it.
    pub updated: Vec<MessageView>,
    /// Left alone because their modseq was above `unchanged_since` (CONDSTORE).
    pub modified: Vec<Uid>,
}

/// A local write's result: the ops to persist and replicate (already applied to the
/// state), and what to tell the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<T> {
    pub ops: Vec<crate::op::Op>,
    pub outcome: T,
}

/// What [`UserState::compact`](crate::UserState::compact) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionReport {
    /// The causally stable version: operations every replica has applied. `None` when
    /// some member's progress is unknown, and nothing was dropped.
    pub stable: Option<VersionVector>,
    pub tombstones_dropped: usize,
    pub mailboxes_dropped: usize,
    pub dots_dropped: usize,
}

/// Sizes of the state, for metrics and for tests of compaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateStats {
    pub mailboxes: usize,
    /// Deleted mailboxes still remembered until their deletion is stable.
    pub dead_mailboxes: usize,
    pub visible_messages: usize,
    /// Messages neither removed nor shown (waiting for the leader's new UID).
    pub hidden_messages: usize,
    pub tombstones: usize,
    /// Flag-add dots and touch records not yet causally stable.
    pub unstable_dots: usize,
    /// Remote operations waiting for their causal dependencies.
    pub pending_ops: usize,
}
