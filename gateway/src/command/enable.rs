//! ENABLE (RFC 5161 3.1): CONDSTORE and QRESYNC (RFC 7162 3.1, 3.2.3; QRESYNC implies
//! CONDSTORE). The answer lists those of them the client named, enabled before or now,
//! as Dovecot 2.3 does; others are left out. CONDSTORE turned on in the selected state,
//! by ENABLE or by any CONDSTORE enabling command, is followed by the mailbox's
//! HIGHESTMODSEQ, as Dovecot does ([`Client::condstore_on`]).

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::response::{Code, Data, Response, StatusKind};

use pluto_backends::ModSeq;

use crate::response::{self, CmdError, CmdResult, Done};
use crate::selected::{MailboxView, wire_modseq};
use crate::session::Client;

impl Client {
    pub(crate) async fn cmd_enable(
        &mut self,
        capabilities: Vec1<CapabilityEnable<'static>>,
        view: Option<&mut MailboxView>,
    ) -> CmdResult {
        let mut listed = Vec::new();
        let mut condstore = false;
        for capability in capabilities.into_inner() {
            let known = match &capability {
                CapabilityEnable::CondStore => true,
                CapabilityEnable::Other(_)
                    if capability.to_string().eq_ignore_ascii_case("QRESYNC") =>
                {
                    self.enabled.qresync = true;
                    true
                }
                _ => false,
            };
            condstore |= known;
            if known {
                listed.push(capability);
            }
        }
        self.send(&Response::Data(Data::Enabled {
            capabilities: listed,
        }))
        .await?;
        if condstore {
            self.condstore_on(view.map(|v| v.highest_modseq)).await?;
        }
        Ok(Done::ok("ENABLE completed"))
    }

    /// A CONDSTORE enabling command (RFC 7162 3.1): from now on the session hears of
    /// modseqs. The first one in the selected state is told the mailbox's HIGHESTMODSEQ
    /// (`highest`), as Dovecot does.
    pub(crate) async fn condstore_on(&mut self, highest: Option<ModSeq>) -> Result<(), CmdError> {
        if std::mem::replace(&mut self.enabled.condstore, true) {
            return Ok(());
        }
        if let Some(highest) = highest {
            self.send(&response::untagged(
                StatusKind::Ok,
                Some(Code::HighestModSeq(wire_modseq(highest))),
                "Highest",
            ))
            .await?;
        }
        Ok(())
    }
}
