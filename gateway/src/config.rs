//! The one typed configuration of a pluto process, loaded with the `config` crate from a
//! TOML file plus `PLUTO_…` environment variables (`PLUTO_LIMITS__APPEND_LIMIT=…`: a
//! double underscore separates a section from its key). `pluto.example.toml` at the
//! repository root documents every key; a test loads it so that it cannot rot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::GatewayError;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `serve` keeps mail, the users file and its generated certificate.
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub tls: Tls,
    pub auth: Auth,
    pub throttle: Throttle,
    pub limits: Limits,
    pub log: Log,
    pub metrics: Metrics,
    pub cache: Cache,
    pub cluster: Cluster,
    pub lmtp: Lmtp,
    pub quota: QuotaDefaults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("pluto-data"),
            listen: Listen::default(),
            tls: Tls::default(),
            auth: Auth::default(),
            throttle: Throttle::default(),
            cluster: Cluster::default(),
            metrics: Metrics::default(),
            cache: Cache::default(),
            limits: Limits::default(),
            log: Log::default(),
            lmtp: Lmtp::default(),
            quota: QuotaDefaults::default(),
        }
    }
}

/// Every user's quota where the user database states none (RFC 9208; the users file's
/// `userdb_quota_rule=…` and PostgreSQL's quota columns override it per resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaDefaults {
    /// STORAGE, in KiB (RFC 9208's unit): the most the messages of all of a user's
    /// mailboxes may take together. 0: no limit.
    pub storage_kib: u64,
    /// MESSAGE: the most messages a user may have. 0: no limit.
    pub messages: u64,
}

impl QuotaDefaults {
    /// As a [`pluto_model::Quota`], stated for both resources (0 is no limit).
    pub fn quota(&self) -> pluto_model::Quota {
        pluto_model::Quota {
            storage_bytes: Some(self.storage_kib.saturating_mul(1024)),
            messages: Some(self.messages),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// Plain IMAP with STARTTLS. Empty string: no such listener.
    pub imap: String,
    /// IMAP over implicit TLS. Empty string: no such listener.
    pub imaps: String,
    /// LMTP (mail delivery from the MTA) over TCP. Empty string: no such listener.
    pub lmtp: String,
    /// LMTP over a Unix socket at this path (how Postfix usually delivers). Empty: none.
    pub lmtp_socket: String,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            imap: "127.0.0.1:1143".to_owned(),
            imaps: "127.0.0.1:1993".to_owned(),
            lmtp: "127.0.0.1:1024".to_owned(),
            lmtp_socket: String::new(),
        }
    }
}

impl Listen {
    pub fn imap_addr(&self) -> Result<Option<SocketAddr>, GatewayError> {
        parse_addr(&self.imap, "listen.imap")
    }

    pub fn imaps_addr(&self) -> Result<Option<SocketAddr>, GatewayError> {
        parse_addr(&self.imaps, "listen.imaps")
    }

    pub fn lmtp_addr(&self) -> Result<Option<SocketAddr>, GatewayError> {
        parse_addr(&self.lmtp, "listen.lmtp")
    }

    pub fn lmtp_socket_path(&self) -> Option<PathBuf> {
        (!self.lmtp_socket.trim().is_empty()).then(|| PathBuf::from(&self.lmtp_socket))
    }
}

/// Mail delivery over LMTP (and `pluto deliver`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lmtp {
    /// Recipient domains taken (compared case-insensitively); empty: any domain.
    pub domains: Vec<String>,
    /// `user+detail@…` goes to the user's mailbox `detail` when it exists (else INBOX).
    pub detail_to_mailbox: bool,
    /// Networks (CIDR, e.g. `10.0.0.0/8`) that may connect besides loopback: LMTP has
    /// no authentication, so whoever can connect can deliver.
    pub allow_networks: Vec<String>,
    /// Recipients one transaction may name (RFC 5321 4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Open LMTP connections in all; each may hold one message of up to
    /// `limits.append_limit` bytes.
    pub max_connections: usize,
    /// Seconds the server waits for the client's next command or the next bytes of a
    /// message (RFC 5321 4.5.3.2: 5 minutes), and for a client to read an answer.
    pub timeout_secs: u64,
}

