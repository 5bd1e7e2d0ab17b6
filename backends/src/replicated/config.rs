//! The settings of one replicated node: who it is, where its data lives, its peers,
//! and how durable an answer must be.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::types::UserId;

/// Which peer nodes (by name) hold a user's replicas, besides this node. The gateway
/// computes it from its ring (owner worker + storage nodes); ops of a user go only to
/// these peers.
pub type ReplicasOf = Arc<dyn Fn(&UserId) -> Vec<String> + Send + Sync>;

/// When a write is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckMode {
    /// After the local fsync.
    Local,
    /// After the local fsync and once one peer holding the user has acknowledged the
    /// write durably — or after [`NodeConfig::ack_timeout`], whichever comes first
    /// (Dovecot's `replication_sync_timeout`).
    #[default]
    Replica,
}

/// One peer node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Its node name: the DNS name of its certificate.
    pub name: String,
    /// Its stable replica id (below [`NodeConfig::uid_stride`]).
    pub replica_id: u16,
    /// `host:port` of its replication listener.
    pub replication_addr: String,
}

/// A node's settings. Make one with [`NodeConfig::new`] and adjust the fields.
#[derive(Clone)]
pub struct NodeConfig {
    pub name: String,
    /// Stable for the node's life and unique in the cluster; below `uid_stride`.
    pub replica_id: u16,
    /// K of the UID rules: replica `r` binds only UIDs `≡ r (mod K)`. The same on every
    /// node, for the life of the data.
    pub uid_stride: u16,
    pub data_dir: PathBuf,
    pub peers: Vec<PeerConfig>,
    pub ack: AckMode,
    pub ack_timeout: Duration,
    pub replicas_of: ReplicasOf,
    /// A log segment is closed once it passes this size.
    pub segment_bytes: u64,
    /// Snapshots are written (and the log truncated) after this many records.
    pub checkpoint_every: u64,
    /// A peer more than this many records behind no longer holds back truncation: it
    /// gets snapshots when it comes back.
    pub max_lag_records: u64,
    /// A link that has not answered for this long is taken for dead.
    pub link_timeout: Duration,
    /// Take a data directory without the recovery marker as new (this node's first
    /// start in a new cluster) rather than as a lost one's replacement: the node takes
    /// writes at once instead of first hearing every peer. Never set it on a node
    /// that may have lost its data: its new ops would reuse the dots of its lost ones,
    /// which its peers ignore. Default false.
    pub trust_empty_data_dir: bool,
    /// A body no state references is removed by the sweep after a checkpoint once it
    /// was last stored this long ago (a write stores its body just before it applies
    /// the operation naming it). Default 60 s.
    pub body_grace: Duration,
}

impl NodeConfig {
    pub const DEFAULT_UID_STRIDE: u16 = 16;

    /// A node with no peers, `ack = Replica`, a 2 s ack timeout and default sizes.
    pub fn new(name: impl Into<String>, replica_id: u16, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            replica_id,
            uid_stride: Self::DEFAULT_UID_STRIDE,
            data_dir: data_dir.into(),
            peers: Vec::new(),
            ack: AckMode::Replica,
            ack_timeout: Duration::from_secs(2),
            replicas_of: Arc::new(|_| Vec::new()),
            segment_bytes: 64 * 1024 * 1024,
            checkpoint_every: 50_000,
            max_lag_records: 5_000_000,
            link_timeout: Duration::from_secs(2),
            trust_empty_data_dir: false,
            body_grace: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("replica_id", &self.replica_id)
            .field("uid_stride", &self.uid_stride)
            .field("data_dir", &self.data_dir)
            .field("peers", &self.peers)
            .field("ack", &self.ack)
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}
