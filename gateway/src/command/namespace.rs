//! NAMESPACE (RFC 2342 5): one personal namespace, prefix `""`, delimiter `/`.

use std::borrow::Cow;

use imap_codec::imap_types::core::{IString, Quoted, QuotedChar};
use imap_codec::imap_types::extensions::namespace::{Namespace, NamespaceResponseExtension};
use imap_codec::imap_types::response::{Data, Response, StatusKind};

use crate::response::{CmdResult, Done};
use crate::session::Client;

impl Client {
    pub(crate) async fn cmd_namespace(&mut self) -> CmdResult {
        let personal = vec![Namespace {
            prefix: IString::Quoted(Quoted::unvalidated(Cow::Borrowed(""))),
            delimiter: Some(QuotedChar::unvalidated('/')),
            extensions: Vec::<NamespaceResponseExtension<'static>>::new(),
        }];
        self.send(&Response::Data(Data::Namespace {
            personal,
            other: Vec::new(),
            shared: Vec::new(),
        }))
        .await?;
        Ok(Done {
            kind: StatusKind::Ok,
            code: None,
            text: "NAMESPACE completed".to_owned(),
        })
    }
}
