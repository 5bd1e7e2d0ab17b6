//! The `pluto` command line: `serve` (everything in one process) and `user` (the
//! users file). Output meant for the person at the terminal goes to stdout/stderr
//! here and only here; everything else logs through `tracing`.

#![allow(clippy::print_stdout)]

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pluto_backends::maildir::MaildirStore;

use crate::config::{AuthBackend, Config};
use crate::error::GatewayError;
use crate::server::{Server, Shared};

#[derive(Parser, Debug)]
#[command(
    name = "pluto",
    version,
    about = "A distributed IMAP server whose mail state is a CRDT"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run everything in one process: IMAP gateway, Maildir store, users-file auth.
    Serve(ServeArgs),
    /// Manage the users file.
    User(UserArgs),
    /// Make the private CA for internal links (if missing) and a certificate per node.
    Pki(PkiArgs),
    /// Authentication back ends.
    Auth(AuthArgs),
    /// Run a stateless IMAP gateway in front of the cluster's worker and storage nodes.
    Gateway(ServeArgs),
    /// Run a worker node: owns the users the ring gives it, replicates to storage.
    Worker(ServeArgs),
    /// Run a storage node: holds a replica of every user.
    Storage(ServeArgs),
    /// Cluster tools.
    Cluster(ClusterArgs),
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
    /// Configuration file with the [cluster] section (its `name` is this tool's
    /// certificate, e.g. a gateway's).
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Show every node: reachable, caught up, ring share, replication lag per peer.
    Status,
}

#[derive(Args, Debug)]
pub struct AuthArgs {
    #[command(subcommand)]
    pub action: AuthAction,
    /// Configuration file with auth.postgres.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AuthAction {
    /// Create the users table in PostgreSQL (auth.postgres.url, schema, table). Idempotent.
    InitPostgres,
}

#[derive(Args, Debug)]
pub struct PkiArgs {
    /// Directory for ca.pem, ca-key.pem and NAME.pem / NAME-key.pem.
    #[arg(long, default_value = "pki")]
    pub out: PathBuf,
    /// Extra subject alternative names (DNS names or IP addresses) for every node certificate.
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// Re-issue certificates that already exist.
    #[arg(long)]
    pub force: bool,
    /// Node names (DNS-style), e.g. gw1 worker1 worker2 storage1.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (see pluto.example.toml). PLUTO_* variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory: mail, users file, generated certificate.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address for plain IMAP with STARTTLS ("" to disable). Default 127.0.0.1:1143.
    #[arg(long)]
    pub imap: Option<String>,
    /// Address for IMAP over implicit TLS ("" to disable). Default 127.0.0.1:1993.
    #[arg(long)]
    pub imaps: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    /// The data directory of `pluto serve` (its users file is DATA_DIR/users).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// The users file itself.
    #[arg(long, global = true, conflicts_with = "data_dir")]
    pub users_file: Option<PathBuf>,
    /// Configuration file, for auth.users_file and data_dir.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a user; the password is read from standard input, or prompted for.
    Add { name: String },
    /// Change a user's password (read from standard input, or prompted for).
    Passwd { name: String },
    /// Delete a user (their mail stays on disk).
    Del { name: String },
    /// List the users.
    List,
}

pub async fn run(cli: Cli) -> Result<(), GatewayError> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::User(args) => user(args).await,
        Command::Gateway(args) => gateway(args).await,
        Command::Worker(args) => run_node(args, crate::config::Role::Worker).await,
        Command::Storage(args) => run_node(args, crate::config::Role::Storage).await,
        Command::Cluster(args) => match args.action {
            ClusterAction::Status => cluster_status(args.config.as_deref()).await,
        },
        Command::Auth(args) => match args.action {
            AuthAction::InitPostgres => {
                let config = Config::load(args.config.as_deref())?;
                let pg = postgres(&config)?;
                pg.init_schema()
                    .await
                    .map_err(|e| GatewayError::Other(e.to_string()))?;
                println!(
                    "PostgreSQL is ready: table {}.{}",
                    config.auth.postgres.schema, config.auth.postgres.table
                );
                Ok(())
            }
        },
        Command::Pki(args) => {
            let written =
                pluto_backends::net::pki::generate(&args.out, &args.names, &args.sans, args.force)
                    .map_err(|e| GatewayError::Tls(e.to_string()))?;
            for path in &written {
                println!("wrote {path}");
            }
            if written.is_empty() {
                println!("nothing to do: the certificates exist (use --force to re-issue)");
            }
            Ok(())
        }
    }
}

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

