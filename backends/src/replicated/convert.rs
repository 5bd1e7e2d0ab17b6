//! Between the MailStore's types and the CRDT's: dates, views and errors. Both speak
//! the mail model's values (UIDs, flags, special use), so those need no mapping; the
//! CRDT crate knows nothing of this crate, so the rest of the mapping lives here.

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use pluto_crdt as crdt;

use crate::error::StoreError;
use crate::types::*;

pub(super) fn date_to_crdt(date: &DateTime<FixedOffset>) -> crdt::InternalDate {
    let minutes = date.offset().local_minus_utc() / 60;
    crdt::InternalDate {
        seconds: date.timestamp(),
        offset_minutes: i16::try_from(minutes).unwrap_or(0),
    }
}

pub(super) fn date_from_crdt(date: crdt::InternalDate) -> DateTime<FixedOffset> {
    let offset =
        FixedOffset::east_opt(i32::from(date.offset_minutes) * 60).unwrap_or_else(|| Utc.fix());
    match offset.timestamp_opt(date.seconds, 0) {
        chrono::LocalResult::Single(d) => d,
        _ => DateTime::<Utc>::UNIX_EPOCH.with_timezone(&offset),
    }
}

pub(super) fn now() -> crdt::InternalDate {
    crdt::InternalDate {
        seconds: Utc::now().timestamp(),
        offset_minutes: 0,
    }
}

/// The CRDT's view of a message holds the model's values already; the date is the
/// CRDT's own.
pub(super) fn meta_from_crdt(m: &crdt::MessageView) -> MessageMeta {
    MessageMeta {
        uid: m.uid,
        flags: m.flags.clone(),
        modseq: m.modseq,
        internal_date: date_from_crdt(m.internal_date),
        size: m.size,
        email_id: crate::objectid::replicated_email(&m.body.0),
    }
}

/// The MAILBOXID of the mailbox `name` resolves to in `st`: the same on every replica
/// that has converged on the mailbox's UIDVALIDITY.
pub(super) fn mailbox_object_id(
    st: &crdt::UserState,
    name: &MailboxName,
    uid_validity: UidValidity,
) -> Result<ObjectId, StoreError> {
    let id = st.mailbox_id(name).map_err(error_from_crdt)?;
    Ok(crate::objectid::replicated_mailbox(
        &id.name,
        id.incarnation,
        uid_validity.get(),
    ))
}

pub(super) fn snapshot_from_crdt(
    s: &crdt::MailboxSnapshot,
    mailbox_id: ObjectId,
) -> MailboxSnapshot {
    MailboxSnapshot {
        uid_validity: s.uid_validity,
        mailbox_id,
        uid_next: s.uid_next,
        highest_modseq: s.highest_modseq,
        messages: s.messages.iter().map(meta_from_crdt).collect(),
    }
}

/// Maps a CRDT error to the store's typed error. A refusal of the mailbox rules names
/// its own mailbox (the CRDT takes only [`MailboxName`]s and refuses with
/// `pluto_model::rules::namespace`), and maps as every other refusal does.
pub(super) fn error_from_crdt(e: crdt::CrdtError) -> StoreError {
    match e {
        crdt::CrdtError::Mailbox(refusal) => refusal.into(),
        crdt::CrdtError::UidsExhausted(name) => {
            StoreError::NotAllowed(format!("mailbox {name} has no UIDs left"))
        }
        // The replica waits for its own history from its peers: try again later.
        e @ crdt::CrdtError::OwnHistoryMissing { .. } => StoreError::Unavailable(e.to_string()),
        e => StoreError::Corrupt(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pluto_model::MailboxRefusal;

    #[test]
    fn a_replica_without_its_history_is_unavailable_not_corrupt() {
        let e = error_from_crdt(crdt::CrdtError::OwnHistoryMissing {
            replica: crdt::ReplicaId(2),
            issued: 0,
            known: 4,
            awaiting: 0,
        });
        assert!(
            matches!(&e, StoreError::Unavailable(why) if why.contains("restarted without its history")),
            "{e:?}"
        );
    }

    #[test]
    fn a_crdt_error_names_its_own_mailbox() {
        let name = MailboxName::new("Work/Old").unwrap();
        let e = error_from_crdt(crdt::CrdtError::Mailbox(MailboxRefusal::NoSuchMailbox(
            name.clone(),
        )));
        assert!(
            matches!(&e, StoreError::NoSuchMailbox(n) if *n == name),
            "{e:?}"
        );
        let sent = MailboxName::new("Sent").unwrap();
        let e = error_from_crdt(crdt::CrdtError::Mailbox(MailboxRefusal::AlreadyExists(
            sent.clone(),
        )));
        assert!(
            matches!(&e, StoreError::MailboxExists(n) if *n == sent),
            "{e:?}"
        );
        // A child whose new name would be too long: refused, naming the child.
        let long = MailboxName::new(format!("a/{}", "x".repeat(500))).unwrap();
        let e = error_from_crdt(crdt::CrdtError::Mailbox(MailboxRefusal::TooLong(
            long.clone(),
        )));
        assert!(
            matches!(&e, StoreError::NotAllowed(text) if text.contains(long.as_str())),
            "{e:?}"
        );
        let e = error_from_crdt(crdt::CrdtError::UidsExhausted(sent));
        assert!(
            matches!(&e, StoreError::NotAllowed(text) if text == "mailbox Sent has no UIDs left"),
            "{e:?}"
        );
    }

    #[test]
    fn dates_round_trip() {
        let d = DateTime::parse_from_rfc3339("2001-02-03T04:05:06+05:30").unwrap();
        let back = date_from_crdt(date_to_crdt(&d));
        assert_eq!(back, d);
        assert_eq!(back.offset().local_minus_utc(), 5 * 3600 + 1800);
    }
}
