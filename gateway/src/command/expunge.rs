//! EXPUNGE (RFC 3501 6.4.3) and UIDPLUS's UID EXPUNGE (RFC 4315 2.1): remove the
//! `\Deleted` messages (of a UID set), then tell the client by sequence number.

use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::Uid;

use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_expunge(&mut self, uids: Option<SequenceSet>) -> CmdResult {
        let user = self.user()?.clone();
        let selected = self.selected()?;
        if selected.read_only {
            return Err(CmdError::no_code(
                code("READ-ONLY"),
                "Mailbox is read-only (EXAMINE)",
            ));
        }
        let name = selected.name.clone();
        let only: Option<Vec<Uid>> = match &uids {
            Some(set) => {
                let indexes = selected.resolve(set, true)?;
                Some(
                    indexes
                        .into_iter()
                        .map(|i| selected.messages[i].uid)
                        .collect(),
                )
            }
            None => None,
        };
        let expunged = self.store()?.expunge(&user, &name, only.as_deref()).await?;
        // Changes made elsewhere first, so that sequence numbers line up, then ours.
        self.refresh(true, uids.is_some()).await?;
        if let State::Selected(selected) = &mut self.state {
            for r in selected.expunged_here(&expunged) {
                self.conn.send(&r).await?;
            }
        }
        Ok(Done::ok("Expunge completed"))
    }
}
