//! Which user names may be stored. Shared by the users file and PostgreSQL so
//! that a name valid in one is valid in the other.

use crate::AuthError;

/// Longest accepted user name, in bytes. Long enough for any e-mail address
/// (RFC 5321 caps a path at 256 octets).
pub const MAX_USER_NAME_LEN: usize = 255;

/// Checks that `name` can be stored as a user name.
///
/// Refused: the empty name, names over [`MAX_USER_NAME_LEN`] bytes, `:` (the
/// users file's field separator), whitespace and control characters (they
/// break the file's lines and IMAP's atoms), a leading `#` (a comment line in
/// the users file), `/` and `\`, and the names `.` and `..` (the name may
/// become part of a storage path in a backend).
pub fn validate_user_name(name: &str) -> Result<(), AuthError> {
    let bad = |reason| {
        Err(AuthError::InvalidUserName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_USER_NAME_LEN {
        return bad("longer than 255 bytes");
    }
    if name.contains(':') {
        return bad("contains ':'");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("contains whitespace");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name.starts_with('#') {
        return bad("starts with '#'");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name == "." || name == ".." {
        return bad("is '.' or '..'");
    }
    Ok(())
}

/// The key under which a name is looked up: user names are case-insensitive.
pub(crate) fn lookup_key(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["alice", "bob@example.com", "Zoë", "a.b-c_d+e"] {
            assert!(validate_user_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_dangerous_names() {
        let long = "x".repeat(256);
        for bad in [
            "",
            "a:b",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{0}b",
            "a\u{7f}",
            "#root",
            "../x",
            "a/b",
            "a\\b",
            ".",
            "..",
            "a\u{2028}b",
            &long,
        ] {
            assert!(
                matches!(
                    validate_user_name(bad),
                    Err(AuthError::InvalidUserName { .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }
}
