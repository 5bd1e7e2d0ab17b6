//! Replication links. Each node dials every peer and streams its own log to it (the
//! sender side); each node accepts its peers' links and applies what they stream (the
//! receiver side). So between two nodes there are two links, one per direction.
//!
//! Sender: connect (mutual TLS, `Service::Replication`) → the receiver names the LSN
//! it needs next (its durable cursor, so re-sending after a reconnect is exact and a
//! receiver that lost its data gets everything again) → if that part of the log is
//! truncated, the receiver gets snapshots of its users first → then batches of
//! durable records, one in flight, each acknowledged once durable at the receiver.
//! An idle link sends an empty batch as a heartbeat; a link that does not answer
//! within the link timeout is dropped and dialed again.
//!
//! Receiver: bodies that rode along are stored, missing ones asked for, then the batch
//! is applied through [`ReplicatedStore::apply_batch`](super::store::ReplicatedStore::apply_batch) (durable, then exposed) and
//! acknowledged. Bodies travel in frames of at most [`MAX_CHUNK`] bytes of them: only
//! smaller ones ride with a batch, and a larger one asked for comes in
//! [`ToPeer::BlobPiece`](super::protocol::ToPeer::BlobPiece)s, put together within the size its operation names.
//!
//! Data moves: after a reconfiguration a peer may hold users it did not hold before,
//! while its cursor is already past their older records (filtered out then). The store
//! queues such users per peer; before each batch the sender reports how many it still
//! owes ([`ToPeer::Moves`](super::protocol::ToPeer::Moves)) and sends each one's snapshot, removing it from the queue
//! once the receiver has installed it and fetched its missing bodies. The receiver
//! keeps the last report, which [`Node::status`](crate::replicated::Node::status) turns into
//! "caught up".

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};

use super::protocol::{FromPeer, MovesReport};
use crate::concurrency::lock;
use crate::error::StoreError;
use crate::net::{FrameError, Framed, MAX_CHUNK};

mod receiver;
mod sender;

pub(crate) use receiver::serve_inbound;
pub(crate) use sender::run_sender;

const MAX_BATCH_RECORDS: usize = 2000;
const MAX_BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Bodies riding along with one batch, and bodies per [`ToPeer::Blobs`](super::protocol::ToPeer::Blobs) frame, in
/// bytes (a body larger than that never rides, and is sent in pieces). Bodies that do
/// not ride are fetched by the receiver ([`FromPeer::Want`]).
const MAX_RIDE_BYTES: usize = MAX_CHUNK;
const HEARTBEAT: Duration = Duration::from_millis(300);

/// What the node knows of one peer's links.
pub(crate) struct PeerLink {
    /// The outbound link is up (the peer answers): the reachability the CRDT uses.
    pub(crate) connected: AtomicBool,
    /// Where (in log bytes) the peer's acknowledged cursor ends.
    pub(crate) acked_bytes: AtomicU64,
    /// The inbound link has delivered the peer's whole backlog at least once since
    /// this node started.
    pub(crate) delivered: AtomicBool,
    /// The outbound link has been welcomed at least once since this node started: the
    /// peer said how far it holds this node's log.
    pub(crate) welcomed: AtomicBool,
    /// Set when the peer leaves the configuration: both its links end.
    pub(crate) retired: watch::Sender<bool>,
    /// Wakes an idle sender when data moves are queued for its peer.
    pub(crate) wake: Notify,
    /// What the peer last reported of the moves it owes this node.
    pub(crate) moves: StdMutex<MovesSeen>,
}

/// The receiver's record of a peer's [`MovesReport`]s.
#[derive(Default)]
pub(crate) struct MovesSeen {
    pub(crate) report: Option<MovesReport>,
    /// After the latest report with nothing pending, a batch delivered the peer's log
    /// up to its head: snapshot plus log, the whole catch-up.
    pub(crate) settled: bool,
}

impl PeerLink {
    pub(crate) fn new() -> Self {
        Self {
            connected: AtomicBool::new(false),
            acked_bytes: AtomicU64::new(0),
            delivered: AtomicBool::new(false),
            welcomed: AtomicBool::new(false),
            retired: watch::channel(false).0,
            wake: Notify::new(),
            moves: StdMutex::new(MovesSeen::default()),
        }
    }

    /// The peer has reported, under `cluster`, that it owes this node no data move,
    /// and its log has reached this node since.
    pub(crate) fn moves_settled(&self, cluster: &[(String, u16)]) -> (Option<u64>, bool) {
        let seen = lock(&self.moves);
        match &seen.report {
            Some(r) if r.cluster == cluster => (Some(r.pending), r.pending == 0 && seen.settled),
            _ => (None, false),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::net::NodeTlsError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

async fn recv<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S>,
    within: Duration,
) -> Result<FromPeer, LinkError> {
    match tokio::time::timeout(within, framed.recv::<FromPeer>()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(LinkError::Timeout(within)),
    }
}
