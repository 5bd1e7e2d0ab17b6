//! Support for multi-process cluster tests: [`proxy`] is a TCP proxy that can cut,
//! delay or black-hole a link; [`cluster`] starts real `pluto` processes (workers,
//! storage, a gateway) on loopback ports with a generated PKI, each internal link
//! passing through a proxy; [`mail`] logs in, appends with reconnects and records
//! what a client saw, over the test kit's IMAP client;
//! [`postfix`] runs a real Postfix that delivers over LMTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

pub mod cluster;
pub mod corpus;
pub mod mail;
pub mod postfix;
pub mod proxy;
