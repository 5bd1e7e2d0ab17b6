//! Logging in against PostgreSQL through the whole gateway: `pluto auth init-postgres`
//! and `pluto user add` from the binary, then IMAP LOGIN; PostgreSQL unreachable gives
//! `NO [UNAVAILABLE]`, not a failed login. Needs PLUTO_TEST_POSTGRES_URL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::TestServer;
use pluto_gateway::config::AuthBackend;

fn postgres_url() -> Option<String> {
    let url = std::env::var("PLUTO_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        println!("skipped: PLUTO_TEST_POSTGRES_URL not set");
    }
    url
}

fn pluto(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pluto"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Best effort: drop the test's schema even when the test failed.
        let _ = Command::new("psql")
            .args([
                &self.url,
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_postgres() {
    let Some(url) = postgres_url() else { return };
    let schema = Schema {
        url: url.clone(),
        name: format!("pluto_gw_{}", std::process::id()),
    };
    let config_dir = tempfile::tempdir().unwrap();
    let config_path = config_dir.path().join("pluto.toml");
    std::fs::write(
        &config_path,
        format!(
            "[auth]\nbackend = \"postgres\"\n[auth.postgres]\nurl = \"{url}\"\nschema = \"{}\"\n",
            schema.name
        ),
    )
    .unwrap();
    let config_arg = config_path.to_str().unwrap();
    // The schema must exist before init-postgres creates the table in it.
    let created = Command::new("psql")
        .args([
            &url,
            "-qc",
            &format!("CREATE SCHEMA IF NOT EXISTS {}", schema.name),
        ])
        .output()
        .expect("psql is needed to prepare the test schema");
    assert!(created.status.success(), "{created:?}");

    let init = pluto(&["auth", "init-postgres", "--config", config_arg], "");
    assert!(
        init.status.success(),
        "init-postgres: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let add = pluto(
        &["user", "add", "dora", "--config", config_arg],
        "dora's secret\n",
    );
    assert!(
        add.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&add.stderr)
    );
    let again = pluto(&["user", "add", "dora", "--config", config_arg], "x\n");
    assert!(!again.status.success(), "adding dora twice must fail");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let mut server = TestServer::start_with(|c| {
        c.auth.backend = AuthBackend::Postgres;
        c.auth.postgres.url = url.clone();
        c.auth.postgres.schema = schema.name.clone();
        c.throttle.base_delay_ms = 10;
        c.throttle.max_delay_ms = 20;
    })
    .await;
    let mut raw = server.raw().await;
    let ok = raw.cmd("LOGIN dora \"dora's secret\"").await;
    assert!(ok.ok(), "{ok:?}");
    let mut raw = server.raw().await;
    let wrong = raw.cmd("LOGIN dora wrong").await;
    assert!(
        wrong.no() && wrong.tagged.contains("[AUTHENTICATIONFAILED]"),
        "{wrong:?}"
    );
    let injection = raw.cmd("LOGIN \"x' OR '1'='1\" \"' OR ''='\"").await;
    assert!(
        injection.no() && injection.tagged.contains("[AUTHENTICATIONFAILED]"),
        "{injection:?}"
    );
    // The file users of TestServer do not exist in PostgreSQL.
    let file_user = raw
        .cmd(&format!("LOGIN {} \"{}\"", common::USER, common::PASSWORD))
        .await;
    assert!(file_user.no(), "{file_user:?}");
    server.stop().await;

    // PostgreSQL unreachable: the client is told to come back later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut server = TestServer::start_with(|c| {
        c.auth.backend = AuthBackend::Postgres;
        c.auth.postgres.url = format!("postgres://postgres@127.0.0.1:{port}/test");
        c.auth.postgres.connect_timeout_ms = 500;
    })
    .await;
    let mut raw = server.raw().await;
    let down = raw.cmd("LOGIN dora \"dora's secret\"").await;
    assert!(
        down.no() && down.tagged.contains("[UNAVAILABLE]"),
        "{down:?}"
    );
    server.stop().await;
}
