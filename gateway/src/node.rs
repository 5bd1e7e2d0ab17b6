//! `pluto worker` and `pluto storage`: a replicated node (the CRDT store, its op log and
//! replication, from `pluto_backends::replicated`) plus the Store service that gateways
//! call. Which peers hold which user comes from the same placement the gateways route
//! by: the owner worker on the ring, then every storage node. On `SIGHUP` the node
//! re-reads the cluster and reconfigures in place: new peers are linked, users that
//! gain a holder are sent to it whole.
//!
//! A node serves only the users the placement puts on it: a call about any other user
//! (a gateway with a wrong configuration) is refused with `[UNAVAILABLE]` and logged,
//! so that the node never creates a stray copy of a user — whose fresh INBOX would
//! otherwise merge with the real one and change its UIDVALIDITY everywhere.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pluto_backends::MailStore;
use pluto_backends::remote::{self, StatusFn};
use pluto_backends::replicated::{AckMode, Node, NodeConfig, PeerConfig, ReplicasOf};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{ClusterNode, Config, Role};
use crate::error::GatewayError;
use crate::route::Placement;

/// Where users are placed now, and before the last reload: a user the reload moved
/// away stays served here until its new home is ready (gateways send it here until
/// then, see [`crate::route`]).
#[derive(Clone)]
struct Placements {
    current: Placement,
    previous: Option<Placement>,
}

type SharedPlacements = Arc<RwLock<Placements>>;

/// Admits a user placed on `me` by the current or the previous placement.
fn admit_fn(placements: SharedPlacements, me: String) -> remote::AdmitFn {
    Arc::new(move |user| {
        let p = placements.read().unwrap_or_else(|e| e.into_inner());
        let holds = |placement: &Placement| placement.replica_set(user).contains(&me);
        if holds(&p.current) || p.previous.as_ref().is_some_and(holds) {
            Ok(())
        } else {
            Err(format!(
                "node {me} does not hold user {user}: the ring places it on {}",
                p.current.replica_set(user).join(", ")
            ))
        }
    })
}

/// A running node process.
pub struct RunningNode {
    node: Arc<Node>,
    placements: SharedPlacements,
    name: String,
    stop: watch::Sender<bool>,
    store_task: tokio::task::JoinHandle<()>,
    metrics_task: tokio::task::JoinHandle<()>,
    pub store_addr: std::net::SocketAddr,
}

impl RunningNode {
    /// Applies a new cluster configuration (after `SIGHUP`): this node's entry must
    /// still be there with the same id and role.
    pub async fn reconfigure(&self, config: &Config) -> Result<(), GatewayError> {
        config.cluster.validate()?;
        if config.cluster.name != self.name {
            return Err(GatewayError::Config(format!(
                "cluster.name changed from {} to {}: restart the process instead",
                self.name, config.cluster.name
            )));
        }
        let me = this_node(config)?;
        let (peers, replicas_of) = peers_and_placement(config, me);
        self.node.reconfigure(peers, replicas_of).await?;
        let mut p = self.placements.write().unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::replace(&mut p.current, crate::route::placement(config));
        p.previous = Some(previous);
        Ok(())
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.store_task.await;
        let _ = self.metrics_task.await;
        // The Store service and the metrics task held the other references.
        match Arc::try_unwrap(self.node) {
            Ok(node) => node.shutdown().await,
            Err(_) => {
                tracing::warn!("node still in use at shutdown; skipping the final checkpoint")
            }
        }
    }
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError::io(format!("binding the {what} listener on {addr}"), e))
}

fn this_node(config: &Config) -> Result<&ClusterNode, GatewayError> {
    config.cluster.me().ok_or_else(|| {
        GatewayError::Config(format!(
            "cluster.name = {:?} is not one of cluster.nodes",
            config.cluster.name
        ))
    })
}

/// Every other node as a peer, and which of them hold each user.
fn peers_and_placement(config: &Config, me: &ClusterNode) -> (Vec<PeerConfig>, ReplicasOf) {
    let placement = crate::route::placement(config);
    let my_name = me.name.clone();
    let replicas_of: ReplicasOf = Arc::new(move |user| {
        placement
            .replica_set(user)
            .into_iter()
            .filter(|n| *n != my_name)
            .collect()
    });
    let peers = config
        .cluster
        .nodes
        .iter()
        .filter(|n| n.name != me.name)
        .map(|n| PeerConfig {
            name: n.name.clone(),
            replica_id: n.id,
            replication_addr: n.replication.clone(),
        })
        .collect();
    (peers, replicas_of)
}

