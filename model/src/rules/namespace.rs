//! The namespace part of the mailbox rules: which names exist, which are free, what a
//! hierarchy becomes when it moves. No RFC 3501 rule is here (INBOX is a name like any
//! other), so the CRDT, which creates INBOX itself and whose simulator deletes and
//! renames freely, checks with these too; [`super`] adds the RFC rules on top for the
//! gateway and the backends.

use std::collections::BTreeSet;

use super::MailboxRefusal;
use crate::mailbox::MailboxName;

/// The mailbox `name` looked up (`found`), or [`MailboxRefusal::NoSuchMailbox`].
pub fn found<T>(name: &MailboxName, found: Option<T>) -> Result<T, MailboxRefusal> {
    found.ok_or_else(|| MailboxRefusal::NoSuchMailbox(name.clone()))
}

/// `name` is free for a new mailbox unless it `exists`
/// ([`MailboxRefusal::AlreadyExists`]).
pub fn free(name: &MailboxName, exists: bool) -> Result<(), MailboxRefusal> {
    if exists {
        return Err(MailboxRefusal::AlreadyExists(name.clone()));
    }
    Ok(())
}

/// `name` and those of its parents that do not exist, outermost first.
pub fn missing_with_parents(
    name: &MailboxName,
    exists: impl Fn(&MailboxName) -> bool,
) -> Vec<MailboxName> {
    name.ancestors()
        .into_iter()
        .chain(std::iter::once(name.clone()))
        .filter(|n| !exists(n))
        .collect()
}

/// The parents of `name` that do not exist, outermost first.
pub fn missing_parents(
    name: &MailboxName,
    exists: impl Fn(&MailboxName) -> bool,
) -> Vec<MailboxName> {
    name.ancestors()
        .into_iter()
        .filter(|n| !exists(n))
        .collect()
}

/// Moving the hierarchy at `from` (which must exist) to `to` (which must be free):
/// (old, new) for `from` and every existing name below it, `from` first. Each new
/// name must be free and short enough ([`MailboxRefusal::TooLong`] names the child
/// that cannot move).
pub fn subtree_moves(
    from: &MailboxName,
    to: &MailboxName,
    existing: &BTreeSet<MailboxName>,
) -> Result<Vec<(MailboxName, MailboxName)>, MailboxRefusal> {
    found(from, existing.get(from))?;
    free(to, existing.contains(to))?;
    let mut moves = vec![(from.clone(), to.clone())];
    for name in existing.iter().filter(|n| n.is_below(from)) {
        let Some(target) = name.rebase(from, to) else {
            return Err(MailboxRefusal::TooLong(name.clone()));
        };
        free(&target, existing.contains(&target))?;
        moves.push((name.clone(), target));
    }
    Ok(moves)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mb(s: &str) -> MailboxName {
        MailboxName::new(s).unwrap()
    }

    fn set(list: &[&str]) -> BTreeSet<MailboxName> {
        list.iter().map(|s| mb(s)).collect()
    }

    #[test]
    fn inbox_is_a_name_like_any_other() {
        let existing = set(&["INBOX", "INBOX/a"]);
        assert_eq!(free(&MailboxName::inbox(), false), Ok(()));
        assert_eq!(
            free(&MailboxName::inbox(), true),
            Err(MailboxRefusal::AlreadyExists(MailboxName::inbox()))
        );
        assert_eq!(
            found(&MailboxName::inbox(), existing.get(&MailboxName::inbox())),
            Ok(&MailboxName::inbox())
        );
        assert_eq!(
            subtree_moves(&MailboxName::inbox(), &mb("Old"), &existing),
            Ok(vec![
                (MailboxName::inbox(), mb("Old")),
                (mb("INBOX/a"), mb("Old/a"))
            ])
        );
        assert_eq!(
            missing_with_parents(&mb("INBOX/a/b"), |n| existing.contains(n)),
            vec![mb("INBOX/a/b")]
        );
    }

    #[test]
    fn each_refusal_names_its_mailbox() {
        let existing = set(&["a", "a/b", "t/b"]);
        assert_eq!(
            found::<()>(&mb("x"), None),
            Err(MailboxRefusal::NoSuchMailbox(mb("x")))
        );
        assert_eq!(
            subtree_moves(&mb("x"), &mb("y"), &existing),
            Err(MailboxRefusal::NoSuchMailbox(mb("x")))
        );
        assert_eq!(
            subtree_moves(&mb("a"), &mb("a"), &existing),
            Err(MailboxRefusal::AlreadyExists(mb("a")))
        );
        assert_eq!(
            subtree_moves(&mb("a"), &mb("t"), &existing),
            Err(MailboxRefusal::AlreadyExists(mb("t/b")))
        );
        let long = format!("a/{}", "x".repeat(MailboxName::MAX_LEN - 2));
        assert_eq!(
            subtree_moves(&mb("a"), &mb("abc"), &set(&["a", &long])),
            Err(MailboxRefusal::TooLong(mb(&long)))
        );
        assert_eq!(
            missing_parents(&mb("a/b/c/d"), |n| existing.contains(n)),
            vec![mb("a/b/c")]
        );
    }
}
