//! Frames on an internal link: each a postcard-encoded message behind a 4-byte length
//! (tokio-util's length-delimited codec), at most [`MAX_FRAME`] bytes. Every link
//! starts with a [`Hello`] from each side naming the protocol version, the node and the
//! service; a version mismatch ends the link with a clear error, never a misread.

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed as TokioFramed, LengthDelimitedCodec};

/// Bumped on any incompatible change to a message on any service. Version 2: bodies
/// larger than [`MAX_CHUNK`](super::chunks::MAX_CHUNK) travel in pieces (Store calls
/// and answers, replication). Version 3: the CRDT's `Claim` op (dense UIDs), and
/// snapshots of format 2. Version 4: RFC 8474's object ids in the Store answers
/// (MAILBOXID in statuses and snapshots, EMAILID per message, CREATE's answer).
pub const PROTOCOL_VERSION: u16 = 4;

/// The largest frame either end reads. Bodies travel in pieces of at most
/// [`MAX_CHUNK`](super::chunks::MAX_CHUNK), so a frame this large only ever holds many
/// small things (a long list of UIDs, a big snapshot), never a message body.
pub const MAX_FRAME: usize = 80 * 1024 * 1024;

/// What a link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    /// A gateway calling a node's MailStore.
    Store,
    /// Two nodes exchanging CRDT operations.
    Replication,
}

/// The first frame each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub node: String,
    pub service: Service,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("link closed")]
    Closed,
    #[error("link I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("peer speaks protocol version {theirs}, this node {ours}")]
    Version { ours: u16, theirs: u16 },
    #[error("peer asked for the {theirs:?} service, this end serves {ours:?}")]
    WrongService { ours: Service, theirs: Service },
    /// Refused before anything was written: the link is still usable.
    #[error("a message of {len} bytes does not fit in a frame (at most {MAX_FRAME})")]
    TooLarge { len: usize },
}

/// A framed, typed link.
pub struct Framed<S> {
    inner: TokioFramed<S, LengthDelimitedCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    pub fn new(stream: S) -> Self {
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(MAX_FRAME)
            .new_codec();
        Self {
            inner: TokioFramed::new(stream, codec),
        }
    }

    /// The stream under the frames (to look at its TLS session).
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// Sends one message. One too large for a frame is refused with
    /// [`FrameError::TooLarge`] before a byte is written, so the link stays usable.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), FrameError> {
        self.inner.send(encode(message)?).await?;
        Ok(())
    }

    /// The next message, or `Closed` when the peer hung up.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        decode(self.inner.next().await)
    }

    /// The sending and the receiving half, to use at once from two tasks (or two
    /// branches of one): a link whose one end always reads cannot deadlock with both
    /// ends writing big frames. Split after the handshake.
    pub fn split(self) -> (FrameSender<S>, FrameReceiver<S>) {
        let (sink, stream) = self.inner.split();
        (FrameSender { sink }, FrameReceiver { stream })
    }

    /// Exchanges [`Hello`]s; returns the peer's node name.
    pub async fn handshake(&mut self, node: &str, service: Service) -> Result<String, FrameError> {
        self.send(&Hello {
            version: PROTOCOL_VERSION,
            node: node.to_owned(),
            service,
        })
        .await?;
        let theirs: Hello = self.recv().await?;
        if theirs.version != PROTOCOL_VERSION {
            return Err(FrameError::Version {
                ours: PROTOCOL_VERSION,
                theirs: theirs.version,
            });
        }
        if theirs.service != service {
            return Err(FrameError::WrongService {
                ours: service,
                theirs: theirs.service,
            });
        }
        Ok(theirs.node)
    }
}

fn encode<T: Serialize>(message: &T) -> Result<Bytes, FrameError> {
    let bytes = postcard::to_stdvec(message)?;
    if bytes.len() > MAX_FRAME {
        return Err(FrameError::TooLarge { len: bytes.len() });
    }
    Ok(Bytes::from(bytes))
}

fn decode<T: DeserializeOwned>(
    frame: Option<Result<bytes::BytesMut, std::io::Error>>,
) -> Result<T, FrameError> {
    match frame {
        Some(frame) => Ok(postcard::from_bytes(&frame?)?),
        None => Err(FrameError::Closed),
    }
}

/// The sending half of a [`Framed`] link.
pub struct FrameSender<S> {
    sink: SplitSink<TokioFramed<S, LengthDelimitedCodec>, Bytes>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameSender<S> {
    /// [`Framed::send`].
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), FrameError> {
        self.sink.send(encode(message)?).await?;
        Ok(())
    }
}

/// The receiving half of a [`Framed`] link.
pub struct FrameReceiver<S> {
    stream: SplitStream<TokioFramed<S, LengthDelimitedCodec>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> FrameReceiver<S> {
    /// [`Framed::recv`].
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        decode(self.stream.next().await)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn hello_and_messages_round_trip() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut a, mut b) = (Framed::new(a), Framed::new(b));
        let (ra, rb) = tokio::join!(
            a.handshake("gw1", Service::Store),
            b.handshake("worker1", Service::Store)
        );
        assert_eq!(ra.unwrap(), "worker1");
        assert_eq!(rb.unwrap(), "gw1");
        a.send(&(7u32, "x".to_owned())).await.unwrap();
        let got: (u32, String) = b.recv().await.unwrap();
        assert_eq!(got, (7, "x".to_owned()));
    }

    #[tokio::test]
    async fn a_service_mismatch_is_refused() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (mut a, mut b) = (Framed::new(a), Framed::new(b));
        let (ra, _) = tokio::join!(
            a.handshake("gw1", Service::Store),
            b.handshake("worker1", Service::Replication)
        );
        assert!(matches!(ra, Err(FrameError::WrongService { .. })));
    }
}
