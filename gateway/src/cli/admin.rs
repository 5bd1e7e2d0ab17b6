//! The one-shot `pluto` tools: `user` (add, passwd, del, list — in the users file or
//! in PostgreSQL), `auth init-postgres`, `pki` and `cluster status`.

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
