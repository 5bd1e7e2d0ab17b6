//! Authentication for pluto.
//!
//! The gateway authenticates every `LOGIN` / `AUTHENTICATE PLAIN` through one
//! [`Authenticator`] and wraps the call in a [`Throttle`]:
//!
//! ```text
//! wait = throttle.reserve(ip, user)  →  sleep(wait)   (counted as failed from here)
//!   → authenticator.authenticate(user, password)
//!       Ok(auth)            → throttle.record_success(ip, user); serve auth.user
//!       Err(Failed|Disabled)→ NO [AUTHENTICATIONFAILED] (already counted)
//!       Err(Unavailable)    → throttle.release(ip, user); NO [UNAVAILABLE]
//! ```
//!
//! Layout:
//! - [`authenticator`] — the trait and [`Authenticated`]; the rules for
//!   writing your own adapter.
//! - [`scheme`] — Dovecot `{SCHEME}hash` parsing, verification on the
//!   blocking pool, argon2id hashing of new passwords.
//! - [`file`] — the users-file adapter ([`FileAuthenticator`]) and the
//!   atomic editing functions behind `pluto user add|passwd|del`.
//! - [`postgres`] — the PostgreSQL adapter ([`PostgresAuthenticator`]).
//! - [`quota`] — per-user quota limits as Dovecot's user databases state them.
//! - [`throttle`] — failed-login delays, shared through Redis with an
//!   in-memory fallback.
//! - [`names`] — which user names may be stored.
//! - [`error`] — [`AuthError`], the crate's one error type.

pub mod authenticator;
pub mod error;
pub mod file;
pub mod names;
pub mod postgres;
pub mod quota;
pub mod scheme;
pub mod throttle;

pub use authenticator::{Account, Authenticated, Authenticator};
pub use error::AuthError;
pub use file::FileAuthenticator;
pub use names::validate_user_name;
pub use postgres::{PostgresAuthenticator, PostgresConfig};
pub use scheme::{hash_password, verify_password};
pub use throttle::{Throttle, ThrottleBackend, ThrottleConfig};
