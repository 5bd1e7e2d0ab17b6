//! Between the MailStore's types and the CRDT's: flags, dates, UIDs, special use,
//! errors. The CRDT crate knows nothing of this crate, so the mapping lives here.

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use pluto_crdt as crdt;

use crate::error::StoreError;
use crate::types::*;

pub fn flag_to_crdt(flag: &Flag) -> crdt::Flag {
    match flag {
        Flag::Seen => crdt::Flag::Seen,
        Flag::Answered => crdt::Flag::Answered,
        Flag::Flagged => crdt::Flag::Flagged,
        Flag::Deleted => crdt::Flag::Deleted,
        Flag::Draft => crdt::Flag::Draft,
        Flag::Keyword(k) => crdt::Flag::Keyword(k.as_str().to_owned()),
    }
}

pub fn flags_to_crdt(flags: &Flags) -> crdt::FlagSet {
    flags.iter().map(|f| flag_to_crdt(&f)).collect()
}

/// Keywords the CRDT holds were validated when they came in; one that is not a valid
/// keyword (a peer's bug) is left out rather than failing the whole answer.
pub fn flags_from_crdt(flags: &crdt::FlagSet) -> Flags {
    flags
        .iter()
        .filter_map(|f| {
            Some(match f {
                crdt::Flag::Seen => Flag::Seen,
                crdt::Flag::Answered => Flag::Answered,
                crdt::Flag::Flagged => Flag::Flagged,
                crdt::Flag::Deleted => Flag::Deleted,
                crdt::Flag::Draft => Flag::Draft,
                crdt::Flag::Keyword(k) => Flag::Keyword(Keyword::new(k).ok()?),
            })
        })
        .collect()
}

pub fn change_to_crdt(change: &FlagChange) -> crdt::FlagChange {
    let set = flags_to_crdt(&change.flags);
    match change.op {
        FlagOp::Add => crdt::FlagChange::Add(set),
        FlagOp::Remove => crdt::FlagChange::Remove(set),
        FlagOp::Replace => crdt::FlagChange::Replace(set),
    }
}

pub fn special_to_crdt(s: SpecialUse) -> crdt::SpecialUse {
    match s {
        SpecialUse::All => crdt::SpecialUse::All,
        SpecialUse::Archive => crdt::SpecialUse::Archive,
        SpecialUse::Drafts => crdt::SpecialUse::Drafts,
        SpecialUse::Flagged => crdt::SpecialUse::Flagged,
        SpecialUse::Junk => crdt::SpecialUse::Junk,
        SpecialUse::Sent => crdt::SpecialUse::Sent,
        SpecialUse::Trash => crdt::SpecialUse::Trash,
    }
}

pub fn special_from_crdt(s: crdt::SpecialUse) -> SpecialUse {
    match s {
        crdt::SpecialUse::All => SpecialUse::All,
        crdt::SpecialUse::Archive => SpecialUse::Archive,
        crdt::SpecialUse::Drafts => SpecialUse::Drafts,
        crdt::SpecialUse::Flagged => SpecialUse::Flagged,
        crdt::SpecialUse::Junk => SpecialUse::Junk,
        crdt::SpecialUse::Sent => SpecialUse::Sent,
        crdt::SpecialUse::Trash => SpecialUse::Trash,
    }
}

pub fn date_to_crdt(date: &DateTime<FixedOffset>) -> crdt::InternalDate {
    let minutes = date.offset().local_minus_utc() / 60;
    crdt::InternalDate {
        seconds: date.timestamp(),
        offset_minutes: i16::try_from(minutes).unwrap_or(0),
    }
}

pub fn date_from_crdt(date: crdt::InternalDate) -> DateTime<FixedOffset> {
    let offset =
        FixedOffset::east_opt(i32::from(date.offset_minutes) * 60).unwrap_or_else(|| Utc.fix());
    match offset.timestamp_opt(date.seconds, 0) {
        chrono::LocalResult::Single(d) => d,
        _ => DateTime::<Utc>::UNIX_EPOCH.with_timezone(&offset),
    }
}

pub fn now() -> crdt::InternalDate {
    crdt::InternalDate {
        seconds: Utc::now().timestamp(),
        offset_minutes: 0,
    }
}

pub fn uid_to_crdt(uid: Uid) -> crdt::Uid {
    crdt::Uid(uid.get())
}

pub fn uid_from_crdt(uid: crdt::Uid) -> Result<Uid, StoreError> {
    Uid::new(uid.0).ok_or_else(|| StoreError::Corrupt("the CRDT showed UID 0".into()))
}

pub fn validity_from_crdt(v: crdt::UidValidity) -> Result<UidValidity, StoreError> {
    UidValidity::new(v.0).ok_or_else(|| StoreError::Corrupt("the CRDT showed UIDVALIDITY 0".into()))
}

pub fn meta_from_crdt(m: &crdt::MessageView) -> Result<MessageMeta, StoreError> {
    Ok(MessageMeta {
        uid: uid_from_crdt(m.uid)?,
        flags: flags_from_crdt(&m.flags),
        modseq: ModSeq(m.modseq.0),
        internal_date: date_from_crdt(m.internal_date),
        size: m.size,
    })
}

pub fn snapshot_from_crdt(s: &crdt::MailboxSnapshot) -> Result<MailboxSnapshot, StoreError> {
    Ok(MailboxSnapshot {
        uid_validity: validity_from_crdt(s.uid_validity)?,
        uid_next: uid_from_crdt(s.uid_next)?,
        highest_modseq: ModSeq(s.highest_modseq.0),
        messages: s
            .messages
            .iter()
            .map(meta_from_crdt)
            .collect::<Result<_, _>>()?,
    })
}

fn name_of(name: &str) -> MailboxName {
    // The CRDT only holds names this crate gave it, or `name~UIDVALIDITY` variants of
    // them, which are valid too; INBOX is the safe stand-in for anything else.
    MailboxName::new(name).unwrap_or_else(|_| MailboxName::inbox())
}

/// Maps a CRDT error to the store's typed error.
pub fn error_from_crdt(e: crdt::CrdtError) -> StoreError {
    match e {
        crdt::CrdtError::MailboxNotFound(name) => StoreError::NoSuchMailbox(name_of(&name)),
        crdt::CrdtError::MailboxExists(name) => StoreError::MailboxExists(name_of(&name)),
        crdt::CrdtError::UidsExhausted(name) => {
            StoreError::NotAllowed(format!("mailbox {name} has no UIDs left"))
        }
        other => StoreError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates_and_flags_round_trip() {
        let d = DateTime::parse_from_rfc3339("2001-02-03T04:05:06+05:30").unwrap();
        let back = date_from_crdt(date_to_crdt(&d));
        assert_eq!(back, d);
        assert_eq!(back.offset().local_minus_utc(), 5 * 3600 + 1800);
        let flags: Flags = [
            Flag::Seen,
            Flag::Draft,
            Flag::Keyword(Keyword::new("$Label1").unwrap()),
        ]
        .into_iter()
        .collect();
        assert_eq!(flags_from_crdt(&flags_to_crdt(&flags)), flags);
    }
}
