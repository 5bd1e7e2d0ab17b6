//! The `pluto` command line. This module holds the clap grammar of every subcommand
//! and the dispatch to the code that runs it:
//!
//! - [`serve`]: the long-running processes — `serve` (everything in one process),
//!   `gateway`, `worker`, `storage` — with their configuration, logging, signals and
//!   reloads.
//! - [`start`]: starting a server from a configuration (`start_serve`,
//!   `start_gateway`, with `_with` variants taking an authenticator of your own), the
//!   first start of a data dir, the configured authenticator.
//! - `admin`: the one-shot tools — `user` (users file or PostgreSQL), `auth
//!   init-postgres`, `pki`, `cluster status`.
//! - `deliver`: `pluto deliver`, one message from standard input for one user.
//!
//! Output meant for the person at the terminal goes to stdout/stderr in these modules
//! and only here; everything else logs through `tracing`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Role;
use crate::error::GatewayError;

mod admin;
mod deliver;
pub mod serve;
pub mod start;

pub use serve::reload_cluster;
pub use start::{authenticator, start_gateway, start_gateway_with, start_serve, start_serve_with};

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
    /// Deliver one message from standard input to a user (a local delivery agent);
    /// exit codes of sysexits.h (75 try later, 67 no such user, 73 no such mailbox,
    /// 65 bad message, 78 bad configuration).
    Deliver(DeliverArgs),
}

#[derive(Args, Debug)]
pub struct DeliverArgs {
    /// The recipient: a user name (or an address, with `lmtp.domains` and `user+detail`).
    #[arg(long)]
    pub user: String,
    /// The mailbox to deliver into (it must exist). Default: INBOX (or the detail's
    /// mailbox, as over LMTP).
    #[arg(long)]
    pub mailbox: Option<String>,
    /// The envelope sender, for `Return-Path`.
    #[arg(long, default_value = "")]
    pub from: String,
    /// TOML configuration file (see pluto.example.toml). PLUTO_* variables override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The data directory of `pluto serve`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
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
    /// Address for LMTP, mail delivery from the MTA ("" to disable). Default
    /// 127.0.0.1:1024. (`serve` and `gateway`.)
    #[arg(long)]
    pub lmtp: Option<String>,
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
    /// Show a user's quota limits (their own, the `[quota]` default) and, where the
    /// store can be reached, their usage: `pluto serve`'s Maildir when no server holds
    /// it, or a cluster's nodes (with the node certificate of `cluster.name`).
    Quota { name: String },
}

/// Runs one parsed command line to its end.
pub async fn run(cli: Cli) -> Result<(), GatewayError> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::User(args) => admin::user(args).await,
        Command::Gateway(args) => serve::gateway(args).await,
        Command::Worker(args) => serve::run_node(args, Role::Worker).await,
        Command::Storage(args) => serve::run_node(args, Role::Storage).await,
        Command::Cluster(args) => match args.action {
            ClusterAction::Status => admin::cluster_status(args.config.as_deref()).await,
        },
        Command::Auth(args) => match args.action {
            AuthAction::InitPostgres => admin::init_postgres(args.config.as_deref()).await,
        },
        Command::Pki(args) => admin::pki(&args),
        Command::Deliver(args) => deliver::deliver(args).await,
    }
}
