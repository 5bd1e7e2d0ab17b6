//! What CREATE and RENAME share before they reach the store: the per-user bounds on
//! mailboxes (RFC 3501's own rules are `pluto_model::rules`, which every backend checks
//! too).

use pluto_backends::{MailboxList, MailboxName};
use pluto_model::rules;

use crate::response::CmdError;

/// The per-user bounds on mailboxes (`limits.max_mailboxes`, `limits.max_mailbox_depth`),
/// checked here for every backend: `made` are the names a CREATE or RENAME would add,
/// `deepest` the deepest name it would leave.
pub(super) fn check_mailbox_limits(
    limits: &crate::config::Limits,
    list: &MailboxList,
    made: &[MailboxName],
    deepest: &MailboxName,
) -> Result<(), CmdError> {
    rules::check_limits(
        deepest,
        limits.max_mailbox_depth,
        made,
        list.mailboxes.len(),
        limits.max_mailboxes,
    )?;
    Ok(())
}
