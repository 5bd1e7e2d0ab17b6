//! The sender side of a link: dial the peer, stream this node's log to it (snapshots
//! first where the log is truncated, data moves before each batch), bodies on request.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use pluto_crdt::{BodyRef, OpKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use super::{
    HEARTBEAT, LinkError, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_RIDE_BYTES, PeerLink, recv,
};
use crate::UserId;
use crate::concurrency::blocking_err;
use crate::error::StoreResult;
use crate::net::chunks::pieces;
use crate::net::{Framed, NodeTls, Service};
use crate::replicated::oplog::{Entry, LogReader};
use crate::replicated::protocol::{Batch, FromPeer, MovesReport, ToPeer, WireRecord};
use crate::replicated::store::{PeerInfo, ReplicatedStore};

/// Runs one peer's sender until `stop`; `changed` is bumped when the link goes up or
/// down (reachability).
pub(crate) async fn run_sender(
    store: Arc<ReplicatedStore>,
    peer: PeerInfo,
    tls: NodeTls,
    link: Arc<PeerLink>,
    changed: watch::Sender<u64>,
    link_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let span = tracing::info_span!("replication_out", node = %store.name, peer = %peer.name);
    let mut retired = link.retired.subscribe();
    async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop.borrow() || *retired.borrow() {
                break;
            }
            let result = tokio::select! {
                r = send_loop(&store, &peer, &tls, &link, &changed, link_timeout) => r,
                _ = stop.wait_for(|s| *s) => break,
                _ = retired.wait_for(|r| *r) => break,
            };
            if link.connected.swap(false, Ordering::AcqRel) {
                changed.send_modify(|n| *n += 1);
                backoff = Duration::from_millis(100);
            }
            if let Err(e) = result {
                tracing::debug!(error = %e, "replication link down");
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => break,
                _ = retired.wait_for(|r| *r) => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        if link.connected.swap(false, Ordering::AcqRel) {
            changed.send_modify(|n| *n += 1);
        }
    }
    .instrument(span)
    .await
}

