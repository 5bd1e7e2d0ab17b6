//! LOGOUT (RFC 3501 6.1.3): `* BYE`, then the session ends.

use crate::response::{self, CmdResult, Done};
use crate::session::Client;

impl Client {
    pub(crate) async fn cmd_logout(&mut self) -> CmdResult {
        self.send(&response::bye("Logging out")).await?;
        self.logging_out = true;
        Ok(Done::ok("Logout completed"))
    }
}