async fn serve(args: ServeArgs) -> Result<(), GatewayError> {
    let config = serve_config(args)?;
    init_logging(&config);
    crate::metrics::install(&config.metrics.listen)?;
    let server = start_serve(config).await?;
    run_until_signal(server).await
}

async fn gateway(args: ServeArgs) -> Result<(), GatewayError> {
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
    let fresh = cluster_router(&config)?;
    let stores: Vec<_> = fresh
        .node_names()
        .into_iter()
        .filter_map(|n| fresh.node(&n).map(|h| h.store.clone()))
        .collect();
    let cluster = old.reconfigured(placement(&config), stores);
    cluster.probe_all().await;
    cluster.spawn_prober();
    shared.set_router(crate::route::Router::Cluster(cluster));
    Ok(())
}

async fn run_node(args: ServeArgs, role: crate::config::Role) -> Result<(), GatewayError> {
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

/// Starts `serve` from a configuration: creates the data dir, the first user, the
/// certificate, the store and the listeners. Used by the binary and by tests.
pub async fn start_serve(config: Config) -> Result<Server, GatewayError> {
    // Everything that can be checked is checked before anything is created, so that a
    // typo in a flag leaves no users file, password or certificate behind.
    check_listeners(&config)?;
    check_data_dir(&config.data_dir)?;
    let users_file = config.users_file();
    let first_start = config.auth.backend == AuthBackend::File && !users_file.exists();
    if first_start {
        create_data_dir(&config.data_dir)?;
        create_first_user(&users_file)?;
    }
    let auth = authenticator(&config).await?;
    let (data_dir, mail_dir) = (config.data_dir.clone(), config.mail_dir());
    let server = start_serve_with(config, auth).await?;
    if first_start {
        print_first_start(&data_dir, &mail_dir);
    }
    Ok(server)
}

/// The listen addresses parse, and at least one IMAP listener is configured.
fn check_listeners(config: &Config) -> Result<(), GatewayError> {
    let imap = config.listen.imap_addr()?;
    let imaps = config.listen.imaps_addr()?;
    if imap.is_none() && imaps.is_none() {
        return Err(GatewayError::Config(
            "no IMAP listener: listen.imap and listen.imaps (--imap, --imaps) are both empty; \
             set at least one, e.g. --imap 127.0.0.1:1143"
                .into(),
        ));
    }
    Ok(())
}

/// A data dir that exists must be a directory.
fn check_data_dir(dir: &Path) -> Result<(), GatewayError> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(GatewayError::Config(format!(
            "the data dir {} exists and is not a directory",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

fn create_data_dir(dir: &Path) -> Result<(), GatewayError> {
    check_data_dir(dir)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| GatewayError::io(format!("creating the data dir {}", dir.display()), e))
}

/// What a new user needs to know after the very first start: where the mail is, how to
/// add users to this very data dir, and how to stop.
fn print_first_start(data_dir: &Path, mail_dir: &Path) {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (data_dir, mail) = (absolute(data_dir), absolute(mail_dir));
    let shown = data_dir.display().to_string();
    let quoted = if shown
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        shown
    } else {
        format!("'{}'", shown.replace('\'', "'\\''"))
    };
    println!("Mail is stored under {}", mail.display());
    println!("Add a user:  pluto user add NAME --data-dir {quoted}");
    println!("Stop the server with Ctrl-C (or SIGTERM); mail and users stay on disk.");
}

/// [`start_serve`] with an authenticator of your own (see auth/README.md, "Writing
/// your own adapter"): a team's binary calls this instead of `pluto serve`.
pub async fn start_serve_with(
    config: Config,
    auth: Arc<dyn pluto_auth::Authenticator>,
) -> Result<Server, GatewayError> {
    check_listeners(&config)?;
    create_data_dir(&config.data_dir)?;
    let tls = client_tls(&config)?;
    let mail_dir = config.mail_dir();
    let store = MaildirStore::open(mail_dir.clone()).map_err(|e| {
        GatewayError::Other(format!("opening the mail dir {}: {e}", mail_dir.display()))
    })?;
    let throttle = config.throttle.build()?;
    let router = crate::route::Router::Local(Arc::new(store));
    let shared = Arc::new(Shared::new(config, router, auth, throttle, tls));
    Server::start(shared).await
}

/// The TLS acceptor for client listeners: the configured certificate, or (for `serve`
/// and trials) a self-signed one generated into the data dir.
fn client_tls(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, GatewayError> {
    match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::acceptor(cert, key)?)),
        (None, None) => {
            let (cert, key) = crate::tls::ensure_self_signed(&config.data_dir)?;
            Ok(Some(crate::tls::acceptor(&cert, &key)?))
        }
        _ => Err(GatewayError::Config(
            "tls.cert and tls.key go together: set both or neither".into(),
        )),
    }
}

