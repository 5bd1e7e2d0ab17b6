//! The domain types the [`MailStore`](crate::MailStore) trait speaks. Each is validated
//! when it is made, so a value of one of these types is always safe to use (a
//! [`MailboxName`] never escapes a data directory, a [`Keyword`] is always an IMAP atom).

use std::fmt;
use std::num::NonZeroU32;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::InvalidName;

/// A user's login name as the store knows it.
///
/// 1 to 255 bytes of printable characters without `/`, `\`, `:` or a leading `.`, so it
/// can name a directory and a users-file line safely.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        if name.is_empty() || name.len() > 255 {
            return Err(InvalidName::new("a user name has 1 to 255 bytes"));
        }
        if name.starts_with('.') {
            return Err(InvalidName::new("a user name cannot start with '.'"));
        }
        if name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | ':'))
        {
            return Err(InvalidName::new(
                "a user name cannot hold spaces, control characters, '/', '\\' or ':'",
            ));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hierarchy separator clients see.
pub const SEPARATOR: char = '/';

/// A mailbox name in UTF-8 with `/` as the hierarchy separator (the gateway decodes
/// IMAP's modified UTF-7 before it makes one).
///
/// `INBOX` is case-insensitive and always spelled `INBOX`. A name has no empty, `.` or
/// `..` component, no leading or trailing `/`, no control characters and none of the
/// LIST wildcards `*` and `%`, and is at most [`MailboxName::MAX_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MailboxName(String);

impl MailboxName {
    pub const MAX_LEN: usize = 512;

    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidName::new("a mailbox name cannot be empty"));
        }
        if name.len() > Self::MAX_LEN {
            return Err(InvalidName::new("the mailbox name is too long"));
        }
        if name.chars().any(|c| c.is_control()) {
            return Err(InvalidName::new(
                "a mailbox name cannot hold control characters",
            ));
        }
        if name.contains(['*', '%']) {
            return Err(InvalidName::new("a mailbox name cannot hold '*' or '%'"));
        }
        if name.starts_with(SEPARATOR) || name.ends_with(SEPARATOR) {
            return Err(InvalidName::new(
                "a mailbox name cannot start or end with '/'",
            ));
        }
        if name
            .split(SEPARATOR)
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(InvalidName::new(
                "a mailbox name cannot have an empty, '.' or '..' part",
            ));
        }
        // INBOX is case-insensitive, also as the first part of a hierarchy.
        let first_len = name.find(SEPARATOR).unwrap_or(name.len());
        if name[..first_len].eq_ignore_ascii_case("INBOX") {
            let rest = &name[first_len..];
            return Ok(Self(format!("INBOX{rest}")));
        }
        Ok(Self(name))
    }

    pub fn inbox() -> Self {
        Self("INBOX".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The parts of the name between separators.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split(SEPARATOR)
    }

    /// The name one level up, if any.
    pub fn parent(&self) -> Option<MailboxName> {
        self.0
            .rfind(SEPARATOR)
            .map(|i| MailboxName(self.0[..i].to_owned()))
    }

    /// Every name above this one, outermost first.
    pub fn ancestors(&self) -> Vec<MailboxName> {
        let mut out = Vec::new();
        let mut current = self.parent();
        while let Some(name) = current {
            current = name.parent();
            out.push(name);
        }
        out.reverse();
        out
    }

    /// True when `self` lies below `other` in the hierarchy (not equal to it).
    pub fn is_below(&self, other: &MailboxName) -> bool {
        self.0.len() > other.0.len()
            && self.0.starts_with(other.as_str())
            && self.0[other.0.len()..].starts_with(SEPARATOR)
    }

    /// This name with the prefix `from` replaced by `to` (for RENAME of a hierarchy).
    pub fn rebase(&self, from: &MailboxName, to: &MailboxName) -> Option<MailboxName> {
        if self == from {
            Some(to.clone())
        } else if self.is_below(from) {
            MailboxName::new(format!("{}{}", to.0, &self.0[from.0.len()..])).ok()
        } else {
            None
        }
    }
}

impl TryFrom<String> for MailboxName {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<MailboxName> for String {
    fn from(value: MailboxName) -> Self {
        value.0
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagChange {
    pub op: FlagOp,
    pub flags: Flags,
}

/// RFC 6154 special-use attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

/// The mailboxes a new user gets, with their special use.
pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    ("INBOX", None),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Sent", Some(SpecialUse::Sent)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];

/// One existing mailbox, as LIST needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    pub name: MailboxName,
    pub special_use: Option<SpecialUse>,
}

/// A user's mailboxes and subscriptions. A subscription may name a mailbox that does
/// not exist (RFC 3501 allows it; LSUB shows it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxList {
    /// Sorted by name.
    pub mailboxes: Vec<MailboxInfo>,
    /// Sorted by name.
    pub subscriptions: Vec<MailboxName>,
}

/// What STATUS reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxStatus {
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub uid_next: Uid,
    pub uid_validity: UidValidity,
    pub highest_modseq: ModSeq,
    /// Sum of the messages' sizes in bytes.
    pub size: u64,
}

