//! The gateway's error type, for start-up and process-level failures. Errors inside a
//! session become tagged `NO`/`BAD` responses instead (see `response.rs`).

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("storage: {0}")]
    Store(#[from] pluto_backends::StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    /// A failure that ends the process with this exit code (`pluto deliver`'s
    /// sysexits codes).
    #[error("{message}")]
    Exit { code: u8, message: String },
}

impl GatewayError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
