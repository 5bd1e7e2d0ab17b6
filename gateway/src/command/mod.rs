//! One module per IMAP command, or per tight family of commands. Each handler checks
//! what it must (state, arguments), does one thing through the store, sends its
//! untagged responses and returns how the command ended; `session.rs` sends the tagged
//! line.

mod any;
mod append;
mod auth;
mod copy;
mod fetch;
mod idle;
mod mailbox;
mod search;
pub(crate) mod search_syntax;
mod select;
mod store;
