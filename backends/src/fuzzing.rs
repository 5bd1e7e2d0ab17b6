//! Entry points for the fuzz targets in `fuzz/` (see docs/FUZZING.md): what each end of
//! an internal link does with the bytes it receives, reachable without TLS, a data
//! directory or a peer. Not an API: hidden from the docs, and nothing in pluto calls it.

use pluto_crdt::{Config, ReplicaId, UserState};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::net::{FrameError, Framed, Hello, PROTOCOL_VERSION};
use crate::remote::protocol::{Reply, ToNode};
use crate::replicated::protocol::{FromPeer, ToPeer};
use crate::replicated::store::reshape_snapshot;

/// Which end of which link the bytes arrive at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// A node's Store service, reading a gateway's calls.
    StoreNode,
    /// A gateway's store client, reading a node's replies.
    StoreGateway,
    /// A node accepting a replication link, reading the sender's log and snapshots.
    ReplicationReceiver,
    /// A node streaming its log, reading the receiver's answers.
    ReplicationSender,
}

/// Reads `stream` as that end of a link does: the frames (length-delimited, at most
/// [`MAX_FRAME`](crate::net::frame::MAX_FRAME)), a [`Hello`] and then messages until the
/// stream ends or a frame is refused. A replication receiver also does with each
/// message what the node does before it touches its disk: it reshapes and checks a
/// snapshot, and applies a batch's operations to a user's CRDT state. Returns how many
/// messages were read.
pub async fn read_link<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    end: LinkEnd,
) -> Result<usize, FrameError> {
    let mut framed = Framed::new(stream);
    let hello: Hello = framed.recv().await?;
    if hello.version != PROTOCOL_VERSION {
        return Err(FrameError::Version {
            ours: PROTOCOL_VERSION,
            theirs: hello.version,
        });
    }
    let mut count = 0;
    loop {
        let read = match end {
            LinkEnd::StoreNode => framed.recv::<ToNode>().await.map(drop),
            LinkEnd::StoreGateway => framed.recv::<Reply>().await.map(drop),
            LinkEnd::ReplicationReceiver => framed.recv::<ToPeer>().await.map(receive),
            LinkEnd::ReplicationSender => framed.recv::<FromPeer>().await.map(drop),
        };
        match read {
            Ok(()) => count += 1,
            Err(FrameError::Closed) => return Ok(count),
            Err(e) => return Err(e),
        }
    }
}

/// The CRDT work a receiving node does with a message (its disk and blob work aside).
fn receive(message: ToPeer) {
    let members = vec![ReplicaId(1), ReplicaId(2)];
    let config = Config {
        uid_stride: 4,
        members: members.clone(),
    };
    match message {
        ToPeer::Snapshot { state, .. } => {
            let Ok(mut state) = reshape_snapshot(&state, ReplicaId(1), Some(members)) else {
                return;
            };
            let waiting = state.pending_ops();
            let _ = state.stats();
            let _ = state.apply_remote(waiting);
            let _ = state.set_reachable([ReplicaId(2)]);
            let _ = state.bind_hidden();
            let _ = state.encode_snapshot();
        }
        ToPeer::Batch(batch) => {
            let Ok(mut state) = UserState::new(ReplicaId(1), config) else {
                return;
            };
            for record in batch.records {
                let _ = state.apply_remote(record.ops);
            }
            for (_, version) in batch.progress {
                let _ = state.report_progress(ReplicaId(2), &version);
            }
            let _ = state.stable_version();
            let _ = state.compact();
        }
        ToPeer::Blobs(_) | ToPeer::Moves(_) | ToPeer::BlobPiece { .. } => {}
    }
}

