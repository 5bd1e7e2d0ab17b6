//! The PostgreSQL adapter: users in one table, reached through a
//! deadpool-postgres pool.
//!
//! Every statement that carries user data is a prepared statement with
//! parameters (cached per connection); the only SQL assembled as text is the
//! table's qualified name, which comes from the configuration and is checked
//! to be a plain lower-case identifier before it is ever used.
//!
//! When PostgreSQL is down, every call answers [`AuthError::Unavailable`]
//! within the configured timeouts; nothing blocks for longer. The pool
//! verifies a connection before reusing it and opens new ones on demand, so
//! it recovers by itself once the server is back.
//!
//! Quota limits are two optional columns, `quota_storage_bytes` and `quota_messages`
//! (`bigint`, NULL: the configuration's default; 0: no limit). `init_schema` adds them
//! to a table made before they existed; a table without them still serves logins (the
//! adapter notices the missing columns once, warns, and reads the table without them).
//!
//! Connections are made without TLS: run PostgreSQL on the same host, a
//! private network or a Unix socket.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use pluto_model::Quota;

use crate::names::validate_user_name;
use crate::scheme::{DecoyHash, hash_password_async, verify_password};
use crate::{Account, AuthError, Authenticated, Authenticator};

/// Settings of the PostgreSQL adapter. Start from [`PostgresConfig::new`],
/// which fills in the defaults, and change what you need.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user[:password]@host[:port]/database[?options]` (or the
    /// key=value form tokio-postgres accepts).
    pub url: String,
    /// Schema holding the users table (lower-case identifier). Default `public`.
    pub schema: String,
    /// Name of the users table (lower-case identifier). Default `users`.
    pub table: String,
    /// Most connections the pool opens. Default 16.
    pub pool_size: usize,
    /// Longest wait for a new connection (and for checking an idle one).
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for a free connection when all are busy. Default 5 s.
    pub wait_timeout: Duration,
    /// Longest time one whole operation (including the wait for a
    /// connection) may take before it answers `Unavailable`. Default 10 s.
    pub query_timeout: Duration,
    /// Let `{PLAIN}` hashes log in. Default false.
    pub allow_plaintext: bool,
}

impl PostgresConfig {
    /// The defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: "public".to_owned(),
            table: "users".to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
            allow_plaintext: false,
        }
    }
}

impl fmt::Debug for PostgresConfig {
    // The URL may hold a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

/// Checks a configured identifier: 1–40 characters of `[a-z0-9_]`, not
/// starting with a digit. 40 leaves room for the index name's suffix within
/// PostgreSQL's 63-byte limit.
fn identifier(what: &str, value: &str) -> Result<String, AuthError> {
    let ok = !value.is_empty()
        && value.len() <= 40
        && !value.starts_with(|c: char| c.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(AuthError::Config(format!(
            "postgres {what} {value:?} must be 1-40 characters of a-z, 0-9 and _, not starting with a digit"
        )))
    }
}

/// The statements, made once from the checked identifiers.
#[derive(Debug)]
struct Sql {
    /// `"schema"."table"`, for messages.
    qualified: String,
    create: String,
    select: String,
    /// `select` for a table without the quota columns.
    select_without_quota: String,
    insert: String,
    update_quota: String,
    update_password: String,
    update_enabled: String,
    delete: String,
    list: String,
}

impl Sql {
    fn new(schema: &str, table: &str) -> Sql {
        let t = format!("\"{schema}\".\"{table}\"");
        let create_schema = if schema == "public" {
            String::new()
        } else {
            format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n")
        };
        Sql {
            create: format!(
                "{create_schema}CREATE TABLE IF NOT EXISTS {t} (
                    id bigserial PRIMARY KEY,
                    name text UNIQUE NOT NULL,
                    password_hash text NOT NULL,
                    enabled boolean NOT NULL DEFAULT true,
                    created timestamptz NOT NULL DEFAULT now(),
                    quota_storage_bytes bigint,
                    quota_messages bigint
                );
                ALTER TABLE {t} ADD COLUMN IF NOT EXISTS quota_storage_bytes bigint;
                ALTER TABLE {t} ADD COLUMN IF NOT EXISTS quota_messages bigint;
                CREATE UNIQUE INDEX IF NOT EXISTS \"{table}_name_lower_key\" ON {t} (lower(name));"
            ),
            // Names are case-insensitive; the lower(name) index makes this an
            // index lookup. An exact-case match wins should a table made
            // without that index hold several spellings.
            select: format!(
                "SELECT name, password_hash, enabled, quota_storage_bytes, quota_messages FROM {t}
                 WHERE lower(name) = lower($1) ORDER BY (name = $1) DESC LIMIT 1"
            ),
            select_without_quota: format!(
                "SELECT name, password_hash, enabled, NULL::bigint, NULL::bigint FROM {t}
                 WHERE lower(name) = lower($1) ORDER BY (name = $1) DESC LIMIT 1"
            ),
            update_quota: format!(
                "UPDATE {t} SET quota_storage_bytes = $2, quota_messages = $3
                 WHERE lower(name) = lower($1)"
            ),
            insert: format!("INSERT INTO {t} (name, password_hash) VALUES ($1, $2)"),
            update_password: format!(
                "UPDATE {t} SET password_hash = $2 WHERE lower(name) = lower($1)"
            ),
            update_enabled: format!("UPDATE {t} SET enabled = $2 WHERE lower(name) = lower($1)"),
            delete: format!("DELETE FROM {t} WHERE lower(name) = lower($1)"),
            list: format!("SELECT name FROM {t} ORDER BY name"),
            qualified: t,
        }
    }
}