/// This process's identity on internal links.
pub fn node_tls(config: &Config) -> Result<pluto_backends::net::NodeTls, GatewayError> {
    let c = &config.cluster;
    if c.name.is_empty() {
        return Err(GatewayError::Config(
            "cluster.name is not set (this node's name)".into(),
        ));
    }
    pluto_backends::net::NodeTls::load(&c.ca(), &c.cert(), &c.key()).map_err(|e| {
        GatewayError::Tls(format!(
            "{e} (make the files with `pluto pki --out {} {}`)",
            c.pki_dir.display(),
            c.name
        ))
    })
}

/// Where users' replicas are, from the [cluster] section.
pub fn placement(config: &Config) -> crate::route::Placement {
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
    crate::route::Placement { ring, storage }
}

/// The cluster as a gateway sees it: the placement and a Store client per node.
pub fn cluster_router(config: &Config) -> Result<Arc<crate::route::Cluster>, GatewayError> {
    config.cluster.validate()?;
    // A message travels to the nodes in one internal frame.
    let max = pluto_backends::net::MAX_BODY;
    if usize::try_from(config.limits.append_limit).map_or(true, |l| l > max) {
        return Err(GatewayError::Config(format!(
            "limits.append_limit = {} is above the largest message a cluster carries ({max} bytes)",
            config.limits.append_limit
        )));
    }
    let tls = node_tls(config)?;
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
    Ok(crate::route::Cluster::new(placement(config), stores))
}

/// Starts a gateway: client listeners, auth, and the cluster router with its prober.
pub async fn start_gateway(config: Config) -> Result<Server, GatewayError> {
    let auth = authenticator(&config).await?;
    start_gateway_with(config, auth).await
}

/// [`start_gateway`] with an authenticator of your own.
pub async fn start_gateway_with(
    config: Config,
    auth: Arc<dyn pluto_auth::Authenticator>,
) -> Result<Server, GatewayError> {
    check_listeners(&config)?;
    create_data_dir(&config.data_dir)?;
    let tls = client_tls(&config)?;
    let cluster = cluster_router(&config)?;
    cluster.probe_all().await;
    cluster.spawn_prober();
    let throttle = config.throttle.build()?;
    let router = crate::route::Router::Cluster(cluster);
    let shared = Arc::new(Shared::new(config, router, auth, throttle, tls));
    Server::start(shared).await
}

