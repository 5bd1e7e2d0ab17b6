//! [`Node`]: what a `pluto worker` or `pluto storage` process hosts. It opens the
//! [`ReplicatedStore`], accepts peers' replication links, dials every peer to stream
//! its own log, tells the CRDT who is reachable (the leader rule) as links come and
//! go, writes checkpoints, and reports [`NodeStatus`]: lag per peer and whether it has
//! caught up with every peer since it started (a worker takes sessions back only then).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::config::NodeConfig;
use super::link::{PeerLink, run_sender, serve_inbound};
use super::store::{PeerInfo, ReplicatedStore};
use crate::error::{StoreError, StoreResult};
use crate::net::{Framed, NodeTls, Service};

/// How often a checkpoint runs even when few records were written.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);

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
}

/// A node's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Every peer's backlog has reached this node since it started: it may serve.
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
    links: BTreeMap<String, Arc<PeerLink>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
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
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))??;
        let (stop, stop_rx) = watch::channel(false);
        let (changed, changed_rx) = watch::channel(0u64);
        let links: BTreeMap<String, Arc<PeerLink>> = store
            .peers
            .iter()
            .map(|p| (p.name.clone(), Arc::new(PeerLink::default())))
            .collect();
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(
            store.clone(),
            tls.clone(),
            replication_listener,
            links.clone(),
            config.link_timeout,
            stop_rx.clone(),
        ));
        for peer in store.peers.clone() {
            let Some(link) = links.get(&peer.name).cloned() else {
                continue;
            };
            tasks.spawn(run_sender(
                store.clone(),
                peer,
                tls.clone(),
                link,
                changed.clone(),
                config.link_timeout,
                stop_rx.clone(),
            ));
        }
        tasks.spawn(reachability(
            store.clone(),
            links.clone(),
            changed_rx,
            config.link_timeout,
            stop_rx.clone(),
        ));
        tasks.spawn(checkpoints(store.clone(), stop_rx));
        // Keep the sender alive for the tasks' life.
        tasks.spawn(async move {
            let _keep = changed;
            std::future::pending::<()>().await
        });
        Ok(Node {
            store,
            links,
            stop,
            tasks,
        })
    }

    /// The store, to serve through [`crate::remote::serve`] or call in process.
    pub fn store(&self) -> Arc<ReplicatedStore> {
        self.store.clone()
    }

    pub fn status(&self) -> NodeStatus {
        let durable = self.store.log.durable();
        let peers: Vec<PeerStatus> = self
            .links
            .iter()
            .map(|(name, link)| {
                let acked = self.store.acked(name);
                PeerStatus {
                    name: name.clone(),
                    connected: link.connected.load(Ordering::Acquire),
                    ops_behind: durable.lsn.saturating_sub(acked),
                    bytes_behind: durable
                        .bytes
                        .saturating_sub(link.acked_bytes.load(Ordering::Acquire)),
                    delivered: link.delivered.load(Ordering::Acquire),
                }
            })
            .collect();
        NodeStatus {
            caught_up: peers.iter().all(|p| p.delivered),
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
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.store.close().await;
    }

    /// Stops at once, as a crash would: no checkpoint (the log stays as written).
    pub async fn kill(mut self) {
        let _ = self.stop.send(true);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.store.log.close();
    }
}

async fn accept_loop(
    store: Arc<ReplicatedStore>,
    tls: NodeTls,
    listener: TcpListener,
    links: BTreeMap<String, Arc<PeerLink>>,
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
                    let peer: PeerInfo = store
                        .peers
                        .iter()
                        .find(|p| p.name == name)
                        .cloned()
                        .ok_or_else(|| format!("{name} is not a configured peer"))?;
                    let link = links
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
    links: BTreeMap<String, Arc<PeerLink>>,
    mut changed: watch::Receiver<u64>,
    link_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // A restarted node first gives its links a moment: binding as a lone "leader"
    // while the real one is reachable only makes extra ops.
    if !links.is_empty() {
        let all_up = async {
            let _ = changed
                .wait_for(|_| links.values().all(|l| l.connected.load(Ordering::Acquire)))
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
        let now: BTreeSet<_> = store
            .peers
            .iter()
            .filter(|p| {
                links
                    .get(&p.name)
                    .is_some_and(|l| l.connected.load(Ordering::Acquire))
            })
            .map(|p| p.replica)
            .collect();
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
    let mut ids = BTreeSet::from([config.replica_id]);
    for p in &config.peers {
        if p.replica_id >= config.uid_stride {
            return Err(StoreError::NotAllowed(format!(
                "peer {} has replica id {} not below the UID stride {}",
                p.name, p.replica_id, config.uid_stride
            )));
        }
        if !ids.insert(p.replica_id) {
            return Err(StoreError::NotAllowed(format!(
                "replica id {} is used twice",
                p.replica_id
            )));
        }
    }
    Ok(())
}
