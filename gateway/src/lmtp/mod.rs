//! Mail delivery over LMTP (RFC 2033), on `pluto serve` and on every gateway, and the
//! delivery path `pluto deliver` shares.
//!
//! - [`listener`]: the TCP and Unix-socket listeners, who may connect (loopback or
//!   `lmtp.allow_networks`), the bound on connections.
//! - [`session`]: one connection's state machine (LHLO, MAIL, RCPT, DATA, RSET, NOOP,
//!   QUIT), the bounded line framing, the message read up to `limits.append_limit`,
//!   and one reply per recipient after the message (PIPELINING, ENHANCEDSTATUSCODES,
//!   8BITMIME and SIZE are advertised).
//! - [`delivery`]: taking a recipient (domain, `user+detail`, the account) and storing
//!   its copy with `Return-Path` and `Delivered-To`, routed like an IMAP login.
//! - [`reply`]: the replies, and the one mapping from a delivery's outcome to a reply.
//!
//! Syntax (commands, parameters, dot-unstuffing, reply lines) is smtp-proto's.

pub mod delivery;
pub mod listener;
pub mod reply;
pub mod session;
