//! The long-running `pluto` processes: `serve`, `gateway`, `worker` and `storage`.
//! Each reads its configuration (file, `PLUTO_…` variables, flags), starts logging and
//! the metrics listener, runs until SIGTERM/SIGINT and stops gracefully; `gateway`,
//! `worker` and `storage` reload the `[cluster]` section on SIGHUP
//! ([`reload_cluster`]).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use super::start::{start_gateway, start_serve};
use super::{LogFormat, ServeArgs};
use crate::config::{Config, Role};
use crate::error::GatewayError;
use crate::server::Server;
use crate::shared::Shared;

/// rustls warns once per client that sends an IP address as SNI (which RFC 6066
/// forbids but common clients do when told to connect to an address); the handshake
/// goes on, so a warning per connection is only noise.
const QUIET_TARGETS: &str = "rustls::msgs::handshake=error";

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| config.log.level.clone());
    // The quieting applies unless the operator asked for rustls's logs explicitly.
    let directives = if directives.contains("rustls") {
        directives
    } else {
        format!("{directives},{QUIET_TARGETS}")
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour escapes only for a terminal, never into a file or a pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The configuration for `serve` and `gateway`: file, environment, then flags.
fn serve_config(args: ServeArgs) -> Result<Config, GatewayError> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = args.imap {
        config.listen.imap = addr;
    }
    if let Some(addr) = args.imaps {
        config.listen.imaps = addr;
    }
    if let Some(addr) = args.lmtp {
        config.listen.lmtp = addr;
    }
    if let Some(format) = args.log_format {
        config.log.format = match format {
            LogFormat::Text => "text".into(),
            LogFormat::Json => "json".into(),
        };
    }
    if config.log.format != "text" && config.log.format != "json" {
        return Err(GatewayError::Config(format!(
            "log.format must be text or json, not {:?}",
            config.log.format
        )));
    }
    Ok(config)
}

pub(super) async fn serve(args: ServeArgs) -> Result<(), GatewayError> {
    let config = serve_config(args)?;
    init_logging(&config);
    crate::metrics::install(&config.metrics.listen)?;
    let server = start_serve(config).await?;
    run_until_signal(server).await
}

pub(super) async fn gateway(args: ServeArgs) -> Result<(), GatewayError> {
    let config_file = args.config.clone();
    // Before anything else: a SIGHUP during start-up must not kill the process.
    let mut hup = hangup_signal()?;
    let config = serve_config(args)?;
    init_logging(&config);
    crate::metrics::install(&config.metrics.listen)?;
    let server = start_gateway(config).await?;
    let shared = server.shared();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match reload_cluster(&shared, config_file.as_deref()).await {
                Ok(()) => tracing::info!("cluster configuration reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; keeping the old configuration")
                }
            }
        }
    });
    run_until_signal(server).await
}

/// Re-reads the [cluster] section and swaps the router: new sessions follow the new
/// ring at once; a user whose owner changed moves when the new owner reports itself
/// caught up (until then the probes keep it out of the candidates). Listeners, TLS and
/// auth settings are not reloaded.
pub async fn reload_cluster(shared: &Shared, file: Option<&Path>) -> Result<(), GatewayError> {
    let config = Config::load(file)?;
    config.cluster.validate()?;
    let old = shared.router();
    let crate::route::Router::Cluster(old) = old.as_ref() else {
        return Err(GatewayError::Config(
            "this process has no cluster to reload".into(),
        ));
    };
    let fresh = crate::route::cluster_router(&config)?;
    let stores: Vec<_> = fresh
        .node_names()
        .into_iter()
        .filter_map(|n| fresh.node(&n).map(|h| h.store.clone()))
        .collect();
    let cluster = old.reconfigured(crate::route::placement(&config), stores);
    cluster.probe_all().await;
    cluster.spawn_prober();
    shared.set_router(crate::route::Router::Cluster(cluster));
    Ok(())
}

pub(super) async fn run_node(args: ServeArgs, role: Role) -> Result<(), GatewayError> {
    let config_file = args.config.clone();
    // Before anything else: a SIGHUP during start-up must not kill the process.
    let mut hup = hangup_signal()?;
    let config = serve_config(args)?;
    init_logging(&config);
    crate::metrics::install(&config.metrics.listen)?;
    let node = crate::node::start(config, role).await?;
    {
        let stop = wait_for_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = hup.recv() => {
                    let reloaded = Config::load(config_file.as_deref());
                    match reloaded {
                        Ok(config) => match node.reconfigure(&config).await {
                            Ok(()) => tracing::info!("cluster configuration reloaded"),
                            Err(e) => tracing::error!(error = %e, "reload failed"),
                        },
                        Err(e) => tracing::error!(error = %e, "reload failed; keeping the old configuration"),
                    }
                }
            }
        }
    }
    tracing::info!("stopping");
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP, as a stream of reload requests.
fn hangup_signal() -> Result<tokio::signal::unix::Signal, GatewayError> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).map_err(|e| GatewayError::io("installing the SIGHUP handler", e))
}

async fn run_until_signal(server: Server) -> Result<(), GatewayError> {
    wait_for_signal().await;
    tracing::info!("stopping: saying BYE to every session");
    server.shutdown(Duration::from_secs(10)).await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
