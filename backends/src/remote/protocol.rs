//! The messages of the Store service. Versioned by [`crate::net::PROTOCOL_VERSION`].
//!
//! No frame carries more than [`MAX_CHUNK`] bytes of message bodies. An append whose
//! bodies are larger goes as [`Request::AppendStreamed`] followed by its bodies in
//! [`ToNode::Chunk`]s; an answer with bodies comes as [`Reply::Part`]s of whole bodies
//! and [`Reply::Piece`]s of bodies too large for a part, then the [`Reply::Result`].
//!
//! [`Request`] is made from the one list of calls in `methods.rs`; the rest is written
//! here.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::net::MAX_CHUNK;

use crate::error::StoreError;
use crate::types::*;

/// Makes [`Request`] and [`Request::user`] from the list (`methods.rs`).
macro_rules! request {
    (variants [$($variant:tt)*] about_user [$($user:ident)*] not_about_user [$($no_user:ident)*]
        client [$($_client:tt)*] client_by_hand [$($_client_hand:tt)*] node [$($_node:tt)*]
        node_by_hand [$($_node_hand:tt)*] methods [$($_methods:tt)*]
    ) => {
        /// A call: one variant per [`MailStore`](crate::MailStore) method, its fields the
        /// method's arguments (see [`Arg`](super::Arg)), and the link's own calls. Made
        /// from the list in `methods.rs`, whose order it keeps (postcard numbers the
        /// variants in order).
        #[derive(Debug, Serialize, Deserialize)]
        pub enum Request {
            $($variant)*
        }

        impl Request {
            /// The user the call is about (every call but the link's own bookkeeping).
            pub fn user(&self) -> Option<&UserId> {
                match self {
                    $(Request::$user { user, .. } => Some(user),)*
                    $(Request::$no_user { .. } => None,)*
                }
            }
        }
    };
}
super::methods::store_rpc!(request);

/// How a method's answer travels: the [`Response`] variant of its return type. A
/// method with a new return type needs a variant (at the end) and a line in
/// `answers!` (the build says so).
pub(super) trait Answer: Sized {
    fn into_response(self) -> Response;
    /// A response of another kind comes back as the error.
    fn from_response(response: Response) -> Result<Self, Response>;
}

impl Answer for () {
    fn into_response(self) -> Response {
        Response::Done
    }
    fn from_response(response: Response) -> Result<Self, Response> {
        match response {
            Response::Done => Ok(()),
            other => Err(other),
        }
    }
}

macro_rules! answers {
    ($($type:ty => $variant:ident),* $(,)?) => {$(
        impl Answer for $type {
            fn into_response(self) -> Response {
                Response::$variant(self)
            }
            fn from_response(response: Response) -> Result<Self, Response> {
                match response {
                    Response::$variant(value) => Ok(value),
                    other => Err(other),
                }
            }
        }
    )*};
}

answers! {
    MailboxList => List,
    MailboxStatus => Status,
    MailboxSnapshot => Snapshot,
    Changes => Changes,
    Vec<MessageBody> => Bodies,
    AppendOutcome => Appended,
    StoreOutcome => Stored,
    CopyOutcome => Copied,
    Vec<Uid> => Expunged,
    NodeStatus => NodeStatus,
    RecentRange => Recent,
    Usage => Usage,
    ObjectId => Created,
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
    Usage(Usage),
    /// CREATE's answer: the new mailbox's MAILBOXID.
    Created(ObjectId),
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

/// A frame from client to node.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToNode {
    Call(Call),
    /// The next at most [`MAX_CHUNK`] bytes of the bodies that call `id` (a
    /// [`Request::AppendStreamed`]) announced. A client sends a call's chunks right
    /// after it, before any other call's, so a node holds at most one half-received
    /// call per link from a well-behaved client.
    Chunk {
        id: u64,
        bytes: Bytes,
    },
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
    /// at most [`MAX_CHUNK`] bytes of them, so that no frame has to hold a whole batch
    /// of big messages. The rest follows, the last part as the `Result`. (Added last:
    /// postcard numbers variants in order.)
    Part {
        id: u64,
        bodies: Vec<MessageBody>,
    },
    /// A piece of one body of call `id`'s answer that is larger than [`MAX_CHUNK`]:
    /// its pieces come back to back, in order, each naming the body's UID and whole
    /// length; the body takes its place among the answer's bodies once whole.
    Piece {
        id: u64,
        uid: Uid,
        len: u64,
        bytes: Bytes,
    },
}

