//! LIST and LSUB (RFC 3501 6.3.8, 6.3.9), with SPECIAL-USE (RFC 6154) and CHILDREN
//! (RFC 3348) attributes; parents that do not exist are shown `\Noselect`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use imap_codec::imap_types::core::{Atom, QuotedChar};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Data, Response};
use pluto_backends::{MailboxList, MailboxName, SpecialUse};

use crate::names::{self, to_wire};
use crate::response::{CmdResult, Done};
use crate::session::{Authenticated, Client};

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

/// One `* LIST` or `* LSUB` line.
fn list_data(
    lsub: bool,
    items: Vec<FlagNameAttribute<'static>>,
    mailbox: Mailbox<'static>,
) -> Data<'static> {
    let delimiter = Some(QuotedChar::unvalidated('/'));
    if lsub {
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
    }
}

/// The answer to an empty pattern: the hierarchy delimiter and the reference's root
/// (RFC 3501 6.3.8).
fn root_line(reference: &str, lsub: bool) -> Data<'static> {
    let root = names::reference_root(reference);
    let root = if root.is_empty() {
        Mailbox::try_from("").unwrap_or(Mailbox::Inbox)
    } else {
        names::wire_text(root)
    };
    list_data(lsub, vec![FlagNameAttribute::Noselect], root)
}

/// Every name LIST or LSUB considers for the pattern `full`, with whether it exists
/// (and its special use).
fn candidates(
    list: &MailboxList,
    lsub: bool,
    full: &str,
) -> BTreeMap<MailboxName, Option<Option<SpecialUse>>> {
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
    names
}

impl Client {
    pub(crate) async fn cmd_list(
        &mut self,
        login: &Authenticated,
        reference: Mailbox<'static>,
        pattern: ListMailbox<'static>,
        lsub: bool,
    ) -> CmdResult {
        let command = if lsub { "Lsub" } else { "List" };
        // A reference or pattern that is not valid modified UTF-7 can name no mailbox:
        // the answer is an empty OK, as Dovecot gives, not an error.
        let (Ok(reference), Ok(pattern)) = (
            names::reference_text(&reference),
            names::list_pattern(&pattern),
        ) else {
            return Ok(Done::ok(format!("{command} completed")));
        };
        if pattern.is_empty() {
            // The hierarchy delimiter and the reference's root (RFC 3501 6.3.8).
            self.send(&Response::Data(root_line(&reference, lsub)))
                .await?;
            return Ok(Done::ok(format!("{command} completed")));
        }
        let full = names::join_reference(&reference, &pattern);
        let list = login.store.list(&login.user).await?;
        let names = candidates(&list, lsub, &full);
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
            out.push(list_data(lsub, items, to_wire(name)));
        }
        for data in out {
            self.send(&Response::Data(data)).await?;
        }
        Ok(Done::ok(format!("{command} completed")))
    }
}
