//! SEARCH and UID SEARCH (RFC 3501 6.4.4, 6.4.8): every search key, CHARSET UTF-8 and US-ASCII.
//! Keys that look only at metadata never touch message bodies; the others fetch the
//! bodies in batches (bounded by count and bytes, as FETCH's) and parse each message once.

use std::collections::HashSet;

use chrono::NaiveDate;
use imap_codec::imap_types::core::{AString, Charset, IString, Vec1};
use imap_codec::imap_types::response::{Code, Data, Response};
use imap_codec::imap_types::search::SearchKey;
use pluto_backends::{Flag, Keyword, Uid};

use crate::response::{CmdError, CmdResult, Done};
use crate::selected::{MailboxView, Msg};
use crate::session::{Client, Selected};

fn astring(value: &AString<'_>) -> Result<String, CmdError> {
    let bytes: &[u8] = match value {
        AString::Atom(a) => a.inner().as_bytes(),
        AString::String(IString::Quoted(q)) => q.inner().as_bytes(),
        AString::String(IString::Literal(l)) => l.data(),
    };
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        CmdError::no_code(
            Code::BadCharset {
                allowed: Vec::new(),
            },
            "Search string is not valid UTF-8",
        )
    })
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// A search key with its strings decoded and its sets resolved, ready to test messages.
enum Key {
    All,
    Flag(Flag, bool),
    Recent(bool),
    Larger(u32),
    Smaller(u32),
    Before(NaiveDate),
    On(NaiveDate),
    Since(NaiveDate),
    SentBefore(NaiveDate),
    SentOn(NaiveDate),
    SentSince(NaiveDate),
    Header(String, String),
    /// FROM/TO/CC/BCC: the field's addresses, written in a normal form.
    Address(&'static str, String),
    Body(String),
    Text(String),
    Uids(HashSet<Uid>),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    And(Vec<Key>),
}

impl Key {
    fn needs_body(&self) -> bool {
        match self {
            Key::Header(..)
            | Key::Address(..)
            | Key::Body(_)
            | Key::Text(_)
            | Key::SentBefore(_)
            | Key::SentOn(_)
            | Key::SentSince(_) => true,
            Key::Not(k) => k.needs_body(),
            Key::Or(a, b) => a.needs_body() || b.needs_body(),
            Key::And(keys) => keys.iter().any(Key::needs_body),
            _ => false,
        }
    }

