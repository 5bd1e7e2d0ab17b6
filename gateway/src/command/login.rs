//! LOGIN (RFC 3501 6.2.3): user name and password, checked by
//! [`credentials`](super::credentials).

use imap_codec::imap_types::core::{AString, IString};
use imap_codec::imap_types::secret::Secret;

use crate::session::{Client, StepResult};

fn astring_text(value: &AString<'_>) -> Vec<u8> {
    match value {
        AString::Atom(a) => a.inner().as_bytes().to_vec(),
        AString::String(IString::Quoted(q)) => q.inner().as_bytes().to_vec(),
        AString::String(IString::Literal(l)) => l.data().to_vec(),
    }
}

impl Client {
    pub(crate) async fn cmd_login(
        &mut self,
        username: AString<'static>,
        password: Secret<AString<'static>>,
    ) -> StepResult {
        self.require_plaintext_allowed()?;
        let user = String::from_utf8_lossy(&astring_text(&username)).into_owned();
        let password = String::from_utf8_lossy(&astring_text(password.declassify())).into_owned();
        self.log_in(&user, &password).await
    }
}
