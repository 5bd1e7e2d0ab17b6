//! CREATE (RFC 3501 6.3.3): a mailbox and the parents it lacks, within the per-user
//! bounds; with CREATE-SPECIAL-USE (RFC 6154 3) one special use for it. The store
//! records one special use per mailbox, so more than one, or one RFC 6154 does not
//! define, is refused with `NO [USEATTR]` and nothing is created.

use imap_codec::imap_types::mailbox::Mailbox;

use pluto_model::{SpecialUse, rules};

use super::mailbox_rules::check_mailbox_limits;
use crate::names::mailbox_name;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Authenticated, Client};

impl Client {
    pub(crate) async fn cmd_create(
        &mut self,
        login: &Authenticated,
        mailbox: Mailbox<'static>,
        uses: &[String],
    ) -> CmdResult {
        let special_use = special_use(uses)?;
        // A trailing separator only declares that the name will have children; this
        // server needs no such declaration and ignores it (RFC 3501 6.3.3).
        let name = match crate::names::strip_trailing_separator(&mailbox) {
            Some(stripped) => mailbox_name(&stripped)?,
            None => mailbox_name(&mailbox)?,
        };
        let _counted = self.shared.mailbox_writes.lock(&login.user).await;
        let list = login.store.list(&login.user).await?;
        let made = rules::create(&name, |n| list.mailboxes.iter().any(|m| &m.name == n))?;
        check_mailbox_limits(&self.shared.config.limits, &list, &made, &name)?;
        let id = login
            .store
            .create_mailbox(&login.user, &name, special_use)
            .await?;
        Ok(Done::ok_code(
            crate::response::mailbox_id_code(id),
            "Create completed",
        ))
    }
}

/// The special use `uses` asks for (RFC 6154 2's attributes); none for an empty list.
fn special_use(uses: &[String]) -> Result<Option<SpecialUse>, CmdError> {
    let refuse = |why: String| CmdError::no_code(code("USEATTR"), why);
    match uses {
        [] => Ok(None),
        [one] => {
            let special = match one.to_ascii_lowercase().as_str() {
                "\\all" => SpecialUse::All,
                "\\archive" => SpecialUse::Archive,
                "\\drafts" => SpecialUse::Drafts,
                "\\flagged" => SpecialUse::Flagged,
                "\\junk" => SpecialUse::Junk,
                "\\sent" => SpecialUse::Sent,
                "\\trash" => SpecialUse::Trash,
                _ => {
                    return Err(refuse(format!(
                        "{one} is not a special use this server knows"
                    )));
                }
            };
            Ok(Some(special))
        }
        _ => Err(refuse(
            "A mailbox can have only one special use here".to_owned(),
        )),
    }
}
