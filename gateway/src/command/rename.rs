//! RENAME (RFC 3501 6.3.5): a mailbox with its children, never onto INBOX or below
//! itself, within the per-user bounds; renaming INBOX moves its messages.

use imap_codec::imap_types::mailbox::Mailbox;

use super::mailbox_rules::{check_mailbox_limits, missing_with_parents};
use crate::names::mailbox_name;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Authenticated, Client};

impl Client {
    pub(crate) async fn cmd_rename(
        &mut self,
        login: &Authenticated,
        from: Mailbox<'static>,
        to: Mailbox<'static>,
    ) -> CmdResult {
        let from = mailbox_name(&from)?;
        let to = mailbox_name(&to)?;
        if to.is_inbox() {
            return Err(CmdError::no_code(
                code("ALREADYEXISTS"),
                "INBOX already exists",
            ));
        }
        if to.is_below(&from) {
            return Err(CmdError::no_code(
                code("CANNOT"),
                "Cannot rename a mailbox into itself",
            ));
        }
        let _counted = self.shared.mailbox_writes.lock(&login.user).await;
        let list = login.store.list(&login.user).await?;
        // The moved names keep their count (INBOX's messages go to a new mailbox, and
        // INBOX stays); parents of the target that are missing are new.
        let mut made = missing_with_parents(&list, &to);
        if !from.is_inbox() {
            made.retain(|n| n != &to);
        }
        let deepest = list
            .mailboxes
            .iter()
            .filter_map(|m| m.name.rebase(&from, &to))
            .chain(std::iter::once(to.clone()))
            .map(|n| n.parts().count())
            .max()
            .unwrap_or(0);
        check_mailbox_limits(&self.shared.config.limits, &list, &made, deepest)?;
        login.store.rename_mailbox(&login.user, &from, &to).await?;
        Ok(Done::ok("Rename completed"))
    }
}
