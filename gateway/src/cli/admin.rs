//! The one-shot `pluto` tools: `user` (add, passwd, del, list — in the users file or
//! in PostgreSQL — and quota), `auth init-postgres`, `pki` and `cluster status`.

#![allow(clippy::print_stdout)]

use std::io::{IsTerminal, Read};
use std::path::Path;

use super::start::postgres;
use super::{PkiArgs, UserAction, UserArgs};
use crate::config::{AuthBackend, Config};
use crate::error::GatewayError;

/// `pluto auth init-postgres`: the users table in PostgreSQL (idempotent).
pub(super) async fn init_postgres(config: Option<&Path>) -> Result<(), GatewayError> {
    let config = Config::load(config)?;
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

/// `pluto pki`: the private CA for internal links (if missing) and a certificate per
/// node.
pub(super) fn pki(args: &PkiArgs) -> Result<(), GatewayError> {
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

pub(super) async fn cluster_status(config: Option<&Path>) -> Result<(), GatewayError> {
    let config = Config::load(config)?;
    let cluster = crate::route::cluster_router(&config)?;
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

pub(super) async fn user(args: UserArgs) -> Result<(), GatewayError> {
    let fail = |e: pluto_auth::AuthError| GatewayError::Other(e.to_string());
    if let UserAction::Quota { name } = &args.action {
        return user_quota(&args, name).await;
    }
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
            // A name that cannot be stored is refused before the password is asked.
            pluto_auth::validate_user_name(&name).map_err(fail)?;
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
        UserAction::Quota { .. } => {}
    }
    Ok(())
}

/// `pluto user quota NAME`: the limits that apply to the user, where each comes from,
/// and the usage where the store can be reached from here.
async fn user_quota(args: &UserArgs, name: &str) -> Result<(), GatewayError> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
        config.auth.backend = AuthBackend::File;
    }
    if let Some(file) = &args.users_file {
        config.auth.users_file = Some(file.clone());
        config.auth.backend = AuthBackend::File;
    }
    let auth = super::start::authenticator(&config).await?;
    let account = auth
        .find_user(name)
        .await
        .map_err(|e| GatewayError::Other(e.to_string()))?
        .ok_or_else(|| GatewayError::Other(format!("no such user: {name}")))?;
    let own = account.quota;
    let default = config.quota.quota();
    let source = match config.auth.backend {
        AuthBackend::File => "the users file",
        AuthBackend::Postgres => "PostgreSQL",
    };
    println!("user      {}", account.user);
    let show = |what: &str, own: Option<u64>, default: Option<u64>, unit: &str| {
        let (limit, from) = match own {
            Some(n) => (n, source),
            None => (default.unwrap_or(0), "the [quota] default"),
        };
        if limit == 0 {
            println!("{what:<9} no limit (from {from})");
        } else {
            println!("{what:<9} {limit} {unit} (from {from})");
        }
    };
    show("storage", own.storage_bytes, default.storage_bytes, "bytes");
    show("messages", own.messages, default.messages, "messages");
    let user = pluto_backends::UserId::new(account.user.clone())
        .map_err(|e| GatewayError::Other(format!("{name}: {e}")))?;
    match usage_of(&config, &user).await {
        Ok(usage) => println!(
            "usage     {} bytes ({} KiB), {} messages",
            usage.bytes,
            usage.storage_kib(),
            usage.messages
        ),
        Err(why) => println!("usage     not known here: {why}"),
    }
    Ok(())
}

/// The user's usage from the store this configuration names: the Maildir of `pluto
/// serve` (only while no server holds it), or the first replica of a cluster that
/// answers.
async fn usage_of(
    config: &Config,
    user: &pluto_backends::UserId,
) -> Result<pluto_backends::Usage, String> {
    use pluto_backends::MailStore;
    if config.cluster.nodes.is_empty() {
        let mail_dir = config.mail_dir();
        if !mail_dir.join(user.as_str()).is_dir() {
            return Ok(pluto_backends::Usage::default());
        }
        let store = pluto_backends::maildir::MaildirStore::open(mail_dir.clone()).map_err(|e| {
            format!(
                "{} is held by a running `pluto serve` ({e}); GETQUOTAROOT INBOX over IMAP shows it",
                mail_dir.display()
            )
        })?;
        return store.usage(user).await.map_err(|e| e.to_string());
    }
    let cluster = crate::route::cluster_router(config).map_err(|e| e.to_string())?;
    cluster.probe_all().await;
    let mut last = "no replica configured".to_owned();
    for candidate in crate::route::Router::Cluster(cluster).candidates(user) {
        match candidate.store.usage(user).await {
            Ok(usage) => return Ok(usage),
            Err(e) => last = format!("{}: {e}", candidate.node),
        }
    }
    Err(last)
}

async fn user_postgres(
    action: UserAction,
    pg: &pluto_auth::PostgresAuthenticator,
) -> Result<(), GatewayError> {
    let fail = |e: pluto_auth::AuthError| GatewayError::Other(e.to_string());
    match action {
        UserAction::Add { name } => {
            // A name that cannot be stored is refused before the password is asked.
            pluto_auth::validate_user_name(&name).map_err(fail)?;
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
        UserAction::Quota { .. } => {}
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
