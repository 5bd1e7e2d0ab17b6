//! Tests of the PostgreSQL adapter against the real server named by
//! PLUTO_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test).
//!
//! Every test works in its own schema `pluto_test_<random>`, created by the
//! adapter's `init_schema` and dropped by a guard (even when the test
//! fails), so parallel runs do not collide. Outages are made with a TCP
//! proxy in front of the server, which other people's tests share and which
//! must keep running.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Proxy, closed_port, service_url, unique_suffix, url_socket_addr, url_with_addr};
use pluto_auth::{AuthError, Authenticator, PostgresAuthenticator, PostgresConfig};
use pluto_model::Quota;

const URL_VAR: &str = "PLUTO_TEST_POSTGRES_URL";

// `doveadm pw -s SHA512-CRYPT -p 'correct horse'` (Dovecot 2.3).
const DOVECOT_SHA512: &str = "{SHA512-CRYPT}$6$Wmf3nSQ8f9kM44RY$mAM/WKuqxrPy60p0wHVauhTtn8eu581XxCLQniYg8yO/79AU3JwVxiDw7Gyqsiyb6YoYc2db9Kp5tQTMWNAed.";

fn config(url: &str, schema: &str) -> PostgresConfig {
    let mut c = PostgresConfig::new(url);
    c.schema = schema.to_owned();
    c.pool_size = 4;
    c.connect_timeout = Duration::from_secs(2);
    c.wait_timeout = Duration::from_secs(2);
    c.query_timeout = Duration::from_secs(3);
    c
}

/// Drops its schema when dropped, even when the test panicked, so failed
/// runs leave nothing behind.
struct SchemaGuard {
    url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Our own thread and runtime: Drop may run inside (or after) the
        // test's runtime, where blocking on a future is not allowed.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
                    .unwrap();
            });
        })
        .join();
        if done.is_err() {
            eprintln!("could not drop test schema {}", self.schema);
        }
    }
}

/// A fresh schema with the users table, dropped with the guard.
async fn fresh(url: &str) -> (PostgresAuthenticator, SchemaGuard) {
    let schema = format!("pluto_test_{}", unique_suffix());
    let guard = SchemaGuard {
        url: url.to_owned(),
        schema: schema.clone(),
    };
    let auth = PostgresAuthenticator::new(&config(url, &schema)).unwrap();
    auth.init_schema().await.unwrap();
    (auth, guard)
}

#[tokio::test]
async fn users_lifecycle() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (auth, _guard) = fresh(&url).await;
    // init_schema is idempotent.
    auth.init_schema().await.unwrap();

    auth.add_user("Alice@Example.org", "s3cret").await.unwrap();
    assert_eq!(
        auth.authenticate("alice@example.org", "s3cret")
            .await
            .unwrap()
            .user,
        "Alice@Example.org"
    );
    assert!(matches!(
        auth.authenticate("Alice@Example.org", "nope").await,
        Err(AuthError::Failed)
    ));
    assert!(matches!(
        auth.authenticate("bob", "s3cret").await,
        Err(AuthError::Failed)
    ));
    assert!(matches!(
        auth.add_user("ALICE@example.org", "x").await,
        Err(AuthError::UserExists(_))
    ));

    auth.set_password("alice@example.org", "n3w").await.unwrap();
    assert!(matches!(
        auth.authenticate("Alice@Example.org", "s3cret").await,
        Err(AuthError::Failed)
    ));
    assert!(auth.authenticate("Alice@Example.org", "n3w").await.is_ok());

    // Disabled: only a right password learns it.
    auth.set_enabled("Alice@Example.org", false).await.unwrap();
    assert!(matches!(
        auth.authenticate("Alice@Example.org", "n3w").await,
        Err(AuthError::Disabled)
    ));
    assert!(matches!(
        auth.authenticate("Alice@Example.org", "bad").await,
        Err(AuthError::Failed)
    ));
    auth.set_enabled("Alice@Example.org", true).await.unwrap();

    // A hash migrated from Dovecot logs in as is.
    auth.add_user_with_hash("migrated", DOVECOT_SHA512)
        .await
        .unwrap();
    assert!(auth.authenticate("migrated", "correct horse").await.is_ok());

    assert_eq!(
        auth.list_users().await.unwrap(),
        ["Alice@Example.org", "migrated"]
    );
    auth.delete_user("ALICE@EXAMPLE.ORG").await.unwrap();
    assert!(matches!(
        auth.authenticate("Alice@Example.org", "n3w").await,
        Err(AuthError::Failed)
    ));
    assert!(matches!(
        auth.delete_user("alice@example.org").await,
        Err(AuthError::NoSuchUser(_))
    ));
    assert!(matches!(
        auth.set_password("ghost", "x").await,
        Err(AuthError::NoSuchUser(_))
    ));
    assert!(matches!(
        auth.set_enabled("ghost", false).await,
        Err(AuthError::NoSuchUser(_))
    ));
}

