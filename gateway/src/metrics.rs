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
//! | `pluto_header_cache_lookups_total` | counter | `result` (`hit`, `miss`) |

use std::net::SocketAddr;

use crate::error::GatewayError;

pub const SESSIONS_OPEN: &str = "pluto_sessions_open";
pub const COMMANDS: &str = "pluto_commands_total";
pub const LOGINS: &str = "pluto_logins_total";
pub const OPS_BEHIND: &str = "pluto_replication_ops_behind";
pub const BYTES_BEHIND: &str = "pluto_replication_bytes_behind";
pub const PEER_CONNECTED: &str = "pluto_replication_peer_connected";
pub const CAUGHT_UP: &str = "pluto_node_caught_up";
pub const HEADER_CACHE: &str = "pluto_header_cache_lookups_total";

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
