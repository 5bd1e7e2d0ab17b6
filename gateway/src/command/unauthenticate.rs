//! UNAUTHENTICATE (RFC 8437): back to the not authenticated state on the same
//! connection. The session lets go of everything the login held (the selected
//! mailbox without an expunge, as UNSELECT; the store handle and the node's signals),
//! and the connection is held again to the limits of a client that has not logged in
//! (a fresh login deadline, small literals within the shared budget). The count of
//! failed logins stays: a client cannot reset it by logging in and out.

use crate::response::Done;
use crate::session::{Client, StepResult, Transition};

impl Client {
    pub(crate) async fn cmd_unauthenticate(&mut self) -> StepResult {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_secs(self.shared.config.limits.preauth_timeout_secs);
        self.preauth_deadline = deadline;
        self.conn
            .logged_out(self.shared.preauth_literals.clone(), deadline);
        tracing::info!("unauthenticated");
        Ok((
            Done::ok("Unauthenticated; log in again"),
            Some(Transition::LogOut),
        ))
    }
}
