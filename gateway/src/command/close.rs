//! CLOSE (RFC 3501 6.4.2) and UNSELECT (RFC 3691 2): leave the selected mailbox,
//! CLOSE expunging it silently first when it is read-write.

use crate::response::{CmdResult, Done};
use crate::session::{Session, State};

impl Session {
    /// CLOSE: expunge silently (when read-write), then leave the mailbox.
    pub(crate) async fn cmd_close(&mut self) -> CmdResult {
        let user = self.user()?.clone();
        let selected = self.selected()?;
        if !selected.read_only {
            let name = selected.name.clone();
            self.store()?.expunge(&user, &name, None).await?;
        }
        self.state = State::Authenticated;
        Ok(Done::ok("Close completed"))
    }

    pub(crate) async fn cmd_unselect(&mut self) -> CmdResult {
        self.selected()?;
        self.state = State::Authenticated;
        Ok(Done::ok("Unselect completed"))
    }
}
