//! The crate's one error type, shared by the adapters, the users-file editor,
//! the password schemes and the throttle.
//!
//! The gateway maps `Failed` and `Disabled` to `NO [AUTHENTICATIONFAILED]` and
//! `Unavailable` to `NO [UNAVAILABLE]`; the other variants come from user
//! management (`pluto user …`, `pluto auth init-postgres`) and configuration.

use std::path::PathBuf;

/// Everything that can go wrong in `pluto-auth`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown user or wrong password. Deliberately one variant: a caller (and
    /// so a client) must not be able to tell which of the two it was.
    #[error("authentication failed")]
    Failed,
    /// The password was right but the account is disabled. Adapters return this
    /// only after the password verified, so it reveals nothing to a guesser.
    #[error("account disabled")]
    Disabled,
    /// The backend (database, directory, file) could not be asked. The text is
    /// for the log and may be shown to the client; it never contains secrets.
    #[error("authentication backend unavailable: {0}")]
    Unavailable(String),
    /// `add_user` for a name that is already taken (compared case-insensitively).
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// `set_password`, `delete_user`, … for a name that does not exist.
    #[error("no such user: {0:?}")]
    NoSuchUser(String),
    /// A user name that cannot be stored (empty, too long, `:`, whitespace, …).
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUserName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A password that cannot be stored (for now: the empty password).
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is unusable (bad URL, bad identifier, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Producing a new password hash failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl AuthError {
    /// Shorthand for an [`AuthError::Io`] with its path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuthError::Io {
            path: path.into(),
            source,
        }
    }
}