async fn send_loop(
    store: &Arc<ReplicatedStore>,
    peer: &PeerInfo,
    tls: &NodeTls,
    link: &PeerLink,
    changed: &watch::Sender<u64>,
    link_timeout: Duration,
) -> Result<(), LinkError> {
    let tcp = tokio::time::timeout(link_timeout, TcpStream::connect(&peer.addr))
        .await
        .map_err(|_| LinkError::Timeout(link_timeout))??;
    let _ = tcp.set_nodelay(true);
    let stream = tokio::time::timeout(link_timeout, tls.connect(&peer.name, tcp))
        .await
        .map_err(|_| LinkError::Timeout(link_timeout))??;
    let mut framed = Framed::new(stream);
    let theirs = tokio::time::timeout(
        link_timeout,
        framed.handshake(&store.name, Service::Replication),
    )
    .await
    .map_err(|_| LinkError::Timeout(link_timeout))??;
    if theirs != peer.name {
        return Err(LinkError::Protocol(format!(
            "dialed {} but {theirs} answered",
            peer.name
        )));
    }
    // A peer recovering its history gets its own ops back too.
    let (resume_from, own_too) = match recv(&mut framed, link_timeout).await? {
        FromPeer::Welcome { resume_from } => (resume_from, false),
        FromPeer::WelcomeRecovering { resume_from } => (resume_from, true),
        _ => return Err(LinkError::Protocol("expected a welcome".into())),
    };
    // While this node recovers, how far the peer holds its log: the log is padded past
    // it before this node makes an op (a lost log's replacement starts below it).
    store.peer_holds_log(&peer.name, resume_from.saturating_sub(1));
    link.welcomed.store(true, Ordering::Release);
    if !link.connected.swap(true, Ordering::AcqRel) {
        changed.send_modify(|n| *n += 1);
    }
    tracing::debug!(resume_from, "replication link up");
    let log_reader = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || LogReader::open(&store.log, resume_from))
            .await
            .map_err(blocking_err)??
    };
    let (mut reader, mut cursor) = match log_reader {
        Some(r) => (r, resume_from.saturating_sub(1)),
        None => {
            // The peer needs records this log no longer has: snapshots first.
            let head = store.log.durable().lsn;
            send_snapshots(store, peer, &mut framed, link_timeout).await?;
            let store2 = store.clone();
            let reader =
                tokio::task::spawn_blocking(move || LogReader::open(&store2.log, head + 1))
                    .await
                    .map_err(blocking_err)??
                    .ok_or_else(|| {
                        LinkError::Protocol("the log was truncated during a catch-up".into())
                    })?;
            (reader, head)
        }
    };
    let mut durable_rx = store.log.durable_watch();
    // What this connection last told the peer of the moves owed to it.
    let mut reported: Option<MovesReport> = None;
    // Read so far, and where in the log bytes that ends: ahead of `cursor` while records
    // this peer does not hold wait to be acknowledged with the next batch.
    let mut read_upto = cursor;
    let mut read_end: Option<u64> = None;
    let mut last_sent = tokio::time::Instant::now();
    // Users whose records were read since the last batch went out: the next batch
    // carries this node's progress for each (a held-back record owes it too).
    let mut users = BTreeSet::new();
    loop {
        // Moves first: a batch read after a reconfiguration sends the moved users'
        // new records, and their older ones come with the snapshot.
        deliver_moves(store, peer, &mut framed, &mut reported, link_timeout).await?;
        let durable = *durable_rx.borrow_and_update();
        let (r, records) = {
            let mut r = reader;
            tokio::task::spawn_blocking(move || {
                let records = r.read(&durable, MAX_BATCH_RECORDS, MAX_BATCH_BYTES);
                (r, records)
            })
            .await
            .map_err(blocking_err)?
        };
        reader = r;
        let records = records?;
        let read_any = !records.is_empty();
        if !read_any && read_upto >= durable.lsn {
            // Idle: wait for more (records or moves), or send a heartbeat — which also
            // acknowledges records held back below, at the latest one heartbeat after the
            // last batch.
            let deadline = if read_upto == cursor {
                tokio::time::Instant::now() + HEARTBEAT
            } else {
                last_sent + HEARTBEAT
            };
            let more = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    r = durable_rx.changed() => r.is_ok(),
                    _ = link.wake.notified() => true,
                }
            })
            .await;
            if more == Ok(false) {
                return Err(LinkError::Protocol("the log closed".into()));
            }
            if more.is_ok() {
                continue;
            }
        }
        let mut wire = Vec::new();
        // A claim of the peer's (dense UIDs) is acknowledged at once: its writes bind
        // densely only once every replica reported holding it.
        let mut acks_claim = false;
        let mut riding = 0usize;
        // One configuration for the whole batch. A record filtered out here under a
        // configuration that a reconfiguration has just replaced is covered by the
        // moved user's snapshot, which this sender takes later.
        let membership = store.membership();
        for rec in records {
            read_upto = rec.lsn;
            read_end = Some(rec.end);
            let Entry::Step { user, ops, blobs } = rec.entry else {
                continue;
            };
            if !membership.holds(&user, &peer.name) {
                continue;
            }
            users.insert(user.clone());
            acks_claim |= ops
                .iter()
                .any(|op| op.id.replica == peer.replica && matches!(op.kind, OpKind::Claim { .. }));
            // The peer has its own ops; it gets back only what others made (unless
            // it is recovering them).
            let ops: Vec<_> = ops
                .into_iter()
                .filter(|op| own_too || op.id.replica != peer.replica)
                .collect();
            if ops.is_empty() {
                continue;
            }
            let needed: BTreeSet<BodyRef> = ops
                .iter()
                .flat_map(|op| match &op.kind {
                    OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => {
                        messages.iter().map(|m| m.data.body).collect::<Vec<_>>()
                    }
                    _ => Vec::new(),
                })
                .collect();
            let ride: Vec<BodyRef> = blobs.into_iter().filter(|b| needed.contains(b)).collect();
            let mut bodies = Vec::new();
            for (r, bytes) in read_blobs(store, ride).await? {
                // Past the budget a body stays behind; the receiver asks for it.
                if riding + bytes.len() <= MAX_RIDE_BYTES {
                    riding += bytes.len();
                    bodies.push((r, bytes));
                }
            }
            wire.push(WireRecord {
                lsn: rec.lsn,
                user,
                ops,
                bodies,
            });
        }
        let empty = wire.is_empty();
        // Records only of users this peer does not hold (a worker's writes, seen by the
        // other workers) need no round trip of their own: they are acknowledged with the
        // next batch that carries something, or by the heartbeat.
        if empty && read_any && !acks_claim && last_sent.elapsed() < HEARTBEAT {
            continue;
        }
        let mut progress = Vec::new();
        for user in std::mem::take(&mut users) {
            if let Some(v) = store.durable_version(&user).await {
                progress.push((user, v));
            }
        }
        let upto = read_upto;
        let end_bytes = read_end.take();
        last_sent = tokio::time::Instant::now();
        let batch = Batch {
            records: wire,
            upto,
            head: durable.lsn,
            progress,
        };
        framed.send(&ToPeer::Batch(batch)).await?;
        let within = if empty {
            link_timeout
        } else {
            link_timeout * 10
        };
        let acked = await_ack(store, &mut framed, within).await?;
        if acked != upto {
            return Err(LinkError::Protocol(format!(
                "acknowledged {acked}, sent up to {upto}"
            )));
        }
        cursor = upto;
        store.record_ack(&peer.name, upto);
        if let Some(end) = end_bytes {
            link.acked_bytes.store(end, Ordering::Release);
        } else if cursor >= durable.lsn {
            link.acked_bytes.store(durable.bytes, Ordering::Release);
        }
    }
}

