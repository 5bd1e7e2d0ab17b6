//! Replication links. Each node dials every peer and streams its own log to it (the
//! sender side); each node accepts its peers' links and applies what they stream (the
//! receiver side). So between two nodes there are two links, one per direction.
//!
//! Sender: connect (mutual TLS, `Service::Replication`) → the receiver names the LSN
//! it needs next (its durable cursor, so re-sending after a reconnect is exact and a
//! receiver that lost its data gets everything again) → if that part of the log is
//! truncated, the receiver gets snapshots of its users first → then batches of
//! durable records, one in flight, each acknowledged once durable at the receiver.
//! An idle link sends an empty batch as a heartbeat; a link that does not answer
//! within the link timeout is dropped and dialed again.
//!
//! Receiver: bodies that rode along are stored, missing ones asked for, then the batch
//! is applied through [`ReplicatedStore::apply_batch`] (durable, then exposed) and
//! acknowledged. Bodies travel in frames of at most [`MAX_CHUNK`] bytes of them: only
//! smaller ones ride with a batch, and a larger one asked for comes in
//! [`ToPeer::BlobPiece`]s, put together within the size its operation names.
//!
//! Data moves: after a reconfiguration a peer may hold users it did not hold before,
//! while its cursor is already past their older records (filtered out then). The store
//! queues such users per peer; before each batch the sender reports how many it still
//! owes ([`ToPeer::Moves`]) and sends each one's snapshot, removing it from the queue
//! once the receiver has installed it and fetched its missing bodies. The receiver
//! keeps the last report, which [`Node::status`](super::Node::status) turns into
//! "caught up".

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use pluto_crdt::{BodyRef, Op, OpKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use super::oplog::{Entry, LogReader};
use super::protocol::{Batch, FromPeer, MovesReport, ToPeer, WireRecord};
use super::store::{PeerInfo, ReplicatedStore};
use crate::UserId;
use crate::concurrency::{blocking_err, lock};
use crate::error::{StoreError, StoreResult};
use crate::net::chunks::pieces;
use crate::net::{Assembly, FrameError, Framed, MAX_CHUNK, MAX_STORED_BODY, NodeTls, Service};

const MAX_BATCH_RECORDS: usize = 2000;
const MAX_BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Bodies riding along with one batch, and bodies per [`ToPeer::Blobs`] frame, in
/// bytes (a body larger than that never rides, and is sent in pieces). Bodies that do
/// not ride are fetched by the receiver ([`FromPeer::Want`]).
const MAX_RIDE_BYTES: usize = MAX_CHUNK;
const HEARTBEAT: Duration = Duration::from_millis(300);

/// What the node knows of one peer's links.
pub(crate) struct PeerLink {
    /// The outbound link is up (the peer answers): the reachability the CRDT uses.
    pub(crate) connected: AtomicBool,
    /// Where (in log bytes) the peer's acknowledged cursor ends.
    pub(crate) acked_bytes: AtomicU64,
    /// The inbound link has delivered the peer's whole backlog at least once since
    /// this node started.
    pub(crate) delivered: AtomicBool,
    /// The outbound link has been welcomed at least once since this node started: the
    /// peer said how far it holds this node's log.
    pub(crate) welcomed: AtomicBool,
    /// Set when the peer leaves the configuration: both its links end.
    pub(crate) retired: watch::Sender<bool>,
    /// Wakes an idle sender when data moves are queued for its peer.
    pub(crate) wake: Notify,
    /// What the peer last reported of the moves it owes this node.
    pub(crate) moves: StdMutex<MovesSeen>,
}

/// The receiver's record of a peer's [`MovesReport`]s.
#[derive(Default)]
pub(crate) struct MovesSeen {
    pub(crate) report: Option<MovesReport>,
    /// After the latest report with nothing pending, a batch delivered the peer's log
    /// up to its head: snapshot plus log, the whole catch-up.
    pub(crate) settled: bool,
}

impl PeerLink {
    pub(crate) fn new() -> Self {
        Self {
            connected: AtomicBool::new(false),
            acked_bytes: AtomicU64::new(0),
            delivered: AtomicBool::new(false),
            welcomed: AtomicBool::new(false),
            retired: watch::channel(false).0,
            wake: Notify::new(),
            moves: StdMutex::new(MovesSeen::default()),
        }
    }

    /// The peer has reported, under `cluster`, that it owes this node no data move,
    /// and its log has reached this node since.
    pub(crate) fn moves_settled(&self, cluster: &[(String, u16)]) -> (Option<u64>, bool) {
        let seen = lock(&self.moves);
        match &seen.report {
            Some(r) if r.cluster == cluster => (Some(r.pending), r.pending == 0 && seen.settled),
            _ => (None, false),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::net::NodeTlsError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

async fn recv<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S>,
    within: Duration,
) -> Result<FromPeer, LinkError> {
    match tokio::time::timeout(within, framed.recv::<FromPeer>()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(LinkError::Timeout(within)),
    }
}

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