    /// `room`: how many more levels of nesting are allowed (`limits.max_nesting`).
    fn build(key: &SearchKey<'_>, selected: &MailboxView, room: usize) -> Result<Key, CmdError> {
        let Some(depth) = room.checked_sub(1) else {
            return Err(CmdError::bad("Search keys nested too deeply"));
        };
        let kw = |atom: &imap_codec::imap_types::core::Atom<'_>| {
            Keyword::new(atom.inner().to_owned())
                .map(Flag::Keyword)
                .map_err(|e| CmdError::bad(format!("Invalid keyword: {e}")))
        };
        let header = |name: &str, value: &AString<'_>| -> Result<Key, CmdError> {
            Ok(Key::Header(name.to_owned(), astring(value)?))
        };
        let set_uids = |set, uid: bool| -> Result<Key, CmdError> {
            let indexes = match selected.resolve(set, uid) {
                Ok(ix) => ix,
                // A search for sequence numbers past the end simply matches nothing there.
                Err(_) => {
                    let count = selected.messages.len();
                    clamp_resolve(selected, set)
                        .into_iter()
                        .filter(|&i| i < count)
                        .collect()
                }
            };
            Ok(Key::Uids(
                indexes
                    .into_iter()
                    .map(|i| selected.messages[i].uid)
                    .collect(),
            ))
        };
        Ok(match key {
            SearchKey::All => Key::All,
            SearchKey::Answered => Key::Flag(Flag::Answered, true),
            SearchKey::Unanswered => Key::Flag(Flag::Answered, false),
            SearchKey::Deleted => Key::Flag(Flag::Deleted, true),
            SearchKey::Undeleted => Key::Flag(Flag::Deleted, false),
            SearchKey::Draft => Key::Flag(Flag::Draft, true),
            SearchKey::Undraft => Key::Flag(Flag::Draft, false),
            SearchKey::Flagged => Key::Flag(Flag::Flagged, true),
            SearchKey::Unflagged => Key::Flag(Flag::Flagged, false),
            SearchKey::Seen => Key::Flag(Flag::Seen, true),
            SearchKey::Unseen => Key::Flag(Flag::Seen, false),
            SearchKey::Keyword(atom) => Key::Flag(kw(atom)?, true),
            SearchKey::Unkeyword(atom) => Key::Flag(kw(atom)?, false),
            // RFC 3501 6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT.
            SearchKey::Recent => Key::Recent(true),
            SearchKey::New => Key::And(vec![Key::Recent(true), Key::Flag(Flag::Seen, false)]),
            SearchKey::Old => Key::Recent(false),
            SearchKey::Larger(n) => Key::Larger(*n),
            SearchKey::Smaller(n) => Key::Smaller(*n),
            SearchKey::Before(d) => Key::Before(*d.as_ref()),
            SearchKey::On(d) => Key::On(*d.as_ref()),
            SearchKey::Since(d) => Key::Since(*d.as_ref()),
            SearchKey::SentBefore(d) => Key::SentBefore(*d.as_ref()),
            SearchKey::SentOn(d) => Key::SentOn(*d.as_ref()),
            SearchKey::SentSince(d) => Key::SentSince(*d.as_ref()),
            SearchKey::From(v) => Key::Address("From", astring(v)?),
            SearchKey::To(v) => Key::Address("To", astring(v)?),
            SearchKey::Cc(v) => Key::Address("Cc", astring(v)?),
            SearchKey::Bcc(v) => Key::Address("Bcc", astring(v)?),
            SearchKey::Subject(v) => header("Subject", v)?,
            SearchKey::Header(name, value) => Key::Header(astring(name)?, astring(value)?),
            SearchKey::Body(v) => Key::Body(astring(v)?),
            SearchKey::Text(v) => Key::Text(astring(v)?),
            SearchKey::Uid(set) => set_uids(set, true)?,
            SearchKey::SequenceSet(set) => set_uids(set, false)?,
            SearchKey::Not(k) => Key::Not(Box::new(Key::build(k, selected, depth)?)),
            SearchKey::Or(a, b) => Key::Or(
                Box::new(Key::build(a, selected, depth)?),
                Box::new(Key::build(b, selected, depth)?),
            ),
            SearchKey::And(keys) => Key::And(
                keys.as_ref()
                    .iter()
                    .map(|k| Key::build(k, selected, depth))
                    .collect::<Result<_, _>>()?,
            ),
            #[allow(unreachable_patterns)]
            _ => return Err(CmdError::bad("Search key not supported")),
        })
    }

    fn matches(&self, msg: &Msg, raw: Option<&pluto_mime::Message<'_>>) -> bool {
        let date = msg.internal_date.date_naive();
        match self {
            Key::All => true,
            Key::Flag(flag, set) => msg.flags.contains(flag) == *set,
            Key::Recent(want) => msg.recent == *want,
            Key::Larger(n) => msg.size > *n,
            Key::Smaller(n) => msg.size < *n,
            Key::Before(d) => date < *d,
            Key::On(d) => date == *d,
            Key::Since(d) => date >= *d,
            Key::SentBefore(d) => raw.and_then(|m| m.sent_date()).is_some_and(|s| s < *d),
            Key::SentOn(d) => raw.and_then(|m| m.sent_date()).is_some_and(|s| s == *d),
            Key::SentSince(d) => raw.and_then(|m| m.sent_date()).is_some_and(|s| s >= *d),
            Key::Header(name, value) => raw.is_some_and(|m| {
                let values = m.header_values(name);
                // HEADER name "" matches every message that has the field.
                if value.is_empty() {
                    !values.is_empty()
                } else {
                    values.iter().any(|v| contains_ci(v, value))
                }
            }),
            Key::Address(field, value) => raw.is_some_and(|m| {
                let values = m.address_values(field);
                // FROM "" matches every message that has the field, as HEADER does.
                if value.is_empty() {
                    !values.is_empty()
                } else {
                    values.iter().any(|v| contains_ci(v, value))
                }
            }),
            Key::Body(text) => raw.is_some_and(|m| contains_ci(&m.body_text(), text)),
            Key::Text(text) => raw.is_some_and(|m| {
                contains_ci(&header_text(m), text) || contains_ci(&m.body_text(), text)
            }),
            Key::Uids(uids) => uids.contains(&msg.uid),
            Key::Not(k) => !k.matches(msg, raw),
            Key::Or(a, b) => a.matches(msg, raw) || b.matches(msg, raw),
            Key::And(keys) => keys.iter().all(|k| k.matches(msg, raw)),
        }
    }
}

