//! The RFC 3501 mailbox rules (6.3.3 CREATE, 6.3.4 DELETE, 6.3.5 RENAME), checked in
//! this one place for the gateway and every backend. Each rule answers what the command
//! would do (the names to create, the names to move), or a [`MailboxRefusal`] that
//! names the mailbox it is about.
//!
//! The rules know nothing of storage: the caller says which names exist.
//!
//! Two parts: this module holds the RFC rules (INBOX always exists and cannot be
//! deleted, no rename below itself, the per-user bounds) and the commands built from
//! both parts; [`namespace`] holds the part about which names exist, which the CRDT
//! uses too (it creates INBOX itself, and its simulator deletes and renames freely).

pub mod namespace;

use std::collections::BTreeSet;
use std::fmt;

use crate::mailbox::MailboxName;

/// Why a mailbox command is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailboxRefusal {
    /// No mailbox has this name (IMAP `[NONEXISTENT]`).
    NoSuchMailbox(MailboxName),
    /// A mailbox already has this name (`[ALREADYEXISTS]`); INBOX always exists, so
    /// CREATE INBOX and RENAME onto INBOX get this too.
    AlreadyExists(MailboxName),
    /// DELETE INBOX (`[CANNOT]`).
    InboxCannotBeDeleted,
    /// RENAME of a mailbox to a name below itself (`[CANNOT]`).
    BelowItself { from: MailboxName, to: MailboxName },
    /// RENAME would move a mailbox below `from` to a name over
    /// [`MailboxName::MAX_LEN`] bytes (`[CANNOT]`).
    TooLong(MailboxName),
    /// The name would be deeper than the per-user bound (`[LIMIT]`).
    TooDeep { name: MailboxName, max: usize },
    /// The command would make more mailboxes than the per-user bound (`[LIMIT]`);
    /// `name` is the mailbox it would create.
    TooMany {
        name: MailboxName,
        max: usize,
        existing: usize,
    },
}

impl MailboxRefusal {
    /// The mailbox the refusal is about.
    pub fn mailbox(&self) -> MailboxName {
        match self {
            MailboxRefusal::NoSuchMailbox(name)
            | MailboxRefusal::AlreadyExists(name)
            | MailboxRefusal::TooLong(name)
            | MailboxRefusal::TooDeep { name, .. }
            | MailboxRefusal::TooMany { name, .. } => name.clone(),
            MailboxRefusal::InboxCannotBeDeleted => MailboxName::inbox(),
            MailboxRefusal::BelowItself { from, .. } => from.clone(),
        }
    }
}

impl fmt::Display for MailboxRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailboxRefusal::NoSuchMailbox(name) => write!(f, "Mailbox doesn't exist: {name}"),
            MailboxRefusal::AlreadyExists(name) if name.is_inbox() => {
                f.write_str("INBOX always exists")
            }
            MailboxRefusal::AlreadyExists(name) => write!(f, "Mailbox already exists: {name}"),
            MailboxRefusal::InboxCannotBeDeleted => f.write_str("INBOX cannot be deleted"),
            MailboxRefusal::BelowItself { from, to } => {
                write!(f, "Cannot rename {from} into itself ({to})")
            }
            MailboxRefusal::TooLong(name) => {
                write!(f, "The new name of {name} would be too long")
            }
            MailboxRefusal::TooDeep { name, max } => write!(
                f,
                "Mailbox names may have at most {max} levels ({name} has {})",
                name.parts().count()
            ),
            MailboxRefusal::TooMany {
                name,
                max,
                existing,
            } => write!(
                f,
                "Too many mailboxes: at most {max} per user (you have {existing}; {name} would be more)"
            ),
        }
    }
}

impl std::error::Error for MailboxRefusal {}

/// CREATE `name`: the names to create, outermost first — the parents that do not exist
/// yet, then `name`.
pub fn create(
    name: &MailboxName,
    exists: impl Fn(&MailboxName) -> bool,
) -> Result<Vec<MailboxName>, MailboxRefusal> {
    namespace::free(name, name.is_inbox() || exists(name))?;
    Ok(namespace::missing_with_parents(name, exists))
}

/// DELETE `name`: any mailbox but INBOX; whether it exists is [`delete`]'s part.
pub fn deletable(name: &MailboxName) -> Result<(), MailboxRefusal> {
    if name.is_inbox() {
        return Err(MailboxRefusal::InboxCannotBeDeleted);
    }
    Ok(())
}

/// DELETE `name` (which `exists` or not): any existing mailbox but INBOX. The mailboxes
/// below it stay.
pub fn delete(name: &MailboxName, exists: bool) -> Result<(), MailboxRefusal> {
    deletable(name)?;
    namespace::found(name, exists.then_some(()))
}

