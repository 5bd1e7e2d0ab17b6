//! The crate's one error type. Written out by hand: the crate depends on serde only.

use std::fmt;

use crate::ids::Dot;

/// What can go wrong in the CRDT. Local writes fail on a bad request (a name that does
/// not exist, …); remote batches fail on an operation that breaks the protocol's rules,
/// before any of the batch is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrdtError {
    /// No mailbox has this name.
    MailboxNotFound(String),
    /// A mailbox already has this name.
    MailboxExists(String),
    /// The mailbox's UID space (or the user's UIDVALIDITY space) is used up.
    UidsExhausted(String),
    /// The configuration cannot work (a replica id not below the UID stride, …).
    InvalidConfig(String),
    /// A remote operation breaks the protocol (a UID of another replica's residue, …).
    InvalidOp { op: Dot, reason: &'static str },
    /// A snapshot could not be encoded or decoded.
    Snapshot(String),
    /// A snapshot of a format version this code does not read.
    SnapshotVersion(u32),
}

impl fmt::Display for CrdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrdtError::MailboxNotFound(name) => write!(f, "no mailbox is named {name:?}"),
            CrdtError::MailboxExists(name) => write!(f, "a mailbox is already named {name:?}"),
            CrdtError::UidsExhausted(name) => write!(f, "mailbox {name:?} has no UIDs left"),
            CrdtError::InvalidConfig(why) => write!(f, "invalid CRDT configuration: {why}"),
            CrdtError::InvalidOp { op, reason } => write!(f, "invalid operation {op}: {reason}"),
            CrdtError::Snapshot(why) => write!(f, "bad snapshot: {why}"),
            CrdtError::SnapshotVersion(v) => {
                write!(f, "snapshot format version {v} is not supported")
            }
        }
    }
}

impl std::error::Error for CrdtError {}
