//! The messages of the Store service. Versioned by [`crate::net::PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::types::*;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    OpenUser {
        user: UserId,
    },
    List {
        user: UserId,
    },
    CreateMailbox {
        user: UserId,
        name: MailboxName,
        special_use: Option<SpecialUse>,
    },
    DeleteMailbox {
        user: UserId,
        name: MailboxName,
    },
    RenameMailbox {
        user: UserId,
        from: MailboxName,
        to: MailboxName,
    },
    SetSubscribed {
        user: UserId,
        name: MailboxName,
        subscribed: bool,
    },
    Status {
        user: UserId,
        name: MailboxName,
    },
    Select {
        user: UserId,
        name: MailboxName,
    },
    ChangesSince {
        user: UserId,
        name: MailboxName,
        since: ModSeq,
    },
    /// Starts a change feed; notifications carry this call's id.
    Watch {
        user: UserId,
        name: MailboxName,
    },
    /// Ends the feed started by the call `id`.
    Unwatch {
        id: u64,
    },
    Fetch {
        user: UserId,
        name: MailboxName,
        uids: Vec<Uid>,
    },
    Append {
        user: UserId,
        name: MailboxName,
        messages: Vec<NewMessage>,
    },
    StoreFlags {
        user: UserId,
        name: MailboxName,
        uids: Vec<Uid>,
        change: FlagChange,
        unchanged_since: Option<ModSeq>,
    },
    Copy {
        user: UserId,
        from: MailboxName,
        uids: Vec<Uid>,
        to: MailboxName,
    },
    Move {
        user: UserId,
        from: MailboxName,
        uids: Vec<Uid>,
        to: MailboxName,
    },
    Expunge {
        user: UserId,
        name: MailboxName,
        uids: Option<Vec<Uid>>,
    },
    /// The node's health: whether it is caught up and how far its peers lag.
    NodeStatus,
    /// [`MailStore::fetch_headers`](crate::MailStore::fetch_headers). (New variants go at
    /// the end: postcard numbers them in order.)
    FetchHeaders {
        user: UserId,
        name: MailboxName,
        uids: Vec<Uid>,
    },
    /// [`MailStore::recent`](crate::MailStore::recent): answered by the node's own
    /// claims, so sessions through every gateway share them.
    Recent {
        user: UserId,
        name: MailboxName,
        claim: bool,
    },
}

impl Request {
    /// The user the call is about (every call but the link's own bookkeeping).
    pub fn user(&self) -> Option<&UserId> {
        use Request as R;
        match self {
            R::OpenUser { user }
            | R::List { user }
            | R::CreateMailbox { user, .. }
            | R::DeleteMailbox { user, .. }
            | R::RenameMailbox { user, .. }
            | R::SetSubscribed { user, .. }
            | R::Status { user, .. }
            | R::Select { user, .. }
            | R::ChangesSince { user, .. }
            | R::Watch { user, .. }
            | R::Fetch { user, .. }
            | R::Append { user, .. }
            | R::StoreFlags { user, .. }
            | R::Copy { user, .. }
            | R::Move { user, .. }
            | R::Expunge { user, .. }
            | R::FetchHeaders { user, .. }
            | R::Recent { user, .. } => Some(user),
            R::Unwatch { .. } | R::NodeStatus => None,
        }
    }
}

/// Whether a node serves a user: `Err(reason)` refuses every call about them with
/// [`StoreError::Unavailable`] (a node serves only the users the ring places on it).
pub type AdmitFn = std::sync::Arc<dyn Fn(&UserId) -> Result<(), String> + Send + Sync>;

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Done,
    List(MailboxList),
    Status(MailboxStatus),
    Snapshot(MailboxSnapshot),
    Changes(Changes),
    Watching,
    Bodies(Vec<MessageBody>),
    Appended(AppendOutcome),
    Stored(StoreOutcome),
    Copied(CopyOutcome),
    Expunged(Vec<Uid>),
    NodeStatus(NodeStatus),
    Error(WireError),
    /// (New variants go at the end: postcard numbers them in order.)
    Recent(RecentRange),
}

/// A node's health, as gateways and `pluto cluster status` see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    /// The node has received everything its peers held for it since it started, and
    /// may serve sessions (fail-back waits for this).
    pub caught_up: bool,
    pub peers: Vec<PeerStatus>,
}

