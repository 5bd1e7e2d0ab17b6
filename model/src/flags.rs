//! Message flags: keywords, the system flags, flag sets and the change a STORE makes.

use serde::{Deserialize, Serialize};

use crate::name::InvalidName;

/// A keyword flag (`$Forwarded`, `NonJunk`, …): an IMAP atom without `\`, at most 128 bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Keyword(String);

impl Keyword {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let atom_char = |b: u8| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        };
        if name.is_empty() || name.len() > 128 || !name.bytes().all(atom_char) {
            return Err(InvalidName::new("a keyword is an atom of 1 to 128 bytes"));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Keyword {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Keyword> for String {
    fn from(value: Keyword) -> Self {
        value.0
    }
}

/// One message flag. `\Recent` is not stored: it is session state (and gone in IMAP4rev2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    Keyword(Keyword),
}

impl Flag {
    const SYSTEM: [Flag; 5] = [
        Flag::Seen,
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Draft,
    ];

    fn bit(&self) -> Option<u8> {
        match self {
            Flag::Seen => Some(1),
            Flag::Answered => Some(2),
            Flag::Flagged => Some(4),
            Flag::Deleted => Some(8),
            Flag::Draft => Some(16),
            Flag::Keyword(_) => None,
        }
    }
}

/// A set of flags: system flags as bits, keywords sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    system: u8,
    keywords: Vec<Keyword>,
}

impl Flags {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, flag: &Flag) -> bool {
        match (flag.bit(), flag) {
            (Some(bit), _) => self.system & bit != 0,
            (None, Flag::Keyword(k)) => self.keywords.binary_search(k).is_ok(),
            (None, _) => false,
        }
    }

    /// Adds a flag; true when it was not there before.
    pub fn insert(&mut self, flag: Flag) -> bool {
        match (flag.bit(), flag) {
            (Some(bit), _) => {
                let added = self.system & bit == 0;
                self.system |= bit;
                added
            }
            (None, Flag::Keyword(k)) => match self.keywords.binary_search(&k) {
                Ok(_) => false,
                Err(at) => {
                    self.keywords.insert(at, k);
                    true
                }
            },
            (None, _) => false,
        }
    }

    /// Removes a flag; true when it was there.
    pub fn remove(&mut self, flag: &Flag) -> bool {
        match (flag.bit(), flag) {
            (Some(bit), _) => {
                let removed = self.system & bit != 0;
                self.system &= !bit;
                removed
            }
            (None, Flag::Keyword(k)) => match self.keywords.binary_search(k) {
                Ok(at) => {
                    self.keywords.remove(at);
                    true
                }
                Err(_) => false,
            },
            (None, _) => false,
        }
    }

    /// Applies a STORE-style change; true when the set changed.
    pub fn apply(&mut self, change: &FlagChange) -> bool {
        let before = self.clone();
        match change.op {
            FlagOp::Add => {
                for flag in change.flags.iter() {
                    self.insert(flag);
                }
            }
            FlagOp::Remove => {
                for flag in change.flags.iter() {
                    self.remove(&flag);
                }
            }
            FlagOp::Replace => *self = change.flags.clone(),
        }
        *self != before
    }

    pub fn is_empty(&self) -> bool {
        self.system == 0 && self.keywords.is_empty()
    }

    pub fn len(&self) -> usize {
        self.system.count_ones() as usize + self.keywords.len()
    }

    /// The flags, system flags first in a fixed order, then keywords sorted.
    pub fn iter(&self) -> impl Iterator<Item = Flag> + '_ {
        Flag::SYSTEM
            .into_iter()
            .filter(|f| self.contains(f))
            .chain(self.keywords.iter().cloned().map(Flag::Keyword))
    }

    pub fn keywords(&self) -> &[Keyword] {
        &self.keywords
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<T: IntoIterator<Item = Flag>>(iter: T) -> Self {
        let mut flags = Flags::new();
        for flag in iter {
            flags.insert(flag);
        }
        flags
    }
}

/// How STORE changes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// A STORE: which flags, and what to do with them.
///
/// Encoded (serde) like an enum `Add(Flags) | Remove(Flags) | Replace(Flags)`: the op's
/// index, then the flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagChange {
    pub op: FlagOp,
    pub flags: Flags,
}

