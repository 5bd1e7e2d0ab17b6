//! Which store serves a user's session.
//!
//! `serve` has one local store. A gateway in a cluster has the consistent-hash ring:
//! a user's replica set is the owner worker, then the storage nodes. A session goes to
//! the first replica that is healthy and caught up; when the owner is unreachable, the
//! next replica takes new sessions within a probe interval or two, and when the owner
//! is back and caught up, sessions that were sent elsewhere are told to reconnect
//! (`* BYE`), so that the owner takes them again (fail-back).
//!
//! Also here: [`placement`] (the ring and storage nodes from the `[cluster]` section,
//! which workers and storage nodes replicate by too) and [`cluster_router`] (the
//! placement with a Store client per node).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pluto_backends::remote::RemoteStore;
use pluto_backends::{MailStore, UserId};
use tokio::sync::watch;

use crate::ring::Ring;

/// How often every node is asked for its health.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// A node that does not answer a probe within this is taken as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Where a session was sent.
pub struct Routed {
    pub store: Arc<dyn MailStore>,
    pub node: String,
    /// Set when the session is not on the user's home node: turns true once the home
    /// node is healthy and caught up again, and the session should move back.
    pub home_back: Option<watch::Receiver<bool>>,
    /// Whether the node answers, when it did at routing: turns false when the probe
    /// gets no answer, and then the session ends with `* BYE [UNAVAILABLE]`.
    pub node_up: Option<watch::Receiver<bool>>,
}

pub enum Router {
    Local(Arc<dyn MailStore>),
    Cluster(Arc<Cluster>),
}

impl Router {
    /// For a session of `user` on `node`: when `node` no longer holds the user (the ring
    /// moved it), a signal that turns true once the new home is ready — then the
    /// session ends and the client reconnects there.
    pub fn relocation(&self, user: &UserId, node: &str) -> Option<watch::Receiver<bool>> {
        match self {
            Router::Local(_) => None,
            Router::Cluster(cluster) => {
                let set = cluster.replica_set(user);
                if set.iter().any(|n| n == node) {
                    return None;
                }
                let home = set.first().and_then(|n| cluster.nodes.get(n))?;
                Some(home.ready.subscribe())
            }
        }
    }

    /// Where to try a new session of `user`, best first: the ready replicas in replica
    /// order (or, when none looks ready, every replica, in case the probes are behind).
    pub fn candidates(&self, user: &UserId) -> Vec<Routed> {
        match self {
            Router::Local(store) => vec![Routed {
                store: store.clone(),
                node: "local".to_owned(),
                home_back: None,
                node_up: None,
            }],
            Router::Cluster(cluster) => cluster.candidates(user),
        }
    }
}

/// One node as a gateway sees it.
pub struct NodeHandle {
    pub name: String,
    pub store: Arc<RemoteStore>,
    /// Healthy and caught up, as of the last probe.
    pub ready: watch::Sender<bool>,
    /// Answers its probes (caught up or not), as of the last probe: what ends the
    /// sessions on it when it turns false. (A node that is only catching up, e.g.
    /// after a reload, keeps its sessions.)
    pub answering: watch::Sender<bool>,
}

impl NodeHandle {
    /// Whether the node answers, if it does now (a session sent to a node that looked
    /// down, when no replica looked ready, is not ended by it staying down).
    fn up_signal(&self) -> Option<watch::Receiver<bool>> {
        let rx = self.answering.subscribe();
        let up = *rx.borrow();
        up.then_some(rx)
    }
}

/// Where a user's replicas are: the owner worker by the ring, then every storage node.
/// Gateways route by it; nodes replicate by it.
#[derive(Clone, Debug)]
pub struct Placement {
    pub ring: Ring,
    pub storage: Vec<String>,
}

impl Placement {
    /// The user's replicas, home first.
    pub fn replica_set(&self, user: &UserId) -> Vec<String> {
        let mut set: Vec<String> = self
            .ring
            .owner(user.as_str())
            .map(str::to_owned)
            .into_iter()
            .collect();
        for s in &self.storage {
            if !set.contains(s) {
                set.push(s.clone());
            }
        }
        set
    }
}

pub struct Cluster {
    placement: Placement,
    /// The placement before the last reload: a user whose new home is not ready yet is
    /// still served by its previous home, so that a client reconnects once, not twice.
    previous: Option<Placement>,
    nodes: HashMap<String, Arc<NodeHandle>>,
}

impl Cluster {
    /// A cluster after a configuration reload: nodes whose name and address did not
    /// change keep their link and health (so sessions on them are not disturbed).
    pub fn reconfigured(&self, placement: Placement, nodes: Vec<Arc<RemoteStore>>) -> Arc<Cluster> {
        let nodes = nodes
            .into_iter()
            .map(|store| {
                let name = store.node().to_owned();
                let handle = match self.nodes.get(&name) {
                    Some(old) if old.store.addr() == store.addr() => old.clone(),
                    _ => Arc::new(NodeHandle {
                        name: name.clone(),
                        store,
                        ready: watch::channel(false).0,
                        answering: watch::channel(false).0,
                    }),
                };
                (name, handle)
            })
            .collect();
        Arc::new(Cluster {
            previous: Some(self.placement.clone()),
            placement,
            nodes,
        })
    }