/// What a RENAME does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenamePlan {
    /// Parents of the new name to create first, outermost first.
    pub parents: Vec<MailboxName>,
    /// (old, new) for the mailbox and every mailbox below it, the mailbox first. For
    /// INBOX only `(INBOX, to)`: its messages move to a new mailbox `to`, INBOX stays,
    /// and its children are not affected.
    pub moves: Vec<(MailboxName, MailboxName)>,
}

impl RenamePlan {
    /// Every name the rename makes: the parents, and the new mailbox of a RENAME INBOX
    /// (the other moved names replace names that go).
    pub fn made(&self) -> Vec<MailboxName> {
        let mut made = self.parents.clone();
        if let Some((from, to)) = self.moves.first()
            && from.is_inbox()
        {
            made.push(to.clone());
        }
        made
    }

    /// The new name with the most levels.
    pub fn deepest(&self) -> Option<&MailboxName> {
        self.moves
            .iter()
            .map(|(_, to)| to)
            .max_by_key(|to| to.parts().count())
    }
}

/// RENAME `from` to `to`, the part that needs no names: never onto INBOX (it always
/// exists), never below itself.
pub fn rename_target(from: &MailboxName, to: &MailboxName) -> Result<(), MailboxRefusal> {
    if to.is_inbox() {
        return Err(MailboxRefusal::AlreadyExists(to.clone()));
    }
    if to.is_below(from) {
        return Err(MailboxRefusal::BelowItself {
            from: from.clone(),
            to: to.clone(),
        });
    }
    Ok(())
}

/// RENAME `from` to `to`, given every existing name: never onto INBOX or an existing
/// name, never below itself, with every mailbox below `from` (each of whose new names
/// must be free too).
pub fn rename(
    from: &MailboxName,
    to: &MailboxName,
    existing: impl IntoIterator<Item = MailboxName>,
) -> Result<RenamePlan, MailboxRefusal> {
    rename_target(from, to)?;
    let existing: BTreeSet<MailboxName> = existing.into_iter().collect();
    let moves = if from.is_inbox() {
        namespace::free(to, existing.contains(to))?;
        vec![(from.clone(), to.clone())]
    } else {
        namespace::subtree_moves(from, to, &existing)?
    };
    let parents = namespace::missing_parents(to, |p| existing.contains(p));
    Ok(RenamePlan { parents, moves })
}

