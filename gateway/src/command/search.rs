//! SEARCH and UID SEARCH (RFC 3501 6.4.4, 6.4.8): every search key, CHARSET UTF-8 and US-ASCII.
//! Keys that look only at metadata never touch message bodies; the others fetch the
//! bodies in batches (bounded by count and bytes, as FETCH's) and parse each message once.
//! With RETURN options the answer is ESEARCH's (RFC 4731: MIN, MAX, ALL, COUNT); SAVE
//! keeps the result for `$` (RFC 5182), which is also a search key here.
//! CONDSTORE's MODSEQ key (RFC 7162 3.1.5) matches messages whose modseq is at least
//! its value; pluto keeps one modseq per message, so an entry name and type are
//! ignored, as the RFC says; a SEARCH with it ends its answer with `(MODSEQ n)`, the
//! highest modseq of the messages found, and enables CONDSTORE for the session.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use imap_codec::imap_types::core::{AString, Charset, IString, Tag};
use imap_codec::imap_types::response::{Code, Data, Response};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{Flag, Keyword, Uid};

use super::search_syntax::{Program, ReturnOptions, SearchCommand};
use crate::response::{CmdError, CmdResult, Done};
use crate::searchres::{SavedResult, compact, ranges};
use crate::selected::{MailboxView, Msg, bounds};
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
    /// OLDER / YOUNGER (RFC 5032): internal date at or before / at or after this instant.
    AtOrBefore(DateTime<Utc>),
    AtOrAfter(DateTime<Utc>),
    Since(NaiveDate),
    SentBefore(NaiveDate),
    SentOn(NaiveDate),
    SentSince(NaiveDate),
    Header(String, String),
    /// FROM/TO/CC/BCC: the field's addresses, written in a normal form.
    Address(&'static str, String),
    Body(String),
    Text(String),
    /// A sequence set's or UID set's messages, as UID ranges: as many as the set has
    /// parts, whatever the mailbox's size.
    Uids(SavedResult),
    /// `$`: the saved result, shared by every `$` of the program (RFC 5182).
    Saved(Arc<SavedResult>),
    ModSeq(u64),
    /// EMAILID (RFC 8474 6); `None`: an id this server never gives, matching nothing.
    EmailId(Option<pluto_backends::ObjectId>),
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

    /// The program has a MODSEQ key somewhere (RFC 7162 3.1.5).
    fn has_modseq(&self) -> bool {
        match self {
            Key::ModSeq(_) => true,
            Key::Not(k) => k.has_modseq(),
            Key::Or(a, b) => a.has_modseq() || b.has_modseq(),
            Key::And(keys) => keys.iter().any(Key::has_modseq),
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
            Ok(Key::Uids(uid_ranges(selected, set, uid)))
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
            // RFC 5032: the internal date against the server's clock minus n seconds.
            SearchKey::Older(n) => Key::AtOrBefore(seconds_ago(n.get())),
            SearchKey::Younger(n) => Key::AtOrAfter(seconds_ago(n.get())),
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
            SearchKey::ModSequence { modseq, .. } => Key::ModSeq(*modseq),
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

    /// A program of the gateway's own parser (`$`, deeper nesting), as [`Key::build`].
    fn program(
        program: &Program,
        selected: &MailboxView,
        saved: &Arc<SavedResult>,
        room: usize,
    ) -> Result<Key, CmdError> {
        let Some(depth) = room.checked_sub(1) else {
            return Err(CmdError::bad("Search keys nested too deeply"));
        };
        let inner = |p: &Program| Key::program(p, selected, saved, depth);
        Ok(match program {
            Program::Key(key) => Key::build(key, selected, room)?,
            Program::Saved => Key::Saved(Arc::clone(saved)),
            Program::EmailId(id) => Key::EmailId(pluto_backends::ObjectId::parse(
                pluto_backends::ObjectKind::Email,
                id,
            )),
            // No THREADIDs (every message's is NIL): no message is in a thread.
            Program::ThreadId(_) => Key::EmailId(None),
            Program::Not(p) => Key::Not(Box::new(inner(p)?)),
            Program::Or(a, b) => Key::Or(Box::new(inner(a)?), Box::new(inner(b)?)),
            Program::And(ps) => Key::And(ps.iter().map(inner).collect::<Result<_, _>>()?),
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
            Key::AtOrBefore(t) => msg.internal_date <= *t,
            Key::AtOrAfter(t) => msg.internal_date >= *t,
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
            Key::Uids(uids) => uids.contains(msg.uid.get()),
            Key::Saved(saved) => saved.contains(msg.uid.get()),
            Key::ModSeq(n) => msg.modseq.0 >= *n,
            Key::EmailId(id) => id.as_ref() == Some(&msg.email_id),
            Key::Not(k) => !k.matches(msg, raw),
            Key::Or(a, b) => a.matches(msg, raw) || b.matches(msg, raw),
            Key::And(keys) => keys.iter().all(|k| k.matches(msg, raw)),
        }
    }
}

/// Now minus `seconds`, for OLDER and YOUNGER.
fn seconds_ago(seconds: u32) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::seconds(i64::from(seconds))
}

/// The message's header as text, for SEARCH TEXT.
fn header_text(m: &pluto_mime::Message<'_>) -> String {
    let header = m.section(Some(&imap_codec::imap_types::fetch::Section::Header(None)));
    String::from_utf8_lossy(header.as_deref().unwrap_or_default()).into_owned()
}

/// The UIDs a sequence set names in the selected mailbox, as ranges: one per part of
/// the set, so a line of many sets costs memory by its length, not by the mailbox's
/// size times its length. Sequence numbers past the end match nothing there.
fn uid_ranges(selected: &MailboxView, set: &SequenceSet, uid: bool) -> SavedResult {
    let messages = &selected.messages;
    let Some(last) = messages.last() else {
        return SavedResult::default();
    };
    let count = u32::try_from(messages.len()).unwrap_or(u32::MAX);
    let uid_at = |number: u32| messages[number as usize - 1].uid.get();
    let ranges = set
        .0
        .as_ref()
        .iter()
        .filter_map(|seq| {
            if uid {
                return Some(bounds(seq, last.uid.get()));
            }
            let (lo, hi) = bounds(seq, count);
            let hi = hi.min(count);
            (lo >= 1 && lo <= hi).then(|| (uid_at(lo), uid_at(hi)))
        })
        .collect();
    SavedResult::from_ranges(ranges)
}

/// What a search program matched: the messages' indexes, ascending, and whether it had
/// a MODSEQ key (then the answer ends with the highest modseq, RFC 7162 3.1.5).
pub(crate) struct Matched {
    pub(crate) hits: Vec<usize>,
    pub(crate) modseq_asked: bool,
}

impl Client {
    /// The messages of the selected mailbox `criteria` match (all of them, ANDed), for
    /// SEARCH, SORT and THREAD. Bodies are read only when a key needs them.
    pub(crate) async fn matching(
        &mut self,
        selected: &mut Selected,
        charset: Option<&Charset<'_>>,
        criteria: &[Program],
    ) -> Result<Matched, CmdError> {
        if let Some(charset) = charset {
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
        // One copy of the saved result for every `$` in the program.
        let in_saved = Arc::new(mailbox.saved.clone());
        let key = Key::And(
            criteria
                .iter()
                .map(|p| Key::program(p, mailbox, &in_saved, max_nesting))
                .collect::<Result<_, _>>()?,
        );
        let modseq_asked = key.has_modseq();
        if modseq_asked {
            self.condstore_on(Some(mailbox.highest_modseq)).await?;
        }
        let mut hits: Vec<usize> = Vec::new();
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
                        hits.push(i);
                    }
                }
            }
        } else {
            for (i, msg) in mailbox.messages.iter().enumerate() {
                if key.matches(msg, None) {
                    hits.push(i);
                }
            }
        }
        hits.sort_unstable();
        hits.dedup();
        Ok(Matched { hits, modseq_asked })
    }

    pub(crate) async fn cmd_search(
        &mut self,
        selected: &mut Selected,
        tag: &Tag<'_>,
        search: SearchCommand,
    ) -> CmdResult {
        let returns = search.returns;
        let result = self.search(selected, tag, search).await;
        // RFC 5182 2.1: a SAVE search answered NO leaves an empty result; a BAD one
        // leaves the result as it was.
        if returns.is_some_and(|r| r.save) && matches!(result, Err(CmdError::No { .. })) {
            selected.mailbox.saved.clear();
        }
        result
    }

    async fn search(
        &mut self,
        selected: &mut Selected,
        tag: &Tag<'_>,
        search: SearchCommand,
    ) -> CmdResult {
        let SearchCommand {
            uid,
            charset,
            criteria,
            returns,
            ..
        } = search;
        let Matched { hits, modseq_asked } =
            self.matching(selected, charset.as_ref(), &criteria).await?;
        let Selected { mailbox, .. } = selected;
        // `(MODSEQ n)` when the program asked about modseqs and found something: the
        // highest modseq of the messages the answer returns (RFC 7162 3.1.5: of MIN and
        // MAX alone when ESEARCH returns only those).
        let modseq_at = |i: &usize| mailbox.messages[*i].modseq.0;
        let highest = match returns {
            Some(r) if (r.min || r.max) && !r.all && !r.count => {
                let ends = [r.min.then(|| hits.first()), r.max.then(|| hits.last())];
                ends.into_iter().flatten().flatten().map(modseq_at).max()
            }
            _ => hits.iter().map(modseq_at).max(),
        }
        .unwrap_or(0);
        let modseq = std::num::NonZeroU64::new(highest).filter(|_| modseq_asked);
        let Some(returns) = returns else {
            let numbers = hits
                .iter()
                .map(|&i| number(mailbox, i, uid))
                .filter_map(std::num::NonZeroU32::new)
                .collect();
            self.send(&Response::Data(Data::Search(numbers, modseq)))
                .await?;
            return Ok(Done::ok("Search completed"));
        };
        if returns.save {
            mailbox.saved = to_save(mailbox, &hits, returns);
        }
        // RFC 5182 2.1: SAVE alone asks for no ESEARCH response.
        if returns.min || returns.max || returns.all || returns.count {
            let line = esearch_line(tag.inner(), mailbox, &hits, uid, returns, modseq);
            self.conn.send_encoded(line.as_bytes()).await?;
        }
        Ok(Done::ok(if returns.save {
            "Search completed, result saved"
        } else {
            "Search completed"
        }))
    }
}

