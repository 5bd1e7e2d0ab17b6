//! STARTTLS (RFC 3501 6.2.1): the OK in the clear, then the TLS handshake on the same
//! connection.

use imap_codec::imap_types::core::Tag;

use crate::response::{CmdError, CmdResult, Done};
use crate::session::Client;

impl Client {
    pub(crate) async fn cmd_starttls(&mut self, tag: Tag<'static>) -> CmdResult {
        if self.conn.is_tls() {
            return Err(CmdError::bad("TLS is already active"));
        }
        let Some(acceptor) = self.shared.tls.clone() else {
            return Err(CmdError::no("TLS is not configured on this server"));
        };
        // The OK goes out in the clear, then the handshake starts.
        self.answer(tag, Ok(Done::ok("Begin TLS negotiation now")))
            .await?;
        self.conn.start_tls(&acceptor).await?;
        tracing::debug!("STARTTLS done");
        Err(CmdError::Answered)
    }
}
