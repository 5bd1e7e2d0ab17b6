//! CAPABILITY (RFC 3501 6.1.1): the capability list for the connection's state.

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::response::{Capability, Data, Response};

use crate::response::{CmdResult, Done};
use crate::session::Client;

impl Client {
    pub(crate) async fn cmd_capability(&mut self, logged_in: bool) -> CmdResult {
        let caps: Vec<Capability<'static>> = self
            .capabilities(logged_in)
            .into_iter()
            .filter_map(|c| Capability::try_from(c).ok())
            .collect();
        self.send(&Response::Data(Data::Capability(Vec1::unvalidated(caps))))
            .await?;
        Ok(Done::ok("Capability completed"))
    }
}