impl Default for Lmtp {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            detail_to_mailbox: true,
            allow_networks: Vec::new(),
            max_recipients: 100,
            max_connections: 32,
            timeout_secs: 300,
        }
    }
}

impl Lmtp {
    /// `allow_networks`, parsed.
    pub fn networks(&self) -> Result<Vec<ipnet::IpNet>, GatewayError> {
        self.allow_networks
            .iter()
            .map(|n| {
                let n = n.trim();
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|e| GatewayError::Config(format!("lmtp.allow_networks: {n:?}: {e}")))
            })
            .collect()
    }

    /// Checks what the LMTP server relies on.
    pub fn validate(&self) -> Result<(), GatewayError> {
        self.networks()?;
        if self.max_recipients == 0 || self.max_connections == 0 || self.timeout_secs == 0 {
            return Err(GatewayError::Config(
                "lmtp.max_recipients, lmtp.max_connections and lmtp.timeout_secs must be above 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn parse_addr(value: &str, key: &str) -> Result<Option<SocketAddr>, GatewayError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e| GatewayError::Config(format!("{key} = {value:?}: {e}")))
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain. Empty: `serve` generates a self-signed one in the data dir.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Where users are: `file` (the users file) or `postgres`.
    pub backend: AuthBackend,
    /// The users file (`name:{SCHEME}hash` lines). Empty: `<data_dir>/users`.
    pub users_file: Option<PathBuf>,
    /// Accept `{PLAIN}` entries in the users file. Off by default: never store plaintext.
    pub allow_plaintext_passwords: bool,
    /// Allow LOGIN and AUTHENTICATE PLAIN without TLS from loopback addresses.
    pub allow_insecure_loopback: bool,
    pub postgres: Postgres,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthBackend {
    #[default]
    File,
    Postgres,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Postgres {
    /// e.g. `postgres://pluto@127.0.0.1:5432/mail`.
    pub url: String,
    pub schema: String,
    pub table: String,
    pub pool_size: usize,
    pub connect_timeout_ms: u64,
    pub query_timeout_ms: u64,
}

impl Default for Postgres {
    fn default() -> Self {
        Self {
            url: String::new(),
            schema: "public".to_owned(),
            table: "users".to_owned(),
            pool_size: 16,
            connect_timeout_ms: 5_000,
            query_timeout_ms: 10_000,
        }
    }
}

impl Postgres {
    pub fn adapter_config(&self, allow_plaintext: bool) -> pluto_auth::PostgresConfig {
        let mut c = pluto_auth::PostgresConfig::new(self.url.clone());
        c.schema = self.schema.clone();
        c.table = self.table.clone();
        c.pool_size = self.pool_size;
        c.connect_timeout = std::time::Duration::from_millis(self.connect_timeout_ms);
        c.wait_timeout = std::time::Duration::from_millis(self.connect_timeout_ms);
        c.query_timeout = std::time::Duration::from_millis(self.query_timeout_ms);
        c.allow_plaintext = allow_plaintext;
        c
    }
}

/// The cluster: every process (gateway, worker, storage) reads the same section and
/// finds itself by `name`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// This process's node name: its certificate is `PKI_DIR/NAME.pem`.
    pub name: String,
    /// Made by `pluto pki --out PKI_DIR NAME…`: ca.pem, NAME.pem, NAME-key.pem.
    pub pki_dir: PathBuf,
    /// With "replica", a write is answered once another replica holds it durably (or
    /// after `ack_timeout_ms`, then locally); with "local", after the local fsync.
    pub ack: String,
    pub ack_timeout_ms: u64,
    /// How long a gateway waits for a node to answer a Store call, or for the next
    /// part of a long answer (a FETCH of big bodies comes in parts). Past it the session
    /// ends with `* BYE [UNAVAILABLE]`. Must exceed `ack_timeout_ms`.
    pub rpc_timeout_ms: u64,
    pub nodes: Vec<ClusterNode>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            name: String::new(),
            pki_dir: PathBuf::from("pki"),
            ack: "replica".to_owned(),
            ack_timeout_ms: 2_000,
            rpc_timeout_ms: 10_000,
            nodes: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Owns the users the ring gives it.
    Worker,
    /// Holds a replica of every user.
    Storage,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterNode {
    pub name: String,
    pub role: Role,
    /// A stable replica id, unique in the cluster, below 16 (the CRDT's UID stride).
    pub id: u16,
    /// Where gateways reach its Store service.
    pub store: String,
    /// Where other nodes reach its replication service.
    pub replication: String,
    /// Where it binds its Store service, when that differs from `store` (behind NAT,
    /// a proxy or a container port mapping). Default: `store`.
    #[serde(default)]
    pub listen_store: Option<String>,
    /// Where it binds its replication service. Default: `replication`.
    #[serde(default)]
    pub listen_replication: Option<String>,
    /// Ring weight (workers).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// `IP:PORT`, `[IPv6]:PORT` or `name:PORT` (a container's or host's DNS name).
fn is_host_port(addr: &str) -> bool {
    if addr.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok()
                && !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        }
        None => false,
    }
}

impl Cluster {
    pub fn ca(&self) -> PathBuf {
        self.pki_dir.join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.pki_dir.join(format!("{}.pem", self.name))
    }

    pub fn key(&self) -> PathBuf {
        self.pki_dir.join(format!("{}-key.pem", self.name))
    }

    pub fn me(&self) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == self.name)
    }

    /// Checks what every process relies on: unique names and ids, ids below 64, at
    /// least one worker, addresses that parse.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let err = |m: String| Err(GatewayError::Config(format!("cluster: {m}")));
        if self.nodes.is_empty() {
            return err("no nodes configured ([[cluster.nodes]])".into());
        }
        if !self.nodes.iter().any(|n| n.role == Role::Worker) {
            return err("at least one node must have role = \"worker\"".into());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let stride = pluto_backends::replicated::NodeConfig::DEFAULT_UID_STRIDE;
            if n.id >= stride {
                return err(format!(
                    "node {}: id {} is not below {stride}",
                    n.name, n.id
                ));
            }
            for other in &self.nodes[i + 1..] {
                if other.name == n.name || other.id == n.id {
                    return err(format!(
                        "nodes {} and {} share a name or an id",
                        n.name, other.name
                    ));
                }
            }
            let binds = [n.listen_store.as_ref(), n.listen_replication.as_ref()];
            for addr in [&n.store, &n.replication]
                .into_iter()
                .chain(binds.into_iter().flatten())
            {
                if !is_host_port(addr) {
                    return err(format!(
                        "node {}: {addr:?} is not HOST:PORT (an IP address or a DNS name, and a port)",
                        n.name
                    ));
                }
            }
        }
        if self.ack != "replica" && self.ack != "local" {
            return err(format!(
                "ack = {:?}: use \"replica\" or \"local\"",
                self.ack
            ));
        }
        if self.rpc_timeout_ms <= self.ack_timeout_ms {
            return err(format!(
                "rpc_timeout_ms = {} must exceed ack_timeout_ms = {} (a write may wait that long for a replica)",
                self.rpc_timeout_ms, self.ack_timeout_ms
            ));
        }
        Ok(())
    }
}

/// Prometheus metrics.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// Address of the `/metrics` HTTP endpoint, e.g. `127.0.0.1:9100`. Empty: none.
    pub listen: String,
}