/// One frame of an answer's bodies (see [`answer_frames`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyFrame {
    /// Whole bodies, at most [`MAX_CHUNK`] bytes together.
    Whole(Vec<MessageBody>),
    /// A piece of one larger body.
    Piece { uid: Uid, len: u64, bytes: Bytes },
}

/// Cuts an answer's `bodies` into frames: runs of whole bodies of at most
/// [`MAX_CHUNK`] bytes, and the pieces of each larger body. The last frame is always a
/// run (possibly empty): it goes as the `Result`, the others as [`Reply::Part`] and
/// [`Reply::Piece`].
pub(crate) fn answer_frames(bodies: Vec<MessageBody>) -> Vec<BodyFrame> {
    let mut frames = Vec::new();
    let mut run = Vec::new();
    let mut size = 0usize;
    for body in bodies {
        let len = body.bytes.len();
        if len > MAX_CHUNK {
            if !run.is_empty() {
                frames.push(BodyFrame::Whole(std::mem::take(&mut run)));
                size = 0;
            }
            frames.extend(
                crate::net::chunks::pieces(&body.bytes).map(|bytes| BodyFrame::Piece {
                    uid: body.uid,
                    len: len as u64,
                    bytes,
                }),
            );
            continue;
        }
        if size + len > MAX_CHUNK {
            frames.push(BodyFrame::Whole(std::mem::take(&mut run)));
            size = 0;
        }
        size += len;
        run.push(body);
    }
    frames.push(BodyFrame::Whole(run));
    frames
}