/// The per-user bounds: at most `max_depth` levels in `deepest` (the name a command
/// would leave with the most levels), at most `max_count` mailboxes once `made` exist
/// beside `existing` ones.
pub fn check_limits(
    deepest: &MailboxName,
    max_depth: usize,
    made: &[MailboxName],
    existing: usize,
    max_count: usize,
) -> Result<(), MailboxRefusal> {
    if deepest.parts().count() > max_depth {
        return Err(MailboxRefusal::TooDeep {
            name: deepest.clone(),
            max: max_depth,
        });
    }
    if let Some(name) = made.last()
        && existing + made.len() > max_count
    {
        return Err(MailboxRefusal::TooMany {
            name: name.clone(),
            max: max_count,
            existing,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mb(s: &str) -> MailboxName {
        MailboxName::new(s).unwrap()
    }

    fn names(list: &[&str]) -> Vec<MailboxName> {
        list.iter().map(|s| mb(s)).collect()
    }

    fn in_list(list: &[&str]) -> impl Fn(&MailboxName) -> bool {
        let set: BTreeSet<MailboxName> = names(list).into_iter().collect();
        move |n| set.contains(n)
    }

    #[test]
    fn create_makes_the_missing_parents_first() {
        let exists = in_list(&["INBOX", "a"]);
        assert_eq!(create(&mb("a/b/c"), &exists), Ok(names(&["a/b", "a/b/c"])));
        assert_eq!(create(&mb("x"), &exists), Ok(names(&["x"])));
    }

    #[test]
    fn create_refuses_an_existing_name_and_inbox() {
        let exists = in_list(&["a"]);
        assert_eq!(
            create(&mb("a"), &exists),
            Err(MailboxRefusal::AlreadyExists(mb("a")))
        );
        let e = create(&mb("inbox"), &exists).unwrap_err();
        assert_eq!(e, MailboxRefusal::AlreadyExists(MailboxName::inbox()));
        assert_eq!(e.to_string(), "INBOX always exists");
        assert_eq!(e.mailbox(), MailboxName::inbox());
    }

    #[test]
    fn delete_refuses_inbox_and_a_missing_name() {
        assert_eq!(delete(&mb("a"), true), Ok(()), "children stay");
        assert_eq!(deletable(&mb("nope")), Ok(()), "existence is delete's part");
        assert_eq!(
            deletable(&MailboxName::inbox()),
            Err(MailboxRefusal::InboxCannotBeDeleted)
        );
        let e = delete(&MailboxName::inbox(), true).unwrap_err();
        assert_eq!(e, MailboxRefusal::InboxCannotBeDeleted);
        assert_eq!(e.to_string(), "INBOX cannot be deleted");
        assert_eq!(e.mailbox(), MailboxName::inbox());
        let e = delete(&mb("nope"), false).unwrap_err();
        assert_eq!(e, MailboxRefusal::NoSuchMailbox(mb("nope")));
        assert_eq!(e.to_string(), "Mailbox doesn't exist: nope");
        assert_eq!(e.mailbox(), mb("nope"));
    }

    #[test]
    fn rename_moves_the_children_and_makes_the_parents() {
        let existing = names(&["INBOX", "a", "a/b", "a/b/c", "ab", "x"]);
        let plan = rename(&mb("a"), &mb("x/y/z"), existing).unwrap();
        assert_eq!(plan.parents, names(&["x/y"]));
        assert_eq!(
            plan.moves,
            vec![
                (mb("a"), mb("x/y/z")),
                (mb("a/b"), mb("x/y/z/b")),
                (mb("a/b/c"), mb("x/y/z/b/c")),
            ]
        );
        assert_eq!(plan.made(), names(&["x/y"]));
        assert_eq!(plan.deepest(), Some(&mb("x/y/z/b/c")));
    }

    #[test]
    fn rename_of_inbox_moves_only_its_messages() {
        let existing = names(&["INBOX", "INBOX/child"]);
        let plan = rename(&MailboxName::inbox(), &mb("Old/mail"), existing).unwrap();
        assert_eq!(plan.moves, vec![(MailboxName::inbox(), mb("Old/mail"))]);
        assert_eq!(plan.parents, names(&["Old"]));
        assert_eq!(plan.made(), names(&["Old", "Old/mail"]));
    }

    #[test]
    fn rename_refusals_name_the_mailbox() {
        let existing = || names(&["INBOX", "a", "a/b", "t", "t/b", "s"]);
        assert_eq!(rename_target(&mb("a"), &mb("b")), Ok(()));
        assert_eq!(
            rename_target(&mb("a"), &mb("a/b")),
            Err(MailboxRefusal::BelowItself {
                from: mb("a"),
                to: mb("a/b")
            })
        );
        let e = rename(&mb("a"), &mb("INBOX"), existing()).unwrap_err();
        assert_eq!(e, MailboxRefusal::AlreadyExists(MailboxName::inbox()));
        let e = rename(&mb("a"), &mb("a/inner"), existing()).unwrap_err();
        assert_eq!(
            e,
            MailboxRefusal::BelowItself {
                from: mb("a"),
                to: mb("a/inner")
            }
        );
        assert_eq!(e.to_string(), "Cannot rename a into itself (a/inner)");
        assert_eq!(e.mailbox(), mb("a"));
        let e = rename(&mb("nope"), &mb("nope2"), existing()).unwrap_err();
        assert_eq!(e, MailboxRefusal::NoSuchMailbox(mb("nope")));
        let e = rename(&mb("a"), &mb("s"), existing()).unwrap_err();
        assert_eq!(e, MailboxRefusal::AlreadyExists(mb("s")));
        assert_eq!(e.to_string(), "Mailbox already exists: s");
        let e = rename(&mb("a"), &mb("a"), existing()).unwrap_err();
        assert_eq!(e, MailboxRefusal::AlreadyExists(mb("a")), "onto itself");
        // A child's new name is taken: the refusal names the child's target.
        let e = rename(&mb("a"), &mb("t"), names(&["a", "a/b", "t/b"])).unwrap_err();
        assert_eq!(e, MailboxRefusal::AlreadyExists(mb("t/b")));
        // A child whose new name would be too long cannot move.
        let long = format!("a/{}", "x".repeat(MailboxName::MAX_LEN - 2));
        let e = rename(&mb("a"), &mb("abc"), names(&["a", &long])).unwrap_err();
        assert_eq!(e, MailboxRefusal::TooLong(mb(&long)));
        assert_eq!(e.mailbox(), mb(&long));
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn limits_bound_depth_and_count() {
        let made = names(&["p", "p/q"]);
        assert_eq!(check_limits(&mb("p/q"), 2, &made, 3, 5), Ok(()));
        let e = check_limits(&mb("p/q/r"), 2, &made, 3, 5).unwrap_err();
        assert_eq!(
            e,
            MailboxRefusal::TooDeep {
                name: mb("p/q/r"),
                max: 2
            }
        );
        assert!(e.to_string().contains("at most 2 levels"), "{e}");
        assert_eq!(e.mailbox(), mb("p/q/r"));
        let e = check_limits(&mb("p/q"), 2, &made, 4, 5).unwrap_err();
        assert_eq!(
            e,
            MailboxRefusal::TooMany {
                name: mb("p/q"),
                max: 5,
                existing: 4
            }
        );
        assert!(
            e.to_string()
                .starts_with("Too many mailboxes: at most 5 per user (you have 4"),
            "{e}"
        );
        assert_eq!(e.mailbox(), mb("p/q"));
        assert_eq!(
            check_limits(&mb("p"), 2, &[], 9, 5),
            Ok(()),
            "making nothing never exceeds the count"
        );
    }
}
