//! DELETE (RFC 3501 6.3.4): any mailbox but INBOX; deleting the selected one leaves
//! the selected state.

use imap_codec::imap_types::mailbox::Mailbox;

use crate::names::mailbox_name;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_delete(&mut self, mailbox: Mailbox<'static>) -> CmdResult {
        let user = self.user()?.clone();
        let name = mailbox_name(&mailbox)?;
        if name.is_inbox() {
            return Err(CmdError::no_code(code("CANNOT"), "INBOX cannot be deleted"));
        }
        self.store()?.delete_mailbox(&user, &name).await?;
        if let State::Selected(selected) = &self.state {
            if selected.name == name {
                // RFC 3501 lets the server end the session; leaving the selected state is kinder.
                self.state = State::Authenticated;
            }
        }
        Ok(Done::ok("Delete completed"))
    }
}
