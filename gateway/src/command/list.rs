//! LIST and LSUB (RFC 3501 6.3.8, 6.3.9), with SPECIAL-USE (RFC 6154) and CHILDREN
//! (RFC 3348) attributes; parents that do not exist are shown `\Noselect`. LIST in the
//! extended syntax (LIST-EXTENDED, RFC 5258; read by [`super::list_syntax`]) answers
//! what its selection and return options ask for: subscribed names, special-use
//! mailboxes, `\Subscribed`, `\NonExistent`, children, CHILDINFO for RECURSIVEMATCH, and
//! with `RETURN (STATUS (…))` (LIST-STATUS, RFC 5819) a `* STATUS` after each selectable
//! mailbox that meets the selection, computed and sent one mailbox at a time.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Atom, QuotedChar};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Data, Response};
use pluto_backends::{MailboxList, MailboxName, SpecialUse};

use super::list_syntax::{ListCommand, Selection};
use crate::names::{self, to_wire};
use crate::response::{CmdError, CmdResult, Done};
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

/// A user's mailboxes and subscriptions as an extended LIST looks at them.
struct Tree {
    /// The mailboxes that exist, with their special use.
    exists: BTreeMap<MailboxName, Option<SpecialUse>>,
    subscribed: BTreeSet<MailboxName>,
}

impl Tree {
    /// Whether `name` meets the selection options (RFC 5258 3.1): it exists, is
    /// subscribed (SUBSCRIBED, existing or not) and has a special use (SPECIAL-USE).
    fn meets(&self, selection: Selection, name: &MailboxName) -> bool {
        let special = self.exists.get(name).is_some_and(Option::is_some);
        if selection.subscribed {
            self.subscribed.contains(name) && (!selection.special_use || special)
        } else {
            special || (!selection.special_use && self.exists.contains_key(name))
        }
    }

    /// Every name the LIST could show: the mailboxes, for SUBSCRIBED the subscribed
    /// names too, and the parents of all of them.
    fn candidates(&self, selection: Selection) -> BTreeSet<MailboxName> {
        let mut names: BTreeSet<MailboxName> = self.exists.keys().cloned().collect();
        if selection.subscribed {
            names.extend(self.subscribed.iter().cloned());
        }
        let parents: Vec<MailboxName> = names.iter().flat_map(MailboxName::ancestors).collect();
        names.extend(parents);
        names
    }
}

/// What one extended LIST line says of a name: its attributes, whether it carries
/// CHILDINFO, whether a STATUS follows it.
struct Listed {
    items: Vec<FlagNameAttribute<'static>>,
    child_info: bool,
    status: bool,
}

/// How `command` lists `name` (full patterns already joined with the reference), or
/// `None` when it does not.
fn listed(
    tree: &Tree,
    command: &ListCommand,
    patterns: &[String],
    names: &BTreeSet<MailboxName>,
    name: &MailboxName,
) -> Option<Listed> {
    let (selection, returns) = (command.selection, &command.returns);
    let matches = |n: &MailboxName| patterns.iter().any(|p| names::matches(p, n.as_str()));
    if !matches(name) {
        return None;
    }
    let exists = tree.exists.contains_key(name);
    let meets = tree.meets(selection, name);
    let filtered = selection.subscribed || selection.special_use;
    let mut descendants = names.iter().filter(|n| n.is_below(name));
    let child_info = selection.recursive_match
        && if meets {
            descendants.any(|n| tree.meets(selection, n))
        } else {
            // RFC 5258 3.5: a parent that does not meet the selection is listed for a
            // descendant that does, unless that descendant is listed itself.
            descendants.any(|n| tree.meets(selection, n) && !matches(n))
        };
    // Without a selection option a parent that does not exist is listed as the basic
    // LIST lists it (RFC 3501 6.3.8), as \NonExistent (RFC 5258 3.4).
    if !meets && !child_info && filtered {
        return None;
    }
    let mut items = Vec::new();
    if (returns.subscribed || selection.subscribed) && tree.subscribed.contains(name) {
        items.push(attr("Subscribed"));
    }
    if !exists {
        items.push(attr("NonExistent"));
    }
    if returns.children {
        let has_children = tree.exists.keys().any(|n| n.is_below(name));
        items.push(attr(if has_children {
            "HasChildren"
        } else {
            "HasNoChildren"
        }));
    }
    if returns.special_use || selection.special_use {
        if let Some(Some(special)) = tree.exists.get(name) {
            items.push(special_use_attr(*special));
        }
    }
    Some(Listed {
        items,
        child_info,
        // RFC 5819 2: for the mailboxes listed because they meet the selection, not
        // those listed only for CHILDINFO; never for one that does not exist.
        status: returns.status.is_some() && meets && exists,
    })
}

