//! The numbers IMAP gives a mailbox's messages: UIDs, UIDVALIDITY, modseqs.

use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// A message's unique identifier within one [`UidValidity`] of one mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Uid(pub NonZeroU32);

impl Uid {
    pub const MIN: Uid = Uid(NonZeroU32::MIN);

    pub fn new(value: u32) -> Option<Self> {
        NonZeroU32::new(value).map(Self)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The next UID, or `None` at the top of the range.
    pub fn next(self) -> Option<Uid> {
        self.0.checked_add(1).map(Uid)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A mailbox's UIDVALIDITY: while it stays the same, a UID names the same message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UidValidity(pub NonZeroU32);

impl UidValidity {
    pub fn new(value: u32) -> Option<Self> {
        NonZeroU32::new(value).map(Self)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A modification sequence (RFC 7162): every change to a mailbox gets a higher one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ModSeq(pub u64);

impl ModSeq {
    pub fn get(self) -> u64 {
        self.0
    }

    pub fn next(self) -> ModSeq {
        ModSeq(self.0 + 1)
    }
}

impl fmt::Display for ModSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uids_are_never_zero_and_count_up() {
        assert_eq!(Uid::new(0), None);
        let one = Uid::new(1).unwrap();
        assert_eq!(one, Uid::MIN);
        assert_eq!(one.next(), Uid::new(2));
        assert_eq!(
            Uid::new(u32::MAX).unwrap().next(),
            None,
            "the top of the range"
        );
        assert_eq!(Uid::new(7).unwrap().get(), 7);
        assert_eq!(Uid::new(7).unwrap().to_string(), "7");
        assert!(postcard::from_bytes::<Uid>(&postcard::to_stdvec(&0u32).unwrap()).is_err());
    }

    #[test]
    fn uid_validity_is_never_zero() {
        assert_eq!(UidValidity::new(0), None);
        let v = UidValidity::new(42).unwrap();
        assert_eq!((v.get(), v.to_string()), (42, "42".to_owned()));
        assert!(postcard::from_bytes::<UidValidity>(&[0]).is_err());
    }

    #[test]
    fn modseqs_count_up_from_zero() {
        assert_eq!(ModSeq::default().get(), 0);
        assert_eq!(ModSeq(4).next(), ModSeq(5));
        assert_eq!(ModSeq(4).to_string(), "4");
    }
}
