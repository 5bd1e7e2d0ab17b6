//! [`Node`]: what a `pluto worker` or `pluto storage` process hosts. It opens the
//! [`ReplicatedStore`], accepts peers' replication links, dials every peer to stream
//! its own log, tells the CRDT who is reachable (the leader rule) as links come and
//! go, writes checkpoints, and reports [`NodeStatus`]: lag per peer and whether it has
//! caught up with every peer since it started (a worker takes sessions back only then).
//!
//! [`Node::reconfigure`] changes the peers and `replicas_of` of a running node: new
//! peers get a link and a sender, gone ones lose both, and every user a peer newly
//! holds is sent to it whole (see `link`'s data moves). Until each peer has reported,
//! under the same configuration, that it owes this node nothing, the node is not
//! caught up — so the gateway does not route a moved user to it too early.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::config::{NodeConfig, PeerConfig, ReplicasOf};
use super::link::{PeerLink, run_sender, serve_inbound};
use super::store::{PeerInfo, ReplicatedStore};
use crate::concurrency::{blocking_err, lock};
use crate::error::{StoreError, StoreResult};
use crate::net::{Framed, NodeTls, Service};

/// How often a checkpoint runs even when few records were written.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

/// The node's links by peer name. Shared with the accept loop and reachability, and
/// changed by a reconfiguration.
type Links = Arc<StdMutex<BTreeMap<String, Arc<PeerLink>>>>;

/// A running sender: its own stop (a reconfiguration stops one without the others).
struct Sender {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// One peer as [`Node::status`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub name: String,
    /// The link to it is up (it answers).
    pub connected: bool,
    /// Log records this node has that the peer has not acknowledged.
    pub ops_behind: u64,
    /// The same in log bytes.
    pub bytes_behind: u64,
    /// Its link to this node has delivered its whole backlog since this node started.
    pub delivered: bool,
    /// The users' whole states it still owes this node after a reconfiguration, as it
    /// last reported under this node's current configuration; `None` until it has
    /// reported under it (it may not have been reconfigured yet).
    pub moves_pending: Option<u64>,
    /// It has reported no pending move under this node's configuration, and its log
    /// has reached this node since: every user it moved here is complete here.
    pub moved: bool,
}

/// A node's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Every peer's backlog has reached this node since it started, every peer's data
    /// moves towards it under the current configuration are done, and it is not
    /// recovering its history ([`ReplicatedStore::recovering`]): it may serve.
    pub caught_up: bool,
    /// The last durable LSN of this node's log.
    pub log_head: u64,
    /// The first LSN still in the log (older records were truncated behind snapshots).
    pub log_start: u64,
    pub peers: Vec<PeerStatus>,
}

/// A running replicated node.
pub struct Node {
    store: Arc<ReplicatedStore>,
    tls: NodeTls,
    link_timeout: Duration,
    uid_stride: u16,
    links: Links,
    senders: StdMutex<BTreeMap<String, Sender>>,
    /// Bumped when a link goes up or down, or the peers change: reachability.
    changed: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// One reconfiguration at a time.
    reconfiguring: Mutex<()>,
}

