//! The MailStore over the network: a gateway's [`RemoteStore`] calls a node's
//! [`serve`] loop, which runs the calls against the node's own store.
//!
//! One mutually authenticated TLS link carries many calls at once: each request has an
//! id and its reply names it, so a slow FETCH does not hold up a NOOP. Change feeds
//! travel as `Notify` frames on the same link; when the link drops, every feed on it
//! ends, which tells the sessions to say `BYE` so their clients reconnect (and are
//! routed to a live replica). Bodies travel in chunks of at most
//! [`MAX_CHUNK`](crate::net::MAX_CHUNK) bytes both ways (`protocol.rs` says how).
//!
//! The calls are one list, `methods.rs`: every MailStore method once, from which the
//! [`Request`] enum, the client's methods and the node's dispatch are made, so a new
//! method needs one line there ([`METHODS`] names them; a test holds them against the
//! trait).

mod client;
mod methods;
pub(crate) mod protocol;
mod server;

pub use client::RemoteStore;
pub use methods::{Arg, METHODS};
pub use protocol::{
    AdmitFn, Call, NodeStatus, PeerStatus, Reply, Request, Response, StatusFn, ToNode, WireError,
};
pub use server::{serve, serve_admitting};
