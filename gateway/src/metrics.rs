//! Prometheus metrics: the names in one place, and the exporter. Every process serves
//! `/metrics` on `metrics.listen` when it is set.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `pluto_sessions_open` | gauge | |
//! | `pluto_commands_total` | counter | `command` |
//! | `pluto_logins_total` | counter | `result` (`ok`, `failed`, `unavailable`, `throttled`: refused because the throttle's wait would outlast the time to log in) |
//! | `pluto_replication_ops_behind` | gauge | `peer` |
//! | `pluto_replication_bytes_behind` | gauge | `peer` |
//! | `pluto_replication_peer_connected` | gauge (0/1) | `peer` |
//! | `pluto_node_caught_up` | gauge (0/1) | |
//! | `pluto_replication_peers_reachable` | gauge | |
//! | `pluto_writes_acked_locally_only_total` | counter | |
//! | `pluto_header_cache_lookups_total` | counter | `result` (`hit`, `miss`) |
//! | `pluto_deliveries_total` | counter | `result` (`delivered`; refused: `bad_recipient`, `unknown_user`, `too_big`, `no_mailbox`, `empty`, `over_quota`; not stored for now: `disk_full`, `unavailable`), one per recipient |
//! | `pluto_delivery_seconds` | histogram | time to store one recipient's copy (routing, append, durability) |
//! | `pluto_delivered_bytes_total` | counter | bytes of the messages delivered (per copy, trace headers excluded) |

use std::net::SocketAddr;

use crate::error::GatewayError;

pub const SESSIONS_OPEN: &str = "pluto_sessions_open";
pub const COMMANDS: &str = "pluto_commands_total";
pub const LOGINS: &str = "pluto_logins_total";
pub const OPS_BEHIND: &str = "pluto_replication_ops_behind";
pub const BYTES_BEHIND: &str = "pluto_replication_bytes_behind";
pub const PEER_CONNECTED: &str = "pluto_replication_peer_connected";
pub const CAUGHT_UP: &str = "pluto_node_caught_up";
/// Peers whose replication link from this node is up.
pub const PEERS_REACHABLE: &str = "pluto_replication_peers_reachable";
/// Writes under `cluster.ack = "replica"` answered after the local fsync alone: no
/// replica of the user was reachable, or none acknowledged within `ack_timeout_ms`.
pub const LOCAL_ONLY_ACKS: &str = "pluto_writes_acked_locally_only_total";
/// Messages this node hid or gave new UIDs because another replica bound UIDs of their
/// mailbox concurrently: the only way a UID answered to a client changes.
pub const UID_RENUMBERINGS: &str = "pluto_uid_renumberings_total";
pub const HEADER_CACHE: &str = "pluto_header_cache_lookups_total";
/// Recipients of LMTP and `pluto deliver`, by outcome.
pub const DELIVERIES: &str = "pluto_deliveries_total";
pub const DELIVERY_SECONDS: &str = "pluto_delivery_seconds";
pub const DELIVERED_BYTES: &str = "pluto_delivered_bytes_total";

/// Starts the `/metrics` endpoint when an address is configured. Call inside the runtime.
pub fn install(listen: &str) -> Result<(), GatewayError> {
    if listen.trim().is_empty() {
        return Ok(());
    }
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| GatewayError::Config(format!("metrics.listen = {listen:?}: {e}")))?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| GatewayError::Config(format!("metrics on {addr}: {e}")))?;
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(())
}

/// Counts one session for as long as it lives.
pub struct SessionGauge;

impl SessionGauge {
    pub fn new() -> Self {
        metrics::gauge!(SESSIONS_OPEN).increment(1.0);
        SessionGauge
    }
}

impl Default for SessionGauge {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        metrics::gauge!(SESSIONS_OPEN).decrement(1.0);
    }
}
