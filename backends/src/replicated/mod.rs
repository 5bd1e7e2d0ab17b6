//! The replicated store: a node's MailStore over per-user CRDT states, and the
//! replication of their operations between nodes.
//!
//! - [`blobs`]: message bodies on disk, content-addressed (SHA-256), stored once.
//! - [`oplog`]: the node's append-only, checksummed operation log with group commit,
//!   segments, torn-tail recovery and truncation.
//! - [`store`]: [`ReplicatedStore`], the MailStore: every write is blob durable → ops
//!   logged durably → applied → watchers told → queued for the peers; restart is
//!   per-user snapshots plus log replay; checkpoints write snapshots and truncate.
//!   Cut by concern: `store/write_path.rs` (write and read paths),
//!   `store/mail_store.rs` (`impl MailStore`), `store/replication.rs` (what the links
//!   call), `store/recovery.rs` (open, replay, checkpoints), `store/membership.rs`
//!   (peers, holders, reachability, data moves).
//! - `protocol` and `link`: replication over `crate::net` (mutual TLS, the
//!   `Replication` service): each node streams its log to each peer from the peer's
//!   durable cursor, in batches, one in flight (back-pressure), bodies riding with
//!   the op that first needs them or asked for; snapshots when the log is truncated.
//! - [`node`]: [`Node`], what a `pluto worker` / `pluto storage` process hosts: the
//!   store, the links, reachability (the CRDT's leader rule), checkpoints, status,
//!   and membership changes without a restart ([`Node::reconfigure`]: new peers
//!   dialed, gone ones dropped, users that gain a holder sent to it whole).
//! - [`config`]: the node's settings, [`NodeConfig`].
//! - `convert`: MailStore types ⇄ CRDT types.

pub mod blobs;
pub mod config;
mod convert;
mod link;
pub mod node;
pub mod oplog;
pub(crate) mod protocol;
pub mod store;

pub use config::{AckMode, NodeConfig, PeerConfig, ReplicasOf};
pub use node::{Node, NodeStatus, PeerStatus};
pub use store::{CheckpointReport, ReplicatedStore};
