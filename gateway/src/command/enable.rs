//! ENABLE (RFC 5161 3.1): nothing that needs enabling is implemented yet, so the
//! answer lists nothing.

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::response::{Data, Response};

use crate::response::{CmdResult, Done};
use crate::session::Client;

impl Client {
    pub(crate) async fn cmd_enable(
        &mut self,
        capabilities: Vec1<CapabilityEnable<'static>>,
    ) -> CmdResult {
        // No extension that needs enabling is implemented yet (CONDSTORE/QRESYNC and
        // UTF8=ACCEPT come later): RFC 5161 says to list only what was enabled.
        let _ = capabilities;
        self.send(&Response::Data(Data::Enabled {
            capabilities: Vec::new(),
        }))
        .await?;
        Ok(Done::ok("ENABLE completed"))
    }
}
