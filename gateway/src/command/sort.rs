//! SORT and UID SORT (RFC 5256 3) with every sort key, DISPLAYFROM and DISPLAYTO
//! included (RFC 5957). The messages are chosen by the SEARCH code
//! ([`Client::matching`]); the keys come from the messages' headers only, read through
//! the header cache in batches ([`Client::per_header`]), so a SORT never reads a body
//! unless its search keys need one. What a SORT holds is one small record per matching
//! message: the keys asked for (numbers, and strings of at most [`MAX_TEXT_KEY`] bytes:
//! two subjects equal that far sort as equal).
//!
//! Strings compare in i;unicode-casemap form ([`pluto_mime::collation_key`]); messages
//! whose keys are all equal stay in mailbox order (RFC 5256 3). With a MODSEQ search key
//! the answer ends with `(MODSEQ n)`, the highest modseq of the messages sorted
//! (RFC 7162 3.1.5), as SEARCH's does.

use std::cmp::Ordering;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use pluto_backends::Uid;

use super::search::Matched;
use super::search_syntax::SearchCommand;
use crate::cache::MailboxKey;
use crate::response::{CmdError, CmdResult, Done};
use crate::selected::Msg;
use crate::session::{Client, Selected};

/// One sort key's value for one message.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Number(i64),
    Text(String),
}

/// Whether any key needs the message's header (ARRIVAL and SIZE do not).
fn needs_header(criteria: &[SortCriterion]) -> bool {
    criteria
        .iter()
        .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size))
}

/// The sent date of RFC 5256 2.2: the Date field, else the internal date; in seconds
/// since the epoch, UTC.
pub(super) fn sent_date(msg: &Msg, header: &pluto_mime::Message<'_>) -> i64 {
    header
        .sent_timestamp()
        .unwrap_or_else(|| msg.internal_date.timestamp())
}

/// Bytes of a string key compared at most: a hostile 1 MB subject costs no more.
const MAX_TEXT_KEY: usize = 1024;

fn truncated(mut s: String) -> String {
    if s.len() > MAX_TEXT_KEY {
        let mut end = MAX_TEXT_KEY;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn value(key: &SortKey, msg: &Msg, header: &pluto_mime::Message<'_>) -> Value {
    let text = |s: String| Value::Text(truncated(pluto_mime::collation_key(&s)));
    match key {
        SortKey::Arrival => Value::Number(msg.internal_date.timestamp()),
        SortKey::Size => Value::Number(i64::from(msg.size)),
        SortKey::Date => Value::Number(sent_date(msg, header)),
        SortKey::Subject => Value::Text(truncated(pluto_mime::base_subject(&header.subject()).0)),
        SortKey::From => text(header.first_mailbox("From")),
        SortKey::To => text(header.first_mailbox("To")),
        SortKey::Cc => text(header.first_mailbox("Cc")),
        SortKey::DisplayFrom => text(header.display_name("From")),
        SortKey::DisplayTo => text(header.display_name("To")),
    }
}

impl Client {
    /// `read(index, header)` for each message of `indexes` (positions in the selected
    /// mailbox), in their order: the headers come through the header cache, what it
    /// lacks from the store in batches of FETCH's size. A message the store no longer
    /// has (expunged, not yet announced) is read as an empty header.
    pub(super) async fn per_header<T>(
        &mut self,
        selected: &mut Selected,
        indexes: &[usize],
        mut read: impl FnMut(usize, &Msg, &pluto_mime::Message<'_>) -> T,
    ) -> Result<Vec<T>, CmdError> {
        let Selected { login, mailbox } = selected;
        let name = mailbox.name.clone();
        let key = std::sync::Arc::new(MailboxKey {
            user: login.user.clone(),
            mailbox: name.clone(),
            uid_validity: mailbox.uid_validity,
        });
        let empty = pluto_mime::Message::parse(b"");
        let mut out = Vec::with_capacity(indexes.len());
        for chunk in super::fetch::batches(indexes, |_| 0, false) {
            let uids: Vec<Uid> = chunk.iter().map(|&i| mailbox.messages[i].uid).collect();
            let found = self.cached(login, &name, &key, &uids, false).await?;
            // `found` is in the order asked, with what the store lacked left out.
            let mut found = found.into_iter().peekable();
            for (&i, uid) in chunk.iter().zip(&uids) {
                let msg = &mailbox.messages[i];
                match found.next_if(|f| f.uid == *uid) {
                    Some(f) => out.push(read(i, msg, &pluto_mime::Message::parse(f.bytes()))),
                    None => out.push(read(i, msg, &empty)),
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn cmd_sort(
        &mut self,
        selected: &mut Selected,
        criteria: Vec1<SortCriterion>,
        search: SearchCommand,
    ) -> CmdResult {
        let SearchCommand {
            uid,
            charset,
            criteria: program,
            ..
        } = search;
        let Matched { hits, modseq_asked } =
            self.matching(selected, charset.as_ref(), &program).await?;
        let criteria = criteria.into_inner();
        let keys = |i: usize, msg: &Msg, header: &pluto_mime::Message<'_>| {
            let values: Vec<Value> = criteria
                .iter()
                .map(|c| value(&c.key, msg, header))
                .collect();
            (values, i)
        };
        let mut records = if needs_header(&criteria) {
            self.per_header(selected, &hits, keys).await?
        } else {
            let empty = pluto_mime::Message::parse(b"");
            let messages = &selected.mailbox.messages;
            hits.iter()
                .map(|&i| keys(i, &messages[i], &empty))
                .collect()
        };
        records.sort_by(|(a, ia), (b, ib)| {
            let by_keys = criteria.iter().zip(a.iter().zip(b)).map(|(c, (x, y))| {
                let order = x.cmp(y);
                if c.reverse { order.reverse() } else { order }
            });
            by_keys
                .fold(Ordering::Equal, Ordering::then)
                .then(ia.cmp(ib))
        });
        let messages = &selected.mailbox.messages;
        let mut line = String::from("* SORT");
        for (_, i) in &records {
            let n = if uid {
                messages[*i].uid.get()
            } else {
                *i as u32 + 1
            };
            line.push_str(&format!(" {n}"));
        }
        let highest = records.iter().map(|(_, i)| messages[*i].modseq.0).max();
        if let (true, Some(modseq)) = (modseq_asked, highest.filter(|m| *m > 0)) {
            line.push_str(&format!(" (MODSEQ {modseq})"));
        }
        line.push_str("\r\n");
        self.conn.send_encoded(line.as_bytes()).await?;
        Ok(Done::ok("Sort completed"))
    }
}