#[tokio::test]
async fn sql_injection_names_are_just_names() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (auth, _guard) = fresh(&url).await;
    auth.add_user("victim", "victim-pw").await.unwrap();

    let attacks = [
        "' OR '1'='1",
        "victim' --",
        "victim'/*",
        "x'; DROP TABLE users; --",
        "\"; DELETE FROM users; --",
        "' UNION SELECT 'victim', '{PLAIN}x', true --",
        "victim%",
        "vict_m",
    ];
    for name in attacks {
        // As login names: plain failures, never a match, never an error.
        for pw in ["victim-pw", "x", "' OR '1'='1"] {
            assert!(
                matches!(auth.authenticate(name, pw).await, Err(AuthError::Failed)),
                "{name:?}/{pw:?}"
            );
        }
    }
    // Names with no spaces can even be stored, and stay literal.
    for name in [
        "victim'--",
        "o'brien",
        "x');TRUNCATE(users);--",
        "100%",
        "a_b",
    ] {
        auth.add_user(name, "pw").await.unwrap();
        assert_eq!(auth.authenticate(name, "pw").await.unwrap().user, name);
    }
    // LIKE wildcards are not patterns: "a_b" did not match "axb".
    assert!(matches!(
        auth.authenticate("axb", "pw").await,
        Err(AuthError::Failed)
    ));
    // Names PostgreSQL would choke on (NUL) fail as a wrong password, not as
    // an outage a client could provoke.
    assert!(matches!(
        auth.authenticate("vic\0tim", "victim-pw").await,
        Err(AuthError::Failed)
    ));
    // The table and the victim survived.
    assert!(auth.authenticate("victim", "victim-pw").await.is_ok());
    assert_eq!(auth.list_users().await.unwrap().len(), 6);
}

#[tokio::test]
async fn plaintext_only_when_allowed() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (auth, guard) = fresh(&url).await;
    auth.add_user_with_hash("p", "{PLAIN}open").await.unwrap();
    assert!(matches!(
        auth.authenticate("p", "open").await,
        Err(AuthError::Failed)
    ));
    let mut c = config(&url, &guard.schema);
    c.allow_plaintext = true;
    let lenient = PostgresAuthenticator::new(&c).unwrap();
    assert!(lenient.authenticate("p", "open").await.is_ok());
}

