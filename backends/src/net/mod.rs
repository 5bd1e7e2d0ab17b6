//! Links between pluto processes: mutual TLS with the private CA made by `pluto pki`
//! ([`tls`]), versioned, length-delimited postcard frames over it ([`frame`]), and
//! message bodies cut into bounded pieces for those frames ([`chunks`]).
//! Both the MailStore RPC (gateway → node) and replication (node ⇄ node) ride on this.

pub mod chunks;
pub mod frame;
pub mod pki;
pub mod tls;

pub use chunks::{Assembly, ChunkError, MAX_CHUNK, MAX_STORED_BODY};
pub use frame::{
    FrameError, FrameReceiver, FrameSender, Framed, Hello, MAX_FRAME, PROTOCOL_VERSION, Service,
};
pub use tls::{NodeTls, NodeTlsError};
