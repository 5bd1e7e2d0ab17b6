//! The one error type of this crate. Each variant says what went wrong in terms the
//! gateway can turn into an IMAP response code (the mapping lives in the gateway, in
//! one place).

use crate::types::MailboxName;

pub use pluto_model::InvalidName;
use pluto_model::MailboxRefusal;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `[NONEXISTENT]`
    #[error("mailbox {0} does not exist")]
    NoSuchMailbox(MailboxName),
    /// `[ALREADYEXISTS]`
    #[error("mailbox {0} already exists")]
    MailboxExists(MailboxName),
    /// `[CANNOT]`: a name the store will not accept.
    #[error("invalid name: {0}")]
    InvalidName(#[from] InvalidName),
    /// `[CANNOT]`: an operation the store refuses (deleting INBOX, a mailbox with children, …).
    #[error("{0}")]
    NotAllowed(String),
    /// `[TOOBIG]`
    #[error("message is larger than the limit of {limit} bytes")]
    TooBig { limit: u64 },
    /// `[OVERQUOTA]`
    #[error("over quota")]
    OverQuota,
    /// `[UNAVAILABLE]`: the store (or the node behind it) cannot be reached now; try later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A call was sent to a node that then gave no answer (the link broke, or the call's
    /// deadline passed): a write may or may not have been done. Never answered `NO`;
    /// the gateway ends the session with `* BYE [UNAVAILABLE]` and the client learns
    /// the truth when it resyncs.
    #[error("no answer from the store: {0}")]
    Unanswered(String),
    /// `[SERVERBUG]`: a disk or encoding error. Nothing was changed half-way.
    #[error("storage error: {0}")]
    Io(std::io::Error),
    /// `[CORRUPTION]`: stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// `[OVERQUOTA]`: the disk (or the file system's quota for this server) is full
    /// (ENOSPC, EDQUOT). Nothing was changed: writes that failed so were undone.
    #[error("the server's disk is full: {0}")]
    DiskFull(std::io::Error),
}

impl From<MailboxRefusal> for StoreError {
    /// A refusal of the mailbox rules (`pluto_model::rules`): a name that does or does
    /// not exist keeps its own variant; the others are [`StoreError::NotAllowed`].
    fn from(r: MailboxRefusal) -> Self {
        match r {
            MailboxRefusal::NoSuchMailbox(name) => StoreError::NoSuchMailbox(name),
            MailboxRefusal::AlreadyExists(name) => StoreError::MailboxExists(name),
            other => StoreError::NotAllowed(other.to_string()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    /// Every I/O error becomes [`StoreError::Io`], except a full disk or file-system
    /// quota, which is [`StoreError::DiskFull`]: the client is told what happened.
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            StoreError::DiskFull(e)
        } else {
            StoreError::Io(e)
        }
    }
}

/// True for ENOSPC and EDQUOT: no room left on the file system (or in its quota).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    // std maps ENOSPC to StorageFull and EDQUOT to QuotaExceeded.
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

pub type StoreResult<T> = Result<T, StoreError>;
