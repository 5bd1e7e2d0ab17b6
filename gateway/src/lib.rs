//! pluto's IMAP gateway and the `pluto` binary.
//!
//! How a session flows through this crate:
//!
//! 1. [`server`] binds the listeners (plain + STARTTLS, implicit TLS from [`tls`]),
//!    bounds connections in all and per address, and starts one task per client.
//! 2. [`wire`] turns the client's bytes into IMAP messages with imap-codec's
//!    fragmentizer, enforcing the line and literal limits (a too-large synchronizing
//!    literal gets `NO [TOOBIG]` before the client sends it; an over-long line gets
//!    `BAD` and is skipped; before login only small literals, within a server-wide
//!    budget), and encodes responses, streaming message bytes out as literals.
//! 3. [`session`] is the state machine (not authenticated → authenticated → selected →
//!    logout; each state carries its data: the login, then also the selected mailbox)
//!    and the command loop with its timeouts (before login one deadline from
//!    the connection, handshakes included; after it, the idle timeout); it hands each
//!    command to its module in `command/`, one file per command or tight pair, named
//!    after it (`select.rs` for SELECT/EXAMINE, `close.rs` with UNSELECT, `expunge.rs`,
//!    `list.rs` with LSUB, `copy.rs` for COPY/MOVE, `fetch.rs`, …). What a family
//!    shares has its own module: `credentials.rs` (plaintext policy, login throttle,
//!    the credential check, routing the user) for LOGIN and AUTHENTICATE,
//!    `mailbox_rules.rs` (per-user bounds, missing parents) for CREATE and RENAME.
//! 4. Commands speak to storage only through [`pluto_backends::MailStore`], in UIDs:
//!    [`selected`] keeps the session's view of the selected mailbox (sequence numbers)
//!    and turns changes made elsewhere into `EXISTS`/`EXPUNGE`/`FETCH` at the moments
//!    RFC 3501 allows; [`searchres`] is the search result SEARCHRES saves there.
//! 5. [`response`] builds status lines and holds the one mapping from store errors to
//!    IMAP response codes; [`names`] converts mailbox names (modified UTF-7) and
//!    matches LIST patterns; [`flags`] converts flags.
//!
//! [`cache`] keeps message headers and ENVELOPEs once read, for all sessions (a message
//! never changes under its UIDVALIDITY and UID, so nothing there goes stale).
//!
//! [`shared`] holds what every session of a process shares ([`Shared`]: configuration,
//! router, authenticator, throttle, TLS, header cache). [`route`] picks a user's store
//! (and reads the cluster's placement); [`tls`] makes the client acceptor and this
//! node's identity on internal links; [`node`] runs `pluto worker` / `pluto storage`.
//!
//! [`quota`] is the one check of a user's quota before a write that adds mail (APPEND,
//! COPY, delivery); the QUOTA commands (GETQUOTA, GETQUOTAROOT, SETQUOTA) are
//! `command/quota.rs`.
//!
//! [`lmtp`] takes mail from the MTA (LMTP, RFC 2033) and stores each recipient's copy
//! through the same router as a login; `pluto deliver` uses its delivery path.
//!
//! [`config`] is the one typed configuration; [`cli`] the `pluto` command line: its
//! grammar in `cli/mod.rs`, the long-running processes in `cli/serve.rs`, starting a
//! server from a configuration in `cli/start.rs`, the admin tools (`user`, `auth
//! init-postgres`, `pki`, `cluster status`) in `cli/admin.rs`; `pluto pki` calls
//! `pluto_backends::net::pki`.

pub mod cache;
pub mod cli;
mod command;
pub mod config;
pub mod error;
pub mod flags;
pub mod lmtp;
pub mod metrics;
pub mod names;
pub mod node;
pub mod quota;
pub mod response;
pub mod resync;
pub mod ring;
pub mod route;
pub mod searchres;
pub mod selected;
pub mod server;
pub mod session;
pub mod shared;
pub mod tls;
pub mod wire;

pub use config::Config;
pub use error::GatewayError;
pub use server::Server;
pub use shared::Shared;