async fn cluster_status(config: Option<&Path>) -> Result<(), GatewayError> {
    let config = Config::load(config)?;
    let cluster = cluster_router(&config)?;
    let shares: std::collections::HashMap<String, f64> =
        cluster.ring().shares().into_iter().collect();
    println!(
        "{:<12} {:<8} {:<10} {:<9} {:>6}  replication (peer: ops/bytes behind)",
        "node", "role", "reachable", "caught-up", "ring"
    );
    for node in &config.cluster.nodes {
        let handle = cluster.node(&node.name);
        let status = match handle {
            Some(h) => tokio::time::timeout(crate::route::PROBE_TIMEOUT * 2, h.store.node_status())
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        let share = shares
            .get(&node.name)
            .map(|s| format!("{:.1}%", s * 100.0))
            .unwrap_or_else(|| "-".into());
        let role = match node.role {
            crate::config::Role::Worker => "worker",
            crate::config::Role::Storage => "storage",
        };
        match status {
            Some(s) => {
                let peers: Vec<String> = s
                    .peers
                    .iter()
                    .map(|p| {
                        format!(
                            "{}{}: {}/{}",
                            p.name,
                            if p.connected { "" } else { " (down)" },
                            p.ops_behind,
                            p.bytes_behind
                        )
                    })
                    .collect();
                println!(
                    "{:<12} {:<8} {:<10} {:<9} {:>6}  {}",
                    node.name,
                    role,
                    "yes",
                    if s.caught_up { "yes" } else { "no" },
                    share,
                    peers.join(", ")
                );
            }
            None => println!(
                "{:<12} {:<8} {:<10} {:<9} {:>6}",
                node.name, role, "NO", "-", share
            ),
        }
    }
    Ok(())
}

/// The configured authenticator.
pub async fn authenticator(
    config: &Config,
) -> Result<Arc<dyn pluto_auth::Authenticator>, GatewayError> {
    let plain = config.auth.allow_plaintext_passwords;
    Ok(match config.auth.backend {
        AuthBackend::File => Arc::new(
            pluto_auth::FileAuthenticator::open(config.users_file(), plain)
                .await
                .map_err(|e| GatewayError::Other(format!("users file: {e}")))?,
        ),
        AuthBackend::Postgres => Arc::new(postgres(config)?),
    })
}

fn postgres(config: &Config) -> Result<pluto_auth::PostgresAuthenticator, GatewayError> {
    if config.auth.postgres.url.trim().is_empty() {
        return Err(GatewayError::Config(
            "auth.backend = \"postgres\" needs auth.postgres.url".into(),
        ));
    }
    pluto_auth::PostgresAuthenticator::new(
        &config
            .auth
            .postgres
            .adapter_config(config.auth.allow_plaintext_passwords),
    )
    .map_err(|e| GatewayError::Config(format!("auth.postgres: {e}")))
}

fn create_first_user(users_file: &Path) -> Result<(), GatewayError> {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let password: String = (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let name = "pluto";
    if let Some(dir) = users_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| GatewayError::io(dir.display().to_string(), e))?;
    }
    pluto_auth::file::add_user(users_file, name, &password)
        .map_err(|e| GatewayError::Other(format!("creating the first user: {e}")))?;
    println!(
        "Created the users file {} with one user.",
        users_file.display()
    );
    println!("  user:     {name}");
    println!("  password: {password}");
    println!("This password is shown only once; change it with `pluto user passwd {name}`.");
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

async fn user(args: UserArgs) -> Result<(), GatewayError> {
    let fail = |e: pluto_auth::AuthError| GatewayError::Other(e.to_string());
    if args.users_file.is_none() && args.data_dir.is_none() {
        let config = Config::load(args.config.as_deref())?;
        if config.auth.backend == AuthBackend::Postgres {
            return user_postgres(args.action, &postgres(&config)?).await;
        }
    }
    let path = match (args.users_file, args.data_dir) {
        (Some(file), _) => file,
        (None, Some(dir)) => dir.join("users"),
        (None, None) => Config::load(args.config.as_deref())?.users_file(),
    };
    match args.action {
        UserAction::Add { name } => {
            let password = read_password(&format!("Password for {name}: "))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| GatewayError::io(dir.display().to_string(), e))?;
            }
            pluto_auth::file::add_user(&path, &name, &password).map_err(fail)?;
            println!("Added user {name} to {}", path.display());
        }
        UserAction::Passwd { name } => {
            let password = read_password(&format!("New password for {name}: "))?;
            pluto_auth::file::set_password(&path, &name, &password).map_err(fail)?;
            println!("Changed the password of {name}");
        }
        UserAction::Del { name } => {
            pluto_auth::file::delete_user(&path, &name).map_err(fail)?;
            println!("Deleted user {name} (their mail stays on disk)");
        }
        UserAction::List => {
            for name in pluto_auth::file::list_users(&path).map_err(fail)? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

async fn user_postgres(
    action: UserAction,
    pg: &pluto_auth::PostgresAuthenticator,
) -> Result<(), GatewayError> {
    let fail = |e: pluto_auth::AuthError| GatewayError::Other(e.to_string());
    match action {
        UserAction::Add { name } => {
            let password = read_password(&format!("Password for {name}: "))?;
            pg.add_user(&name, &password).await.map_err(fail)?;
            println!("Added user {name} to PostgreSQL");
        }
        UserAction::Passwd { name } => {
            let password = read_password(&format!("New password for {name}: "))?;
            pg.set_password(&name, &password).await.map_err(fail)?;
            println!("Changed the password of {name}");
        }
        UserAction::Del { name } => {
            pg.delete_user(&name).await.map_err(fail)?;
            println!("Deleted user {name} (their mail stays in the store)");
        }
        UserAction::List => {
            for name in pg.list_users().await.map_err(fail)? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

/// The password from standard input when it is not a terminal (first line), else a
/// prompt without echo, asked twice.
fn read_password(prompt: &str) -> Result<String, GatewayError> {
    if !std::io::stdin().is_terminal() {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| GatewayError::io("reading the password from standard input", e))?;
        let password = input.lines().next().unwrap_or_default().to_owned();
        if password.is_empty() {
            return Err(GatewayError::Other(
                "the password on standard input is empty".into(),
            ));
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password(prompt)
        .map_err(|e| GatewayError::io("reading the password", e))?;
    let second = rpassword::prompt_password("Again: ")
        .map_err(|e| GatewayError::io("reading the password", e))?;
    if first != second {
        return Err(GatewayError::Other("the passwords differ".into()));
    }
    if first.is_empty() {
        return Err(GatewayError::Other("the password is empty".into()));
    }
    Ok(first)
}