/// The messages that are `\Recent` for one session (RFC 3501 2.3.2): the UIDs `u` with
/// `after < u <= upto`; empty when `after == upto`. See [`crate::MailStore::recent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentRange {
    pub after: u32,
    pub upto: u32,
}

impl RecentRange {
    pub fn contains(&self, uid: Uid) -> bool {
        self.after < uid.get() && uid.get() <= self.upto
    }
}

/// One message's metadata: everything but its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub uid: Uid,
    pub flags: Flags,
    /// The modseq of the message's last change (append or flag change).
    pub modseq: ModSeq,
    pub internal_date: DateTime<FixedOffset>,
    /// RFC822.SIZE: the exact length of the stored bytes.
    pub size: u32,
}

/// A mailbox as SELECT sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxSnapshot {
    pub uid_validity: UidValidity,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    /// Ascending by UID.
    pub messages: Vec<MessageMeta>,
}

/// What changed in a mailbox after a modseq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Changes {
    /// Exactly what changed.
    Delta {
        highest_modseq: ModSeq,
        uid_next: Uid,
        /// Messages appended or whose flags changed after the modseq, ascending by UID.
        updated: Vec<MessageMeta>,
        /// Messages expunged after the modseq, ascending.
        expunged: Vec<Uid>,
    },
    /// The store no longer remembers every expunge since then: here is the whole mailbox;
    /// the caller compares it with what it knows.
    Snapshot(MailboxSnapshot),
}

/// A message to append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub body: Bytes,
    pub flags: Flags,
    /// When `None`, the store uses the time of the append.
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// The answer to an append: UIDPLUS's APPENDUID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub uid_validity: UidValidity,
    /// One per appended message, in order.
    pub uids: Vec<Uid>,
}

/// The answer to a copy or move: UIDPLUS's COPYUID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOutcome {
    /// The destination's UIDVALIDITY.
    pub uid_validity: UidValidity,
    /// (source UID, destination UID) for each message copied, ascending by source UID.
    /// Source UIDs that no longer existed are left out.
    pub mapping: Vec<(Uid, Uid)>,
}

/// The answer to a STORE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOutcome {
    /// Messages whose flags changed, with their new flags and modseq. A store gives them
    /// all one modseq, the mailbox's next HIGHESTMODSEQ (every change to a mailbox takes
    /// one): a caller that knew HIGHESTMODSEQ H and sees H + 1 here knows that nothing
    /// else changed in between, and needs no [`MailStore::changes_since`] for its own
    /// change (the conformance suite checks it).
    ///
    /// [`MailStore::changes_since`]: crate::MailStore::changes_since
    pub updated: Vec<MessageMeta>,
    /// Messages left alone because their modseq was above `unchanged_since` (CONDSTORE).
    pub modified: Vec<Uid>,
}

/// The length of a message's header section, with the empty line that ends it (CRLF or
/// a bare LF); the whole length when there is no empty line.
pub fn header_len(raw: &[u8]) -> usize {
    let mut at = 0;
    while let Some(nl) = raw[at..].iter().position(|&b| b == b'\n') {
        let next = at + nl + 1;
        match raw.get(next..) {
            Some([b'\n', ..]) => return next + 1,
            Some([b'\r', b'\n', ..]) => return next + 2,
            _ => at = next,
        }
    }
    raw.len()
}

/// A message's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    pub uid: Uid,
    pub bytes: Bytes,
}

#[cfg(test)]
mod tests {
    use super::header_len;

    fn header_of(raw: &[u8]) -> &[u8] {
        &raw[..header_len(raw)]
    }

    #[test]
    fn the_header_ends_at_the_first_empty_line() {
        assert_eq!(
            header_of(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_of(b"A: 1\nB: 2\n\nbody\n"), b"A: 1\nB: 2\n\n");
        assert_eq!(header_of(b"A: 1\r\nno body"), b"A: 1\r\nno body");
        assert_eq!(
            header_of(b"\r\nbody"),
            b"\r\nbody",
            "a first line that is empty is no header end here"
        );
    }
}
