//! The one error type of the bench: what went wrong talking to a server, or setting up.

use std::time::Duration;

/// Everything that can fail in `pluto-bench`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed response: {0}")]
    Protocol(String),
    /// The server answered, but not what a correct server answers.
    #[error("wrong answer to {command}: {detail}")]
    Wrong { command: String, detail: String },
    #[error("corpus: {0}")]
    Corpus(String),
    #[error("{0}")]
    Usage(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl BenchError {
    pub(crate) fn wrong(command: &str, detail: impl Into<String>) -> Self {
        BenchError::Wrong {
            command: command.to_owned(),
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
