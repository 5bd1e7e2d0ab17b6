//! AUTHENTICATE PLAIN (RFC 3501 6.2.2, RFC 4616), with SASL-IR's initial response
//! (RFC 4959); the credentials are checked by [`credentials`](super::credentials).

use std::borrow::Cow;

use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::secret::Secret;

use crate::response::{CmdError, code};
use crate::session::{Client, StepResult};
use crate::wire::Incoming;

impl Client {
    pub(crate) async fn cmd_authenticate(
        &mut self,
        mechanism: AuthMechanism<'static>,
        initial_response: Option<Secret<Cow<'static, [u8]>>>,
    ) -> StepResult {
        if mechanism != AuthMechanism::Plain {
            return Err(CmdError::no(format!(
                "Unsupported authentication mechanism {mechanism}; use PLAIN"
            )));
        }
        self.require_plaintext_allowed()?;
        let data: Vec<u8> = match initial_response {
            Some(data) => data.declassify().to_vec(),
            None => {
                self.conn.send_raw(b"+ \r\n");
                self.conn.flush().await?;
                let read = self.conn.read_authenticate_data().await;
                match read {
                    Ok(Incoming::Message(AuthenticateData::Continue(data))) => {
                        data.declassify().to_vec()
                    }
                    Ok(Incoming::Message(AuthenticateData::Cancel)) => {
                        return Err(CmdError::bad("Authentication cancelled"));
                    }
                    Ok(Incoming::Invalid { reason, .. }) => return Err(CmdError::bad(reason)),
                    Ok(Incoming::Refused) => return Err(CmdError::bad("Unexpected literal")),
                    Err(e) => return Err(CmdError::Io(std::io::Error::other(e.to_string()))),
                }
            }
        };
        // PLAIN: authzid NUL authcid NUL password (RFC 4616).
        let mut parts = data.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CmdError::bad("Malformed PLAIN authentication data"));
        };
        let (Ok(authzid), Ok(authcid), Ok(password)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(password),
        ) else {
            return Err(CmdError::bad("PLAIN authentication data must be UTF-8"));
        };
        if !authzid.is_empty() && authzid != authcid {
            return Err(CmdError::no_code(
                code("AUTHORIZATIONFAILED"),
                "Logging in as another user is not supported",
            ));
        }
        let (authcid, password) = (authcid.to_owned(), password.to_owned());
        self.log_in(&authcid, &password).await
    }
}
