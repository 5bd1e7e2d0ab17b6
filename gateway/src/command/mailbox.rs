//! Mailbox commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB
//! (with SPECIAL-USE and CHILDREN attributes), STATUS.

use std::borrow::Cow;
use std::collections::BTreeMap;

use imap_codec::imap_types::core::{Atom, QuotedChar};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};
use pluto_backends::{MailboxList, MailboxName, SpecialUse};

use crate::names::{self, mailbox_name, to_wire};
use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Session, State};

fn special_use_attr(special: SpecialUse) -> FlagNameAttribute<'static> {
    let name = match special {
        SpecialUse::All => "All",
        SpecialUse::Archive => "Archive",
        SpecialUse::Drafts => "Drafts",
        SpecialUse::Flagged => "Flagged",
        SpecialUse::Junk => "Junk",
        SpecialUse::Sent => "Sent",
        SpecialUse::Trash => "Trash",
    };
    attr(name)
}

fn attr(name: &'static str) -> FlagNameAttribute<'static> {
    FlagNameAttribute::from(Atom::unvalidated(Cow::Borrowed(name)))
}

/// The per-user bounds on mailboxes (`limits.max_mailboxes`, `limits.max_mailbox_depth`),
/// checked here for every backend: `made` are the names a CREATE or RENAME would add,
/// `deepest` the deepest name it would leave.
fn check_mailbox_limits(
    limits: &crate::config::Limits,
    list: &MailboxList,
    made: &[MailboxName],
    deepest: usize,
) -> Result<(), CmdError> {
    if deepest > limits.max_mailbox_depth {
        return Err(CmdError::no_code(
            code("LIMIT"),
            format!(
                "Mailbox names may have at most {} levels",
                limits.max_mailbox_depth
            ),
        ));
    }
    let existing = list.mailboxes.len();
    if !made.is_empty() && existing + made.len() > limits.max_mailboxes {
        return Err(CmdError::no_code(
            code("LIMIT"),
            format!(
                "Too many mailboxes: at most {} per user (you have {existing})",
                limits.max_mailboxes
            ),
        ));
    }
    Ok(())
}

/// `name` and those of its parents that do not exist yet.
fn missing_with_parents(list: &MailboxList, name: &MailboxName) -> Vec<MailboxName> {
    let exists = |n: &MailboxName| list.mailboxes.iter().any(|m| &m.name == n);
    name.ancestors()
        .into_iter()
        .chain(std::iter::once(name.clone()))
        .filter(|n| !exists(n))
        .collect()
}

impl Session {
    pub(crate) async fn cmd_create(&mut self, mailbox: Mailbox<'static>) -> CmdResult {
        let user = self.user()?.clone();
        // A trailing separator only declares that the name will have children; this
        // server needs no such declaration and ignores it (RFC 3501 6.3.3).
        let name = match crate::names::strip_trailing_separator(&mailbox) {
            Some(stripped) => mailbox_name(&stripped)?,
            None => mailbox_name(&mailbox)?,
        };
        if name.is_inbox() {
            return Err(CmdError::no_code(
                code("ALREADYEXISTS"),
                "INBOX always exists",
            ));
        }
        let list = self.store()?.list(&user).await?;
        if !list.mailboxes.iter().any(|m| m.name == name) {
            let made = missing_with_parents(&list, &name);
            let depth = name.parts().count();
            check_mailbox_limits(&self.shared.config.limits, &list, &made, depth)?;
        }
        self.store()?.create_mailbox(&user, &name, None).await?;
        Ok(Done::ok("Create completed"))
    }

    pub(crate) async fn cmd_delete(&mut self, mailbox: Mailbox<'static>) -> CmdResult {
        let user = self.user()?.clone();
        let name = mailbox_name(&mailbox)?;
        if name.is_inbox() {
            return Err(CmdError::no_code(code("CANNOT"), "INBOX cannot be deleted"));
        }
        self.store()?.delete_mailbox(&user, &name).await?;
        if let State::Selected(selected) = &self.state {
            if selected.name == name {
                // RFC 3501 lets the server end the session; leaving the selected state is kinder.
                self.state = State::Authenticated;
            }
        }
        Ok(Done::ok("Delete completed"))
    }

    pub(crate) async fn cmd_rename(
        &mut self,
        from: Mailbox<'static>,
        to: Mailbox<'static>,
    ) -> CmdResult {
        let user = self.user()?.clone();
        let from = mailbox_name(&from)?;
        let to = mailbox_name(&to)?;
        if to.is_inbox() {
            return Err(CmdError::no_code(
                code("ALREADYEXISTS"),
                "INBOX already exists",
            ));
        }
        if to.is_below(&from) {
            return Err(CmdError::no_code(
                code("CANNOT"),
                "Cannot rename a mailbox into itself",
            ));
        }
        let list = self.store()?.list(&user).await?;
        // The moved names keep their count (INBOX's messages go to a new mailbox, and
        // INBOX stays); parents of the target that are missing are new.
        let mut made = missing_with_parents(&list, &to);
        if !from.is_inbox() {
            made.retain(|n| n != &to);
        }
        let deepest = list
            .mailboxes
            .iter()
            .filter_map(|m| m.name.rebase(&from, &to))
            .chain(std::iter::once(to.clone()))
            .map(|n| n.parts().count())
            .max()
            .unwrap_or(0);
        check_mailbox_limits(&self.shared.config.limits, &list, &made, deepest)?;
        self.store()?.rename_mailbox(&user, &from, &to).await?;
        Ok(Done::ok("Rename completed"))
    }

    pub(crate) async fn cmd_subscribe(
        &mut self,
        mailbox: Mailbox<'static>,
        subscribe: bool,
    ) -> CmdResult {
        let user = self.user()?.clone();
        let name = mailbox_name(&mailbox)?;
        if subscribe {
            // Dovecot and most servers refuse subscribing to nothing; clients expect it.
            let list = self.store()?.list(&user).await?;
            if !list.mailboxes.iter().any(|m| m.name == name) {
                return Err(CmdError::no_code(
                    code("NONEXISTENT"),
                    format!("Mailbox doesn't exist: {name}"),
                ));
            }
        }
        self.store()?
            .set_subscribed(&user, &name, subscribe)
            .await?;
        Ok(Done::ok(if subscribe {
            "Subscribe completed"
        } else {
            "Unsubscribe completed"
        }))
    }

    pub(crate) async fn cmd_list(
        &mut self,
        reference: Mailbox<'static>,
        pattern: ListMailbox<'static>,
        lsub: bool,
    ) -> CmdResult {
        let user = self.user()?.clone();
        let command = if lsub { "Lsub" } else { "List" };
        // A reference or pattern that is not valid modified UTF-7 can name no mailbox:
        // the answer is an empty OK, as Dovecot gives, not an error.
        let (Ok(reference), Ok(pattern)) = (
            names::reference_text(&reference),
            names::list_pattern(&pattern),
        ) else {
            return Ok(Done::ok(format!("{command} completed")));
        };
        let delimiter = Some(QuotedChar::unvalidated('/'));
        if pattern.is_empty() {
            // The hierarchy delimiter and the reference's root (RFC 3501 6.3.8).
            let root = names::reference_root(&reference);
            let root = if root.is_empty() {
                Mailbox::try_from("").unwrap_or(Mailbox::Inbox)
            } else {
                names::wire_text(root)
            };
            let data = if lsub {
                Data::Lsub {
                    items: vec![FlagNameAttribute::Noselect],
                    delimiter,
                    mailbox: root,
                }
            } else {
                Data::List {
                    items: vec![FlagNameAttribute::Noselect],
                    delimiter,
                    mailbox: root,
                }
            };
            self.send(&Response::Data(data)).await?;
            return Ok(Done::ok(format!("{command} completed")));
        }
        let full = names::join_reference(&reference, &pattern);
        let list = self.store()?.list(&user).await?;
        // Every name to consider, with (exists, special use); parents that do not exist
        // are shown \Noselect.
        let mut names: BTreeMap<MailboxName, Option<Option<SpecialUse>>> = BTreeMap::new();
        let source: Vec<MailboxName> = if lsub {
            list.subscriptions.clone()
        } else {
            list.mailboxes.iter().map(|m| m.name.clone()).collect()
        };
        // Parents that are not themselves listed appear as \Noselect; for LSUB only
        // where a `%` stops short of the subscribed name (RFC 3501 6.3.9).
        if !lsub || full.contains('%') {
            for name in &source {
                for ancestor in name.ancestors() {
                    names.entry(ancestor).or_insert(None);
                }
            }
        }
        for info in &list.mailboxes {
            if !lsub || list.subscriptions.contains(&info.name) {
                names.insert(info.name.clone(), Some(info.special_use));
            }
        }
        for name in &list.subscriptions {
            if lsub {
                names.entry(name.clone()).or_insert(None);
            }
        }
        let all: Vec<&MailboxName> = list.mailboxes.iter().map(|m| &m.name).collect();
        let mut out = Vec::new();
        for (name, exists) in &names {
            if !names::matches(&full, name.as_str()) {
                continue;
            }
            let mut items = Vec::new();
            let exists_in_store = all.contains(&name);
            if exists.is_none() || !exists_in_store {
                items.push(FlagNameAttribute::Noselect);
            }
            if !lsub {
                let has_children = all.iter().any(|n| n.is_below(name));
                items.push(attr(if has_children {
                    "HasChildren"
                } else {
                    "HasNoChildren"
                }));
                if let Some(Some(special)) = exists {
                    items.push(special_use_attr(*special));
                }
            }
            let mailbox = to_wire(name);
            out.push(if lsub {
                Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                }
            } else {
                Data::List {
                    items,
                    delimiter,
                    mailbox,
                }
            });
        }
        for data in out {
            self.send(&Response::Data(data)).await?;
        }
        Ok(Done::ok(format!("{command} completed")))
    }

    pub(crate) async fn cmd_status(
        &mut self,
        mailbox: Mailbox<'static>,
        items: Vec<StatusDataItemName>,
    ) -> CmdResult {
        let user = self.user()?.clone();
        let name = mailbox_name(&mailbox)?;
        let status = self.store()?.status(&user, &name).await?;
        // RECENT: the messages no session was told of yet, counted without claiming them.
        let recent = if items.contains(&StatusDataItemName::Recent) {
            let range = self.store()?.recent(&user, &name, false).await?;
            if range.after < range.upto {
                let snapshot = self.store()?.select(&user, &name).await?;
                snapshot
                    .messages
                    .iter()
                    .filter(|m| range.contains(m.uid))
                    .count() as u32
            } else {
                0
            }
        } else {
            0
        };
        let mut out = Vec::new();
        for item in items {
            out.push(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(status.messages),
                StatusDataItemName::Recent => StatusDataItem::Recent(recent),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(status.uid_next.0),
                StatusDataItemName::UidValidity => {
                    StatusDataItem::UidValidity(status.uid_validity.0)
                }
                StatusDataItemName::Unseen => StatusDataItem::Unseen(status.unseen),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(status.deleted),
                StatusDataItemName::DeletedStorage => StatusDataItem::DeletedStorage(0),
                #[allow(unreachable_patterns)]
                other => {
                    return Err(CmdError::bad(format!(
                        "STATUS item {other:?} is not supported"
                    )));
                }
            });
        }
        self.send(&Response::Data(Data::Status {
            mailbox: to_wire(&name),
            items: Cow::Owned(out),
        }))
        .await?;
        Ok(Done::ok("Status completed"))
    }
}
