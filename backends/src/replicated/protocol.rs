//! The messages of the Replication service (versioned by
//! [`crate::net::PROTOCOL_VERSION`]). The dialing node streams its log; the accepting
//! node applies it. After the handshake the receiver sends [`FromPeer::Welcome`]; then
//! every [`ToPeer`] message gets exactly one final answer ([`FromPeer::Ack`]), possibly
//! after a [`FromPeer::Want`] / [`ToPeer::Blobs`] exchange for missing bodies. One
//! message is in flight at a time: that is the back-pressure. No frame carries more
//! than [`MAX_CHUNK`](crate::net::MAX_CHUNK) bytes of bodies: a larger body never rides
//! with a batch and is answered in [`ToPeer::BlobPiece`]s. After a
//! reconfiguration the sender also reports the data moves it still owes
//! ([`ToPeer::Moves`]), so that the receiver knows when it may serve moved users.

use bytes::Bytes;
use pluto_crdt::{BodyRef, Op, VersionVector};
use serde::{Deserialize, Serialize};

use crate::types::UserId;

/// Sender → receiver.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToPeer {
    Batch(Batch),
    /// A user's whole state, when the log the receiver needs is truncated.
    Snapshot {
        user: UserId,
        state: Vec<u8>,
    },
    /// Bodies the receiver asked for, in parts of bounded size (no frame has to hold
    /// a whole batch of big messages); an empty part ends the answer.
    Blobs(Vec<(BodyRef, Bytes)>),
    /// How many users' whole states (data moves after a reconfiguration) the sender
    /// still owes the receiver, under which configuration; answered with `Ack`.
    ///
    /// Added last on purpose: postcard numbers enum variants by position, so the
    /// variants before it keep their encoding. An older build cannot read this one;
    /// that is fine because every node of a cluster runs the same build (the frame
    /// version is unchanged for that reason).
    Moves(MovesReport),
    /// A piece of one body asked for ([`FromPeer::Want`]) that is larger than
    /// [`MAX_CHUNK`](crate::net::MAX_CHUNK): its pieces come back to back, in order,
    /// among the [`ToPeer::Blobs`] parts of the answer, each naming the body and its
    /// whole length. The receiver refuses a length other than the one the operations
    /// name and pieces past it, and drops a half-received body with the link.
    BlobPiece {
        body: BodyRef,
        len: u64,
        bytes: Bytes,
    },
}

/// See [`ToPeer::Moves`]. The receiver counts itself caught up with the sender only
/// once a report with `pending == 0` names the same configuration as its own, and a
/// batch has then delivered the sender's log up to its head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MovesReport {
    /// The sender and its peers, (name, replica id), sorted.
    pub cluster: Vec<(String, u16)>,
    pub pending: u64,
}

/// Consecutive log records (those for users the receiver holds; the others are
/// skipped but counted in `upto`). An empty batch is the heartbeat.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub records: Vec<WireRecord>,
    /// The receiver holds the sender's log up to here once it has this batch.
    pub upto: u64,
    /// The sender's durable log head when it read the batch: `upto == head` means the
    /// sender had nothing more for the receiver (the backlog is delivered).
    pub head: u64,
    /// The sender's own durable version of users in the batch, for compaction.
    pub progress: Vec<(UserId, VersionVector)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireRecord {
    pub lsn: u64,
    pub user: UserId,
    pub ops: Vec<Op>,
    /// Bodies first stored at the sender by this record's write, riding with it while
    /// the batch's bodies stay within a budget; the others the receiver asks for.
    pub bodies: Vec<(BodyRef, Bytes)>,
}

/// Receiver → sender.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromPeer {
    /// Send from this LSN on (everything before it is durable here).
    Welcome { resume_from: u64 },
    /// The message was applied durably; the sender's log is held up to `upto`.
    Ack { upto: u64 },
    /// These bodies are missing here; send them before the message can be applied.
    Want(Vec<BodyRef>),
    /// As [`FromPeer::Welcome`], from a node recovering its history (it started
    /// without its data): send the ops of its own replica id too, which a sender
    /// otherwise leaves out. Added last, like [`ToPeer::Moves`], for postcard.
    WelcomeRecovering { resume_from: u64 },
}