/// Failed-login delays (2 s doubling to 15 s, as Dovecot's auth penalty), per
/// (user, address), with a looser per-address ceiling.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Throttle {
    /// Redis shared by all gateways, e.g. `redis://127.0.0.1:6379`. Empty: this
    /// gateway's memory only. Redis down: memory, with one warning in the log.
    pub redis_url: String,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Failed logins from one address, for any users, before that address's own
    /// delay starts (a password spray); below it only (user, address) pairs wait.
    pub address_allowance: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            base_delay_ms: 2_000,
            max_delay_ms: 15_000,
            address_allowance: 50,
        }
    }
}

impl Throttle {
    pub fn build(&self) -> Result<pluto_auth::throttle::Throttle, GatewayError> {
        let c = pluto_auth::throttle::ThrottleConfig {
            redis_url: (!self.redis_url.trim().is_empty()).then(|| self.redis_url.clone()),
            base_delay: std::time::Duration::from_millis(self.base_delay_ms),
            max_delay: std::time::Duration::from_millis(self.max_delay_ms),
            address_allowance: self.address_allowance,
            ..Default::default()
        };
        pluto_auth::throttle::Throttle::new(c)
            .map_err(|e| GatewayError::Config(format!("throttle: {e}")))
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            backend: AuthBackend::File,
            postgres: Postgres::default(),
            users_file: None,
            allow_plaintext_passwords: false,
            allow_insecure_loopback: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest command line, literals excluded, in bytes (a longer one: BAD, and the
    /// session goes on).
    pub max_line: u32,
    /// Largest literal (and so message) a client may send, advertised as APPENDLIMIT.
    pub append_limit: u32,
    /// Open connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Open connections in all.
    pub max_connections: usize,
    /// Seconds without a command before an authenticated session is logged out (RFC 3501: ≥ 30 min);
    /// also how long one write may wait for a client that does not read.
    pub idle_timeout_secs: u64,
    /// Seconds a client has to authenticate, from the moment it connects (TLS handshakes
    /// and SASL exchanges included; commands do not extend it).
    pub preauth_timeout_secs: u64,
    /// Deepest nesting of search keys (NOT, OR, parentheses) accepted in one SEARCH (at
    /// most 1000 counts).
    pub max_nesting: usize,
    /// Mailboxes one user may have (INBOX and parents included); CREATE or RENAME
    /// past it answers `NO [LIMIT]`.
    pub max_mailboxes: usize,
    /// Levels of a mailbox name (`a/b/c` has 3); deeper names are refused with
    /// `NO [LIMIT]`.
    pub max_mailbox_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: 64 * 1024,
            append_limit: 50 * 1024 * 1024,
            max_connections_per_ip: 100,
            max_connections: 10_000,
            idle_timeout_secs: 30 * 60,
            preauth_timeout_secs: 60,
            max_nesting: 64,
            max_mailboxes: 1000,
            max_mailbox_depth: 16,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cache {
    /// MiB of message headers (with their ENVELOPEs and BODYSTRUCTUREs) the gateway keeps
    /// for all its sessions; 0 turns the cache off.
    pub headers_mib: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Self { headers_mib: 64 }
    }
}

impl Cache {
    pub fn header_bytes(&self) -> usize {
        usize::try_from(self.headers_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `pluto_gateway=debug,info`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
            level: "info".to_owned(),
        }
    }
}

/// The `PLUTO_…` variables that are configuration. Others with the same prefix (the
/// tests' `PLUTO_TEST_…`, the simulator's `PLUTO_SIM_…`) are not, and would otherwise
/// be refused as unknown keys.
fn config_env() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("PLUTO_").is_some_and(|rest| {
                Config::ENV_KEYS
                    .iter()
                    .any(|key| rest == key.trim_end_matches("__") || rest.starts_with(key))
            })
        })
        .collect()
}