/// The message at `index` as a UID or a sequence number.
fn number(mailbox: &MailboxView, index: usize, uid: bool) -> u32 {
    if uid {
        mailbox.messages[index].uid.get()
    } else {
        index as u32 + 1
    }
}

/// What SAVE keeps (RFC 5182 2.1): the whole result, or only the lowest and highest
/// message when MIN or MAX come without ALL or COUNT.
fn to_save(mailbox: &MailboxView, hits: &[usize], returns: ReturnOptions) -> SavedResult {
    let uid = |i: &usize| mailbox.messages[*i].uid.get();
    if (returns.min || returns.max) && !returns.all && !returns.count {
        let mut kept: Vec<u32> = Vec::new();
        if let (true, Some(first)) = (returns.min, hits.first()) {
            kept.push(uid(first));
        }
        if let (true, Some(last)) = (returns.max, hits.last()) {
            kept.push(uid(last));
        }
        kept.dedup();
        return SavedResult::from_ascending(kept);
    }
    SavedResult::from_ascending(hits.iter().map(uid))
}

/// `* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set] [COUNT n]` (RFC 4731 3.1):
/// MIN, MAX and ALL only when something matched, COUNT always when asked for.
fn esearch_line(
    tag: &str,
    mailbox: &MailboxView,
    hits: &[usize],
    uid: bool,
    returns: ReturnOptions,
    modseq: Option<std::num::NonZeroU64>,
) -> String {
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    if let (true, Some(&first)) = (returns.min, hits.first()) {
        line.push_str(&format!(" MIN {}", number(mailbox, first, uid)));
    }
    if let (true, Some(&last)) = (returns.max, hits.last()) {
        line.push_str(&format!(" MAX {}", number(mailbox, last, uid)));
    }
    if returns.all && !hits.is_empty() {
        let numbers = hits.iter().map(|&i| number(mailbox, i, uid));
        line.push_str(&format!(" ALL {}", compact(&ranges(numbers))));
    }
    if returns.count {
        line.push_str(&format!(" COUNT {}", hits.len()));
    }
    // RFC 7162 3.1.5: a search about modseqs tells the highest one found.
    if let Some(modseq) = modseq {
        line.push_str(&format!(" MODSEQ {modseq}"));
    }
    line.push_str("\r\n");
    line
}
