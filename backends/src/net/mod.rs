//! Links between pluto processes: mutual TLS with the private CA made by `pluto pki`
//! ([`tls`]), and versioned, length-delimited postcard frames over it ([`frame`]).
//! Both the MailStore RPC (gateway → node) and replication (node ⇄ node) ride on this.

pub mod frame;
pub mod pki;
pub mod tls;

pub use frame::{FrameError, Framed, Hello, MAX_BODY, MAX_FRAME, PROTOCOL_VERSION, Service};
pub use tls::{NodeTls, NodeTlsError};