/// Authenticates against a PostgreSQL table and manages its users.
pub struct PostgresAuthenticator {
    pool: Pool,
    sql: Sql,
    allow_plaintext: bool,
    query_timeout: Duration,
    /// Verified for unknown users: the last real hash read from the table.
    decoy: DecoyHash,
    /// False once the table was found without the quota columns.
    quota_columns: AtomicBool,
}

/// One row as read: (canonical name, stored hash, enabled, quota).
type Row = (String, String, bool, Quota);

impl fmt::Debug for PostgresAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresAuthenticator")
            .field("table", &self.sql.qualified)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresAuthenticator {
    /// Builds the adapter and its pool. Does not connect: connections are
    /// opened on first use, so a gateway starts even while PostgreSQL is
    /// down (its logins answer `Unavailable` until it is up).
    ///
    /// Must be called inside a tokio runtime. Fails with
    /// [`AuthError::Config`] for a bad URL, schema or table name.
    pub fn new(config: &PostgresConfig) -> Result<PostgresAuthenticator, AuthError> {
        let schema = identifier("schema", &config.schema)?;
        let table = identifier("table", &config.table)?;
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            // tokio-postgres' parse errors do not echo the URL.
            .map_err(|e| AuthError::Config(format!("postgres url: {e}")))?;
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("pluto");
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                // Check a pooled connection with a round trip before reuse:
                // after a server restart the old connections are dead, and
                // this is what lets the pool recover without a failed login.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| AuthError::Config(format!("postgres pool: {e}")))?;
        Ok(PostgresAuthenticator {
            pool,
            sql: Sql::new(&schema, &table),
            allow_plaintext: config.allow_plaintext,
            query_timeout: config.query_timeout,
            decoy: DecoyHash::new(),
            quota_columns: AtomicBool::new(true),
        })
    }

    /// The qualified table name, `"schema"."table"`.
    pub fn table(&self) -> &str {
        &self.sql.qualified
    }

    /// Runs `op` with a pooled connection, bounded by the query timeout, and
    /// turns every connection or server problem into `Unavailable`.
    async fn with_client<T, F>(&self, op: F) -> Result<T, AuthError>
    where
        F: AsyncFnOnce(&deadpool_postgres::Client) -> Result<T, AuthError>,
    {
        let work = async {
            let client = self.pool.get().await.map_err(|e| self.pool_error(e))?;
            op(&client).await
        };
        tokio::time::timeout(self.query_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(AuthError::Unavailable(format!(
                    "PostgreSQL did not answer within {:?}",
                    self.query_timeout
                )))
            })
    }

    fn pool_error(&self, e: PoolError) -> AuthError {
        match e {
            PoolError::Timeout(kind) => {
                AuthError::Unavailable(format!("PostgreSQL unreachable (timed out: {kind:?})"))
            }
            PoolError::Backend(e) => self.db_error(e),
            other => AuthError::Unavailable(format!("PostgreSQL pool: {other}")),
        }
    }

    /// Maps a server or connection error; the message never holds user data
    /// beyond what PostgreSQL itself put in it.
    fn db_error(&self, e: tokio_postgres::Error) -> AuthError {
        if e.code() == Some(&SqlState::UNDEFINED_TABLE)
            || e.code() == Some(&SqlState::INVALID_SCHEMA_NAME)
        {
            return AuthError::Unavailable(format!(
                "users table {} does not exist (run `pluto auth init-postgres`)",
                self.sql.qualified
            ));
        }
        match e.as_db_error() {
            Some(db) => AuthError::Unavailable(format!("PostgreSQL error: {}", db.message())),
            None => AuthError::Unavailable(format!("PostgreSQL unreachable: {}", error_chain(&e))),
        }
    }

    /// Creates the schema (if not `public`), the users table and its
    /// case-insensitive unique index, if they do not exist yet.
    pub async fn init_schema(&self) -> Result<(), AuthError> {
        self.with_client(async |c| {
            c.batch_execute(&self.sql.create)
                .await
                .map_err(|e| self.db_error(e))
        })
        .await
    }

    /// Round trip to the server: `Ok` when logins can be answered.
    pub async fn ping(&self) -> Result<(), AuthError> {
        self.with_client(async |c| {
            c.simple_query("")
                .await
                .map(|_| ())
                .map_err(|e| self.db_error(e))
        })
        .await
    }

    /// Adds a user with a new argon2id hash of `password`.
    ///
    /// Errors: [`AuthError::InvalidUserName`], [`AuthError::InvalidPassword`],
    /// [`AuthError::UserExists`] (also for another spelling of the name),
    /// [`AuthError::Unavailable`].
    pub async fn add_user(&self, name: &str, password: &str) -> Result<(), AuthError> {
        validate_user_name(name)?;
        let hash = hash_password_async(password).await?;
        self.add_user_with_hash(name, &hash).await
    }

    /// Adds a user with an already made `{SCHEME}hash` (for imports).
    pub async fn add_user_with_hash(&self, name: &str, stored_hash: &str) -> Result<(), AuthError> {
        validate_user_name(name)?;
        self.with_client(async |c| {
            let stmt = c
                .prepare_cached(&self.sql.insert)
                .await
                .map_err(|e| self.db_error(e))?;
            match c.execute(&stmt, &[&name, &stored_hash]).await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    Err(AuthError::UserExists(name.to_owned()))
                }
                Err(e) => Err(self.db_error(e)),
            }
        })
        .await
    }

    /// Runs an UPDATE or DELETE keyed by name; `NoSuchUser` when no row matched.
    async fn change(
        &self,
        sql: &str,
        name: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), AuthError> {
        let rows = self
            .with_client(async |c| {
                let stmt = c.prepare_cached(sql).await.map_err(|e| self.db_error(e))?;
                c.execute(&stmt, params).await.map_err(|e| self.db_error(e))
            })
            .await?;
        if rows == 0 {
            Err(AuthError::NoSuchUser(name.to_owned()))
        } else {
            Ok(())
        }
    }

    /// Replaces a user's password with a new argon2id hash.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        let hash = hash_password_async(password).await?;
        self.change(&self.sql.update_password, name, &[&name, &hash])
            .await
    }

    /// Enables or disables a user; a disabled user's right password gets
    /// [`AuthError::Disabled`].
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), AuthError> {
        self.change(&self.sql.update_enabled, name, &[&name, &enabled])
            .await
    }

    /// Sets a user's own quota limits (`None`: the configuration's default; `Some(0)`:
    /// no limit). Needs the quota columns (`pluto auth init-postgres` adds them).
    pub async fn set_quota(&self, name: &str, quota: Quota) -> Result<(), AuthError> {
        let column = |n: Option<u64>| -> Result<Option<i64>, AuthError> {
            n.map(|n| {
                i64::try_from(n).map_err(|_| AuthError::Config(format!("quota {n} is too large")))
            })
            .transpose()
        };
        let (storage, messages) = (column(quota.storage_bytes)?, column(quota.messages)?);
        self.change(&self.sql.update_quota, name, &[&name, &storage, &messages])
            .await
    }

    /// Removes a user.
    pub async fn delete_user(&self, name: &str) -> Result<(), AuthError> {
        self.change(&self.sql.delete, name, &[&name]).await
    }

    /// All user names, sorted.
    pub async fn list_users(&self) -> Result<Vec<String>, AuthError> {
        self.with_client(async |c| {
            let stmt = c
                .prepare_cached(&self.sql.list)
                .await
                .map_err(|e| self.db_error(e))?;
            let rows = c.query(&stmt, &[]).await.map_err(|e| self.db_error(e))?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0).map_err(|e| self.db_error(e)))
                .collect()
        })
        .await
    }

    /// Looks a user up. A table without the quota columns is read without them from
    /// the first time that is noticed (with one warning).
    async fn lookup(&self, user: &str) -> Result<Option<Row>, AuthError> {
        if self.quota_columns.load(Ordering::Relaxed) {
            match self.lookup_with(&self.sql.select, user).await {
                Err(LookupError::NoQuotaColumns) => {
                    if self.quota_columns.swap(false, Ordering::Relaxed) {
                        tracing::warn!(
                            table = %self.sql.qualified,
                            "the users table has no quota columns (run `pluto auth init-postgres` to add them); per-user quotas are not read"
                        );
                    }
                }
                other => return other.map_err(LookupError::into_auth),
            }
        }
        self.lookup_with(&self.sql.select_without_quota, user)
            .await
            .map_err(LookupError::into_auth)
    }

    async fn lookup_with(&self, sql: &str, user: &str) -> Result<Option<Row>, LookupError> {
        let missing_column =
            |e: &tokio_postgres::Error| e.code() == Some(&SqlState::UNDEFINED_COLUMN);
        let result = self
            .with_client(async |c| {
                let stmt = match c.prepare_cached(sql).await {
                    Ok(stmt) => stmt,
                    Err(e) if missing_column(&e) => return Ok(Err(LookupError::NoQuotaColumns)),
                    Err(e) => return Err(self.db_error(e)),
                };
                let row = c
                    .query_opt(&stmt, &[&user])
                    .await
                    .map_err(|e| self.db_error(e))?;
                Ok(Ok(row.map(|r| self.row(&r)).transpose()?))
            })
            .await;
        match result {
            Ok(inner) => inner,
            Err(e) => Err(LookupError::Auth(e)),
        }
    }

    fn row(&self, r: &tokio_postgres::Row) -> Result<Row, AuthError> {
        let limit = |i: usize| -> Result<Option<u64>, AuthError> {
            let value = r
                .try_get::<_, Option<i64>>(i)
                .map_err(|e| self.db_error(e))?;
            // A negative limit is a mistake in the table: the default applies.
            Ok(value.and_then(|n| u64::try_from(n).ok()))
        };
        Ok((
            r.try_get::<_, String>(0).map_err(|e| self.db_error(e))?,
            r.try_get::<_, String>(1).map_err(|e| self.db_error(e))?,
            r.try_get::<_, bool>(2).map_err(|e| self.db_error(e))?,
            Quota {
                storage_bytes: limit(3)?,
                messages: limit(4)?,
            },
        ))
    }
}

