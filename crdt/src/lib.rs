//! The IMAP CRDT: one user's mail state (mailboxes, messages, UIDs, flags, modseqs) as a
//! set of operations that any number of replicas apply in any causal order and that
//! converges, with UIDs that never name two messages and that ascend on every replica.
//!
//! Pure: no I/O, no clocks, no threads. The caller persists and ships the [`Op`]s.
//!
//! Layout:
//! - [`ids`]: replica ids, dots, version vectors, message and mailbox ids (UIDs and the
//!   other values are `pluto-model`'s, re-exported);
//! - [`flags`]: the add-wins merge of STOREs (the flag values are `pluto-model`'s);
//! - [`op`]: the operations;
//! - `mailbox`: one mailbox incarnation, its UID space and the view rule;
//! - [`state`]: [`UserState`], local writes, remote batches with causal delivery, the
//!   UID rules (leader binds, others floor), queries, compaction, snapshots;
//! - [`view`]: what queries return.
//!
//! The argument for why this is correct is in `crdt/README.md`.

mod error;
pub mod flags;
mod hash;
pub mod ids;
mod mailbox;
#[cfg(feature = "mutations")]
pub mod mutations;
pub mod op;
pub mod state;
pub mod view;

pub use error::CrdtError;
pub use flags::{Flag, FlagChange, FlagOp, FlagSet, Keyword};
pub use ids::{Dot, MailboxId, MessageId, ModSeq, ReplicaId, Uid, UidValidity, VersionVector};
pub use op::{BodyRef, InternalDate, MessageData, NewMessage, Op, OpKind, SpecialUse, Stamp};
pub use pluto_model::{MailboxName, MailboxRefusal};
pub use state::{Config, DEFAULT_CLAIM_WINDOW, DEFAULT_UID_VALIDITY, SNAPSHOT_VERSION, UserState};
pub use view::{
    AppendOutcome, Applied, Changes, CompactionReport, CopyOutcome, MailboxInfo, MailboxSnapshot,
    MailboxStatus, MessageView, StateStats, StoreOutcome,
};