#[tokio::test]
async fn missing_table_is_unavailable_with_a_hint() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let schema = format!("pluto_test_{}", unique_suffix());
    let auth = PostgresAuthenticator::new(&config(&url, &schema)).unwrap();
    match auth.authenticate("a", "b").await {
        Err(AuthError::Unavailable(reason)) => {
            assert!(reason.contains("init-postgres"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// An adapter whose server does not listen (a closed port), with a short timeout.
async fn server_down() -> PostgresAuthenticator {
    let port = closed_port().await;
    let mut c = config(
        &format!("postgres://postgres@127.0.0.1:{port}/test"),
        "public",
    );
    c.connect_timeout = Duration::from_millis(500);
    PostgresAuthenticator::new(&c).unwrap()
}

#[tokio::test]
async fn server_down_is_unavailable_quickly() {
    let auth = server_down().await;
    let started = Instant::now();
    match auth.authenticate("alice", "pw").await {
        Err(AuthError::Unavailable(reason)) => {
            assert!(reason.contains("PostgreSQL"), "{reason}");
            assert!(
                !reason.contains("alice") && !reason.contains("pw"),
                "{reason}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Bounded by the configured timeouts (generous margin, not a benchmark).
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(auth.ping().await, Err(AuthError::Unavailable(_))));
}

#[tokio::test]
async fn pool_recovers_after_the_server_comes_back() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (admin, guard) = fresh(&url).await;
    admin.add_user("alice", "pw").await.unwrap();

    let mut proxy = Proxy::start(url_socket_addr(&url, 5432)).await;
    let mut c = config(&url_with_addr(&url, proxy.addr), &guard.schema);
    c.connect_timeout = Duration::from_millis(500);
    let auth = PostgresAuthenticator::new(&c).unwrap();
    assert_eq!(
        auth.authenticate("alice", "pw").await.unwrap().user,
        "alice"
    );

    // "Stop the server": every pooled connection dies, new ones are refused.
    proxy.stop().await;
    for _ in 0..3 {
        assert!(
            matches!(
                auth.authenticate("alice", "pw").await,
                Err(AuthError::Unavailable(_))
            ),
            "logins while PostgreSQL is down must be Unavailable"
        );
    }

    // "Restart it": the same adapter works again without being rebuilt.
    proxy.restart().await;
    let mut recovered = false;
    for _ in 0..20 {
        match auth.authenticate("alice", "pw").await {
            Ok(a) => {
                assert_eq!(a.user, "alice");
                recovered = true;
                break;
            }
            Err(AuthError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(recovered, "pool did not recover after the server came back");
    assert!(matches!(
        auth.authenticate("alice", "bad").await,
        Err(AuthError::Failed)
    ));
}

#[test]
fn bad_configuration_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = PostgresConfig::new("postgres://postgres@127.0.0.1/test");
        c.table = "users; DROP TABLE users".to_owned();
        assert!(matches!(
            PostgresAuthenticator::new(&c),
            Err(AuthError::Config(_))
        ));
        let c = PostgresConfig::new("not a url ://");
        assert!(matches!(
            PostgresAuthenticator::new(&c),
            Err(AuthError::Config(_))
        ));
    });
}

#[tokio::test]
async fn find_user_answers_without_a_password() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (auth, _guard) = fresh(&url).await;
    auth.add_user("Alice@Example.org", "s3cret").await.unwrap();
    let account = auth.find_user("alice@example.org").await.unwrap().unwrap();
    assert_eq!(account.user, "Alice@Example.org");
    assert!(account.enabled);
    auth.set_enabled("Alice@Example.org", false).await.unwrap();
    assert!(
        !auth
            .find_user("ALICE@example.org")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(auth.find_user("bob").await.unwrap().is_none());
    // Names that could never be stored are not sent to the server: no such user.
    assert!(auth.find_user("a\0b").await.unwrap().is_none());
    assert!(
        auth.find_user(&"x".repeat(100_000))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn find_user_with_the_server_down_is_unavailable() {
    let auth = server_down().await;
    assert!(matches!(
        auth.find_user("alice").await,
        Err(AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn quota_columns_reach_login_and_delivery() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (auth, _guard) = fresh(&url).await;
    auth.add_user("alice", "s3cret").await.unwrap();
    // NULL columns: no limits of its own (the configured default applies).
    let login = auth.authenticate("alice", "s3cret").await.unwrap();
    assert_eq!(login.quota, Quota::default());
    let quota = Quota {
        storage_bytes: Some(5 << 20),
        messages: Some(0),
    };
    auth.set_quota("ALICE", quota).await.unwrap();
    assert_eq!(
        auth.authenticate("alice", "s3cret").await.unwrap().quota,
        quota
    );
    assert_eq!(auth.find_user("alice").await.unwrap().unwrap().quota, quota);
    assert!(matches!(
        auth.set_quota("nobody", quota).await,
        Err(AuthError::NoSuchUser(_))
    ));
    assert!(matches!(
        auth.set_quota(
            "alice",
            Quota {
                storage_bytes: Some(u64::MAX),
                messages: None
            }
        )
        .await,
        Err(AuthError::Config(_))
    ));
}

#[tokio::test]
async fn a_table_without_quota_columns_still_serves_logins() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (auth, guard) = fresh(&url).await;
    auth.add_user("alice", "s3cret").await.unwrap();
    // A table made before the quota columns existed.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "ALTER TABLE \"{}\".users DROP COLUMN quota_storage_bytes, DROP COLUMN quota_messages",
            guard.schema
        ))
        .await
        .unwrap();
    // A fresh adapter (no statements cached from before).
    let old = PostgresAuthenticator::new(&config(&url, &guard.schema)).unwrap();
    for _ in 0..2 {
        let login = old.authenticate("alice", "s3cret").await.unwrap();
        assert_eq!(login.quota, Quota::default());
        assert!(old.find_user("alice").await.unwrap().is_some());
    }
    // init-postgres adds the columns; a new adapter reads them.
    old.init_schema().await.unwrap();
    let new = PostgresAuthenticator::new(&config(&url, &guard.schema)).unwrap();
    new.set_quota(
        "alice",
        Quota {
            storage_bytes: None,
            messages: Some(7),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        new.find_user("alice")
            .await
            .unwrap()
            .unwrap()
            .quota
            .messages,
        Some(7)
    );
}
