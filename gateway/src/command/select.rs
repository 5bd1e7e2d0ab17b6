//! SELECT and EXAMINE (RFC 3501 6.3.1, 6.3.2): open a mailbox read-write or
//! read-only, claim its recent messages (SELECT only) and tell the client its state.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, Response, StatusKind};
use pluto_backends::{Flag, Keyword};

use crate::flags;
use crate::names::mailbox_name;
use crate::response::{self, CmdResult, Done, code};
use crate::selected::Selected;
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_select(
        &mut self,
        mailbox: Mailbox<'static>,
        read_only: bool,
    ) -> CmdResult {
        let user = self.user()?.clone();
        let name = mailbox_name(&mailbox)?;
        // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
        let was_selected = matches!(self.state, State::Selected(_));
        self.state = State::Authenticated;
        let feed = self.store()?.watch(&user, &name).await;
        let snapshot = self.store()?.select(&user, &name).await;
        let (feed, snapshot) = match (feed, snapshot) {
            (Ok(feed), Ok(snapshot)) => (feed, snapshot),
            (Err(e), _) | (_, Err(e)) => {
                if was_selected {
                    self.send(&response::untagged(
                        StatusKind::Ok,
                        Some(code("CLOSED")),
                        "Previous mailbox closed",
                    ))
                    .await?;
                }
                return Err(e.into());
            }
        };
        if was_selected {
            self.send(&response::untagged(
                StatusKind::Ok,
                Some(code("CLOSED")),
                "Previous mailbox closed",
            ))
            .await?;
        }
        let mut selected = Selected::new(name, read_only, snapshot, feed);
        // SELECT claims the messages no session was told of yet; EXAMINE only looks, so
        // that they stay recent for the next SELECT (RFC 3501 2.3.2, 6.3.2).
        match self
            .store()?
            .recent(&user, &selected.name, !read_only)
            .await
        {
            Ok(range) => selected.add_recent(range),
            Err(e) => tracing::debug!(error = %e, "recent claim failed"),
        }
        selected.announced_recent = selected.recent_count();
        let keywords: BTreeSet<Keyword> = selected
            .messages
            .iter()
            .flat_map(|m| m.flags.keywords().iter().cloned())
            .collect();
        let keywords: Vec<Keyword> = keywords.into_iter().collect();
        let first_unseen = selected
            .messages
            .iter()
            .position(|m| !m.flags.contains(&Flag::Seen));
        let responses = vec![
            Response::Data(Data::Flags(flags::mailbox_flags(&keywords))),
            response::untagged(
                StatusKind::Ok,
                Some(Code::PermanentFlags(if read_only {
                    Vec::new()
                } else {
                    flags::permanent_flags(&keywords)
                })),
                "Flags permitted",
            ),
            Response::Data(Data::Exists(selected.exists())),
            Response::Data(Data::Recent(selected.announced_recent)),
        ];
        for r in responses {
            self.send(&r).await?;
        }
        if let Some(i) = first_unseen.and_then(|i| NonZeroU32::new(i as u32 + 1)) {
            self.send(&response::untagged(
                StatusKind::Ok,
                Some(Code::Unseen(i)),
                "First unseen",
            ))
            .await?;
        }
        self.send(&response::untagged(
            StatusKind::Ok,
            Some(Code::UidValidity(selected.uid_validity.0)),
            "UIDs valid",
        ))
        .await?;
        self.send(&response::untagged(
            StatusKind::Ok,
            Some(Code::UidNext(selected.uid_next.0)),
            "Predicted next UID",
        ))
        .await?;
        self.state = State::Selected(Box::new(selected));
        Ok(if read_only {
            Done::ok_code(Code::ReadOnly, "Examine completed")
        } else {
            Done::ok_code(Code::ReadWrite, "Select completed")
        })
    }
}
