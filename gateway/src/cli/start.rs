//! Starting a server from a configuration, for the binary and for code that embeds
//! pluto: [`start_serve`] (one process: Maildir store, client listeners) and
//! [`start_gateway`] (a gateway in front of a cluster), each with a `_with` variant
//! that takes an authenticator of your own; what a data dir needs at its first start
//! (the directory, the first user); and the configured [`authenticator`].

#![allow(clippy::print_stdout)]

use std::path::Path;
use std::sync::Arc;

use pluto_backends::maildir::MaildirStore;

use crate::config::{AuthBackend, Config};
use crate::error::GatewayError;
use crate::server::Server;
use crate::shared::Shared;

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

/// The listen addresses and the LMTP settings parse, and at least one IMAP listener
/// is configured.
fn check_listeners(config: &Config) -> Result<(), GatewayError> {
    let imap = config.listen.imap_addr()?;
    let imaps = config.listen.imaps_addr()?;
    config.listen.lmtp_addr()?;
    config.lmtp.validate()?;
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

/// [`start_serve`] with an authenticator of your own (see auth/README.md, "Writing
/// your own adapter"): a team's binary calls this instead of `pluto serve`.
pub async fn start_serve_with(
    config: Config,
    auth: Arc<dyn pluto_auth::Authenticator>,
) -> Result<Server, GatewayError> {
    check_listeners(&config)?;
    create_data_dir(&config.data_dir)?;
    let tls = crate::tls::client_tls(&config)?;
    let mail_dir = config.mail_dir();
    let store = MaildirStore::open(mail_dir.clone()).map_err(|e| {
        GatewayError::Other(format!("opening the mail dir {}: {e}", mail_dir.display()))
    })?;
    let throttle = config.throttle.build()?;
    let router = crate::route::Router::Local(Arc::new(store));
    let shared = Arc::new(Shared::new(config, router, auth, throttle, tls));
    Server::start(shared).await
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
    let tls = crate::tls::client_tls(&config)?;
    let cluster = crate::route::cluster_router(&config)?;
    cluster.probe_all().await;
    cluster.spawn_prober();
    let throttle = config.throttle.build()?;
    let router = crate::route::Router::Cluster(cluster);
    let shared = Arc::new(Shared::new(config, router, auth, throttle, tls));
    Server::start(shared).await
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

pub(super) fn postgres(config: &Config) -> Result<pluto_auth::PostgresAuthenticator, GatewayError> {
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
