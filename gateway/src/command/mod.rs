//! One module per IMAP command, or per tight pair of commands, named after it. Each
//! handler checks what it must (state, arguments), does one thing through the store,
//! sends its untagged responses and returns how the command ended; `session.rs` sends
//! the tagged line.
//!
//! - Any state: [`capability`], [`noop`] (NOOP, CHECK), [`logout`], [`id`].
//! - Not authenticated: [`starttls`], [`login`], [`authenticate`]; the two last share
//!   [`credentials`] (plaintext policy, login throttle, the check, routing the user).
//! - Authenticated: [`enable`], [`namespace`], [`select`] (SELECT, EXAMINE),
//!   [`create`], [`delete`], [`rename`] (the two first and the last share
//!   [`mailbox_rules`]), [`subscribe`] (SUBSCRIBE, UNSUBSCRIBE), [`list`] (LIST, LSUB),
//!   [`status`], [`append`], [`idle`].
//! - Selected: [`close`] (CLOSE, UNSELECT), [`expunge`] (EXPUNGE, UID EXPUNGE),
//!   [`search`] (with [`search_syntax`] for programs nested deeper than imap-codec
//!   parses), [`fetch`], [`store`], [`copy`] (COPY, MOVE).

mod append;
mod authenticate;
mod capability;
mod close;
mod copy;
mod create;
mod credentials;
mod delete;
mod enable;
mod expunge;
mod fetch;
mod id;
mod idle;
mod list;
mod login;
mod logout;
mod mailbox_rules;
mod namespace;
mod noop;
mod rename;
mod search;
pub(crate) mod search_syntax;
mod select;
mod starttls;
mod status;
mod store;
mod subscribe;
