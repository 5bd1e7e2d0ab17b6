//! Storage for pluto, behind one async trait.
//!
//! - [`store`]: the [`MailStore`] trait every backend implements. It is coarse-grained
//!   (one call per IMAP command, never one per message) because it also runs over the
//!   network, and every call names the user.
//! - [`types`]: the domain types the trait speaks: [`UserId`], [`MailboxName`], [`Uid`],
//!   [`ModSeq`], [`Flag`], … each validated when it is made.
//! - [`error`]: [`StoreError`], typed so that the gateway can map each kind to an IMAP
//!   response code in one place.
//! - [`maildir`]: the plain Maildir++ backend.
//! - [`remote`]: the MailStore over the network (a gateway's client, a node's server).
//! - [`net`]: internal links (mutual TLS, versioned frames) for the RPC and replication.
//! - [`recent`]: who is told a message is `\Recent` (per node, not replicated).
//! - [`replicated`]: the replicated store (CRDT state, op log, blobs, snapshots, replication between nodes).
//!
//! The test suite every backend must pass is the crate `pluto-conformance`.
//!
//! Nothing here knows IMAP syntax: this crate speaks mailboxes, messages, UIDs and flags.

mod concurrency;
pub mod error;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod maildir;
pub mod net;
mod objectid;
pub mod recent;
pub mod remote;
pub mod replicated;
pub mod store;
pub mod types;

pub use error::StoreError;
pub use store::{ChangeFeed, MailStore};
pub use types::*;
