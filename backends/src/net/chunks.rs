//! Bodies cut into bounded pieces for internal links, and put back together with a
//! bound. No frame carries more than [`MAX_CHUNK`] bytes of bodies: whole bodies up to
//! that much together, or one piece of a larger body. The receiving end assembles a
//! cut body in an [`Assembly`], which knows the length the sender announced and the
//! most it accepts, so a hostile or buggy peer cannot make it buffer more.

use bytes::{Bytes, BytesMut};

/// The most bytes of message bodies one frame carries (whole bodies together, or one
/// piece of a body larger than this).
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// The largest body any pluto store holds (message sizes are 32-bit): the bound on an
/// announced length when the receiver has no tighter one.
pub const MAX_STORED_BODY: u64 = u32::MAX as u64;

/// What an assembly grows to before it has seen more bytes: a hostile announcement
/// reserves no more than this.
const FIRST_RESERVE: usize = 4 * MAX_CHUNK;

/// A body cut into pieces that is not (or not properly) put back together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    #[error("a body of {announced} bytes is above the limit of {limit} bytes")]
    TooLarge { announced: u64, limit: u64 },
    #[error("pieces of a body announced as {announced} bytes grew to {got} bytes")]
    Overrun { announced: u64, got: u64 },
    #[error("a body announced as {announced} bytes ended after {got} bytes")]
    Truncated { announced: u64, got: u64 },
}

/// `body` as consecutive slices of at most [`MAX_CHUNK`] bytes (none for an empty
/// body). The slices share `body`'s memory.
pub fn pieces(body: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    (0..body.len())
        .step_by(MAX_CHUNK)
        .map(move |start| body.slice(start..body.len().min(start + MAX_CHUNK)))
}

/// One body being put back together from its pieces.
#[derive(Debug)]
pub struct Assembly {
    announced: u64,
    buf: BytesMut,
}

impl Assembly {
    /// Starts a body the sender announced as `announced` bytes; refused when that is
    /// above `limit`.
    pub fn new(announced: u64, limit: u64) -> Result<Self, ChunkError> {
        if announced > limit {
            return Err(ChunkError::TooLarge { announced, limit });
        }
        let reserve = usize::try_from(announced).map_or(FIRST_RESERVE, |a| a.min(FIRST_RESERVE));
        Ok(Self {
            announced,
            buf: BytesMut::with_capacity(reserve),
        })
    }

    /// The length the sender announced.
    pub fn announced(&self) -> u64 {
        self.announced
    }

    /// Adds the next piece; `Ok(true)` once the body is whole. A piece that would take
    /// the body past its announced length is refused and not kept.
    pub fn push(&mut self, piece: &[u8]) -> Result<bool, ChunkError> {
        let got = self.len().saturating_add(piece.len() as u64);
        if got > self.announced {
            return Err(ChunkError::Overrun {
                announced: self.announced,
                got,
            });
        }
        self.buf.extend_from_slice(piece);
        Ok(self.is_complete())
    }

    /// The bytes received so far.
    pub fn len(&self) -> u64 {
        self.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn is_complete(&self) -> bool {
        self.len() == self.announced
    }

    /// The whole body; refused while pieces are missing.
    pub fn finish(self) -> Result<Bytes, ChunkError> {
        if !self.is_complete() {
            return Err(ChunkError::Truncated {
                announced: self.announced,
                got: self.len(),
            });
        }
        Ok(self.buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_body_cut_into_pieces_comes_back_whole() {
        let body = Bytes::from(
            (0..(2 * MAX_CHUNK + 17))
                .map(|i| i as u8)
                .collect::<Vec<_>>(),
        );
        let cut: Vec<Bytes> = pieces(&body).collect();
        assert_eq!(cut.len(), 3);
        assert!(cut.iter().all(|p| p.len() <= MAX_CHUNK));
        let mut assembly = Assembly::new(body.len() as u64, MAX_STORED_BODY).unwrap();
        let done: Vec<bool> = cut.iter().map(|p| assembly.push(p).unwrap()).collect();
        assert_eq!(done, [false, false, true]);
        assert_eq!(assembly.finish().unwrap(), body);
        assert_eq!(pieces(&Bytes::new()).count(), 0);
    }

    #[test]
    fn a_piece_past_the_announced_length_is_refused_and_not_kept() {
        let mut assembly = Assembly::new(10, 100).unwrap();
        assert_eq!(assembly.push(b"12345678"), Ok(false));
        assert_eq!(
            assembly.push(b"abc"),
            Err(ChunkError::Overrun {
                announced: 10,
                got: 11
            })
        );
        assert_eq!(assembly.len(), 8);
        assert_eq!(
            assembly.finish(),
            Err(ChunkError::Truncated {
                announced: 10,
                got: 8
            })
        );
    }

    #[test]
    fn an_announcement_above_the_limit_is_refused() {
        assert_eq!(
            Assembly::new(101, 100).unwrap_err(),
            ChunkError::TooLarge {
                announced: 101,
                limit: 100
            }
        );
        // A huge announcement within the limit reserves little until bytes come.
        let assembly = Assembly::new(MAX_STORED_BODY, MAX_STORED_BODY).unwrap();
        assert!(assembly.buf.capacity() <= FIRST_RESERVE);
    }
}
