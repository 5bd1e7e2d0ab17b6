//! LOGOUT (RFC 3501 6.1.3): `* BYE`, then the session ends.

use crate::response::{self, CmdResult, Done};
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_logout(&mut self) -> CmdResult {
        self.send(&response::bye("Logging out")).await?;
        self.state = State::Logout;
        Ok(Done::ok("Logout completed"))
    }
}