/// Waits for the final answer to a message, serving body requests on the way.
async fn await_ack<S: AsyncRead + AsyncWrite + Unpin>(
    store: &ReplicatedStore,
    framed: &mut Framed<S>,
    within: Duration,
) -> Result<u64, LinkError> {
    loop {
        match recv(framed, within).await? {
            FromPeer::Ack { upto } => return Ok(upto),
            FromPeer::Want(refs) => send_blobs(store, framed, refs).await?,
            FromPeer::Welcome { .. } | FromPeer::WelcomeRecovering { .. } => {
                return Err(LinkError::Protocol("a second welcome".into()));
            }
        }
    }
}

/// Answers a [`FromPeer::Want`]: the bodies in frames of at most [`MAX_RIDE_BYTES`],
/// each larger body in [`ToPeer::BlobPiece`]s, then an empty [`ToPeer::Blobs`] that
/// ends the answer (bodies this node lacks are left out).
async fn send_blobs<S: AsyncRead + AsyncWrite + Unpin>(
    store: &ReplicatedStore,
    framed: &mut Framed<S>,
    refs: Vec<BodyRef>,
) -> Result<(), LinkError> {
    let mut part = Vec::new();
    let mut size = 0usize;
    for r in refs {
        for (r, bytes) in read_blobs(store, vec![r]).await? {
            if bytes.len() > MAX_RIDE_BYTES {
                if !part.is_empty() {
                    framed
                        .send(&ToPeer::Blobs(std::mem::take(&mut part)))
                        .await?;
                    size = 0;
                }
                send_pieces(framed, r, &bytes).await?;
                continue;
            }
            if size > 0 && size + bytes.len() > MAX_RIDE_BYTES {
                framed
                    .send(&ToPeer::Blobs(std::mem::take(&mut part)))
                    .await?;
                size = 0;
            }
            size += bytes.len();
            part.push((r, bytes));
        }
    }
    if !part.is_empty() {
        framed.send(&ToPeer::Blobs(part)).await?;
    }
    framed.send(&ToPeer::Blobs(Vec::new())).await?;
    Ok(())
}

