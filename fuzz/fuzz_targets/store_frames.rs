//! The internal links' frame decoder: bytes arrive as they would from the network at
//! one end of a link (chosen by the first input byte): a node's Store service, a
//! gateway's store client, a replication receiver (which also reshapes snapshots and
//! applies batches to CRDT state) or a replication sender. Length-delimited frames,
//! a Hello, then postcard messages: none of it may panic, hang or allocate without
//! bound.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pluto_backends::fuzzing::{LinkEnd, read_link};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let end = match pick % 4 {
        0 => LinkEnd::StoreNode,
        1 => LinkEnd::StoreGateway,
        2 => LinkEnd::ReplicationReceiver,
        _ => LinkEnd::ReplicationSender,
    };
    let input = input.to_vec();
    runtime().block_on(async move {
        let (mut peer, ours) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            let _ = peer.write_all(&input).await;
            let _ = peer.shutdown().await;
            // Kept open until the reader is done, as a peer that sent its last frame.
            peer
        });
        let _ = read_link(ours, end).await;
        let _ = writer.await;
    });
});
