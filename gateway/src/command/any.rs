//! Commands valid in every state: CAPABILITY, NOOP (and CHECK), LOGOUT, ID (RFC 2971),
//! ENABLE (RFC 5161), NAMESPACE (RFC 2342).

use std::borrow::Cow;

use imap_codec::imap_types::core::QuotedChar;
use imap_codec::imap_types::core::{IString, NString, Quoted, Vec1};
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::extensions::namespace::{Namespace, NamespaceResponseExtension};
use imap_codec::imap_types::response::{Capability, Data, StatusKind};

use crate::response::{self, CmdResult, Done};
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_capability(&mut self) -> CmdResult {
        let caps: Vec<Capability<'static>> = self
            .capabilities()
            .into_iter()
            .filter_map(|c| Capability::try_from(c).ok())
            .collect();
        self.send(&imap_codec::imap_types::response::Response::Data(
            Data::Capability(Vec1::unvalidated(caps)),
        ))
        .await?;
        Ok(Done::ok("Capability completed"))
    }

    pub(crate) async fn cmd_noop(&mut self) -> CmdResult {
        self.cmd_noop_named("NOOP").await
    }

    /// NOOP and CHECK: the moment for the client to learn of changes, expunges included.
    pub(crate) async fn cmd_noop_named(&mut self, name: &str) -> CmdResult {
        if matches!(self.state, State::Selected(_)) {
            self.refresh(true, false).await?;
        }
        Ok(Done::ok(format!("{name} completed")))
    }

    pub(crate) async fn cmd_logout(&mut self) -> CmdResult {
        self.send(&response::bye("Logging out")).await?;
        self.state = State::Logout;
        Ok(Done::ok("Logout completed"))
    }

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
        self.send(&imap_codec::imap_types::response::Response::Data(
            Data::Id {
                parameters: Some(ours),
            },
        ))
        .await?;
        Ok(Done::ok("ID completed"))
    }

    pub(crate) async fn cmd_enable(
        &mut self,
        capabilities: Vec1<CapabilityEnable<'static>>,
    ) -> CmdResult {
        // No extension that needs enabling is implemented yet (CONDSTORE/QRESYNC and
        // UTF8=ACCEPT come later): RFC 5161 says to list only what was enabled.
        let _ = capabilities;
        self.send(&imap_codec::imap_types::response::Response::Data(
            Data::Enabled {
                capabilities: Vec::new(),
            },
        ))
        .await?;
        Ok(Done::ok("ENABLE completed"))
    }

    pub(crate) async fn cmd_namespace(&mut self) -> CmdResult {
        let personal = vec![Namespace {
            prefix: IString::Quoted(Quoted::unvalidated(Cow::Borrowed(""))),
            delimiter: Some(QuotedChar::unvalidated('/')),
            extensions: Vec::<NamespaceResponseExtension<'static>>::new(),
        }];
        self.send(&imap_codec::imap_types::response::Response::Data(
            Data::Namespace {
                personal,
                other: Vec::new(),
                shared: Vec::new(),
            },
        ))
        .await?;
        Ok(Done {
            kind: StatusKind::Ok,
            code: None,
            text: "NAMESPACE completed".to_owned(),
        })
    }
}
