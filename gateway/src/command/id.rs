//! ID (RFC 2971 3.1): logs what the client says it is, answers with pluto's name and
//! version.

use imap_codec::imap_types::core::{IString, NString, Quoted};
use imap_codec::imap_types::response::{Data, Response};

use crate::response::{CmdResult, Done};
use crate::session::Client;

impl Client {
    pub(crate) async fn cmd_id(
        &mut self,
        parameters: Option<Vec<(IString<'static>, NString<'static>)>>,
    ) -> CmdResult {
        if let Some(params) = &parameters {
            let client: Vec<String> = params
                .iter()
                .take(30)
                .map(|(k, v)| {
                    let key = String::from_utf8_lossy(k.as_ref()).into_owned();
                    let value =
                        v.0.as_ref()
                            .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
                            .unwrap_or_else(|| "NIL".to_owned());
                    format!("{key}={value}")
                })
                .collect();
            tracing::info!(client = client.join(", "), "client ID");
        }
        let pair =
            |k: &'static str, v: &'static str| -> Option<(IString<'static>, NString<'static>)> {
                Some((
                    IString::Quoted(Quoted::try_from(k).ok()?),
                    NString(Some(IString::Quoted(Quoted::try_from(v).ok()?))),
                ))
            };
        let ours: Vec<_> = [
            pair("name", "pluto"),
            pair("version", env!("CARGO_PKG_VERSION")),
            pair("vendor", "pluto"),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.send(&Response::Data(Data::Id {
            parameters: Some(ours),
        }))
        .await?;
        Ok(Done::ok("ID completed"))
    }
}
