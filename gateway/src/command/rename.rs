//! RENAME (RFC 3501 6.3.5): a mailbox with its children, never onto INBOX or below
//! itself, within the per-user bounds; renaming INBOX moves its messages.

use imap_codec::imap_types::mailbox::Mailbox;

use pluto_model::rules;

use super::mailbox_rules::check_mailbox_limits;
use crate::names::mailbox_name;
use crate::response::{CmdResult, Done};
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
        rules::rename_target(&from, &to)?;
        let _counted = self.shared.mailbox_writes.lock(&login.user).await;
        let list = login.store.list(&login.user).await?;
        let plan = rules::rename(&from, &to, list.mailboxes.iter().map(|m| m.name.clone()))?;
        // The moved names keep their count (INBOX's messages go to a new mailbox, and
        // INBOX stays); parents of the target that are missing are new.
        let deepest = plan.deepest().unwrap_or(&to);
        check_mailbox_limits(&self.shared.config.limits, &list, &plan.made(), deepest)?;
        login.store.rename_mailbox(&login.user, &from, &to).await?;
        Ok(Done::ok("Rename completed"))
    }
}