/// `(CHILDINFO ("SUBSCRIBED" …))`: the selection options the descendants meet.
fn child_info_item(selection: Selection) -> String {
    let mut criteria = Vec::new();
    if selection.subscribed {
        criteria.push("\"SUBSCRIBED\"");
    }
    if selection.special_use {
        criteria.push("\"SPECIAL-USE\"");
    }
    format!(" (CHILDINFO ({}))", criteria.join(" "))
}

impl Client {
    /// LIST with RFC 5258's selection and return options, several patterns, and
    /// RFC 5819's STATUS return option.
    pub(crate) async fn cmd_list_extended(
        &mut self,
        login: &Authenticated,
        command: ListCommand,
    ) -> CmdResult {
        let done = || Ok(Done::ok("List completed"));
        // A reference or pattern that is not valid modified UTF-7 names no mailbox (as
        // in the basic LIST); an empty pattern none either (Dovecot answers the
        // extended LIST "" "" so; the delimiter is the basic LIST's answer).
        let Ok(reference) = names::reference_text(&command.reference) else {
            return done();
        };
        let patterns: Vec<String> = command
            .patterns
            .iter()
            .filter_map(|p| names::list_pattern(p).ok())
            .filter(|p| !p.is_empty())
            .map(|p| names::join_reference(&reference, &p))
            .collect();
        if patterns.is_empty() {
            return done();
        }
        let list = login.store.list(&login.user).await?;
        let tree = Tree {
            exists: list
                .mailboxes
                .into_iter()
                .map(|m| (m.name, m.special_use))
                .collect(),
            subscribed: list.subscriptions.into_iter().collect(),
        };
        let names = tree.candidates(command.selection);
        let status_items = command.returns.status.as_deref().unwrap_or_default();
        for name in &names {
            let Some(line) = listed(&tree, &command, &patterns, &names, name) else {
                continue;
            };
            let data = list_data(false, line.items, to_wire(name));
            let mut bytes = ResponseCodec::default()
                .encode(&Response::Data(data))
                .dump();
            if line.child_info {
                bytes.truncate(bytes.len() - 2);
                bytes.extend_from_slice(child_info_item(command.selection).as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            self.conn.send_encoded(&bytes).await.map_err(CmdError::Io)?;
            if line.status {
                match self.status_data(login, name, status_items).await {
                    Ok((data, _)) => self.send(&Response::Data(data)).await?,
                    // Gone since the list was read: listed, without a STATUS.
                    Err(CmdError::No { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        done()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::command::list_syntax::Returns;

    fn name(n: &str) -> MailboxName {
        MailboxName::new(n).unwrap()
    }

    /// `Work/Plan` exists and is subscribed, its parent `Work` is no mailbox: a store
    /// can hold that (pluto's CREATE makes parents, a Maildir dropped in need not).
    fn tree() -> Tree {
        Tree {
            exists: [(name("INBOX"), None), (name("Work/Plan"), None)].into(),
            subscribed: [name("Work/Plan")].into(),
        }
    }

    fn attrs(selection: Selection, pattern: &str, mailbox: &str) -> Option<(String, bool)> {
        let tree = tree();
        let command = ListCommand {
            reference: Mailbox::Inbox,
            patterns: Vec::new(),
            selection,
            returns: Returns {
                children: true,
                status: Some(Vec::new()),
                ..Returns::default()
            },
        };
        let names = tree.candidates(selection);
        let line = listed(
            &tree,
            &command,
            &[pattern.to_owned()],
            &names,
            &name(mailbox),
        )?;
        // RFC 5819: never a STATUS for a name that is no mailbox.
        assert!(!line.status || tree.exists.contains_key(&name(mailbox)));
        let text: Vec<String> = line.items.iter().map(|a| a.to_string()).collect();
        Some((text.join(" "), line.child_info))
    }

    #[test]
    fn a_parent_that_is_no_mailbox_is_nonexistent() {
        let plain = Selection::default();
        assert_eq!(
            attrs(plain, "%", "Work"),
            Some(("\\NonExistent \\HasChildren".into(), false))
        );
        let subscribed = Selection {
            subscribed: true,
            recursive_match: true,
            ..Selection::default()
        };
        assert_eq!(
            attrs(subscribed, "%", "Work"),
            Some(("\\NonExistent \\HasChildren".into(), true))
        );
        // Its subscribed child is listed itself for "*": no line for the parent.
        assert_eq!(attrs(subscribed, "*", "Work"), None);
        let only = Selection {
            subscribed: true,
            ..Selection::default()
        };
        assert_eq!(attrs(only, "%", "Work"), None);
        assert_eq!(
            attrs(only, "*", "Work/Plan"),
            Some(("\\Subscribed \\HasNoChildren".into(), false))
        );
    }
}