impl FlagChange {
    /// `+FLAGS (...)`
    pub fn add(flags: Flags) -> Self {
        Self {
            op: FlagOp::Add,
            flags,
        }
    }

    /// `-FLAGS (...)`
    pub fn remove(flags: Flags) -> Self {
        Self {
            op: FlagOp::Remove,
            flags,
        }
    }

    /// `FLAGS (...)`: these flags and no others.
    pub fn replace(flags: Flags) -> Self {
        Self {
            op: FlagOp::Replace,
            flags,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn kw(s: &str) -> Keyword {
        Keyword::new(s).unwrap()
    }

    #[test]
    fn keywords_are_atoms() {
        for ok in ["$Forwarded", "NonJunk", "a", &"k".repeat(128)] {
            assert_eq!(kw(ok).as_str(), ok);
            assert_eq!(kw(ok).to_string(), ok);
        }
        for bad in [
            "",
            "a b",
            "\\Seen",
            "a(b",
            "a)b",
            "a{b",
            "a%b",
            "a*b",
            "a\"b",
            "a]b",
            "ä",
            &"k".repeat(129),
        ] {
            let e = Keyword::new(bad).unwrap_err();
            assert!(e.reason().contains("atom"), "{bad:?}: {e}");
        }
        let bad = postcard::to_stdvec("a b").unwrap();
        assert!(postcard::from_bytes::<Keyword>(&bad).is_err());
    }

    #[test]
    fn a_flag_set_holds_each_flag_once_in_a_fixed_order() {
        let mut f = Flags::new();
        assert!(f.is_empty());
        assert!(f.insert(Flag::Keyword(kw("b"))));
        assert!(f.insert(Flag::Draft));
        assert!(f.insert(Flag::Seen));
        assert!(f.insert(Flag::Keyword(kw("a"))));
        assert!(!f.insert(Flag::Seen), "already there");
        assert!(!f.insert(Flag::Keyword(kw("a"))), "already there");
        assert_eq!(f.len(), 4);
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![
                Flag::Seen,
                Flag::Draft,
                Flag::Keyword(kw("a")),
                Flag::Keyword(kw("b"))
            ]
        );
        assert_eq!(f.keywords(), &[kw("a"), kw("b")]);
        assert!(f.contains(&Flag::Draft) && !f.contains(&Flag::Deleted));
        assert!(f.remove(&Flag::Draft));
        assert!(!f.remove(&Flag::Draft), "already gone");
        assert!(f.remove(&Flag::Keyword(kw("b"))));
        assert!(!f.remove(&Flag::Keyword(kw("b"))));
        let all: Flags = [Flag::Answered, Flag::Flagged, Flag::Deleted]
            .into_iter()
            .collect();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn a_change_adds_removes_or_replaces() {
        let start: Flags = [Flag::Seen, Flag::Keyword(kw("k"))].into_iter().collect();
        let seen: Flags = [Flag::Seen].into_iter().collect();
        let draft: Flags = [Flag::Draft].into_iter().collect();
        let mut f = start;
        assert!(!f.apply(&FlagChange::add(seen.clone())), "nothing new");
        assert!(f.apply(&FlagChange::add(draft.clone())));
        assert!(f.contains(&Flag::Draft));
        assert!(f.apply(&FlagChange::remove(seen.clone())));
        assert!(!f.contains(&Flag::Seen));
        assert!(!f.apply(&FlagChange::remove(seen)), "nothing to remove");
        assert!(f.apply(&FlagChange::replace(draft.clone())));
        assert_eq!(f, draft);
        assert!(!f.apply(&FlagChange::replace(draft)));
    }

    #[test]
    fn a_change_is_encoded_as_the_op_then_the_flags() {
        // The CRDT's operations hold changes; this layout is what its logs hold.
        let flags: Flags = [Flag::Seen, Flag::Keyword(kw("k"))].into_iter().collect();
        for (change, index) in [
            (FlagChange::add(flags.clone()), 0u8),
            (FlagChange::remove(flags.clone()), 1),
            (FlagChange::replace(flags.clone()), 2),
        ] {
            let bytes = postcard::to_stdvec(&change).unwrap();
            let mut expected = vec![index];
            expected.extend(postcard::to_stdvec(&flags).unwrap());
            assert_eq!(bytes, expected);
            assert_eq!(postcard::from_bytes::<FlagChange>(&bytes).unwrap(), change);
        }
    }
}
