//! User names: the one rule for which names may be stored ([`check_user_name`]), used
//! by [`UserId`] and by every authenticator (users file, `pluto user add`, PostgreSQL),
//! so a name that can be added can also log in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::InvalidName;

/// Longest accepted user name, in bytes. Long enough for any e-mail address
/// (RFC 5321 caps a path at 256 octets).
pub const MAX_USER_NAME_LEN: usize = 255;

/// Checks that `name` can be a user name.
///
/// Refused: the empty name, names over [`MAX_USER_NAME_LEN`] bytes, a leading `.` (a
/// hidden directory, and the names `.` and `..`) or `#` (a comment line in the users
/// file), `:` (the users file's field separator), whitespace and control characters
/// (they break the file's lines and IMAP's atoms), and the path separators `/` and `\`
/// (the name becomes part of a storage path in a backend).
pub fn check_user_name(name: &str) -> Result<(), InvalidName> {
    let bad = |reason| Err(InvalidName::new(reason));
    if name.is_empty() {
        return bad("a user name cannot be empty");
    }
    if name.len() > MAX_USER_NAME_LEN {
        return bad("a user name has at most 255 bytes");
    }
    if name.starts_with('.') {
        return bad("a user name cannot start with '.'");
    }
    if name.starts_with('#') {
        return bad("a user name cannot start with '#'");
    }
    if name.contains(':') {
        return bad("a user name cannot hold ':'");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("a user name cannot hold whitespace");
    }
    if name.chars().any(char::is_control) {
        return bad("a user name cannot hold control characters");
    }
    if name.contains(['/', '\\']) {
        return bad("a user name cannot hold '/' or '\\'");
    }
    Ok(())
}

/// A user's login name as the store knows it: a name [`check_user_name`] accepts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        check_user_name(&name)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ordinary_names_are_users() {
        for ok in ["alice", "bob@example.com", "Zoë", "a.b-c_d+e", "a#b", "x."] {
            assert_eq!(UserId::new(ok).unwrap().as_str(), ok);
        }
        let longest = "x".repeat(MAX_USER_NAME_LEN);
        assert!(UserId::new(longest).is_ok());
    }

    #[test]
    fn each_refusal_says_why() {
        let long = "x".repeat(MAX_USER_NAME_LEN + 1);
        for (bad, why) in [
            ("", "empty"),
            (long.as_str(), "at most 255 bytes"),
            (".alice", "start with '.'"),
            (".", "start with '.'"),
            ("..", "start with '.'"),
            ("#root", "start with '#'"),
            ("a:b", "':'"),
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("a\u{2028}b", "whitespace"),
            ("a\u{0}b", "control"),
            ("a\u{7f}", "control"),
            ("a/b", "'/' or '\\'"),
            ("../x", "start with '.'"),
            ("a\\b", "'/' or '\\'"),
        ] {
            let e = UserId::new(bad).unwrap_err();
            assert!(e.reason().contains(why), "{bad:?}: {e}");
            assert_eq!(check_user_name(bad), Err(e));
        }
    }

    #[test]
    fn serde_checks_the_name() {
        let alice = UserId::new("alice").unwrap();
        let bytes = postcard::to_stdvec(&alice).unwrap();
        assert_eq!(postcard::from_bytes::<UserId>(&bytes).unwrap(), alice);
        let bad = postcard::to_stdvec(".alice").unwrap();
        assert!(postcard::from_bytes::<UserId>(&bad).is_err());
        assert_eq!(alice.to_string(), "alice");
        assert_eq!(String::from(alice), "alice");
    }
}
