//! SUBSCRIBE and UNSUBSCRIBE (RFC 3501 6.3.6, 6.3.7); subscribing needs an existing
//! mailbox, as in Dovecot.

use imap_codec::imap_types::mailbox::Mailbox;

use crate::names::mailbox_name;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Authenticated, Client};

impl Client {
    pub(crate) async fn cmd_subscribe(
        &mut self,
        login: &Authenticated,
        mailbox: Mailbox<'static>,
        subscribe: bool,
    ) -> CmdResult {
        let name = mailbox_name(&mailbox)?;
        if subscribe {
            // Dovecot and most servers refuse subscribing to nothing; clients expect it.
            let list = login.store.list(&login.user).await?;
            if !list.mailboxes.iter().any(|m| m.name == name) {
                return Err(CmdError::no_code(
                    code("NONEXISTENT"),
                    format!("Mailbox doesn't exist: {name}"),
                ));
            }
        }
        login
            .store
            .set_subscribed(&login.user, &name, subscribe)
            .await?;
        Ok(Done::ok(if subscribe {
            "Subscribe completed"
        } else {
            "Unsubscribe completed"
        }))
    }
}
