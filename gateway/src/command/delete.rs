//! DELETE (RFC 3501 6.3.4): any mailbox but INBOX; deleting the selected one leaves
//! the selected state.

use imap_codec::imap_types::mailbox::Mailbox;
use pluto_backends::MailboxName;
use pluto_model::rules;

use crate::names::mailbox_name;
use crate::response::Done;
use crate::session::{Authenticated, Client, StepResult, Transition};

impl Client {
    /// `selected` is the name of the selected mailbox, if one is.
    pub(crate) async fn cmd_delete(
        &mut self,
        login: &Authenticated,
        selected: Option<&MailboxName>,
        mailbox: Mailbox<'static>,
    ) -> StepResult {
        let name = mailbox_name(&mailbox)?;
        rules::deletable(&name)?;
        login.store.delete_mailbox(&login.user, &name).await?;
        // RFC 3501 lets the server end the session; leaving the selected state is kinder.
        let leave = (selected == Some(&name)).then_some(Transition::Unselect);
        Ok((Done::ok("Delete completed"), leave))
    }
}