/// Well-formed inputs for the `store_frames` target, one per link end: the first byte
/// picks the end as that target reads it (0–3, in [`LinkEnd`] order), then a Hello and
/// a few real messages, each behind its 4-byte big-endian length as on a link.
pub fn seed_links() -> Result<Vec<Vec<u8>>, String> {
    use crate::net::Service;
    use crate::remote::protocol::{Call, Request, Response, WireError};
    use crate::replicated::protocol::{Batch, MovesReport, WireRecord};
    use crate::types::{FlagChange, FlagOp, Flags, MailboxName, ModSeq, NewMessage, UserId};
    use bytes::Bytes;
    use pluto_crdt::{BodyRef, InternalDate, MessageData};

    fn frame<T: serde::Serialize>(out: &mut Vec<u8>, message: &T) -> Result<(), String> {
        let bytes = postcard::to_stdvec(message).map_err(|e| e.to_string())?;
        let len = u32::try_from(bytes.len()).map_err(|e| e.to_string())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
        Ok(())
    }
    let hello = |service| Hello {
        version: PROTOCOL_VERSION,
        node: "fuzz".to_owned(),
        service,
    };
    let user = UserId::new("alice").map_err(|e| e.to_string())?;
    let inbox = MailboxName::new("INBOX").map_err(|e| e.to_string())?;
    let uid = crate::types::Uid::new(1).ok_or("UID 1")?;

    let mut node = vec![0];
    frame(&mut node, &hello(Service::Store))?;
    let calls = [
        Request::OpenUser { user: user.clone() },
        Request::Append {
            user: user.clone(),
            name: inbox.clone(),
            messages: vec![NewMessage {
                body: Bytes::from_static(b"Subject: hi\r\n\r\nbody\r\n"),
                flags: Flags::new(),
                internal_date: None,
            }],
        },
        Request::StoreFlags {
            user: user.clone(),
            name: inbox.clone(),
            uids: vec![uid],
            change: FlagChange {
                op: FlagOp::Add,
                flags: Flags::new(),
            },
            unchanged_since: Some(ModSeq(3)),
        },
        Request::Fetch {
            user: user.clone(),
            name: inbox.clone(),
            uids: vec![uid],
        },
    ];
    for (id, request) in calls.into_iter().enumerate() {
        frame(
            &mut node,
            &ToNode::Call(Call {
                id: id as u64,
                request,
            }),
        )?;
    }
    frame(
        &mut node,
        &ToNode::Call(Call {
            id: 9,
            request: Request::AppendStreamed {
                user: user.clone(),
                name: inbox.clone(),
                messages: vec![NewMessage {
                    body: Bytes::new(),
                    flags: Flags::new(),
                    internal_date: None,
                }],
                streamed: vec![21],
            },
        }),
    )?;
    frame(
        &mut node,
        &ToNode::Chunk {
            id: 9,
            bytes: Bytes::from_static(b"Subject: hi\r\n\r\nbody\r\n"),
        },
    )?;

    let mut gateway = vec![1];
    frame(&mut gateway, &hello(Service::Store))?;
    frame(
        &mut gateway,
        &Reply::Result {
            id: 0,
            response: Response::Done,
        },
    )?;
    frame(
        &mut gateway,
        &Reply::Notify {
            id: 0,
            modseq: ModSeq(9),
        },
    )?;
    frame(
        &mut gateway,
        &Reply::Piece {
            id: 1,
            uid,
            len: 4,
            bytes: Bytes::from_static(b"ab"),
        },
    )?;
    frame(
        &mut gateway,
        &Reply::Result {
            id: 1,
            response: Response::Error(WireError::NoSuchMailbox(inbox)),
        },
    )?;

    let config = Config {
        uid_stride: 4,
        members: vec![ReplicaId(1), ReplicaId(2)],
    };
    let mut peer = UserState::new(ReplicaId(2), config).map_err(|e| e.to_string())?;
    let mut ops = peer
        .create_mailbox(&MailboxName::inbox(), None)
        .map_err(|e| e.to_string())?;
    let message = MessageData {
        body: BodyRef([1; 32]),
        size: 22,
        internal_date: InternalDate::default(),
        flags: pluto_crdt::FlagSet::new(),
    };
    ops.extend(
        peer.append(&MailboxName::inbox(), vec![message])
            .map_err(|e| e.to_string())?
            .ops,
    );
    let mut receiver = vec![2];
    frame(&mut receiver, &hello(Service::Replication))?;
    frame(
        &mut receiver,
        &ToPeer::Batch(Batch {
            records: vec![WireRecord {
                lsn: 1,
                user: user.clone(),
                ops,
                bodies: vec![(BodyRef([1; 32]), Bytes::from_static(b"x"))],
            }],
            upto: 1,
            head: 1,
            progress: vec![(user.clone(), peer.version().clone())],
        }),
    )?;
    frame(
        &mut receiver,
        &ToPeer::Snapshot {
            user,
            state: peer.encode_snapshot().map_err(|e| e.to_string())?,
        },
    )?;
    frame(
        &mut receiver,
        &ToPeer::Moves(MovesReport {
            cluster: vec![("a".to_owned(), 1), ("b".to_owned(), 2)],
            pending: 0,
        }),
    )?;
    frame(
        &mut receiver,
        &ToPeer::BlobPiece {
            body: BodyRef([1; 32]),
            len: 22,
            bytes: Bytes::from_static(b"Subject: hi"),
        },
    )?;

    let mut sender = vec![3];
    frame(&mut sender, &hello(Service::Replication))?;
    frame(&mut sender, &FromPeer::Welcome { resume_from: 1 })?;
    frame(&mut sender, &FromPeer::Want(vec![BodyRef([1; 32])]))?;
    frame(&mut sender, &FromPeer::Ack { upto: 1 })?;
    Ok(vec![node, gateway, receiver, sender])
}