/// The message's header as text, for SEARCH TEXT.
fn header_text(m: &pluto_mime::Message<'_>) -> String {
    let header = m.section(Some(&imap_codec::imap_types::fetch::Section::Header(None)));
    String::from_utf8_lossy(header.as_deref().unwrap_or_default()).into_owned()
}

/// The indexes a sequence set names, clamped to the mailbox (for SEARCH).
fn clamp_resolve(
    selected: &MailboxView,
    set: &imap_codec::imap_types::sequence::SequenceSet,
) -> Vec<usize> {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    let count = selected.messages.len() as u32;
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => count,
    };
    let mut out = Vec::new();
    for seq in set.0.as_ref() {
        let (lo, hi) = match seq {
            Sequence::Single(v) => (value(v), value(v)),
            Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
        };
        let hi = hi.min(count);
        if lo >= 1 && lo <= hi {
            out.extend((lo as usize - 1)..(hi as usize));
        }
    }
    out
}

impl Client {
    pub(crate) async fn cmd_search(
        &mut self,
        selected: &mut Selected,
        charset: Option<Charset<'static>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
    ) -> CmdResult {
        if let Some(charset) = &charset {
            let name = match charset {
                Charset::Atom(a) => a.inner().to_owned(),
                Charset::Quoted(q) => q.inner().to_owned(),
            };
            if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
                let allowed = ["UTF-8", "US-ASCII"]
                    .into_iter()
                    .filter_map(|c| Charset::try_from(c).ok())
                    .collect();
                return Err(CmdError::no_code(
                    Code::BadCharset { allowed },
                    format!("Charset {name} is not supported"),
                ));
            }
        }
        let max_nesting = self.shared.config.limits.max_nesting;
        let Selected { login, mailbox } = selected;
        let criteria: Vec<SearchKey<'static>> = criteria.into_inner();
        let key = Key::And(
            criteria
                .iter()
                .map(|k| Key::build(k, mailbox, max_nesting))
                .collect::<Result<_, _>>()?,
        );
        let mut hits: Vec<u32> = Vec::new();
        if key.needs_body() {
            // Bounded by bytes as well as by count, as FETCH's batches are.
            let all: Vec<usize> = (0..mailbox.messages.len()).collect();
            let batches = super::fetch::batches(&all, |i| mailbox.messages[i].size, true);
            for chunk in &batches {
                let uids: Vec<Uid> = chunk.iter().map(|&i| mailbox.messages[i].uid).collect();
                let bodies = (login.store)
                    .fetch(&login.user, &mailbox.name, &uids)
                    .await?;
                for body in bodies {
                    let Some(i) = mailbox.index_of(body.uid) else {
                        continue;
                    };
                    let msg = &mailbox.messages[i];
                    let parsed = pluto_mime::Message::parse(&body.bytes);
                    if key.matches(msg, Some(&parsed)) {
                        hits.push(if uid { msg.uid.get() } else { i as u32 + 1 });
                    }
                }
            }
        } else {
            for (i, msg) in mailbox.messages.iter().enumerate() {
                if key.matches(msg, None) {
                    hits.push(if uid { msg.uid.get() } else { i as u32 + 1 });
                }
            }
        }
        hits.sort_unstable();
        let hits = hits
            .into_iter()
            .filter_map(std::num::NonZeroU32::new)
            .collect();
        self.send(&Response::Data(Data::Search(hits))).await?;
        Ok(Done::ok("Search completed"))
    }
}
