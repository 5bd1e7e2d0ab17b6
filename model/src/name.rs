//! Why a name (user, mailbox, keyword) was refused.

use std::fmt;

/// A name (user, mailbox, keyword) that is not allowed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName {
    reason: &'static str,
}

impl InvalidName {
    pub fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for InvalidName {}
