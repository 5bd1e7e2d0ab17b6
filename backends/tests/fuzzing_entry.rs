//! The entry point of the `store_frames` fuzz target (fuzz/, docs/FUZZING.md) reads
//! links as their ends do: real frames are all read, and a cut or foreign frame is
//! refused with an error, not a panic. Keeps the target meaningful as the protocol grows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pluto_backends::fuzzing::{LinkEnd, read_link, seed_links};
use pluto_backends::net::FrameError;
use tokio::io::AsyncWriteExt;

const ENDS: [LinkEnd; 4] = [
    LinkEnd::StoreNode,
    LinkEnd::StoreGateway,
    LinkEnd::ReplicationReceiver,
    LinkEnd::ReplicationSender,
];

async fn read(end: LinkEnd, bytes: &[u8]) -> Result<usize, FrameError> {
    let (mut peer, ours) = tokio::io::duplex(1 << 16);
    let bytes = bytes.to_vec();
    let writer = tokio::spawn(async move {
        // The reader may stop early (that is what is tested): the peer's writes may fail.
        let _ = peer.write_all(&bytes).await;
        let _ = peer.shutdown().await;
        peer
    });
    let read = read_link(ours, end).await;
    drop(writer.await.unwrap());
    read
}

#[tokio::test]
async fn every_seed_is_read_whole_by_its_end() {
    let seeds = seed_links().unwrap();
    assert_eq!(seeds.len(), ENDS.len());
    for (seed, (expected, end)) in seeds.iter().zip([6, 4, 4, 3].into_iter().zip(ENDS)) {
        assert_eq!(
            seed[0] as usize,
            ENDS.iter().position(|e| *e == end).unwrap()
        );
        assert_eq!(read(end, &seed[1..]).await.unwrap(), expected, "{end:?}");
    }
}

#[tokio::test]
async fn cut_and_foreign_frames_are_refused() {
    let seeds = seed_links().unwrap();
    let node = &seeds[0][1..];
    // Cut inside the last frame: the stream ends mid-frame.
    assert!(
        read(LinkEnd::StoreNode, &node[..node.len() - 3])
            .await
            .is_err()
    );
    // A gateway's calls are not replies, nor replication messages.
    assert!(read(LinkEnd::StoreGateway, node).await.is_err());
    assert!(read(LinkEnd::ReplicationReceiver, node).await.is_err());
    // A frame that announces more than MAX_FRAME bytes.
    let mut huge = node[..4 + u32::from_be_bytes(node[..4].try_into().unwrap()) as usize].to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(read(LinkEnd::StoreNode, &huge).await.is_err());
}
