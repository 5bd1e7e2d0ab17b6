//! CLOSE (RFC 3501 6.4.2) and UNSELECT (RFC 3691 2): leave the selected mailbox,
//! CLOSE expunging it silently first when it is read-write.

use crate::response::Done;
use crate::session::{Client, Selected, StepResult, Transition};

impl Client {
    /// CLOSE: expunge silently (when read-write), then leave the mailbox.
    pub(crate) async fn cmd_close(&mut self, selected: &mut Selected) -> StepResult {
        let Selected { login, mailbox } = selected;
        if !mailbox.read_only {
            login
                .store
                .expunge(&login.user, &mailbox.name, None)
                .await?;
        }
        Ok((Done::ok("Close completed"), Some(Transition::Unselect)))
    }

    pub(crate) async fn cmd_unselect(&mut self) -> StepResult {
        Ok((Done::ok("Unselect completed"), Some(Transition::Unselect)))
    }
}
