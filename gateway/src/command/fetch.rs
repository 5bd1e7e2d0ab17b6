//! FETCH and UID FETCH: every RFC 3501 data item, the macros, BODY[section]<partial>
//! and BODY.PEEK. Bodies are fetched from the store in batches, and only when an item
//! needs them; a non-peek body fetch sets `\Seen` first, and the response carries the
//! new flags. Header-only FETCHes (ENVELOPE, BODY[HEADER…], RFC822.HEADER), with or
//! without BODY/BODYSTRUCTURE, go through the process's
//! [`HeaderCache`](crate::cache::HeaderCache) first; what it has goes out as the bytes
//! encoded when it was cached.

use std::cell::OnceCell;
use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;

use imap_codec::imap_types::core::{IString, Literal, NString, Quoted, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{Flag, FlagChange, FlagOp, Flags, MailboxName, Uid, UserId};

use crate::cache::{CachedHeader, MailboxKey};
use crate::response::{CmdResult, Done};
use crate::session::{Session, State};

/// Messages whose bodies are fetched from the store in one call.
const BATCH: usize = 64;

/// Message data as a literal; an empty value (a section that does not exist) as `""`,
/// as Dovecot answers it.
fn literal(bytes: Vec<u8>) -> NString<'static> {
    if bytes.is_empty() {
        return NString(Some(IString::Quoted(Quoted::unvalidated(""))));
    }
    NString(Some(IString::Literal(Literal::unvalidated(bytes))))
}

fn needs_body(item: &MessageDataItemName<'_>) -> bool {
    !matches!(
        item,
        MessageDataItemName::Flags
            | MessageDataItemName::InternalDate
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::Uid
    )
}

/// Items answered from the message's header alone: for these the body is not parsed
/// (ENVELOPE of a large message costs a header scan, not a MIME walk).
fn header_only(item: &MessageDataItemName<'_>) -> bool {
    match item {
        MessageDataItemName::Envelope | MessageDataItemName::Rfc822Header => true,
        MessageDataItemName::BodyExt { section, .. } => matches!(
            section,
            Some(
                Section::Header(None)
                    | Section::HeaderFields(None, _)
                    | Section::HeaderFieldsNot(None, _)
            )
        ),
        other => !needs_body(other),
    }
}

/// BODY and BODYSTRUCTURE: kept in the header cache once made from a whole message.
fn structure_item(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::Body | MessageDataItemName::BodyStructure
    )
}

/// A message's bytes as a FETCH got them: the whole message, or (header-only FETCHes)
/// its header, from the cache or the store.
struct Fetched {
    uid: Uid,
    bytes: Bytes,
    cached: Option<Arc<CachedHeader>>,
}

/// A FETCH response line, as imap-codec's response or already encoded.
enum Outgoing<'a> {
    Response(Response<'a>),
    Encoded(Vec<u8>),
}

