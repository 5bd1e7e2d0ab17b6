//! The types the [`MailStore`](crate::MailStore) trait speaks. The validated domain
//! values (user, mailbox name, UID, flags, …) live in `pluto-model` and are re-exported
//! here; this file adds what the store answers (lists, snapshots, outcomes).

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

pub use pluto_model::{
    DEFAULT_MAILBOXES, Flag, FlagChange, FlagOp, Flags, Keyword, MailboxName, ModSeq, ObjectId,
    ObjectKind, SEPARATOR, SpecialUse, Uid, UidValidity, Usage, UserId,
};

/// One existing mailbox, as LIST needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    pub name: MailboxName,
    pub special_use: Option<SpecialUse>,
}

/// A user's mailboxes and subscriptions. A subscription may name a mailbox that does
/// not exist (RFC 3501 allows it; LSUB shows it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxList {
    /// Sorted by name.
    pub mailboxes: Vec<MailboxInfo>,
    /// Sorted by name.
    pub subscriptions: Vec<MailboxName>,
}

/// What STATUS reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxStatus {
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub uid_next: Uid,
    pub uid_validity: UidValidity,
    pub highest_modseq: ModSeq,
    /// Sum of the messages' sizes in bytes.
    pub size: u64,
    /// RFC 8474's MAILBOXID: the same for the mailbox's whole life (through renames,
    /// restarts, on every replica), never the same as another mailbox's of the user.
    pub mailbox_id: ObjectId,
}

/// The messages that are `\Recent` for one session (RFC 3501 2.3.2): the UIDs `u` with
/// `after < u <= upto`; empty when `after == upto`. See [`crate::MailStore::recent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRange {
    pub after: u32,
    pub upto: u32,
}

impl RecentRange {
    pub fn contains(&self, uid: Uid) -> bool {
        self.after < uid.get() && uid.get() <= self.upto
    }
}

/// One message's metadata: everything but its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub uid: Uid,
    pub flags: Flags,
    /// The modseq of the message's last change (append or flag change).
    pub modseq: ModSeq,
    pub internal_date: DateTime<FixedOffset>,
    /// RFC822.SIZE: the exact length of the stored bytes.
    pub size: u32,
    /// RFC 8474's EMAILID: the same for the message's copies (COPY, MOVE) and on every
    /// replica; two messages with one EMAILID have the same bytes.
    pub email_id: ObjectId,
}

/// A mailbox as SELECT sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxSnapshot {
    pub uid_validity: UidValidity,
    /// See [`MailboxStatus::mailbox_id`].
    pub mailbox_id: ObjectId,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    /// Ascending by UID.
    pub messages: Vec<MessageMeta>,
}

/// What changed in a mailbox after a modseq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Changes {
    /// Exactly what changed.
    Delta {
        highest_modseq: ModSeq,
        uid_next: Uid,
        /// Messages appended or whose flags changed after the modseq, ascending by UID.
        updated: Vec<MessageMeta>,
        /// Messages expunged after the modseq, ascending.
        expunged: Vec<Uid>,
    },
    /// The store no longer remembers every expunge since then: here is the whole mailbox;
    /// the caller compares it with what it knows.
    Snapshot(MailboxSnapshot),
}

/// A message to append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub body: Bytes,
    pub flags: Flags,
    /// When `None`, the store uses the time of the append.
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// The answer to an append: UIDPLUS's APPENDUID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub uid_validity: UidValidity,
    /// One per appended message, in order.
    pub uids: Vec<Uid>,
}

/// The answer to a copy or move: UIDPLUS's COPYUID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOutcome {
    /// The destination's UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// (source UID, destination UID) for each message copied, ascending by source UID.
    /// Source UIDs that no longer existed are left out.
    pub mapping: Vec<(Uid, Uid)>,
}

/// The answer to a STORE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOutcome {
    /// Messages whose flags changed, with their new flags and modseq. A store gives them
    /// all one modseq, the mailbox's next HIGHESTMODSEQ (every change to a mailbox takes
    /// one): a caller that knew HIGHESTMODSEQ H and sees H + 1 here knows that nothing
    /// else changed in between, and needs no [`MailStore::changes_since`] for its own
    /// change (the conformance suite checks it).
    ///
    /// [`MailStore::changes_since`]: crate::MailStore::changes_since
    pub updated: Vec<MessageMeta>,
    /// Messages left alone because their modseq was above `unchanged_since` (CONDSTORE).
    pub modified: Vec<Uid>,
}

/// The length of a message's header section, with the empty line that ends it (CRLF or
/// a bare LF); the whole length when there is no empty line.
pub fn header_len(raw: &[u8]) -> usize {
    let mut at = 0;
    while let Some(nl) = raw[at..].iter().position(|&b| b == b'\n') {
        let next = at + nl + 1;
        match raw.get(next..) {
            Some([b'\n', ..]) => return next + 1,
            Some([b'\r', b'\n', ..]) => return next + 2,
            _ => at = next,
        }
    }
    raw.len()
}

/// A message's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    pub uid: Uid,
    pub bytes: Bytes,
}

#[cfg(test)]
mod tests {
    use super::header_len;

    fn header_of(raw: &[u8]) -> &[u8] {
        &raw[..header_len(raw)]
    }

    #[test]
    fn the_header_ends_at_the_first_empty_line() {
        assert_eq!(
            header_of(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_of(b"A: 1\nB: 2\n\nbody\n"), b"A: 1\nB: 2\n\n");
        assert_eq!(header_of(b"A: 1\r\nno body"), b"A: 1\r\nno body");
        assert_eq!(
            header_of(b"\r\nbody"),
            b"\r\nbody",
            "a first line that is empty is no header end here"
        );
    }
}
