//! The one typed configuration of a pluto process, loaded with the `config` crate from a
//! TOML file plus `PLUTO_…` environment variables (`PLUTO_LIMITS__APPEND_LIMIT=…`: a
//! double underscore separates a section from its key). `pluto.example.toml` at the
//! repository root documents every key; a test loads it so that it cannot rot.

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
    pub limits: Limits,
    pub log: Log,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("pluto-data"),
            listen: Listen::default(),
            tls: Tls::default(),
            auth: Auth::default(),
            limits: Limits::default(),
            log: Log::default(),
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
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            imap: "127.0.0.1:1143".to_owned(),
            imaps: "127.0.0.1:1993".to_owned(),
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
    /// The users file (`name:{SCHEME}hash` lines). Empty: `<data_dir>/users`.
    pub users_file: Option<PathBuf>,
    /// Accept `{PLAIN}` entries in the users file. Off by default: never store plaintext.
    pub allow_plaintext_passwords: bool,
    /// Allow LOGIN and AUTHENTICATE PLAIN without TLS from loopback addresses.
    pub allow_insecure_loopback: bool,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            users_file: None,
            allow_plaintext_passwords: false,
            allow_insecure_loopback: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest command line, literals excluded, in bytes.
    pub max_line: u32,
    /// Largest literal (and so message) a client may send, advertised as APPENDLIMIT.
    pub append_limit: u32,
    /// Open connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Open connections in all.
    pub max_connections: usize,
    /// Seconds without a command before an authenticated session is logged out (RFC 3501: ≥ 30 min).
    pub idle_timeout_secs: u64,
    /// Seconds a client has to authenticate.
    pub preauth_timeout_secs: u64,
    /// Deepest nesting of parentheses / search keys accepted in one command.
    pub max_nesting: usize,
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
        }
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
                .try_parsing(true),
        );
        let loaded = builder
            .build()
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        loaded
            .try_deserialize()
            .map_err(|e| GatewayError::Config(e.to_string()))
    }

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