/// One body larger than a frame's share, in [`ToPeer::BlobPiece`]s.
async fn send_pieces<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S>,
    body: BodyRef,
    bytes: &Bytes,
) -> Result<(), LinkError> {
    let len = bytes.len() as u64;
    for bytes in pieces(bytes) {
        framed.send(&ToPeer::BlobPiece { body, len, bytes }).await?;
    }
    Ok(())
}

async fn read_blobs(
    store: &ReplicatedStore,
    refs: Vec<BodyRef>,
) -> Result<Vec<(BodyRef, Bytes)>, LinkError> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let blobs = store.blobs.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for r in refs {
            if let Some(bytes) = blobs.try_get(&r)? {
                out.push((r, bytes));
            }
        }
        StoreResult::Ok(out)
    })
    .await
    .map_err(blocking_err)??;
    Ok(found)
}

/// Sends `user`'s durable state (if this node holds any) and waits until the peer has
/// installed it.
async fn send_snapshot<S: AsyncRead + AsyncWrite + Unpin>(
    store: &ReplicatedStore,
    framed: &mut Framed<S>,
    user: &UserId,
    link_timeout: Duration,
) -> Result<(), LinkError> {
    if let Some(state) = store.snapshot_bytes(user).await? {
        framed
            .send(&ToPeer::Snapshot {
                user: user.clone(),
                state,
            })
            .await?;
        await_ack(store, framed, link_timeout * 10).await?;
    }
    Ok(())
}

async fn send_snapshots<S: AsyncRead + AsyncWrite + Unpin>(
    store: &ReplicatedStore,
    peer: &PeerInfo,
    framed: &mut Framed<S>,
    link_timeout: Duration,
) -> Result<(), LinkError> {
    // Moves queued before these snapshots are taken are covered by them.
    let queued = store.queued_moves(&peer.name);
    let users = store.users_held_by(&peer.name);
    tracing::info!(
        users = users.len(),
        "sending snapshots to a peer behind the log"
    );
    for user in users {
        send_snapshot(store, framed, &user, link_timeout).await?;
        if queued.contains(&user) {
            store.move_done(&peer.name, &user);
        }
    }
    Ok(())
}

/// Reports the moves owed to the peer and sends them, one snapshot at a time, each
/// leaving the queue once the peer has installed it (bodies included).
async fn deliver_moves<S: AsyncRead + AsyncWrite + Unpin>(
    store: &ReplicatedStore,
    peer: &PeerInfo,
    framed: &mut Framed<S>,
    reported: &mut Option<MovesReport>,
    link_timeout: Duration,
) -> Result<(), LinkError> {
    loop {
        let view = store.moves_for(&peer.name);
        let report = MovesReport {
            cluster: view.cluster,
            pending: view.pending,
        };
        // Told: a new configuration, more moves, and their end — not every step.
        let tell = match reported.as_ref() {
            None => true,
            Some(last) => {
                last.cluster != report.cluster
                    || report.pending > last.pending
                    || (report.pending == 0 && last.pending != 0)
            }
        };
        if tell {
            framed.send(&ToPeer::Moves(report.clone())).await?;
            await_ack(store, framed, link_timeout).await?;
            if report.pending > 0 {
                tracing::info!(pending = report.pending, "moving users' states to a peer");
            } else if reported.as_ref().is_some_and(|r| r.pending > 0) {
                tracing::info!("every user moved to this peer has reached it");
            }
            *reported = Some(report);
        }
        let Some(user) = view.next else {
            return Ok(());
        };
        // Taken now, after the reconfiguration that queued it: it holds every record
        // of the user this sender filtered out under the old configuration.
        send_snapshot(store, framed, &user, link_timeout).await?;
        store.move_done(&peer.name, &user);
    }
}
