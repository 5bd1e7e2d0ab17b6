//! SELECT and EXAMINE (RFC 3501 6.3.1, 6.3.2): open a mailbox read-write or
//! read-only, claim its recent messages (SELECT only) and tell the client its state.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, Response, StatusKind};
use pluto_backends::{Flag, Keyword, MailboxName};

use crate::flags;
use crate::names::mailbox_name;
use crate::response::{self, CmdError, Done, code};
use crate::selected::MailboxView;
use crate::session::{Authenticated, Client, Stepped, Transition};

impl Client {
    /// `was_selected`: a mailbox is selected now, and is left whatever the outcome.
    pub(crate) async fn cmd_select(
        &mut self,
        login: &Authenticated,
        was_selected: bool,
        mailbox: Mailbox<'static>,
        read_only: bool,
    ) -> Stepped {
        let name = match mailbox_name(&mailbox) {
            Ok(name) => name,
            Err(e) => return (Err(e), None),
        };
        // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
        match self
            .open_mailbox(login, was_selected, name, read_only)
            .await
        {
            Ok((done, view)) => (Ok(done), Some(Transition::Select(view))),
            Err(e) => (Err(e), Some(Transition::Unselect)),
        }
    }

    /// Opens `name`, tells the client its state and returns the view to select.
    async fn open_mailbox(
        &mut self,
        login: &Authenticated,
        was_selected: bool,
        name: MailboxName,
        read_only: bool,
    ) -> Result<(Done, MailboxView), CmdError> {
        let Authenticated { user, store, .. } = login;
        let feed = store.watch(user, &name).await;
        let snapshot = store.select(user, &name).await;
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
        let mut view = MailboxView::new(name, read_only, snapshot, feed);
        // SELECT claims the messages no session was told of yet; EXAMINE only looks, so
        // that they stay recent for the next SELECT (RFC 3501 2.3.2, 6.3.2).
        match store.recent(user, &view.name, !read_only).await {
            Ok(range) => view.add_recent(range),
            Err(e) => tracing::debug!(error = %e, "recent claim failed"),
        }
        view.announced_recent = view.recent_count();
        let keywords: BTreeSet<Keyword> = view
            .messages
            .iter()
            .flat_map(|m| m.flags.keywords().iter().cloned())
            .collect();
        let keywords: Vec<Keyword> = keywords.into_iter().collect();
        let first_unseen = view
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
            Response::Data(Data::Exists(view.exists())),
            Response::Data(Data::Recent(view.announced_recent)),
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
            Some(Code::UidValidity(view.uid_validity.0)),
            "UIDs valid",
        ))
        .await?;
        self.send(&response::untagged(
            StatusKind::Ok,
            Some(Code::UidNext(view.uid_next.0)),
            "Predicted next UID",
        ))
        .await?;
        let done = if read_only {
            Done::ok_code(Code::ReadOnly, "Examine completed")
        } else {
            Done::ok_code(Code::ReadWrite, "Select completed")
        };
        Ok((done, view))
    }
}
