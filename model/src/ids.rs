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

/// An object identifier of RFC 8474 (OBJECTID): 128 bits a store derives from what
/// identifies the object where it keeps it (a mailbox's incarnation and UIDVALIDITY, a
/// message's bytes or file), so every replica and every restart gives the same one. On
/// the wire it is a kind letter and 32 lower-case hex digits ([`ObjectId::wire`]), which
/// is within the RFC's `objectid` syntax (1–255 of ALPHA, DIGIT, `_`, `-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; 16]);

/// What an [`ObjectId`] names: the letter its wire form starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// MAILBOXID: `F…` (a folder).
    Mailbox,
    /// EMAILID: `M…`.
    Email,
}

impl ObjectKind {
    fn letter(self) -> char {
        match self {
            ObjectKind::Mailbox => 'F',
            ObjectKind::Email => 'M',
        }
    }
}

impl ObjectId {
    /// The first 16 bytes of a digest.
    pub fn from_digest(digest: &[u8]) -> Self {
        let mut id = [0u8; 16];
        for (to, from) in id.iter_mut().zip(digest) {
            *to = *from;
        }
        Self(id)
    }

    /// The wire form: `F` or `M` and 32 hex digits.
    pub fn wire(&self, kind: ObjectKind) -> String {
        use fmt::Write;
        let mut out = String::with_capacity(33);
        out.push(kind.letter());
        for b in self.0 {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// Reads a wire form of this kind (hex digits in either case); `None` for anything
    /// else, which therefore names no object of this server.
    pub fn parse(kind: ObjectKind, text: &str) -> Option<Self> {
        let hex = text.strip_prefix(kind.letter())?.as_bytes();
        if hex.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            id[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(id))
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

    #[test]
    fn object_ids_round_trip_through_their_wire_form() {
        let id = ObjectId::from_digest(&[0xab; 32]);
        let wire = id.wire(ObjectKind::Email);
        assert_eq!(wire, format!("M{}", "ab".repeat(16)));
        assert!(wire.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(ObjectId::parse(ObjectKind::Email, &wire), Some(id));
        assert_eq!(
            ObjectId::parse(ObjectKind::Email, &format!("M{}", "AB".repeat(16))),
            Some(id)
        );
        assert_eq!(ObjectId::parse(ObjectKind::Mailbox, &wire), None);
        assert_eq!(ObjectId::parse(ObjectKind::Email, "M12"), None);
        assert_eq!(
            ObjectId::parse(ObjectKind::Email, &format!("M{}", "zz".repeat(16))),
            None
        );
    }
}
