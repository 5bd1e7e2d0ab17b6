//! EXPUNGE (RFC 3501 6.4.3) and UIDPLUS's UID EXPUNGE (RFC 4315 2.1): remove the
//! `\Deleted` messages (of a UID set), then tell the client by sequence number (by
//! UIDs in a `VANISHED` once QRESYNC is on, RFC 7162 3.2.10). Once QRESYNC is on the
//! tagged OK carries the mailbox's new HIGHESTMODSEQ, as Dovecot's does, so that the
//! client's HIGHESTMODSEQ moves past its own expunge.

use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::Uid;

use imap_codec::imap_types::response::Code;

use crate::response::{CmdError, CmdResult, Done, code};
use crate::selected::wire_modseq;
use crate::session::{Client, Selected};

impl Client {
    pub(crate) async fn cmd_expunge(
        &mut self,
        selected: &mut Selected,
        uids: Option<SequenceSet>,
    ) -> CmdResult {
        let Selected { login, mailbox } = selected;
        if mailbox.read_only {
            return Err(CmdError::no_code(
                code("READ-ONLY"),
                "Mailbox is read-only (EXAMINE)",
            ));
        }
        let only: Option<Vec<Uid>> = match &uids {
            Some(set) => {
                let indexes = mailbox.resolve(set, true)?;
                Some(
                    indexes
                        .into_iter()
                        .map(|i| mailbox.messages[i].uid)
                        .collect(),
                )
            }
            None => None,
        };
        let expunged = (login.store)
            .expunge(&login.user, &mailbox.name, only.as_deref())
            .await?;
        // Changes made elsewhere first, so that sequence numbers line up, then ours.
        self.refresh(login, mailbox, true, uids.is_some()).await?;
        if !self.logging_out {
            for r in mailbox.expunged_here(&expunged, self.enabled) {
                self.conn.send(&r).await?;
            }
        }
        if self.enabled.qresync {
            let highest = Code::HighestModSeq(wire_modseq(mailbox.highest_modseq));
            return Ok(Done::ok_code(highest, "Expunge completed"));
        }
        Ok(Done::ok("Expunge completed"))
    }
}
