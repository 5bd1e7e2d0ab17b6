//! The crate's one error type. Written out by hand: the crate depends on serde only.

use std::fmt;

use pluto_model::{MailboxName, MailboxRefusal};

use crate::ids::{Dot, ReplicaId};

/// What can go wrong in the CRDT. Local writes fail on a bad request (a name that does
/// not exist, …); remote batches fail on an operation that breaks the protocol's rules,
/// before any of the batch is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrdtError {
    /// A local write the mailbox rules' namespace part refuses (`pluto_model::rules::
    /// namespace`): no mailbox has the name, a mailbox already has it, a name below a
    /// renamed mailbox would be too long. The refusal names its mailbox.
    Mailbox(MailboxRefusal),
    /// The mailbox's UID space (or the user's UIDVALIDITY space) is used up.
    UidsExhausted(MailboxName),
    /// The configuration cannot work (a replica id not below the UID stride, …).
    InvalidConfig(String),
    /// A remote operation breaks the protocol (a UID of another replica's residue, …).
    InvalidOp { op: Dot, reason: &'static str },
    /// A snapshot could not be encoded or decoded.
    Snapshot(String),
    /// This replica may not issue operations: peers know of operations of its own id
    /// beyond its counter (`known > issued`: it restarted without its history, and a
    /// new op would reuse one of their dots), or it waits to hear every other member's
    /// progress first (`awaiting`, see `UserState::await_peers`) and to hold what those
    /// reports name. It issues again once it holds its own history up to `known` (from
    /// a peer's log or snapshot) and, after `await_peers`, what its peers held.
    OwnHistoryMissing {
        replica: ReplicaId,
        issued: u64,
        known: u64,
        awaiting: usize,
    },
    /// A remote operation carries the dot of a different operation this replica holds
    /// (a replica that restarted empty under its old id and wrote anyway).
    DotReused(Dot),
    /// A snapshot of a format version this code does not read.
    SnapshotVersion(u32),
}

impl fmt::Display for CrdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrdtError::Mailbox(refusal) => refusal.fmt(f),
            CrdtError::UidsExhausted(name) => write!(f, "mailbox {name} has no UIDs left"),
            CrdtError::InvalidConfig(why) => write!(f, "invalid CRDT configuration: {why}"),
            CrdtError::InvalidOp { op, reason } => write!(f, "invalid operation {op}: {reason}"),
            CrdtError::Snapshot(why) => write!(f, "bad snapshot: {why}"),
            CrdtError::OwnHistoryMissing {
                replica,
                issued,
                known,
                awaiting,
            } => {
                if known > issued {
                    write!(
                        f,
                        "replica {replica} has issued {issued} operations but peers hold {known} \
                         of its id: it restarted without its history and must recover it from a \
                         peer before it writes"
                    )
                } else if *awaiting > 0 {
                    write!(
                        f,
                        "replica {replica} waits for the progress of {awaiting} more peers before \
                         it writes (it may have lost its history)"
                    )
                } else {
                    write!(
                        f,
                        "replica {replica} is catching up with what its peers held when it \
                         started before it writes (it may have lost its history)"
                    )
                }
            }
            CrdtError::DotReused(dot) => write!(
                f,
                "operation {dot} differs from the one this replica holds under that id: its \
                 origin reused the id (restarted without its history?)"
            ),
            CrdtError::SnapshotVersion(v) => {
                write!(f, "snapshot format version {v} is not supported")
            }
        }
    }
}

impl std::error::Error for CrdtError {}

impl From<MailboxRefusal> for CrdtError {
    fn from(refusal: MailboxRefusal) -> Self {
        CrdtError::Mailbox(refusal)
    }
}