fn sets_seen(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

impl Session {
    pub(crate) async fn cmd_fetch(
        &mut self,
        set: SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
    ) -> CmdResult {
        let user = self.user()?.clone();
        let mut names = match items {
            MacroOrMessageDataItemNames::Macro(m) => match m {
                Macro::Fast => vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                ],
                Macro::All => vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                    MessageDataItemName::Envelope,
                ],
                Macro::Full => vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                    MessageDataItemName::Envelope,
                    MessageDataItemName::Body,
                ],
                #[allow(unreachable_patterns)]
                _ => return Err(crate::response::CmdError::bad("Unknown FETCH macro")),
            },
            MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
        };
        // UID FETCH always answers with the UID (RFC 3501 6.4.8).
        if uid && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        let selected = self.selected()?;
        let indexes = selected.resolve(&set, uid)?;
        let name = selected.name.clone();
        let read_only = selected.read_only;
        let want_body = names.iter().any(needs_body);
        let only_header = names.iter().all(header_only);
        // BODYSTRUCTURE with header items only: answered from the cache too (entries made
        // from whole messages keep it).
        let structural = names.iter().any(structure_item)
            && names.iter().all(|n| header_only(n) || structure_item(n));
        let want_seen = !read_only && names.iter().any(sets_seen);
        let cache_key = (want_body && (only_header || structural)).then(|| {
            Arc::new(MailboxKey {
                user: user.clone(),
                mailbox: name.clone(),
                uid_validity: selected.uid_validity,
            })
        });

        for chunk in indexes.chunks(BATCH) {
            // Mark \Seen first, so that the response shows the flags as they now are.
            let mut flags_changed: Vec<Uid> = Vec::new();
            if want_seen {
                let selected = self.selected()?;
                let unseen: Vec<Uid> = chunk
                    .iter()
                    .map(|&i| &selected.messages[i])
                    .filter(|m| !m.flags.contains(&Flag::Seen))
                    .map(|m| m.uid)
                    .collect();
                if !unseen.is_empty() {
                    let change = FlagChange {
                        op: FlagOp::Add,
                        flags: Flags::from_iter([Flag::Seen]),
                    };
                    let outcome = self
                        .store()?
                        .store_flags(&user, &name, &unseen, &change, None)
                        .await?;
                    let selected = self.selected()?;
                    selected.note_own_store(&outcome.updated);
                    for meta in outcome.updated {
                        if let Some(i) = selected.index_of(meta.uid) {
                            selected.messages[i].flags = meta.flags;
                            selected.messages[i].modseq = meta.modseq;
                            flags_changed.push(meta.uid);
                        }
                    }
                }
            }
            let bodies = if want_body {
                let selected = self.selected()?;
                let uids: Vec<Uid> = chunk.iter().map(|&i| selected.messages[i].uid).collect();
                match &cache_key {
                    Some(key) => self.cached(&user, &name, key, &uids, structural).await?,
                    None => self
                        .store()?
                        .fetch(&user, &name, &uids)
                        .await?
                        .into_iter()
                        .map(|b| Fetched {
                            uid: b.uid,
                            bytes: b.bytes,
                            cached: None,
                        })
                        .collect(),
                }
            } else {
                Vec::new()
            };
            let mut responses = Vec::with_capacity(chunk.len());
            {
                let State::Selected(selected) = &self.state else {
                    break;
                };
                let mut body_iter = bodies.iter().peekable();
                for &i in chunk {
                    let msg = &selected.messages[i];
                    let body = if want_body {
                        // Bodies come back in the order asked, expunged ones left out.
                        match body_iter.peek() {
                            Some(b) if b.uid == msg.uid => body_iter.next(),
                            _ => continue,
                        }
                    } else {
                        None
                    };
                    let raw: &[u8] = body.map(|b| &b.bytes[..]).unwrap_or_default();
                    let cached = body.and_then(|b| b.cached.as_ref());
                    let structure = cached.and_then(|c| c.structure());
                    // Parsed at the first item that needs it (a cached ENVELOPE does not).
                    // Header-only and BODYSTRUCTURE FETCHes get cache entries, whose bytes
                    // are the header alone.
                    let parsed = OnceCell::new();
                    let parsed = || {
                        want_body.then(|| parsed.get_or_init(|| pluto_mime::Message::parse(raw)))
                    };
                    let section = |s: Option<&Section<'_>>| -> Vec<u8> {
                        parsed()
                            .and_then(|m| m.section(s))
                            .map(|c| c.into_owned())
                            .unwrap_or_default()
                    };
                    let mut items = Vec::with_capacity(names.len() + 1);
                    // Cached items go out as the bytes encoded when they were cached.
                    let mut encoded: Vec<(usize, &[u8])> = Vec::new();
                    for item in &names {
                        items.push(match item {
                            MessageDataItemName::Flags => MessageDataItem::Flags(msg.wire_flags()),
                            MessageDataItemName::Uid => MessageDataItem::Uid(msg.uid.0),
                            MessageDataItemName::InternalDate => MessageDataItem::InternalDate(
                                DateTime::unvalidated(msg.internal_date),
                            ),
                            MessageDataItemName::Rfc822Size => {
                                MessageDataItem::Rfc822Size(msg.size)
                            }
                            MessageDataItemName::Envelope => match cached {
                                Some(c) => {
                                    encoded.push((items.len() + encoded.len(), c.envelope_wire()));
                                    continue;
                                }
                                None => match parsed() {
                                    Some(m) => MessageDataItem::Envelope(m.envelope()),
                                    None => continue,
                                },
                            },
                            MessageDataItemName::Body => match structure {
                                Some(s) => {
                                    encoded.push((items.len() + encoded.len(), &s.body));
                                    continue;
                                }
                                None => match parsed() {
                                    Some(m) => MessageDataItem::Body(m.body_structure(false)),
                                    None => continue,
                                },
                            },
                            MessageDataItemName::BodyStructure => match structure {
                                Some(s) => {
                                    encoded.push((items.len() + encoded.len(), &s.body_structure));
                                    continue;
                                }
                                None => match parsed() {
                                    Some(m) => {
                                        MessageDataItem::BodyStructure(m.body_structure(true))
                                    }
                                    None => continue,
                                },
                            },
                            MessageDataItemName::Rfc822 => {
                                MessageDataItem::Rfc822(literal(raw.to_vec()))
                            }
                            MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(
                                literal(section(Some(&Section::Header(None)))),
                            ),
                            MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(
                                literal(section(Some(&Section::Text(None)))),
                            ),
                            MessageDataItemName::BodyExt {
                                section: wanted,
                                partial,
                                ..
                            } => {
                                let data = section(wanted.as_ref());
                                let (origin, data) = match partial {
                                    Some((start, length)) => {
                                        let start_at = (*start as usize).min(data.len());
                                        let end = start_at
                                            .saturating_add(length.get() as usize)
                                            .min(data.len());
                                        (Some(*start), data[start_at..end].to_vec())
                                    }
                                    None => (None, data),
                                };
                                MessageDataItem::BodyExt {
                                    section: wanted.clone(),
                                    origin,
                                    data: literal(data),
                                }
                            }
                            #[allow(unreachable_patterns)]
                            _ => continue,
                        });
                    }
                    if flags_changed.contains(&msg.uid)
                        && !names.contains(&MessageDataItemName::Flags)
                    {
                        items.push(MessageDataItem::Flags(msg.wire_flags()));
                    }
                    let seq = NonZeroU32::new(i as u32 + 1).unwrap_or(NonZeroU32::MIN);
                    if !encoded.is_empty() {
                        let line = crate::response::fetch_line(seq, items, &encoded);
                        responses.push(Outgoing::Encoded(line));
                        continue;
                    }
                    let Ok(items) = Vec1::try_from(items) else {
                        continue;
                    };
                    responses.push(Outgoing::Response(Response::Data(Data::Fetch {
                        seq,
                        items,
                    })));
                }
            }
            for r in responses {
                match r {
                    Outgoing::Response(r) => self.conn.send(&r).await?,
                    Outgoing::Encoded(line) => self.conn.send_encoded(&line).await?,
                }
            }
        }
        Ok(Done::ok("Fetch completed"))
    }

    /// The cache entries of `uids` (in that order, expunged ones left out): from the cache,
    /// and what it lacks from the store in one call, then cached. With `structure`, an
    /// entry counts only if it has the BODYSTRUCTURE, and what is lacking is read whole.
    async fn cached(
        &mut self,
        user: &UserId,
        name: &MailboxName,
        key: &Arc<MailboxKey>,
        uids: &[Uid],
        structure: bool,
    ) -> Result<Vec<Fetched>, crate::response::CmdError> {
        let cache = &self.shared.headers;
        let mut found = cache.get(key, uids, |e| !structure || e.structure().is_some());
        let missing: Vec<Uid> = uids
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(u, _)| *u)
            .collect();
        if !missing.is_empty() {
            let store = self.store()?;
            let read = if structure {
                let whole = store.fetch(user, name, &missing).await?;
                cache.insert_messages(key, whole)
            } else {
                cache.insert(key, store.fetch_headers(user, name, &missing).await?)
            };
            // The store answers in the order asked, so a merge puts each where it belongs.
            let mut read = read.into_iter().peekable();
            for (uid, slot) in uids.iter().zip(found.iter_mut()) {
                if slot.is_none() && read.peek().is_some_and(|e| e.uid == *uid) {
                    *slot = read.next();
                }
            }
        }
        Ok(found
            .into_iter()
            .flatten()
            .map(|c| Fetched {
                uid: c.uid,
                bytes: c.header.clone(),
                cached: Some(c),
            })
            .collect())
    }
}
