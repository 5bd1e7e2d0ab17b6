//! `pluto worker` and `pluto storage`: a replicated node (the CRDT store, its op log and
//! replication, from `pluto_backends::replicated`) plus the Store service that gateways
//! call. Which peers hold which user comes from the same placement the gateways route
//! by: the owner worker on the ring, then every storage node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pluto_backends::MailStore;
use pluto_backends::remote::{self, StatusFn};
use pluto_backends::replicated::{AckMode, Node, NodeConfig, PeerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, Role};
use crate::error::GatewayError;

/// A running node process.
pub struct RunningNode {
    node: Arc<Mutex<Option<Node>>>,
    stop: watch::Sender<bool>,
    store_task: tokio::task::JoinHandle<()>,
    pub store_addr: std::net::SocketAddr,
}

impl RunningNode {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.store_task.await;
        let node = self.node.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(node) = node {
            node.shutdown().await;
        }
    }
}

async fn bind(addr: &str, what: &str) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| GatewayError::io(format!("binding the {what} listener on {addr}"), e))
}

/// Publishes replication lag and catch-up as metrics, once a second.
fn spawn_lag_metrics(node: Arc<Mutex<Option<Node>>>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let status = node
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(Node::status);
            let Some(status) = status else { return };
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
    });
}

/// Starts the node named by `cluster.name`, which must have `role` in `cluster.nodes`.
pub async fn start(config: Config, role: Role) -> Result<RunningNode, GatewayError> {
    config.cluster.validate()?;
    let cluster = &config.cluster;
    let me = cluster.me().ok_or_else(|| {
        GatewayError::Config(format!(
            "cluster.name = {:?} is not one of cluster.nodes",
            cluster.name
        ))
    })?;
    if me.role != role {
        return Err(GatewayError::Config(format!(
            "node {} has role {:?} in the configuration, but was started as {role:?}",
            me.name, me.role
        )));
    }
    let tls = crate::cli::node_tls(&config)?;
    let placement = crate::cli::placement(&config);
    let my_name = me.name.clone();
    let replicas_of: pluto_backends::replicated::ReplicasOf = Arc::new(move |user| {
        placement
            .replica_set(user)
            .into_iter()
            .filter(|n| *n != my_name)
            .collect()
    });
    let mut node_config = NodeConfig::new(me.name.clone(), me.id, config.data_dir.join("node"));
    node_config.peers = cluster
        .nodes
        .iter()
        .filter(|n| n.name != me.name)
        .map(|n| PeerConfig {
            name: n.name.clone(),
            replica_id: n.id,
            replication_addr: n.replication.clone(),
        })
        .collect();
    node_config.ack = if cluster.ack == "local" {
        AckMode::Local
    } else {
        AckMode::Replica
    };
    node_config.ack_timeout = Duration::from_millis(cluster.ack_timeout_ms);
    node_config.replicas_of = replicas_of;

    let replication = bind(
        me.listen_replication.as_deref().unwrap_or(&me.replication),
        "replication",
    )
    .await?;
    let store_listener = bind(me.listen_store.as_deref().unwrap_or(&me.store), "store").await?;
    let store_addr = store_listener
        .local_addr()
        .map_err(|e| GatewayError::io("store listener", e))?;
    let node = Node::start(node_config, tls.clone(), replication).await?;
    let store: Arc<dyn MailStore> = node.store();
    let node = Arc::new(Mutex::new(Some(node)));
    let name = me.name.clone();
    let status_node = node.clone();
    let status_name = name.clone();
    let status: StatusFn = Arc::new(move || {
        let guard = status_node.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(node) => {
                let s = node.status();
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
            }
            None => remote::NodeStatus {
                name: status_name.clone(),
                caught_up: false,
                peers: Vec::new(),
            },
        }
    });
    let (stop, stop_rx) = watch::channel(false);
    spawn_lag_metrics(node.clone(), stop_rx.clone());
    let store_task = tokio::spawn(remote::serve(
        store_listener,
        tls,
        name.clone(),
        store,
        status,
        stop_rx,
    ));
    tracing::info!(node = %name, ?role, store = %store_addr, "node started");
    Ok(RunningNode {
        node,
        stop,
        store_task,
        store_addr,
    })
}
