//! One module per IMAP command, or per tight pair of commands, named after it. Each
//! handler is a method of [`Client`](crate::session::Client) and is given the data of
//! the state it runs in: the [`Authenticated`](crate::session::Authenticated) login, or
//! for the selected-state commands the [`Selected`](crate::session::Selected) state
//! (login and mailbox view). Whether a command is allowed in the state is decided once,
//! by the session's dispatcher. A handler checks its arguments, does one thing through
//! the store, sends its untagged responses and returns how the command ended, with the
//! [`Transition`](crate::session::Transition) it asks for when it changes the state;
//! `session.rs` applies that and sends the tagged line.
//!
//! - Any state: [`capability`], [`noop`] (NOOP, CHECK), [`logout`], [`id`].
//! - Not authenticated: [`starttls`], [`login`], [`authenticate`]; the two last share
//!   [`credentials`] (plaintext policy, login throttle, the check, routing the user).
//! - Authenticated: [`enable`], [`namespace`], [`select`] (SELECT, EXAMINE),
//!   [`create`], [`delete`], [`rename`] (the two first and the last share
//!   [`mailbox_rules`]), [`subscribe`] (SUBSCRIBE, UNSUBSCRIBE), [`list`] (LIST, LSUB),
//!   [`status`], [`append`], [`idle`], [`quota`] (GETQUOTA, GETQUOTAROOT, SETQUOTA),
//!   [`unauthenticate`].
//! - Selected: [`close`] (CLOSE, UNSELECT), [`expunge`] (EXPUNGE, UID EXPUNGE),
//!   [`search`] (with [`search_syntax`] for programs nested deeper than imap-codec
//!   parses, ESEARCH's RETURN options and `$`), [`fetch`], [`store`], [`copy`] (COPY,
//!   MOVE), [`sort`] (SORT, UID SORT), [`thread`] (THREAD, UID THREAD);
//!   [`saved_result`] keeps SEARCHRES's saved result and reads `$` in FETCH,
//!   STORE, COPY and MOVE.
//!
//! Syntax imap-codec lacks is read by [`extended`] (the wire layer calls it for a
//! command imap-codec refused), LIST's extended syntax by [`list_syntax`], with
//! [`extra_items`] for FETCH's and STATUS's items of RFC 8474 (OBJECTID) and RFC 8970
//! (PREVIEW).

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
pub(crate) mod extended;
pub(crate) mod extra_items;
mod fetch;
mod id;
mod idle;
mod list;
pub(crate) mod list_syntax;
mod login;
mod logout;
mod mailbox_rules;
mod namespace;
mod noop;
mod quota;
mod rename;
pub(crate) mod saved_result;
mod search;
pub(crate) mod search_syntax;
mod select;
mod sort;
mod starttls;
mod status;
mod store;
mod subscribe;
mod thread;
mod unauthenticate;
