//! Which user names may be stored: the mail model's one rule
//! ([`pluto_model::check_user_name`]), shared by the users file, `pluto user add` and
//! PostgreSQL, so that a name that can be added can also log in (the store's `UserId`
//! checks the same rule).

use crate::AuthError;

/// Longest accepted user name, in bytes.
pub use pluto_model::MAX_USER_NAME_LEN;

/// Checks that `name` can be stored as a user name.
///
/// Refused: the empty name, names over [`MAX_USER_NAME_LEN`] bytes, a leading `.` or
/// `#`, `:`, whitespace, control characters, `/` and `\` (see
/// [`pluto_model::check_user_name`] for why).
pub fn validate_user_name(name: &str) -> Result<(), AuthError> {
    pluto_model::check_user_name(name).map_err(|e| AuthError::InvalidUserName {
        name: name.to_owned(),
        reason: e.reason(),
    })
}

/// The key under which a name is looked up: user names are case-insensitive.
pub(crate) fn lookup_key(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
            ".alice",
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

    #[test]
    fn the_refusal_names_the_user_and_says_why() {
        let e = validate_user_name(".alice").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid user name \".alice\": a user name cannot start with '.'"
        );
    }
}
