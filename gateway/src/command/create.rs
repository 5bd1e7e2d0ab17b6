//! CREATE (RFC 3501 6.3.3): a mailbox and the parents it lacks, within the per-user
//! bounds.

use imap_codec::imap_types::mailbox::Mailbox;

use super::mailbox_rules::{check_mailbox_limits, missing_with_parents};
use crate::names::mailbox_name;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Authenticated, Client};

impl Client {
    pub(crate) async fn cmd_create(
        &mut self,
        login: &Authenticated,
        mailbox: Mailbox<'static>,
    ) -> CmdResult {
        // A trailing separator only declares that the name will have children; this
        // server needs no such declaration and ignores it (RFC 3501 6.3.3).
        let name = match crate::names::strip_trailing_separator(&mailbox) {
            Some(stripped) => mailbox_name(&stripped)?,
            None => mailbox_name(&mailbox)?,
        };
        if name.is_inbox() {
            return Err(CmdError::no_code(
                code("ALREADYEXISTS"),
                "INBOX always exists",
            ));
        }
        let _counted = self.shared.mailbox_writes.lock(&login.user).await;
        let list = login.store.list(&login.user).await?;
        if !list.mailboxes.iter().any(|m| m.name == name) {
            let made = missing_with_parents(&list, &name);
            let depth = name.parts().count();
            check_mailbox_limits(&self.shared.config.limits, &list, &made, depth)?;
        }
        login.store.create_mailbox(&login.user, &name, None).await?;
        Ok(Done::ok("Create completed"))
    }
}