impl Node {
    /// Opens the store in `config.data_dir` and starts replication: accepting on
    /// `replication_listener`, dialing each peer.
    pub async fn start(
        config: NodeConfig,
        tls: NodeTls,
        replication_listener: TcpListener,
    ) -> Result<Node, StoreError> {
        validate(&config)?;
        let open_config = config.clone();
        let store = tokio::task::spawn_blocking(move || ReplicatedStore::open(&open_config))
            .await
            .map_err(blocking_err)??;
        let (stop, stop_rx) = watch::channel(false);
        let (changed, changed_rx) = watch::channel(0u64);
        let peers = store.membership().peers.clone();
        let links: Links = Arc::new(StdMutex::new(
            peers
                .iter()
                .map(|p| (p.name.clone(), Arc::new(PeerLink::new())))
                .collect(),
        ));
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            store.clone(),
            tls.clone(),
            replication_listener,
            links.clone(),
            config.link_timeout,
            stop_rx.clone(),
        ));
        tasks.spawn(reachability(
            store.clone(),
            links.clone(),
            changed_rx,
            config.link_timeout,
            stop_rx.clone(),
        ));
        tasks.spawn(recovery(store.clone(), links.clone(), stop_rx.clone()));
        tasks.spawn(checkpoints(store.clone(), stop_rx));
        let node = Node {
            store,
            tls,
            link_timeout: config.link_timeout,
            uid_stride: config.uid_stride,
            links,
            senders: StdMutex::new(BTreeMap::new()),
            changed,
            stop,
            tasks,
            reconfiguring: Mutex::new(()),
        };
        for peer in peers {
            node.start_sender(peer);
        }
        Ok(node)
    }

    /// Dials `peer` and streams this node's log to it, on the peer's link.
    fn start_sender(&self, peer: PeerInfo) {
        let Some(link) = lock(&self.links).get(&peer.name).cloned() else {
            return;
        };
        let (stop, stop_rx) = watch::channel(false);
        let name = peer.name.clone();
        let task = tokio::spawn(run_sender(
            self.store.clone(),
            peer,
            self.tls.clone(),
            link,
            self.changed.clone(),
            self.link_timeout,
            stop_rx,
        ));
        let old = lock(&self.senders).insert(name, Sender { stop, task });
        if let Some(old) = old {
            // Not expected (the caller stops a sender first); never leave one behind.
            old.stop.send_replace(true);
            old.task.abort();
        }
    }

    /// Stops a peer's sender and waits for it to end.
    async fn stop_sender(&self, name: &str) {
        let Some(sender) = lock(&self.senders).remove(name) else {
            return;
        };
        sender.stop.send_replace(true);
        let abort = sender.task.abort_handle();
        if tokio::time::timeout(self.link_timeout, sender.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }

    /// Applies a new configuration without a restart: `peers` replaces the peer list
    /// and `replicas_of` replaces the placement, atomically for every later decision.
    ///
    /// - A new peer gets a link and a sender (dialing it); a gone peer's sender stops
    ///   and its links end (an inbound link from it is refused from then on); a peer
    ///   whose address changed is dialed at the new one.
    /// - Every user this node has that a peer holds now and did not hold before is
    ///   queued for that peer: its sender sends the user's whole state (a snapshot;
    ///   the peer fetches the bodies it lacks) before its next batch. Every holder of
    ///   a user does so, so the move survives one of them being down.
    /// - [`NodeStatus::caught_up`] is false until every peer has reported, under the
    ///   same configuration, that it owes this node no move, and its log has reached
    ///   this node since. Every node of the cluster must be given the same
    ///   configuration (the same peers, by name and id, and `replicas_of`).
    ///
    /// A known peer named with another replica id, or a new peer taking a known
    /// peer's id, is refused: ids name the origin of every operation, so they never
    /// change hands; nothing is changed then. Past those checks the new configuration
    /// is in force even when an error is returned: writing the moves file failed (a
    /// restart before the moves are done would forget them), or the log failed while
    /// the users' members were refreshed (the node then no longer serves, as after
    /// any log failure).
    pub async fn reconfigure(
        &self,
        peers: Vec<PeerConfig>,
        replicas_of: ReplicasOf,
    ) -> Result<(), StoreError> {
        let _one = self.reconfiguring.lock().await;
        validate_peers(
            &self.store.name,
            self.store.replica.0,
            self.uid_stride,
            &peers,
        )?;
        let old = self.store.membership();
        for p in &peers {
            if let Some(known) = old.peer(&p.name)
                && known.replica.0 != p.replica_id
            {
                return Err(StoreError::NotAllowed(format!(
                    "peer {} has replica id {}, not {}: a node's replica id never changes",
                    p.name, known.replica.0, p.replica_id
                )));
            }
            if let Some(other) = old
                .peers
                .iter()
                .find(|k| k.replica.0 == p.replica_id && k.name != p.name)
            {
                return Err(StoreError::NotAllowed(format!(
                    "replica id {} belongs to {}; {} cannot take it",
                    p.replica_id, other.name, p.name
                )));
            }
        }
        let next: Vec<PeerInfo> = peers.iter().map(PeerInfo::from).collect();
        let added: Vec<PeerInfo> = next
            .iter()
            .filter(|p| old.peer(&p.name).is_none())
            .cloned()
            .collect();
        let removed: Vec<String> = old
            .peers
            .iter()
            .filter(|p| !next.iter().any(|n| n.name == p.name))
            .map(|p| p.name.clone())
            .collect();
        let moved_addr: Vec<PeerInfo> = next
            .iter()
            .filter(|p| old.peer(&p.name).is_some_and(|o| o.addr != p.addr))
            .cloned()
            .collect();

        // Links first: once the store names a new peer, its inbound link is accepted.
        {
            let mut links = lock(&self.links);
            for p in &added {
                links
                    .entry(p.name.clone())
                    .or_insert_with(|| Arc::new(PeerLink::new()));
            }
        }
        let queued = self.store.set_membership(next, replicas_of);
        // Durable before this call returns: a restart must not forget a move.
        let saved = self.store.save_moves().await;
        let gone: Vec<Arc<PeerLink>> = {
            let mut links = lock(&self.links);
            removed.iter().filter_map(|n| links.remove(n)).collect()
        };
        for link in gone {
            link.retired.send_replace(true);
        }
        for name in removed.iter().chain(moved_addr.iter().map(|p| &p.name)) {
            self.stop_sender(name).await;
        }
        for peer in added.into_iter().chain(moved_addr) {
            self.start_sender(peer);
        }
        {
            let links = lock(&self.links);
            for name in queued.keys() {
                if let Some(link) = links.get(name) {
                    link.wake.notify_one();
                }
            }
        }
        tracing::info!(
            peers = ?self.store.cluster(),
            removed = ?removed,
            moves = ?queued,
            "reconfigured"
        );
        self.changed.send_modify(|n| *n += 1);
        let refreshed = self.store.refresh_members().await;
        saved.and(refreshed)
    }

    /// The store, to serve through [`crate::remote::serve`] or call in process.
    pub fn store(&self) -> Arc<ReplicatedStore> {
        self.store.clone()
    }

    pub fn status(&self) -> NodeStatus {
        let durable = self.store.log.durable();
        let cluster = self.store.cluster();
        let links: Vec<(String, Arc<PeerLink>)> = lock(&self.links)
            .iter()
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect();
        let peers: Vec<PeerStatus> = links
            .into_iter()
            .map(|(name, link)| {
                let acked = self.store.acked(&name);
                let (moves_pending, moved) = link.moves_settled(&cluster);
                PeerStatus {
                    connected: link.connected.load(Ordering::Acquire),
                    ops_behind: durable.lsn.saturating_sub(acked),
                    bytes_behind: durable
                        .bytes
                        .saturating_sub(link.acked_bytes.load(Ordering::Acquire)),
                    delivered: link.delivered.load(Ordering::Acquire),
                    moves_pending,
                    moved,
                    name,
                }
            })
            .collect();
        NodeStatus {
            caught_up: !self.store.recovering() && peers.iter().all(|p| p.delivered && p.moved),
            log_head: durable.lsn,
            log_start: self.store.log.start(),
            peers,
        }
    }

    /// Waits until [`NodeStatus::caught_up`], or the timeout.
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.status().caught_up {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the links, writes a last checkpoint and closes the log.
    pub async fn shutdown(mut self) {
        self.stop_all().await;
        self.store.close().await;
    }

    /// Stops at once, as a crash would: no checkpoint (the log stays as written).
    pub async fn kill(mut self) {
        self.stop_all().await;
        self.store.log.close();
    }

    async fn stop_all(&mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let senders = std::mem::take(&mut *lock(&self.senders));
        for (_, sender) in senders {
            sender.stop.send_replace(true);
            sender.task.abort();
            let _ = sender.task.await;
        }
    }
}

async fn accept_loop(
    store: Arc<ReplicatedStore>,
    tls: NodeTls,
    listener: TcpListener,
    links: Links,
    link_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((tcp, addr)) = accepted else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (store, tls, links) = (store.clone(), tls.clone(), links.clone());
        conns.spawn(
            async move {
                let result: Result<(), BoxError> = async {
                    let stream = tokio::time::timeout(link_timeout, tls.accept(tcp)).await??;
                    let mut framed = Framed::new(stream);
                    let name = tokio::time::timeout(
                        link_timeout,
                        framed.handshake(&store.name, Service::Replication),
                    )
                    .await??;
                    crate::net::tls::verify_peer_name(framed.get_ref(), &name)?;
                    // Read now, not at start: a reconfiguration adds and removes peers.
                    let peer: PeerInfo = store
                        .membership()
                        .peer(&name)
                        .cloned()
                        .ok_or_else(|| format!("{name} is not a configured peer"))?;
                    let link = lock(&links)
                        .get(&peer.name)
                        .cloned()
                        .ok_or_else(|| format!("no link state for {name}"))?;
                    serve_inbound(store, framed, peer, link, link_timeout).await
                }
                .await;
                if let Err(e) = result {
                    tracing::debug!(error = %e, "inbound replication link ended");
                }
            }
            .instrument(tracing::info_span!("replication_in", %addr)),
        );
    }
    conns.abort_all();
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Feeds link health to the CRDTs: the lowest reachable replica is each user's leader.
async fn reachability(
    store: Arc<ReplicatedStore>,
    links: Links,
    mut changed: watch::Receiver<u64>,
    link_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // A restarted node first gives its links a moment: binding as a lone "leader"
    // while the real one is reachable only makes extra ops.
    if !lock(&links).is_empty() {
        let all_up = async {
            let _ = changed
                .wait_for(|_| {
                    lock(&links)
                        .values()
                        .all(|l| l.connected.load(Ordering::Acquire))
                })
                .await;
        };
        tokio::select! {
            _ = all_up => {}
            _ = tokio::time::sleep(link_timeout.min(Duration::from_secs(1))) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let mut last: Option<BTreeSet<_>> = None;
    loop {
        let now: BTreeSet<_> = {
            let membership = store.membership();
            let links = lock(&links);
            membership
                .peers
                .iter()
                .filter(|p| {
                    links
                        .get(&p.name)
                        .is_some_and(|l| l.connected.load(Ordering::Acquire))
                })
                .map(|p| p.replica)
                .collect()
        };
        if last.as_ref() != Some(&now) {
            tracing::info!(reachable = ?now, "reachable peers changed");
            if let Err(e) = store.set_reachable(now.clone()).await {
                tracing::error!(error = %e, "applying reachability failed");
            }
            last = Some(now);
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Ends a recovery ([`ReplicatedStore::recovering`]) once every peer has been heard:
/// its outbound link welcomed (the peer said how far it holds this node's log) and its
/// inbound link delivered its whole backlog, this node's own ops included.
async fn recovery(store: Arc<ReplicatedStore>, links: Links, mut stop: watch::Receiver<bool>) {
    while store.recovering() {
        let heard = {
            let membership = store.membership();
            let links = lock(&links);
            membership.peers.iter().all(|p| {
                links.get(&p.name).is_some_and(|l| {
                    l.welcomed.load(Ordering::Acquire) && l.delivered.load(Ordering::Acquire)
                })
            })
        };
        if heard && let Err(e) = store.confirm_recovered().await {
            tracing::error!(error = %e, "ending the recovery failed");
            if store.refuses() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn checkpoints(store: Arc<ReplicatedStore>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint failed");
        }
    }
}

/// Checks a config before starting (the ids must be unique and below the stride).
pub fn validate(config: &NodeConfig) -> StoreResult<()> {
    validate_peers(
        &config.name,
        config.replica_id,
        config.uid_stride,
        &config.peers,
    )
}

/// Peer ids unique (this node's included) and below the stride; names unique and not
/// this node's.
fn validate_peers(me: &str, my_id: u16, uid_stride: u16, peers: &[PeerConfig]) -> StoreResult<()> {
    let mut ids = BTreeSet::from([my_id]);
    let mut names = BTreeSet::from([me]);
    for p in peers {
        if p.replica_id >= uid_stride {
            return Err(StoreError::NotAllowed(format!(
                "peer {} has replica id {} not below the UID stride {}",
                p.name, p.replica_id, uid_stride
            )));
        }
        if !ids.insert(p.replica_id) {
            return Err(StoreError::NotAllowed(format!(
                "replica id {} is used twice",
                p.replica_id
            )));
        }
        if !names.insert(p.name.as_str()) {
            return Err(StoreError::NotAllowed(format!(
                "node name {} is used twice",
                p.name
            )));
        }
    }
    Ok(())
}
