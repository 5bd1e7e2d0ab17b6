//! `pluto-bench`: an IMAP and LMTP load generator and the tools to compare servers
//! with it.
//!
//! - [`conn`]: a small IMAP client connection (plain or TLS) that reads whole
//!   responses, literals included, and knows APPEND and IDLE.
//! - [`corpus`]: the messages APPENDed, from the shared corpus generator.
//! - [`workload`]: the four workloads (a: mix with a LOGIN per cycle, b: mix on kept
//!   sessions, c: APPEND only, d: IDLE fan-out) and the driver that runs N clients
//!   over M users, bounded in time and cycles, checking every answer.
//! - [`lmtp`]: LMTP delivery load: C connections, pipelined transactions of N
//!   recipients, every reply checked, deliveries counted over IMAP afterwards.
//! - [`stats`]: per-command hdrhistograms merged into a [`stats::Report`] (table and
//!   JSON).
//! - [`idle_mem`]: opens thousands of IDLE sessions and measures the server's PSS.
//! - [`compare`]: the side-by-side table with ratios to a baseline server.
//!
//! `src/main.rs` is the command line; `scripts/bench-vs-dovecot.sh` drives it against
//! Dovecot, `pluto serve` and a replicated cluster, `scripts/bench-lmtp.sh` drives
//! `lmtp` against Dovecot's LMTP, `pluto serve` and the cluster.

pub mod compare;
pub mod conn;
pub mod corpus;
pub mod error;
pub mod idle_mem;
pub mod lmtp;
pub mod stats;
pub mod workload;

pub use error::{BenchError, Result};