/// Splits an append's messages into a call and the bodies to stream after it: bodies
/// ride in the call while they stay within [`MAX_CHUNK`] together; the others are
/// taken out and announced in `streamed`. `None` when every body rides (a plain
/// [`Request::Append`] does then).
pub(crate) fn streamed_append(messages: &mut [NewMessage]) -> Option<(Vec<u64>, Vec<Bytes>)> {
    let mut riding = 0usize;
    let mut streamed = vec![0u64; messages.len()];
    let mut bodies = Vec::new();
    for (m, announced) in messages.iter_mut().zip(&mut streamed) {
        let len = m.body.len();
        if len > 0 && riding + len > MAX_CHUNK {
            *announced = len as u64;
            bodies.push(std::mem::take(&mut m.body));
        } else {
            riding += len;
        }
    }
    (!bodies.is_empty()).then_some((streamed, bodies))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;

    fn body(uid: u32, len: usize) -> MessageBody {
        MessageBody {
            uid: Uid::new(uid).unwrap(),
            bytes: Bytes::from(vec![b'x'; len]),
        }
    }

    fn frame_bytes(frame: &BodyFrame) -> usize {
        match frame {
            BodyFrame::Whole(bodies) => bodies.iter().map(|b| b.bytes.len()).sum(),
            BodyFrame::Piece { bytes, .. } => bytes.len(),
        }
    }

    #[test]
    fn an_answer_is_cut_into_frames_of_at_most_a_chunk() {
        let bodies = vec![
            body(1, 1000),
            body(2, 2 * MAX_CHUNK + 1),
            body(3, MAX_CHUNK - 10),
            body(4, 20),
        ];
        let frames = answer_frames(bodies.clone());
        assert!(frames.iter().all(|f| frame_bytes(f) <= MAX_CHUNK));
        // 1 alone (2 is cut), three pieces of 2, then 3, then 4 as the last run.
        assert_eq!(frames.len(), 6);
        assert!(matches!(&frames[0], BodyFrame::Whole(b) if b.len() == 1));
        assert!(frames[1..4].iter().all(|f| matches!(
            f,
            BodyFrame::Piece { uid, len, .. } if uid.get() == 2 && *len == (2 * MAX_CHUNK + 1) as u64
        )));
        assert!(matches!(frames.last(), Some(BodyFrame::Whole(b)) if b[0].uid.get() == 4));
        // Nothing lost: the pieces put together are the body.
        let cut: Vec<u8> = frames[1..4]
            .iter()
            .flat_map(|f| match f {
                BodyFrame::Piece { bytes, .. } => bytes.to_vec(),
                BodyFrame::Whole(_) => Vec::new(),
            })
            .collect();
        assert_eq!(cut, bodies[1].bytes.to_vec());
        assert_eq!(
            answer_frames(Vec::new()),
            vec![BodyFrame::Whole(Vec::new())]
        );
    }

    #[test]
    fn every_call_keeps_its_number_on_the_wire() {
        // postcard writes a variant's index first: these are the numbers the calls had
        // before the list in `methods.rs` made them, so that nodes and gateways of
        // either side of that change understand each other.
        let user = UserId::new("u").unwrap();
        let name = MailboxName::inbox();
        let uids = vec![Uid::new(1).unwrap()];
        let (u, n) = (|| user.clone(), || name.clone());
        let calls = [
            Request::OpenUser { user: u() },
            Request::List { user: u() },
            Request::CreateMailbox {
                user: u(),
                name: n(),
                special_use: None,
            },
            Request::DeleteMailbox {
                user: u(),
                name: n(),
            },
            Request::RenameMailbox {
                user: u(),
                from: n(),
                to: n(),
            },
            Request::SetSubscribed {
                user: u(),
                name: n(),
                subscribed: true,
            },
            Request::Status {
                user: u(),
                name: n(),
            },
            Request::Select {
                user: u(),
                name: n(),
            },
            Request::ChangesSince {
                user: u(),
                name: n(),
                since: ModSeq(1),
            },
            Request::Watch {
                user: u(),
                name: n(),
            },
            Request::Unwatch { id: 1 },
            Request::Fetch {
                user: u(),
                name: n(),
                uids: uids.clone(),
            },
            Request::Append {
                user: u(),
                name: n(),
                messages: Vec::new(),
            },
            Request::StoreFlags {
                user: u(),
                name: n(),
                uids: uids.clone(),
                change: FlagChange {
                    op: FlagOp::Add,
                    flags: Flags::new(),
                },
                unchanged_since: None,
            },
            Request::Copy {
                user: u(),
                from: n(),
                uids: uids.clone(),
                to: n(),
            },
            Request::Move {
                user: u(),
                from: n(),
                uids: uids.clone(),
                to: n(),
            },
            Request::Expunge {
                user: u(),
                name: n(),
                uids: None,
            },
            Request::NodeStatus,
            Request::FetchHeaders {
                user: u(),
                name: n(),
                uids,
            },
            Request::Recent {
                user: u(),
                name: n(),
                claim: false,
            },
            Request::AppendStreamed {
                user: u(),
                name: n(),
                messages: Vec::new(),
                streamed: Vec::new(),
            },
            Request::Usage { user: u() },
        ];
        for (number, call) in calls.iter().enumerate() {
            let bytes = postcard::to_stdvec(call).unwrap();
            assert_eq!(usize::from(bytes[0]), number, "{call:?}");
            let back: Request = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(format!("{back:?}"), format!("{call:?}"));
            // Whom each call is about: the user, but for the link's bookkeeping.
            let about_nobody = matches!(call, Request::Unwatch { .. } | Request::NodeStatus);
            assert_eq!(call.user().is_none(), about_nobody, "{call:?}");
        }
    }

    #[test]
    fn only_bodies_beyond_a_chunk_together_are_streamed() {
        let new = |len: usize| NewMessage {
            body: Bytes::from(vec![b'y'; len]),
            flags: Flags::new(),
            internal_date: None,
        };
        let mut small = vec![new(10), new(20)];
        assert!(streamed_append(&mut small).is_none());
        let mut mixed = vec![new(MAX_CHUNK - 5), new(10), new(5 * MAX_CHUNK), new(5)];
        let (streamed, bodies) = streamed_append(&mut mixed).unwrap();
        assert_eq!(streamed, vec![0, 10, 5 * MAX_CHUNK as u64, 0]);
        assert_eq!(bodies.len(), 2);
        assert!(mixed[1].body.is_empty() && mixed[2].body.is_empty());
        assert_eq!(mixed[3].body.len(), 5);
    }
}
