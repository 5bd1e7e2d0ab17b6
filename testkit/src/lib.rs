//! What pluto's tests share, so that each exists once:
//!
//! - [`imap`]: the IMAP test client (tagged commands, literals both ways, untagged
//!   answers read up to the tagged one, IDLE, plain or TLS), used by the gateway's,
//!   the cluster's and the benchmark's tests, and a blocking handle on it for tests
//!   that run on threads.
//! - [`tls`]: a client TLS configuration that trusts one certificate file.
//! - [`ports`]: the one allocator of loopback ports for child processes to bind.
//! - [`serve`]: the `pluto` binary, `pluto serve` run as a child process on such ports
//!   with a throw-away data dir and users file, and running commands with a deadline.
//! - [`disk`]: a small tmpfs to fill, for disk-full tests.
//! - [`golden`]: a script of commands replayed as Dovecot's golden answers to it were
//!   recorded, and compared with them.
//!
//! Nothing here depends on a pluto crate: the tests see pluto from outside, as a user
//! (or a user's mail client) does.

// A test kit fails the test that uses it: a broken precondition panics with what broke.
#![allow(clippy::expect_used)]

pub mod disk;
pub mod golden;
pub mod imap;
pub mod ports;
pub mod serve;
pub mod tls;
