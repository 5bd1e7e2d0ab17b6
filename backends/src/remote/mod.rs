//! The MailStore over the network: a gateway's [`RemoteStore`] calls a node's
//! [`serve`] loop, which runs the calls against the node's own store.
//!
//! One mutually authenticated TLS link carries many calls at once: each request has an
//! id and its reply names it, so a slow FETCH does not hold up a NOOP. Change feeds
//! travel as `Notify` frames on the same link; when the link drops, every feed on it
//! ends, which tells the sessions to say `BYE` so their clients reconnect (and are
//! routed to a live replica). Bodies travel in chunks of at most
//! [`MAX_CHUNK`](crate::net::MAX_CHUNK) bytes both ways (`protocol.rs` says how).

mod client;
pub(crate) mod protocol;
mod server;

pub use client::RemoteStore;
pub use protocol::{
    AdmitFn, Call, NodeStatus, PeerStatus, Reply, Request, Response, StatusFn, ToNode, WireError,
};
pub use server::{serve, serve_admitting};
