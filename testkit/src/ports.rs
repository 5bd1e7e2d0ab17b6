//! The one allocator of loopback ports for a child process to bind later.
//!
//! Ports are taken below the kernel's ephemeral range (32768 and up on Linux), from
//! which `bind(:0)` and every outgoing connection draw: a port reserved that way and
//! released could be handed to someone else before the child binds it, and was (a
//! node's metrics port, taken meanwhile by another test). Each port is handed out once
//! per process; the start is spread by the process id so that test binaries run side
//! by side rarely meet. (A test that binds in-process binds `127.0.0.1:0` and keeps the
//! listener instead.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};

const FIRST: u16 = 12_000;
const SPAN: u16 = 20_000;
static NEXT: AtomicU16 = AtomicU16::new(0);

/// A loopback address free now, never handed out before in this process.
pub fn reserve() -> SocketAddr {
    let _ = NEXT.compare_exchange(
        0,
        (std::process::id() % u32::from(SPAN)) as u16 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let addr = SocketAddr::from(([127, 0, 0, 1], FIRST + offset));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_repeat() {
        let ports: Vec<u16> = (0..50).map(|_| super::reserve().port()).collect();
        assert!(
            ports.iter().all(|&p| (super::FIRST..32_000).contains(&p)),
            "{ports:?}"
        );
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
    }
}
