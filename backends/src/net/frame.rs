//! Frames on an internal link: each a postcard-encoded message behind a 4-byte length
//! (tokio-util's length-delimited codec), at most [`MAX_FRAME`] bytes. Every link
//! starts with a [`Hello`] from each side naming the protocol version, the node and the
//! service; a version mismatch ends the link with a clear error, never a misread.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed as TokioFramed, LengthDelimitedCodec};

/// Bumped on any incompatible change to a message on any service.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest frame: a message at APPENDLIMIT plus room for its envelope.
pub const MAX_FRAME: usize = 80 * 1024 * 1024;

/// The largest message body a cluster can carry: every frame that holds bodies holds a
/// few MiB of them or one body alone, and this leaves room for the rest of the frame.
/// A gateway in a cluster refuses an APPENDLIMIT above it.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

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
        let bytes = postcard::to_stdvec(message)?;
        if bytes.len() > MAX_FRAME {
            return Err(FrameError::TooLarge { len: bytes.len() });
        }
        self.inner.send(Bytes::from(bytes)).await?;
        Ok(())
    }

    /// The next message, or `Closed` when the peer hung up.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        match self.inner.next().await {
            Some(frame) => Ok(postcard::from_bytes(&frame?)?),
            None => Err(FrameError::Closed),
        }
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
