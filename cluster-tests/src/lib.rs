//! Support for multi-process cluster tests: [`proxy`] is a TCP proxy that can cut,
//! delay or black-hole a link; [`cluster`] starts real `pluto` processes (workers,
//! storage, a gateway) on loopback ports with a generated PKI, each internal link
//! passing through a proxy; [`client`] is a small IMAP client that records what it saw.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

pub mod client;
pub mod cluster;
pub mod corpus;
pub mod proxy;