/// Why a lookup failed: the table lacks the quota columns (read it without them), or
/// anything else.
enum LookupError {
    NoQuotaColumns,
    Auth(AuthError),
}

impl LookupError {
    fn into_auth(self) -> AuthError {
        match self {
            LookupError::NoQuotaColumns => {
                AuthError::Unavailable("users table lacks a column".to_owned())
            }
            LookupError::Auth(e) => e,
        }
    }
}

/// An error and its sources on one line ("error connecting to server:
/// Connection refused (os error 111)").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[async_trait]
impl Authenticator for PostgresAuthenticator {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Authenticated, AuthError> {
        // A name that could never have been stored (NUL bytes, 10 kB, …) is
        // not sent to the server: PostgreSQL would reject some of them with
        // an error, and a client must not be able to provoke `Unavailable`.
        if validate_user_name(user).is_err() {
            self.decoy.verify(password).await?;
            return Err(AuthError::Failed);
        }
        match self.lookup(user).await? {
            Some((name, hash, enabled, quota)) => {
                self.decoy.remember(&hash);
                if !verify_password(password, &hash, self.allow_plaintext).await? {
                    Err(AuthError::Failed)
                } else if !enabled {
                    Err(AuthError::Disabled)
                } else {
                    Ok(Authenticated::new(name).with_quota(quota))
                }
            }
            None => {
                self.decoy.verify(password).await?;
                Err(AuthError::Failed)
            }
        }
    }

    async fn find_user(&self, user: &str) -> Result<Option<Account>, AuthError> {
        // A name that could never have been stored is not sent to the server (a NUL
        // byte would be a database error, and so a 451 the MTA retries forever).
        if validate_user_name(user).is_err() {
            return Ok(None);
        }
        Ok(self
            .lookup(user)
            .await?
            .map(|(name, _, enabled, quota)| Account::new(name, enabled).with_quota(quota)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        for ok in ["users", "pluto_test_1a2b", "_x"] {
            assert!(identifier("table", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Users",
            "1users",
            "users\"; DROP TABLE x; --",
            "a.b",
            "a b",
            &"x".repeat(41),
        ] {
            assert!(
                matches!(identifier("table", bad), Err(AuthError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn config_debug_hides_the_url() {
        let c = PostgresConfig::new("postgres://u:hunter2@db/x");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
