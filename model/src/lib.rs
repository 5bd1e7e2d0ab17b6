//! The mail model: the validated domain values every pluto crate speaks, and the one
//! module of the RFC 3501 mailbox rules. At the bottom of the crate graph: it depends
//! on no pluto crate, and does no I/O.
//!
//! Each value is validated when it is made, so a value of one of these types is always
//! safe to use (a [`MailboxName`] never escapes a data directory, a [`Keyword`] is always
//! an IMAP atom, a [`UserId`] can name a directory and a users-file line).
//!
//! Layout:
//! - [`name`]: [`InvalidName`], why a name was refused;
//! - [`user`]: [`UserId`] and the one user-name rule, [`check_user_name`];
//! - [`mailbox`]: [`MailboxName`], [`SpecialUse`] and the default mailboxes;
//! - [`ids`]: [`Uid`], [`UidValidity`], [`ModSeq`], RFC 8474's [`ObjectId`];
//! - [`flags`]: [`Keyword`], [`Flag`], [`Flags`], [`FlagOp`], [`FlagChange`];
//! - [`quota`]: a user's limits ([`Quota`]), what their mail uses ([`Usage`]) and
//!   whether a write fits;
//! - [`rules`]: the RFC 3501 mailbox rules (CREATE, DELETE, RENAME), each refusal a
//!   [`MailboxRefusal`] that names the mailbox.

pub mod flags;
pub mod ids;
pub mod mailbox;
pub mod name;
pub mod quota;
pub mod rules;
pub mod user;

pub use flags::{Flag, FlagChange, FlagOp, Flags, Keyword};
pub use ids::{ModSeq, ObjectId, ObjectKind, Uid, UidValidity};
pub use mailbox::{DEFAULT_MAILBOXES, MailboxName, SEPARATOR, SpecialUse, default_mailboxes};
pub use name::InvalidName;
pub use quota::{OverQuota, Quota, Resource, Usage};
pub use rules::MailboxRefusal;
pub use user::{MAX_USER_NAME_LEN, UserId, check_user_name};
