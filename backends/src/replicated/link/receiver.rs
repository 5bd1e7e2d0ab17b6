//! The receiver side of a link: apply what a peer streams (bodies stored, missing ones
//! asked for and put together from pieces, then the batch, durable before it is
//! acknowledged).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use pluto_crdt::{BodyRef, Op, OpKind};
use tokio::io::{AsyncRead, AsyncWrite};

use super::PeerLink;
use crate::concurrency::{blocking_err, lock};
use crate::error::StoreResult;
use crate::net::{Assembly, FrameError, Framed, MAX_STORED_BODY};
use crate::replicated::protocol::{FromPeer, ToPeer};
use crate::replicated::store::{PeerInfo, ReplicatedStore};

/// Serves one inbound replication link: a peer streaming its log here.
pub(crate) async fn serve_inbound<S: AsyncRead + AsyncWrite + Unpin>(
    store: Arc<ReplicatedStore>,
    mut framed: Framed<S>,
    peer: PeerInfo,
    link: Arc<PeerLink>,
    link_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let resume_from = store.inbound_cursor(&peer.name) + 1;
    if store.recovering() {
        framed
            .send(&FromPeer::WelcomeRecovering { resume_from })
            .await?;
    } else {
        framed.send(&FromPeer::Welcome { resume_from }).await?;
    }
    // The sender heartbeats every few hundred milliseconds: silence means it is gone.
    let idle = link_timeout * 3;
    let mut retired = link.retired.subscribe();
    loop {
        let received = tokio::select! {
            r = tokio::time::timeout(idle, framed.recv::<ToPeer>()) => r,
            // The peer left the configuration: its link ends here.
            _ = retired.wait_for(|r| *r) => return Ok(()),
        };
        let message = match received {
            Ok(Ok(m)) => m,
            Ok(Err(FrameError::Closed)) => return Ok(()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(format!("{} silent for {idle:?}", peer.name).into()),
        };
        match message {
            ToPeer::Batch(batch) => {
                let mut bodies = Vec::new();
                let mut records = Vec::new();
                for r in batch.records {
                    bodies.extend(r.bodies);
                    records.push((r.user, r.ops));
                }
                store_blobs(&store, bodies).await?;
                let all_ops: Vec<_> = records.iter().flat_map(|(_, ops)| ops.clone()).collect();
                let missing = store.missing_for(&all_ops);
                if !missing.is_empty() {
                    let sizes = body_sizes(&all_ops);
                    fetch_missing(&store, &mut framed, missing, &sizes, link_timeout).await?;
                }
                store
                    .apply_batch(&peer, records, batch.progress, batch.upto)
                    .await?;
                if batch.upto >= batch.head {
                    if !link.delivered.swap(true, Ordering::AcqRel) {
                        tracing::info!(peer = %peer.name, upto = batch.upto, "peer's backlog delivered");
                    }
                    let mut seen = lock(&link.moves);
                    if seen.report.as_ref().is_some_and(|r| r.pending == 0) {
                        seen.settled = true;
                    }
                }
                framed.send(&FromPeer::Ack { upto: batch.upto }).await?;
            }
            ToPeer::Snapshot { user, state } => {
                let (installed, missing) =
                    store.install_snapshot(&peer.name, &user, &state).await?;
                if !installed {
                    tracing::info!(peer = %peer.name, %user, "kept local state over a snapshot that lacks some of it");
                }
                if !missing.is_empty() {
                    // A snapshot names no sizes: a body is bounded by what a store holds.
                    let sizes = HashMap::new();
                    fetch_missing(&store, &mut framed, missing, &sizes, link_timeout).await?;
                }
                framed.send(&FromPeer::Ack { upto: 0 }).await?;
            }
            ToPeer::Blobs(_) | ToPeer::BlobPiece { .. } => {
                tracing::debug!(peer = %peer.name, "bodies nobody asked for");
            }
            ToPeer::Moves(report) => {
                {
                    let mut seen = lock(&link.moves);
                    // A repeated report (a new connection) keeps what was settled.
                    if seen.report.as_ref() != Some(&report) {
                        tracing::info!(peer = %peer.name, pending = report.pending, "peer reports data moves");
                        seen.settled = false;
                        seen.report = Some(report);
                    }
                }
                framed.send(&FromPeer::Ack { upto: 0 }).await?;
            }
        }
    }
}

/// The size each body of `ops`' new messages has, as the operations name it.
fn body_sizes(ops: &[Op]) -> HashMap<BodyRef, u64> {
    ops.iter()
        .flat_map(|op| match &op.kind {
            OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => messages
                .iter()
                .map(|m| (m.data.body, u64::from(m.data.size)))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect()
}

/// The body a [`FetchMissing`] is putting together from its pieces.
type Piece = Option<(BodyRef, Assembly)>;

/// Adds a [`ToPeer::BlobPiece`] to the body being put together; returns the body once
/// whole. Refused: a body not asked for, a length other than the one its operation
/// names (or above what a store holds), a piece of another body before this one is
/// whole, a piece past the length announced.
fn take_piece(
    piece: &mut Piece,
    asked: &HashSet<BodyRef>,
    sizes: &HashMap<BodyRef, u64>,
    (body, len, bytes): (BodyRef, u64, &[u8]),
) -> Result<Option<(BodyRef, Bytes)>, String> {
    let mut assembly = match piece.take() {
        Some((at, assembly)) if at == body && assembly.announced() == len => assembly,
        Some(_) => return Err("a piece of another body before the last was whole".into()),
        None if !asked.contains(&body) => return Err("a piece of a body nobody asked for".into()),
        None => {
            let limit = sizes.get(&body).copied().unwrap_or(MAX_STORED_BODY);
            if sizes.contains_key(&body) && len != limit {
                return Err(format!(
                    "a body announced as {len} bytes that its operation names as {limit}"
                ));
            }
            Assembly::new(len, limit).map_err(|e| e.to_string())?
        }
    };
    if !assembly.push(bytes).map_err(|e| e.to_string())? {
        *piece = Some((body, assembly));
        return Ok(None);
    }
    Ok(Some((body, assembly.finish().map_err(|e| e.to_string())?)))
}

/// Asks the peer for `missing` bodies and stores them as they come; `sizes` are the
/// lengths their operations name (where known).
async fn fetch_missing<S: AsyncRead + AsyncWrite + Unpin>(
    store: &ReplicatedStore,
    framed: &mut Framed<S>,
    missing: Vec<BodyRef>,
    sizes: &HashMap<BodyRef, u64>,
    link_timeout: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let asked: HashSet<BodyRef> = missing.iter().copied().collect();
    framed.send(&FromPeer::Want(missing)).await?;
    // The bodies come in parts and pieces, each stored once whole; an empty part ends
    // them. A half-received body is dropped with the error that ends the link.
    let mut got = 0;
    let mut piece: Piece = None;
    loop {
        let reply = tokio::time::timeout(link_timeout * 10, framed.recv::<ToPeer>()).await??;
        match reply {
            ToPeer::Blobs(_) if piece.is_some() => {
                return Err("whole bodies inside a body sent in pieces".into());
            }
            ToPeer::Blobs(bodies) if bodies.is_empty() => break,
            ToPeer::Blobs(bodies) => {
                got += bodies.len();
                store_blobs(store, bodies).await?;
            }
            ToPeer::BlobPiece { body, len, bytes } => {
                if let Some(whole) = take_piece(&mut piece, &asked, sizes, (body, len, &bytes))? {
                    got += 1;
                    store_blobs(store, vec![whole]).await?;
                }
            }
            _ => return Err("expected bodies".into()),
        }
    }
    if got < asked.len() {
        tracing::warn!(asked = asked.len(), got, "a peer lacks bodies its ops name");
    }
    Ok(())
}

async fn store_blobs(store: &ReplicatedStore, bodies: Vec<(BodyRef, Bytes)>) -> StoreResult<()> {
    if bodies.is_empty() {
        return Ok(());
    }
    let blobs = store.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.put_many_checked(&bodies).map(|_| ()))
        .await
        .map_err(blocking_err)?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn setup(len: u64) -> (BodyRef, HashSet<BodyRef>, HashMap<BodyRef, u64>) {
        let body = BodyRef([7; 32]);
        (body, HashSet::from([body]), HashMap::from([(body, len)]))
    }

    #[test]
    fn pieces_of_a_body_asked_for_come_back_whole() {
        let (body, asked, sizes) = setup(6);
        let mut piece = None;
        let first = take_piece(&mut piece, &asked, &sizes, (body, 6, b"abc")).unwrap();
        assert!(first.is_none() && piece.is_some());
        let whole = take_piece(&mut piece, &asked, &sizes, (body, 6, b"def")).unwrap();
        assert_eq!(whole, Some((body, Bytes::from_static(b"abcdef"))));
        assert!(piece.is_none());
    }

    #[test]
    fn pieces_past_the_announced_length_are_refused_not_buffered() {
        let (body, asked, sizes) = setup(6);
        let mut piece = None;
        take_piece(&mut piece, &asked, &sizes, (body, 6, b"abcd")).unwrap();
        let err = take_piece(&mut piece, &asked, &sizes, (body, 6, b"efg")).unwrap_err();
        assert!(err.contains("grew to 7"), "{err}");
        // Nothing of that body is kept.
        assert!(piece.is_none());
    }

    #[test]
    fn a_length_other_than_the_operation_names_is_refused() {
        let (body, asked, sizes) = setup(6);
        let mut piece = None;
        let err = take_piece(&mut piece, &asked, &sizes, (body, 1 << 40, b"a")).unwrap_err();
        assert!(err.contains("names as 6"), "{err}");
        let other = BodyRef([8; 32]);
        let err = take_piece(&mut piece, &asked, &sizes, (other, 3, b"a")).unwrap_err();
        assert!(err.contains("nobody asked for"), "{err}");
        // Without a size from an operation, the bound is what a store holds.
        let err =
            take_piece(&mut piece, &asked, &HashMap::new(), (body, 1 << 40, b"a")).unwrap_err();
        assert!(err.contains("above the limit"), "{err}");
    }
}