impl Config {
    /// Loads the configuration: defaults, then the TOML file (when given), then `PLUTO_…`
    /// environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, GatewayError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                return Err(GatewayError::Config(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("PLUTO")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(config_env())),
        );
        let loaded = builder
            .build()
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        loaded
            .try_deserialize()
            .map_err(|e| GatewayError::Config(e.to_string()))
    }

    /// The top-level keys an environment variable `PLUTO_<KEY>…` may set.
    pub const ENV_KEYS: &'static [&'static str] = &[
        "DATA_DIR",
        "LISTEN__",
        "TLS__",
        "AUTH__",
        "THROTTLE__",
        "LIMITS__",
        "LOG__",
        "METRICS__",
        "CACHE__",
        "CLUSTER__",
        "LMTP__",
        "QUOTA__",
    ];

    pub fn users_file(&self) -> PathBuf {
        self.auth
            .users_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("users"))
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.join("mail")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// pluto.example.toml documents every key: it must load, and say what the defaults say.
    #[test]
    fn the_example_file_loads_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pluto.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let loaded: Config = toml_from(&text);
        let defaults = Config::default();
        assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
    }

    fn toml_from(text: &str) -> Config {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    #[test]
    fn unknown_keys_are_refused() {
        let result = config::Config::builder()
            .add_source(config::File::from_str(
                "[limits]\nappend_limt = 5\n",
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap()
            .try_deserialize::<Config>();
        assert!(result.is_err());
    }
}
