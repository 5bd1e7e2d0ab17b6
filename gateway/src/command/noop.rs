//! NOOP (RFC 3501 6.1.2) and CHECK (RFC 3501 6.4.1): the moments for the client to
//! learn of changes, expunges included.

use crate::response::{CmdResult, Done};
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_noop(&mut self) -> CmdResult {
        self.cmd_noop_named("NOOP").await
    }

    /// NOOP and CHECK: the moment for the client to learn of changes, expunges included.
    pub(crate) async fn cmd_noop_named(&mut self, name: &str) -> CmdResult {
        if matches!(self.state, State::Selected(_)) {
            self.refresh(true, false).await?;
        }
        Ok(Done::ok(format!("{name} completed")))
    }
}
