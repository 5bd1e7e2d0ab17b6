//! Mailbox names and the special use a mailbox may have.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::InvalidName;

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

/// RFC 6154 special-use attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// [`DEFAULT_MAILBOXES`] as names (each is a valid name; a test checks it).
pub fn default_mailboxes() -> impl Iterator<Item = (MailboxName, Option<SpecialUse>)> {
    DEFAULT_MAILBOXES
        .into_iter()
        .map(|(name, special_use)| (MailboxName(name.to_owned()), special_use))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mb(s: &str) -> MailboxName {
        MailboxName::new(s).unwrap()
    }

    #[test]
    fn inbox_is_case_insensitive_also_as_a_parent() {
        assert!(mb("inbox").is_inbox());
        assert_eq!(mb("InBox"), MailboxName::inbox());
        assert_eq!(mb("inbox/Sub").as_str(), "INBOX/Sub");
        assert!(!mb("INBOXES").is_inbox());
        assert_eq!(mb("Inboxes").as_str(), "Inboxes");
    }

    #[test]
    fn each_bad_name_says_why() {
        let long = "x".repeat(MailboxName::MAX_LEN + 1);
        for (bad, why) in [
            ("", "empty"),
            (long.as_str(), "too long"),
            ("a\u{7}b", "control"),
            ("a*", "'*' or '%'"),
            ("a%", "'*' or '%'"),
            ("/a", "start or end"),
            ("a/", "start or end"),
            ("a//b", "empty, '.' or '..'"),
            ("a/./b", "empty, '.' or '..'"),
            ("..", "empty, '.' or '..'"),
            ("a/..", "empty, '.' or '..'"),
        ] {
            let e = MailboxName::new(bad).unwrap_err();
            assert!(e.reason().contains(why), "{bad:?}: {e}");
        }
        assert!(MailboxName::new("x".repeat(MailboxName::MAX_LEN)).is_ok());
        assert!(
            postcard::from_bytes::<MailboxName>(&postcard::to_stdvec("a//b").unwrap()).is_err()
        );
    }

    #[test]
    fn the_hierarchy_is_read_from_the_name() {
        let n = mb("a/b/c");
        assert_eq!(n.parts().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(n.parent(), Some(mb("a/b")));
        assert_eq!(mb("a").parent(), None);
        assert_eq!(n.ancestors(), vec![mb("a"), mb("a/b")]);
        assert!(n.is_below(&mb("a")) && n.is_below(&mb("a/b")));
        assert!(!n.is_below(&n) && !mb("ab").is_below(&mb("a")));
        assert_eq!(n.rebase(&mb("a"), &mb("x/y")), Some(mb("x/y/b/c")));
        assert_eq!(n.rebase(&n, &mb("z")), Some(mb("z")));
        assert_eq!(n.rebase(&mb("b"), &mb("z")), None);
        assert_eq!(n.to_string(), "a/b/c");
        assert_eq!(String::from(n), "a/b/c");
    }

    #[test]
    fn every_default_mailbox_is_a_valid_name() {
        for (name, _) in DEFAULT_MAILBOXES {
            assert_eq!(mb(name).as_str(), name);
        }
        for ((name, special_use), (str_name, str_use)) in default_mailboxes().zip(DEFAULT_MAILBOXES)
        {
            assert_eq!((name, special_use), (mb(str_name), str_use));
        }
        // The CRDT's logs hold special uses: the variant order is the encoding.
        assert_eq!(postcard::to_stdvec(&SpecialUse::All).unwrap(), [0]);
        assert_eq!(postcard::to_stdvec(&SpecialUse::Trash).unwrap(), [6]);
    }
}
