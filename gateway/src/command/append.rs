//! APPEND (RFC 3501 6.3.11), answered with UIDPLUS's APPENDUID (RFC 4315 3) once the
//! message is durable; within the user's quota (`NO [OVERQUOTA]`, RFC 9208 4.3).

use bytes::Bytes;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag as WireFlag;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::Code;
use pluto_backends::{NewMessage, StoreError, Usage};

use crate::flags;
use crate::names::mailbox_name;
use crate::response::{CmdError, CmdResult, Done};
use crate::selected::MailboxView;
use crate::session::{Authenticated, Client};

impl Client {
    pub(crate) async fn cmd_append(
        &mut self,
        login: &Authenticated,
        view: Option<&mut MailboxView>,
        mailbox: Mailbox<'static>,
        flag_list: Vec<WireFlag<'static>>,
        date: Option<DateTime>,
        message: LiteralOrLiteral8<'static>,
    ) -> CmdResult {
        let name = mailbox_name(&mailbox)?;
        let flags = flags::from_wire_list(&flag_list)?;
        let body: Bytes = match message {
            LiteralOrLiteral8::Literal(literal) => Bytes::from(literal.into_inner().into_owned()),
            LiteralOrLiteral8::Literal8(literal) => Bytes::from(literal.data.into_owned()),
        };
        if body.is_empty() {
            return Err(CmdError::no("An empty message cannot be appended"));
        }
        let limit = self.shared.config.limits.append_limit as usize;
        if body.len() > limit {
            return Err(CmdError::no_code(
                Code::TooBig,
                format!("Message is larger than the limit of {limit} bytes"),
            ));
        }
        let shared = self.shared.clone();
        let _admitted = crate::quota::admit(
            &shared,
            &*login.store,
            &login.user,
            &login.quota,
            Usage::new(body.len() as u64, 1),
        )
        .await?;
        let message = NewMessage {
            body,
            flags,
            internal_date: date.map(|d| *d.as_ref()),
        };
        let outcome = match login.store.append(&login.user, &name, vec![message]).await {
            Ok(outcome) => outcome,
            Err(StoreError::NoSuchMailbox(name)) => {
                return Err(CmdError::no_code(
                    Code::TryCreate,
                    format!("Mailbox doesn't exist: {name}"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        // An append to the selected mailbox shows up as EXISTS right away.
        if let Some(view) = view {
            if view.name == name {
                view.feed_dirty = true;
            }
        }
        let Some(uid) = outcome.uids.first() else {
            return Ok(Done::ok("Append completed"));
        };
        Ok(Done::ok_code(
            Code::AppendUid {
                uid_validity: outcome.uid_validity.0,
                uid: uid.0,
            },
            "Append completed",
        ))
    }
}
