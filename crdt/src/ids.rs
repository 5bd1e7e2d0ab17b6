//! Identities and causal metadata: replicas, operation dots, version vectors, and the
//! ids of mailboxes and messages. The IMAP numbers the CRDT hands out (UID,
//! UIDVALIDITY, MODSEQ) are the mail model's, re-exported here.

use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

pub use pluto_model::{ModSeq, Uid, UidValidity};

/// One replica of a user's state. Ids are small: a UID bound by replica `r` is always
/// `≡ r (mod K)`, where `K` is [`Config::uid_stride`](crate::Config::uid_stride).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ReplicaId(pub u16);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// The unique id of one operation: its origin replica and its sequence number there
/// (1, 2, 3, … with no gaps).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Dot {
    pub replica: ReplicaId,
    pub seq: u64,
}

impl Dot {
    pub fn new(replica: ReplicaId, seq: u64) -> Self {
        Self { replica, seq }
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.replica, self.seq)
    }
}

/// A version vector: for each replica, how many of its operations are included. It
/// names a causally closed set of operations (a "causal context").
///
/// Kept as a short sorted list: a user has a handful of replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector(Vec<(ReplicaId, u64)>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many operations of `replica` are included.
    pub fn get(&self, replica: ReplicaId) -> u64 {
        match self.0.binary_search_by_key(&replica, |(r, _)| *r) {
            Ok(at) => self.0[at].1,
            Err(_) => 0,
        }
    }

    /// Raises the entry of `replica` to at least `seq`.
    pub fn raise(&mut self, replica: ReplicaId, seq: u64) {
        match self.0.binary_search_by_key(&replica, |(r, _)| *r) {
            Ok(at) => self.0[at].1 = self.0[at].1.max(seq),
            Err(at) => {
                if seq > 0 {
                    self.0.insert(at, (replica, seq))
                }
            }
        }
    }

    /// Adds one operation (and, for a gap-free origin, everything before it).
    pub fn add(&mut self, dot: Dot) {
        self.raise(dot.replica, dot.seq);
    }

    /// True when the operation `dot` is in the set this vector names.
    pub fn contains(&self, dot: Dot) -> bool {
        self.get(dot.replica) >= dot.seq
    }

    /// True when every operation in `self` is also in `other`.
    pub fn le(&self, other: &VersionVector) -> bool {
        self.0.iter().all(|&(r, n)| other.get(r) >= n)
    }

    /// The union of the two sets (pointwise maximum).
    pub fn join(&mut self, other: &VersionVector) {
        for &(r, n) in &other.0 {
            self.raise(r, n);
        }
    }

    /// The intersection of the two sets (pointwise minimum).
    pub fn meet(&self, other: &VersionVector) -> VersionVector {
        VersionVector(
            self.0
                .iter()
                .map(|&(r, n)| (r, n.min(other.get(r))))
                .filter(|&(_, n)| n > 0)
                .collect(),
        )
    }

    /// The number of operations in the set. It grows strictly along causality, which
    /// makes `(sum, origin)` a total order that extends the causal order.
    pub fn sum(&self) -> u64 {
        // Saturating: a snapshot or a peer's op may carry any counters.
        self.0.iter().fold(0, |sum, (_, n)| sum.saturating_add(*n))
    }

    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(ReplicaId, u64)> for VersionVector {
    fn from_iter<T: IntoIterator<Item = (ReplicaId, u64)>>(iter: T) -> Self {
        let mut vv = VersionVector::new();
        for (r, n) in iter {
            vv.raise(r, n);
        }
        vv
    }
}

impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, (r, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{r}:{n}")?;
        }
        f.write_str("]")
    }
}

/// A message's immutable identity: the operation that created it (append, copy or
/// move) and its position in that operation. A copy or a move makes a new message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId {
    pub op: Dot,
    pub index: u32,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.op, self.index)
    }
}

/// A mailbox's identity (an "incarnation"): the name it was created with and how many
/// incarnations of that name its creator had seen. Two replicas that concurrently
/// create the same name from the same knowledge therefore create the *same* mailbox.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MailboxId {
    pub name: String,
    pub incarnation: u32,
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.incarnation)
    }
}

/// The smallest number above `above` that is `≡ residue (mod stride)`, if it fits in a
/// `u32`. This is how a replica picks fresh UIDs and UIDVALIDITYs: two replicas never
/// pick the same number, and one replica always picks higher than it did before.
pub(crate) fn fresh(above: u32, residue: u16, stride: u16) -> Option<u32> {
    let stride = u64::from(stride.max(1));
    let residue = u64::from(residue) % stride;
    let next = u64::from(above) + 1;
    let candidate = next + (residue + stride - next % stride) % stride;
    u32::try_from(candidate).ok().filter(|&u| u > 0)
}

/// A UID (or UIDVALIDITY) the CRDT holds as a number. Every such number came from a
/// [`Uid`] (a bind's, a floor's) or from [`fresh`], so it is never 0; 0 would read as 1.
pub(crate) fn nonzero(number: u32) -> NonZeroU32 {
    NonZeroU32::new(number).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_picks_the_next_number_of_the_residue() {
        assert_eq!(fresh(0, 0, 4), Some(4));
        assert_eq!(fresh(0, 1, 4), Some(1));
        assert_eq!(fresh(1, 1, 4), Some(5));
        assert_eq!(fresh(6, 3, 4), Some(7));
        assert_eq!(fresh(7, 3, 4), Some(11));
        assert_eq!(fresh(9, 0, 1), Some(10));
        assert_eq!(fresh(u32::MAX - 1, 3, 4), Some(u32::MAX));
        assert_eq!(fresh(u32::MAX - 1, 0, 4), None);
    }

    #[test]
    fn version_vectors_order_and_combine() {
        let a: VersionVector = [(ReplicaId(0), 2), (ReplicaId(1), 1)].into_iter().collect();
        let b: VersionVector = [(ReplicaId(0), 1), (ReplicaId(2), 5)].into_iter().collect();
        assert!(!a.le(&b) && !b.le(&a));
        let mut j = a.clone();
        j.join(&b);
        assert!(a.le(&j) && b.le(&j));
        assert_eq!(j.sum(), 8);
        assert_eq!(a.meet(&b), [(ReplicaId(0), 1)].into_iter().collect());
        assert!(a.contains(Dot::new(ReplicaId(1), 1)));
        assert!(!a.contains(Dot::new(ReplicaId(1), 2)));
    }
}
