//! `\Recent` (RFC 3501 2.3.2): which session is the first to be told of a message.
//!
//! It is session state, not mail state: it is not replicated and not written to disk.
//! It lives in the process that serves the mailbox (the `serve` process, or the worker
//! or storage node behind the gateways), so that every session on that node, whichever
//! gateway it came through, sees a message as recent at most once. The claim is a UID
//! high-water mark per mailbox (and UIDVALIDITY): every UID above it that exists when a
//! read-write session asks is that session's, and the mark moves past it. After a
//! restart the marks start again at zero, so messages are recent once more, as when
//! Dovecot loses its index.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::types::{MailboxName, MailboxStatus, RecentRange, UidValidity, UserId};

/// Bound on the marks kept; past it the oldest-keyed half is forgotten (those mailboxes'
/// messages may then be recent once more, which RFC 3501 allows after a restart too).
const MAX_MAILBOXES: usize = 100_000;

#[derive(Debug, Default)]
pub struct RecentClaims {
    marks: Mutex<HashMap<(UserId, MailboxName), (UidValidity, u32)>>,
}

impl RecentClaims {
    /// The UIDs above the mark up to the mailbox's highest (from `status`); with
    /// `claim`, they become the caller's and the mark moves to the highest.
    pub fn take(
        &self,
        user: &UserId,
        name: &MailboxName,
        status: &MailboxStatus,
        claim: bool,
    ) -> RecentRange {
        let highest = status.uid_next.0.get().saturating_sub(1);
        let Ok(mut marks) = self.marks.lock() else {
            // A poisoned lock: tell of nothing rather than of everything twice.
            return RecentRange {
                after: highest,
                upto: highest,
            };
        };
        if marks.len() >= MAX_MAILBOXES && !marks.contains_key(&(user.clone(), name.clone())) {
            let mut keys: Vec<_> = marks.keys().cloned().collect();
            keys.sort();
            for key in keys.into_iter().take(MAX_MAILBOXES / 2) {
                marks.remove(&key);
            }
        }
        let mark = marks
            .entry((user.clone(), name.clone()))
            .or_insert((status.uid_validity, 0));
        if mark.0 != status.uid_validity {
            // The mailbox was deleted and made again: none of its messages was shown.
            *mark = (status.uid_validity, 0);
        }
        let range = RecentRange {
            after: mark.1.min(highest),
            upto: highest,
        };
        if claim {
            mark.1 = mark.1.max(highest);
        }
        range
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::{ModSeq, Uid};

    fn status(uid_next: u32, validity: u32) -> MailboxStatus {
        MailboxStatus {
            messages: uid_next - 1,
            unseen: 0,
            deleted: 0,
            uid_next: Uid::new(uid_next).unwrap(),
            uid_validity: UidValidity::new(validity).unwrap(),
            highest_modseq: ModSeq(1),
            size: 0,
            mailbox_id: crate::types::ObjectId([0; 16]),
        }
    }

    #[test]
    fn a_mailbox_made_again_starts_over_and_peeking_claims_nothing() {
        let claims = RecentClaims::default();
        let user = UserId::new("u").unwrap();
        let inbox = MailboxName::inbox();
        let peek = claims.take(&user, &inbox, &status(4, 7), false);
        assert_eq!(peek, RecentRange { after: 0, upto: 3 });
        assert_eq!(claims.take(&user, &inbox, &status(4, 7), true), peek);
        assert_eq!(
            claims.take(&user, &inbox, &status(4, 7), true),
            RecentRange { after: 3, upto: 3 }
        );
        assert_eq!(
            claims.take(&user, &inbox, &status(6, 7), true),
            RecentRange { after: 3, upto: 5 }
        );
        // Deleted and made again (a new UIDVALIDITY): its messages were never shown.
        assert_eq!(
            claims.take(&user, &inbox, &status(3, 8), true),
            RecentRange { after: 0, upto: 2 }
        );
        // An empty mailbox has nothing recent.
        let empty = claims.take(
            &user,
            &MailboxName::new("Sent").unwrap(),
            &status(1, 9),
            true,
        );
        assert_eq!(empty, RecentRange { after: 0, upto: 0 });
    }
}
