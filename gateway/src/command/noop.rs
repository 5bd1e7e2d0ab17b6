//! NOOP (RFC 3501 6.1.2) and CHECK (RFC 3501 6.4.1): the moments for the client to
//! learn of changes, expunges included.

use crate::response::{CmdResult, Done};
use crate::session::{Client, Selected};

impl Client {
    pub(crate) async fn cmd_noop(&mut self, selected: Option<&mut Selected>) -> CmdResult {
        self.cmd_noop_named("NOOP", selected).await
    }

    /// NOOP and CHECK: the moment for the client to learn of changes, expunges included.
    pub(crate) async fn cmd_noop_named(
        &mut self,
        name: &str,
        selected: Option<&mut Selected>,
    ) -> CmdResult {
        if let Some(Selected { login, mailbox }) = selected {
            self.refresh(login, mailbox, true, false).await?;
        }
        Ok(Done::ok(format!("{name} completed")))
    }
}