    pub fn new(placement: Placement, nodes: Vec<Arc<RemoteStore>>) -> Arc<Cluster> {
        let nodes = nodes
            .into_iter()
            .map(|store| {
                let name = store.node().to_owned();
                let handle = NodeHandle {
                    name: name.clone(),
                    store,
                    ready: watch::channel(false).0,
                    answering: watch::channel(false).0,
                };
                (name, Arc::new(handle))
            })
            .collect();
        Arc::new(Cluster {
            placement,
            previous: None,
            nodes,
        })
    }

    pub fn replica_set(&self, user: &UserId) -> Vec<String> {
        self.placement.replica_set(user)
    }

    fn candidates(&self, user: &UserId) -> Vec<Routed> {
        let set = self.replica_set(user);
        let home = set.first().and_then(|n| self.nodes.get(n));
        let routed = |i: usize, node: &Arc<NodeHandle>| Routed {
            store: node.store.clone(),
            node: node.name.clone(),
            home_back: match (i, home) {
                (0, _) | (_, None) => None,
                (_, Some(home)) => Some(home.ready.subscribe()),
            },
            node_up: node.up_signal(),
        };
        let nodes: Vec<(usize, &Arc<NodeHandle>)> = set
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.nodes.get(n).map(|node| (i, node)))
            .collect();
        let mut ready: Vec<Routed> = nodes
            .iter()
            .filter(|(_, node)| *node.ready.borrow())
            .map(|(i, node)| routed(*i, node))
            .collect();
        // Moved by a reload and the new home not ready yet: the previous home first.
        let home_ready = home.is_some_and(|h| *h.ready.borrow());
        let previous_home = self
            .previous
            .as_ref()
            .and_then(|p| p.replica_set(user).into_iter().next())
            .filter(|p| set.first() != Some(p))
            .and_then(|p| self.nodes.get(&p));
        if let (false, Some(prev), Some(home)) = (home_ready, previous_home, home) {
            if *prev.ready.borrow() {
                ready.insert(
                    0,
                    Routed {
                        store: prev.store.clone(),
                        node: prev.name.clone(),
                        home_back: Some(home.ready.subscribe()),
                        node_up: prev.up_signal(),
                    },
                );
            }
        }
        if ready.is_empty() {
            nodes.iter().map(|(i, node)| routed(*i, node)).collect()
        } else {
            ready
        }
    }

    /// Probes every node once, now.
    pub async fn probe_all(&self) {
        let probes = self.nodes.values().map(|node| async move {
            let (answering, ready) =
                match tokio::time::timeout(PROBE_TIMEOUT, node.store.node_status()).await {
                    Ok(Ok(status)) => (true, status.caught_up),
                    _ => (false, false),
                };
            node.answering.send_if_modified(|old| {
                let changed = *old != answering;
                if changed && !answering {
                    tracing::warn!(node = %node.name, "node does not answer; ending its sessions");
                }
                *old = answering;
                changed
            });
            node.ready.send_if_modified(|old| {
                let changed = *old != ready;
                if changed {
                    tracing::info!(node = %node.name, ready, "node health changed");
                }
                *old = ready;
                changed
            });
        });
        futures::future::join_all(probes).await;
    }

    /// Probes every [`PROBE_INTERVAL`] for as long as this cluster is in use.
    pub fn spawn_prober(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let cluster = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(cluster) = cluster.upgrade() else {
                    return;
                };
                cluster.probe_all().await;
                drop(cluster);
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        })
    }

    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.nodes.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn node(&self, name: &str) -> Option<&Arc<NodeHandle>> {
        self.nodes.get(name)
    }

    pub fn ring(&self) -> &Ring {
        &self.placement.ring
    }
}

/// Where users' replicas are, from the `[cluster]` section.
pub fn placement(config: &crate::config::Config) -> Placement {
    use crate::config::Role;
    use crate::ring::{Ring, RingNode};
    let ring = Ring::new(
        config
            .cluster
            .nodes
            .iter()
            .filter(|n| n.role == Role::Worker)
            .map(|n| RingNode {
                name: n.name.clone(),
                weight: n.weight,
            })
            .collect(),
    );
    let storage = config
        .cluster
        .nodes
        .iter()
        .filter(|n| n.role == Role::Storage)
        .map(|n| n.name.clone())
        .collect();
    Placement { ring, storage }
}

/// The cluster as a gateway sees it: the placement and a Store client per node.
pub fn cluster_router(
    config: &crate::config::Config,
) -> Result<Arc<Cluster>, crate::error::GatewayError> {
    config.cluster.validate()?;
    // No bound on `limits.append_limit` here: bodies travel to the nodes in chunks, and
    // each node takes an append's bodies up to its own `limits.append_limit`.
    let tls = crate::tls::node_tls(config)?;
    let stores = config
        .cluster
        .nodes
        .iter()
        .map(|n| {
            Arc::new(
                pluto_backends::remote::RemoteStore::new(
                    n.name.clone(),
                    n.store.clone(),
                    config.cluster.name.clone(),
                    tls.clone(),
                )
                .with_call_timeout(std::time::Duration::from_millis(
                    config.cluster.rpc_timeout_ms,
                )),
            )
        })
        .collect();
    Ok(Cluster::new(placement(config), stores))
}