/// Publishes replication lag and catch-up as metrics, once a second.
fn spawn_lag_metrics(
    node: Arc<Node>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let status = node.status();
            let reachable = status.peers.iter().filter(|p| p.connected).count();
            metrics::gauge!(crate::metrics::PEERS_REACHABLE).set(reachable as f64);
            metrics::counter!(crate::metrics::LOCAL_ONLY_ACKS)
                .absolute(node.store().local_only_acks());
            metrics::counter!(crate::metrics::UID_RENUMBERINGS)
                .absolute(node.store().uid_renumberings());
            metrics::gauge!(crate::metrics::CAUGHT_UP).set(if status.caught_up {
                1.0
            } else {
                0.0
            });
            for p in status.peers {
                metrics::gauge!(crate::metrics::OPS_BEHIND, "peer" => p.name.clone())
                    .set(p.ops_behind as f64);
                metrics::gauge!(crate::metrics::BYTES_BEHIND, "peer" => p.name.clone())
                    .set(p.bytes_behind as f64);
                metrics::gauge!(crate::metrics::PEER_CONNECTED, "peer" => p.name)
                    .set(if p.connected { 1.0 } else { 0.0 });
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Starts the node named by `cluster.name`, which must have `role` in `cluster.nodes`.
pub async fn start(config: Config, role: Role) -> Result<RunningNode, GatewayError> {
    config.cluster.validate()?;
    let me = this_node(&config)?;
    if me.role != role {
        return Err(GatewayError::Config(format!(
            "node {} has role {:?} in the configuration, but was started as {role:?}",
            me.name, me.role
        )));
    }
    let tls = crate::tls::node_tls(&config)?;
    let (peers, replicas_of) = peers_and_placement(&config, me);
    let mut node_config = NodeConfig::new(me.name.clone(), me.id, config.data_dir.join("node"));
    node_config.peers = peers;
    node_config.replicas_of = replicas_of;
    node_config.ack = if config.cluster.ack == "local" {
        AckMode::Local
    } else {
        AckMode::Replica
    };
    node_config.ack_timeout = Duration::from_millis(config.cluster.ack_timeout_ms);

    let replication = bind(
        me.listen_replication.as_deref().unwrap_or(&me.replication),
        "replication",
    )
    .await?;
    let store_listener = bind(me.listen_store.as_deref().unwrap_or(&me.store), "store").await?;
    let store_addr = store_listener
        .local_addr()
        .map_err(|e| GatewayError::io("store listener", e))?;
    let node = Arc::new(Node::start(node_config, tls.clone(), replication).await?);
    let store: Arc<dyn MailStore> = node.store();
    let name = me.name.clone();
    let status_node = node.clone();
    let status_name = name.clone();
    let status: StatusFn = Arc::new(move || {
        let s = status_node.status();
        remote::NodeStatus {
            name: status_name.clone(),
            caught_up: s.caught_up,
            peers: s
                .peers
                .into_iter()
                .map(|p| remote::PeerStatus {
                    name: p.name,
                    connected: p.connected,
                    ops_behind: p.ops_behind,
                    bytes_behind: p.bytes_behind,
                })
                .collect(),
        }
    });
    let (stop, stop_rx) = watch::channel(false);
    let metrics_task = spawn_lag_metrics(node.clone(), stop_rx.clone());
    let placements = Arc::new(RwLock::new(Placements {
        current: crate::route::placement(&config),
        previous: None,
    }));
    let store_task = tokio::spawn(remote::serve_admitting(
        store_listener,
        tls,
        name.clone(),
        store,
        status,
        admit_fn(placements.clone(), name.clone()),
        // Streamed bodies of an append, together: this node's own APPENDLIMIT.
        u64::from(config.limits.append_limit),
        stop_rx,
    ));
    tracing::info!(node = %name, ?role, store = %store_addr, "node started");
    Ok(RunningNode {
        node,
        placements,
        name,
        stop,
        store_task,
        metrics_task,
        store_addr,
    })
}