/// Replication towards one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    pub connected: bool,
    /// Operations this node holds that the peer has not acknowledged.
    pub ops_behind: u64,
    /// The bytes of those operations (bodies included).
    pub bytes_behind: u64,
}

/// What a node reports about itself.
pub type StatusFn = std::sync::Arc<dyn Fn() -> NodeStatus + Send + Sync>;

/// Client → node.
#[derive(Debug, Serialize, Deserialize)]
pub struct Call {
    pub id: u64,
    pub request: Request,
}

/// Node → client.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Result {
        id: u64,
        response: Response,
    },
    /// The mailbox watched by call `id` changed; its highest modseq is now at least this.
    Notify {
        id: u64,
        modseq: ModSeq,
    },
    /// Part of the answer to call `id`: some of its bodies (a [`Response::Bodies`]),
    /// so that no frame has to hold a whole batch of big messages. The rest follows,
    /// the last part as the `Result`. (Added last: postcard numbers variants in order.)
    Part {
        id: u64,
        bodies: Vec<MessageBody>,
    },
}

/// Bodies per [`Reply::Part`] frame, in bytes: a part holds bodies up to this much, or
/// one body alone when it is larger (a body is at most [`crate::net::MAX_BODY`]), so a
/// part always fits in a frame.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Cuts `bodies` into runs of at most [`PART_BYTES`] (or one larger body): every run
/// but the last is sent as a [`Reply::Part`].
pub fn split_bodies(bodies: Vec<MessageBody>) -> Vec<Vec<MessageBody>> {
    let mut parts = vec![Vec::new()];
    let mut size = 0usize;
    for body in bodies {
        let len = body.bytes.len();
        if size > 0 && size + len > PART_BYTES {
            parts.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(last) = parts.last_mut() {
            last.push(body);
        }
    }
    parts
}

/// A [`StoreError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireError {
    NoSuchMailbox(MailboxName),
    MailboxExists(MailboxName),
    InvalidName(String),
    NotAllowed(String),
    TooBig {
        limit: u64,
    },
    OverQuota,
    Unavailable(String),
    Io(String),
    Corrupt(String),
    /// Appended last: older peers decode every variant before it unchanged.
    DiskFull(String),
    /// Appended after `DiskFull`, for the same reason.
    Unanswered(String),
}

impl From<StoreError> for WireError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchMailbox(n) => WireError::NoSuchMailbox(n),
            StoreError::MailboxExists(n) => WireError::MailboxExists(n),
            StoreError::InvalidName(r) => WireError::InvalidName(r.reason().to_owned()),
            StoreError::NotAllowed(t) => WireError::NotAllowed(t),
            StoreError::TooBig { limit } => WireError::TooBig { limit },
            StoreError::OverQuota => WireError::OverQuota,
            StoreError::Unavailable(r) => WireError::Unavailable(r),
            // A node's own store has no remote calls; should one ever lose an answer,
            // the gateway must not say NO either.
            StoreError::Unanswered(r) => WireError::Unanswered(r),
            StoreError::Io(e) => WireError::Io(e.to_string()),
            StoreError::Corrupt(r) => WireError::Corrupt(r),
            StoreError::DiskFull(e) => WireError::DiskFull(e.to_string()),
        }
    }
}

impl From<WireError> for StoreError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NoSuchMailbox(n) => StoreError::NoSuchMailbox(n),
            WireError::MailboxExists(n) => StoreError::MailboxExists(n),
            WireError::InvalidName(r) => StoreError::NotAllowed(format!("invalid name: {r}")),
            WireError::NotAllowed(t) => StoreError::NotAllowed(t),
            WireError::TooBig { limit } => StoreError::TooBig { limit },
            WireError::OverQuota => StoreError::OverQuota,
            WireError::Unavailable(r) => StoreError::Unavailable(r),
            WireError::Unanswered(r) => StoreError::Unanswered(r),
            WireError::Io(r) => StoreError::Io(std::io::Error::other(format!("on the node: {r}"))),
            WireError::Corrupt(r) => StoreError::Corrupt(r),
            WireError::DiskFull(r) => StoreError::DiskFull(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("on the node: {r}"),
            )),
        }
    }
}
