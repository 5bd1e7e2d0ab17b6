//! What CREATE and RENAME share before they reach the store: the per-user bounds on
//! mailboxes and the parents a new name would bring with it (RFC 3501 6.3.3, 6.3.5).

use pluto_backends::{MailboxList, MailboxName};

use crate::response::{CmdError, code};

/// The per-user bounds on mailboxes (`limits.max_mailboxes`, `limits.max_mailbox_depth`),
/// checked here for every backend: `made` are the names a CREATE or RENAME would add,
/// `deepest` the deepest name it would leave.
pub(super) fn check_mailbox_limits(
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
pub(super) fn missing_with_parents(list: &MailboxList, name: &MailboxName) -> Vec<MailboxName> {
    let exists = |n: &MailboxName| list.mailboxes.iter().any(|m| &m.name == n);
    name.ancestors()
        .into_iter()
        .chain(std::iter::once(name.clone()))
        .filter(|n| !exists(n))
        .collect()
}
