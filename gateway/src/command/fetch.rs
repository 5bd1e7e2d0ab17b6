//! FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8): every data item, the macros, `BODY[section]<partial>`
//! and BODY.PEEK. Bodies are fetched from the store in batches, and only when an item
//! needs them; a non-peek body fetch sets `\Seen` first, and the response carries the
//! new flags. Header-only FETCHes (ENVELOPE, BODY[HEADER…], RFC822.HEADER), with or
//! without BODY/BODYSTRUCTURE, go through the process's
//! [`HeaderCache`](crate::cache::HeaderCache) first; what it has goes out as the bytes
//! encoded when it was cached.
//!
//! Answers are streamed: bodies are asked of the store in batches bounded by count and
//! by bytes, each message's response is written item by item into the connection's
//! output (flushed to the socket as it fills, so a slow reader holds the server back
//! rather than filling its memory), and a body section goes out as a literal copied in
//! pieces from the message's bytes. So a FETCH needs no bound on what it asks for
//! (`BODY.PEEK[]` seven hundred times over is just a long answer): a session holds one
//! batch of bodies and a quarter MiB of output at most. Message bytes reach the wire
//! only through [`Connection::send_literal`], which sends NUL as 0x80 (as Dovecot does).
//!
//! CONDSTORE (RFC 7162 3.1.4, 3.1.4.1): the MODSEQ item, and the CHANGEDSINCE modifier,
//! which keeps the messages whose modseq is above it and adds MODSEQ; either enables
//! CONDSTORE for the session. QRESYNC (3.2.6): UID FETCH's VANISHED modifier (with
//! CHANGEDSINCE, once QRESYNC is enabled) first sends `VANISHED (EARLIER)` for the UIDs
//! of the set expunged since (see [`crate::resync`]).

use std::borrow::Cow;
use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;

use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::core::NString;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{Flag, FlagChange, FlagOp, Flags, MailboxName, ModSeq, ObjectKind, Uid};

use crate::cache::{CachedHeader, MailboxKey};
use crate::command::extra_items::FetchExtras;
use crate::response::{CmdError, CmdResult, Done, fetch_item_bytes};
use crate::resync::{UidRanges, vanished_earlier};
use crate::selected::{Enabled, MailboxView, Msg, wire_modseq};
use crate::session::{Authenticated, Client, Selected};
use crate::wire::Connection;

/// Messages whose bodies are fetched from the store in one call.
const BATCH: usize = 64;

/// Bytes of whole messages asked of the store in one call (at least one message).
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// `indexes` cut into store calls: at most [`BATCH`] messages, and with `by_bytes` at
/// most [`BATCH_BYTES`] of message sizes (a message larger than that goes alone). SEARCH
/// reads bodies in the same batches.
pub(crate) fn batches(
    indexes: &[usize],
    size: impl Fn(usize) -> u32,
    by_bytes: bool,
) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0u64;
    for &i in indexes {
        let this = if by_bytes { u64::from(size(i)) } else { 0 };
        if !current.is_empty() && (current.len() >= BATCH || bytes + this > BATCH_BYTES) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += this;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The message parsed at the first item that needs it.
fn parse<'m, 'a>(
    slot: &'m mut Option<pluto_mime::Message<'a>>,
    raw: &'a [u8],
) -> &'m pluto_mime::Message<'a> {
    slot.get_or_insert_with(|| pluto_mime::Message::parse(raw))
}

/// BODY[section] bytes (borrowed from the message where they lie in it); empty when the
/// section does not exist.
fn section<'a>(
    slot: &mut Option<pluto_mime::Message<'a>>,
    raw: &'a [u8],
    wanted: Option<&Section<'_>>,
) -> Cow<'a, [u8]> {
    parse(slot, raw).section(wanted).unwrap_or_default()
}

/// What goes before a literal item's data: `BODY[1.TEXT]<0> `, `RFC822 `. imap-codec
/// encodes the item with NIL for its data, and the NIL is cut off.
fn literal_prefix(item: &MessageDataItemName<'_>) -> Vec<u8> {
    let none = NString(None);
    let empty = match item {
        MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(none),
        MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(none),
        MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(none),
        MessageDataItemName::BodyExt {
            section, partial, ..
        } => MessageDataItem::BodyExt {
            section: section.clone(),
            origin: partial.map(|(start, _)| start),
            data: none,
        },
        _ => return Vec::new(),
    };
    let mut bytes = fetch_item_bytes(empty);
    bytes.truncate(bytes.len().saturating_sub(b"NIL".len()));
    bytes
}

/// One `* n FETCH (…)` response written item by item; nothing is written for a message
/// without any item.
struct FetchLine {
    seq: NonZeroU32,
    opened: bool,
}

impl FetchLine {
    fn new(seq: NonZeroU32) -> Self {
        Self { seq, opened: false }
    }

    async fn start_item(&mut self, conn: &mut Connection) -> std::io::Result<()> {
        if self.opened {
            conn.send_encoded(b" ").await
        } else {
            self.opened = true;
            conn.send_encoded(format!("* {} FETCH (", self.seq).as_bytes())
                .await
        }
    }

    /// An item already encoded.
    async fn item(&mut self, conn: &mut Connection, encoded: &[u8]) -> std::io::Result<()> {
        self.start_item(conn).await?;
        conn.send_encoded(encoded).await
    }

    /// An item whose data is message bytes, sent as a literal.
    async fn literal(
        &mut self,
        conn: &mut Connection,
        prefix: &[u8],
        data: &[u8],
    ) -> std::io::Result<()> {
        self.start_item(conn).await?;
        conn.send_encoded(prefix).await?;
        conn.send_literal(data).await
    }

    async fn end(self, conn: &mut Connection) -> std::io::Result<()> {
        if self.opened {
            conn.send_encoded(b")\r\n").await?;
        }
        Ok(())
    }
}

fn needs_body(item: &MessageDataItemName<'_>) -> bool {
    !matches!(
        item,
        MessageDataItemName::Flags
            | MessageDataItemName::InternalDate
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::Uid
            | MessageDataItemName::ModSeq
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
pub(super) struct Fetched {
    pub(super) uid: Uid,
    bytes: Bytes,
    cached: Option<Arc<CachedHeader>>,
}

impl Fetched {
    /// The bytes read: the header alone when they came through the cache.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn sets_seen(item: &MessageDataItemName<'_>) -> bool {
    matches!(
        item,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

/// The item names a FETCH asks for, macros expanded; UID FETCH always answers with the
/// UID (RFC 3501 6.4.8).
fn item_names(
    items: MacroOrMessageDataItemNames<'static>,
    uid: bool,
) -> Result<Vec<MessageDataItemName<'static>>, CmdError> {
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
            _ => return Err(CmdError::bad("Unknown FETCH macro")),
        },
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
    };
    if uid && !names.contains(&MessageDataItemName::Uid) {
        names.insert(0, MessageDataItemName::Uid);
    }
    Ok(names)
}

/// What a FETCH's items need, decided once before the first batch.
struct Plan {
    /// Some item needs the message's bytes (its header at least).
    want_body: bool,
    /// BODY/BODYSTRUCTURE with header items only: answered from the cache too
    /// (entries made from whole messages keep it).
    structural: bool,
    /// Some item sets `\Seen`, and the mailbox is read-write.
    want_seen: bool,
    /// The header cache's key, when the items can be answered from it.
    cache_key: Option<Arc<MailboxKey>>,
    /// Whole bodies are read, so batches are bounded by bytes as well as by count.
    whole_bodies: bool,
}

impl Plan {
    /// `preview`: PREVIEW was asked, which reads the whole message.
    fn new(
        names: &[MessageDataItemName<'_>],
        preview: bool,
        read_only: bool,
        key: impl FnOnce() -> MailboxKey,
    ) -> Self {
        let want_body = preview || names.iter().any(needs_body);
        let only_header = names.iter().all(header_only);
        let structural = names.iter().any(structure_item)
            && names.iter().all(|n| header_only(n) || structure_item(n));
        let want_seen = !read_only && names.iter().any(sets_seen);
        let cache_key =
            (want_body && !preview && (only_header || structural)).then(|| Arc::new(key()));
        let whole_bodies = want_body && (cache_key.is_none() || structural);
        Self {
            want_body,
            structural,
            want_seen,
            cache_key,
            whole_bodies,
        }
    }
}

/// Writes one message's `* n FETCH (…)` line, item by item, straight into the
/// connection's output; `body` is what the store or the cache gave for it (absent when
/// no item needs it), `extra_flags` adds FLAGS the items did not ask for (after a
/// `\Seen` change; and the new MODSEQ once CONDSTORE is on, RFC 7162 3.1.4).
#[allow(clippy::too_many_arguments)]
async fn write_message(
    conn: &mut Connection,
    names: &[MessageDataItemName<'_>],
    extras: FetchExtras,
    seq: NonZeroU32,
    msg: &Msg,
    body: Option<&Fetched>,
    want_body: bool,
    extra_flags: bool,
    enabled: Enabled,
) -> std::io::Result<()> {
    let raw: &[u8] = body.map(|b| &b.bytes[..]).unwrap_or_default();
    let cached = body.and_then(|b| b.cached.as_ref());
    // Parsed at the first item that needs it (a cached ENVELOPE does not). Header-only
    // and BODYSTRUCTURE FETCHes get cache entries, whose bytes are the header alone.
    let mut parsed: Option<pluto_mime::Message<'_>> = None;
    let mut line = FetchLine::new(seq);
    for item in names {
        write_item(
            conn,
            &mut line,
            item,
            msg,
            raw,
            cached,
            &mut parsed,
            want_body,
        )
        .await?;
    }
    write_extras(conn, &mut line, extras, msg, raw, &mut parsed, want_body).await?;
    if extra_flags {
        if !names.contains(&MessageDataItemName::Flags) {
            let flags = MessageDataItem::Flags(msg.wire_flags());
            line.item(conn, &fetch_item_bytes(flags)).await?;
        }
        if enabled.condstore && !names.contains(&MessageDataItemName::ModSeq) {
            let modseq = MessageDataItem::ModSeq(wire_modseq(msg.modseq));
            line.item(conn, &fetch_item_bytes(modseq)).await?;
        }
    }
    line.end(conn).await
}

/// The items imap-codec does not know: EMAILID, THREADID (NIL: this server computes
/// no threads, which RFC 8474 5.2's syntax allows) and PREVIEW (quoted when it is
/// printable ASCII, else a literal, as its UTF-8 needs).
async fn write_extras<'a>(
    conn: &mut Connection,
    line: &mut FetchLine,
    extras: FetchExtras,
    msg: &Msg,
    raw: &'a [u8],
    parsed: &mut Option<pluto_mime::Message<'a>>,
    want_body: bool,
) -> std::io::Result<()> {
    if extras.email_id {
        let id = msg.email_id.wire(ObjectKind::Email);
        line.item(conn, format!("EMAILID ({id})").as_bytes())
            .await?;
    }
    if extras.thread_id {
        line.item(conn, b"THREADID NIL").await?;
    }
    if extras.preview && want_body {
        let text = parse(parsed, raw).preview();
        if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
            line.item(conn, format!("PREVIEW \"{quoted}\"").as_bytes())
                .await?;
        } else {
            line.literal(conn, b"PREVIEW ", text.as_bytes()).await?;
        }
    }
    Ok(())
}

/// One item of a message's line: encoded here, taken from the cache, or (message
/// bytes) sent as a literal.
#[allow(clippy::too_many_arguments)]
async fn write_item<'a>(
    conn: &mut Connection,
    line: &mut FetchLine,
    item: &MessageDataItemName<'_>,
    msg: &Msg,
    raw: &'a [u8],
    cached: Option<&Arc<CachedHeader>>,
    parsed: &mut Option<pluto_mime::Message<'a>>,
    want_body: bool,
) -> std::io::Result<()> {
    let structure = cached.and_then(|c| c.structure());
    let data: Cow<'_, [u8]> = match item {
        MessageDataItemName::Flags => {
            let flags = MessageDataItem::Flags(msg.wire_flags());
            return line.item(conn, &fetch_item_bytes(flags)).await;
        }
        MessageDataItemName::Uid => {
            let uid = fetch_item_bytes(MessageDataItem::Uid(msg.uid.0));
            return line.item(conn, &uid).await;
        }
        MessageDataItemName::InternalDate => {
            let date = MessageDataItem::InternalDate(DateTime::unvalidated(msg.internal_date));
            return line.item(conn, &fetch_item_bytes(date)).await;
        }
        MessageDataItemName::Rfc822Size => {
            let size = fetch_item_bytes(MessageDataItem::Rfc822Size(msg.size));
            return line.item(conn, &size).await;
        }
        MessageDataItemName::ModSeq => {
            let modseq = fetch_item_bytes(MessageDataItem::ModSeq(wire_modseq(msg.modseq)));
            return line.item(conn, &modseq).await;
        }
        MessageDataItemName::Envelope => {
            return match cached {
                Some(c) => line.item(conn, c.envelope_wire()).await,
                None if want_body => {
                    let m = parse(parsed, raw);
                    let envelope = MessageDataItem::Envelope(m.envelope());
                    line.item(conn, &fetch_item_bytes(envelope)).await
                }
                None => Ok(()),
            };
        }
        MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
            let extended = matches!(item, MessageDataItemName::BodyStructure);
            return match structure {
                Some(s) if extended => line.item(conn, &s.body_structure).await,
                Some(s) => line.item(conn, &s.body).await,
                None if want_body => {
                    let m = parse(parsed, raw);
                    let shape = m.body_structure(extended);
                    let shape = if extended {
                        MessageDataItem::BodyStructure(shape)
                    } else {
                        MessageDataItem::Body(shape)
                    };
                    line.item(conn, &fetch_item_bytes(shape)).await
                }
                None => Ok(()),
            };
        }
        MessageDataItemName::Rfc822 => Cow::Borrowed(raw),
        MessageDataItemName::Rfc822Header => section(parsed, raw, Some(&Section::Header(None))),
        MessageDataItemName::Rfc822Text => section(parsed, raw, Some(&Section::Text(None))),
        MessageDataItemName::BodyExt {
            section: wanted,
            partial,
            ..
        } => {
            let data = section(parsed, raw, wanted.as_ref());
            match partial {
                Some((start, length)) => {
                    let start_at = (*start as usize).min(data.len());
                    let end = start_at
                        .saturating_add(length.get() as usize)
                        .min(data.len());
                    match data {
                        Cow::Borrowed(d) => Cow::Borrowed(&d[start_at..end]),
                        Cow::Owned(d) => Cow::Owned(d[start_at..end].to_vec()),
                    }
                }
                None => data,
            }
        }
        #[allow(unreachable_patterns)]
        _ => return Ok(()),
    };
    let prefix = literal_prefix(item);
    line.literal(conn, &prefix, &data).await
}

/// A FETCH's modifiers (RFC 7162 3.1.4.1, 3.2.6): CHANGEDSINCE, and whether VANISHED
/// was asked (which needs UID FETCH, CHANGEDSINCE and QRESYNC enabled).
fn changed_since(
    modifiers: &[FetchModifier],
    uid: bool,
    enabled: Enabled,
) -> Result<(Option<ModSeq>, bool), CmdError> {
    let mut since = None;
    let mut vanished = false;
    for m in modifiers {
        match m {
            FetchModifier::ChangedSince(n) if since.is_none() => since = Some(ModSeq(n.get())),
            FetchModifier::Vanished if !vanished => vanished = true,
            _ => return Err(CmdError::bad("A FETCH modifier is given twice")),
        }
    }
    if vanished {
        if !uid {
            return Err(CmdError::bad("VANISHED is only allowed in UID FETCH"));
        }
        if since.is_none() {
            return Err(CmdError::bad("VANISHED needs CHANGEDSINCE"));
        }
        if !enabled.qresync {
            return Err(CmdError::bad("VANISHED needs QRESYNC enabled first"));
        }
    }
    Ok((since, vanished))
}

impl Client {
    pub(crate) async fn cmd_fetch(
        &mut self,
        selected: &mut Selected,
        set: SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: Vec<FetchModifier>,
    ) -> CmdResult {
        let extras = std::mem::take(&mut self.extras).fetch;
        let mut names = item_names(items, uid)?;
        if extras.placeholder && !uid {
            names.retain(|n| *n != MessageDataItemName::Uid);
        }
        let (since, want_vanished) = changed_since(&modifiers, uid, self.enabled)?;
        if since.is_some() && !names.contains(&MessageDataItemName::ModSeq) {
            names.push(MessageDataItemName::ModSeq);
        }
        let Selected { login, mailbox } = selected;
        if names.contains(&MessageDataItemName::ModSeq) {
            self.condstore_on(Some(mailbox.highest_modseq)).await?;
        }
        if let (Some(since), true) = (since, want_vanished) {
            self.send_vanished(login, mailbox, &set, since).await?;
        }
        let mut indexes = mailbox.resolve(&set, uid)?;
        if let Some(since) = since {
            indexes.retain(|&i| mailbox.messages[i].modseq > since);
        }
        let plan = Plan::new(&names, extras.preview, mailbox.read_only, || MailboxKey {
            user: login.user.clone(),
            mailbox: mailbox.name.clone(),
            uid_validity: mailbox.uid_validity,
        });
        let batches = batches(&indexes, |i| mailbox.messages[i].size, plan.whole_bodies);
        for chunk in batches {
            self.fetch_batch(login, mailbox, (&names, extras), &plan, &chunk)
                .await?;
        }
        Ok(Done::ok("Fetch completed"))
    }

    /// One batch: `\Seen` first (so that the response shows the flags as they now are),
    /// then the bodies, then each message's line.
    async fn fetch_batch(
        &mut self,
        login: &Authenticated,
        mailbox: &mut MailboxView,
        (names, extras): (&[MessageDataItemName<'static>], FetchExtras),
        plan: &Plan,
        chunk: &[usize],
    ) -> Result<(), CmdError> {
        let flags_changed = if plan.want_seen {
            self.mark_seen(login, mailbox, chunk).await?
        } else {
            Vec::new()
        };
        let bodies = if plan.want_body {
            let uids: Vec<Uid> = chunk.iter().map(|&i| mailbox.messages[i].uid).collect();
            self.batch_bodies(login, &mailbox.name, plan, &uids).await?
        } else {
            Vec::new()
        };
        // One message at a time, item by item, straight into the connection's output
        // (flushed as it fills): nothing but this batch's bodies is held, and no
        // section is copied.
        let mut body_iter = bodies.iter().peekable();
        for &i in chunk {
            let msg = &mailbox.messages[i];
            let body = if plan.want_body {
                // Bodies come back in the order asked, expunged ones left out.
                match body_iter.peek() {
                    Some(b) if b.uid == msg.uid => body_iter.next(),
                    _ => continue,
                }
            } else {
                None
            };
            let seq = NonZeroU32::new(i as u32 + 1).unwrap_or(NonZeroU32::MIN);
            let extra_flags = flags_changed.contains(&msg.uid);
            write_message(
                &mut self.conn,
                names,
                extras,
                seq,
                msg,
                body,
                plan.want_body,
                extra_flags,
                self.enabled,
            )
            .await?;
        }
        Ok(())
    }

    /// UID FETCH (VANISHED): `* VANISHED (EARLIER) …` for the UIDs of `set` expunged
    /// after `since`, before any FETCH (RFC 7162 3.2.6).
    async fn send_vanished(
        &mut self,
        login: &Authenticated,
        mailbox: &mut MailboxView,
        set: &SequenceSet,
        since: ModSeq,
    ) -> Result<(), CmdError> {
        let largest = mailbox
            .messages
            .last()
            .map_or(0, |m| m.uid.get())
            .max(mailbox.uid_next.get().saturating_sub(1));
        let known = UidRanges::from_set(set, largest);
        let changes = (login.store)
            .changes_since(&login.user, &mailbox.name, since)
            .await?;
        if let Some(earlier) = vanished_earlier(&changes, &known, mailbox) {
            self.send(&earlier).await?;
        }
        Ok(())
    }

    /// The `\Seen` step: sets the flag on the batch's unseen messages and takes the new
    /// flags into the session's view. Returns the UIDs whose flags changed.
    async fn mark_seen(
        &mut self,
        login: &Authenticated,
        mailbox: &mut MailboxView,
        chunk: &[usize],
    ) -> Result<Vec<Uid>, CmdError> {
        let mut flags_changed: Vec<Uid> = Vec::new();
        let unseen: Vec<Uid> = chunk
            .iter()
            .map(|&i| &mailbox.messages[i])
            .filter(|m| !m.flags.contains(&Flag::Seen))
            .map(|m| m.uid)
            .collect();
        if unseen.is_empty() {
            return Ok(flags_changed);
        }
        let change = FlagChange {
            op: FlagOp::Add,
            flags: Flags::from_iter([Flag::Seen]),
        };
        let outcome = (login.store)
            .store_flags(&login.user, &mailbox.name, &unseen, &change, None)
            .await?;
        mailbox.note_own_store(&outcome.updated);
        for meta in outcome.updated {
            if let Some(i) = mailbox.index_of(meta.uid) {
                mailbox.messages[i].flags = meta.flags;
                mailbox.messages[i].modseq = meta.modseq;
                flags_changed.push(meta.uid);
            }
        }
        Ok(flags_changed)
    }

    /// The bytes of the batch's messages `uids`, in that order (expunged ones left out):
    /// through the header cache when the plan allows, else whole from the store.
    async fn batch_bodies(
        &mut self,
        login: &Authenticated,
        name: &MailboxName,
        plan: &Plan,
        uids: &[Uid],
    ) -> Result<Vec<Fetched>, CmdError> {
        Ok(match &plan.cache_key {
            Some(key) => self.cached(login, name, key, uids, plan.structural).await?,
            None => (login.store)
                .fetch(&login.user, name, uids)
                .await?
                .into_iter()
                .map(|b| Fetched {
                    uid: b.uid,
                    bytes: b.bytes,
                    cached: None,
                })
                .collect(),
        })
    }

    /// The cache entries of `uids` (in that order, expunged ones left out): from the cache,
    /// and what it lacks from the store in one call, then cached. With `structure`, an
    /// entry counts only if it has the BODYSTRUCTURE, and what is lacking is read whole.
    /// SORT and THREAD read their headers here too.
    pub(super) async fn cached(
        &mut self,
        login: &Authenticated,
        name: &MailboxName,
        key: &Arc<MailboxKey>,
        uids: &[Uid],
        structure: bool,
    ) -> Result<Vec<Fetched>, CmdError> {
        let cache = &self.shared.headers;
        let mut found = cache.get(key, uids, |e| !structure || e.structure().is_some());
        let missing: Vec<Uid> = uids
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(u, _)| *u)
            .collect();
        if !missing.is_empty() {
            let Authenticated { user, store, .. } = login;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use imap_codec::imap_types::core::{AString, IString, Literal, Vec1};
    use imap_codec::imap_types::fetch::Part;

    /// A literal item written as prefix + `{n}\r\n` + bytes is what imap-codec encodes.
    #[test]
    fn literal_prefixes_match_imap_codec() {
        let data = b"Subject: x\r\n\r\n".to_vec();
        let fields = Vec1::from(AString::try_from("Subject").unwrap());
        let part = Part(Vec1::from(NonZeroU32::new(2).unwrap()));
        let cases: Vec<(MessageDataItemName<'static>, Option<u32>)> = vec![
            (MessageDataItemName::Rfc822, None),
            (MessageDataItemName::Rfc822Text, None),
            (
                MessageDataItemName::BodyExt {
                    section: Some(Section::HeaderFields(Some(part), fields)),
                    partial: Some((5, NonZeroU32::new(9).unwrap())),
                    peek: true,
                },
                Some(5),
            ),
            (
                MessageDataItemName::BodyExt {
                    section: None,
                    partial: None,
                    peek: false,
                },
                None,
            ),
        ];
        for (name, origin) in cases {
            let literal = NString(Some(IString::Literal(
                Literal::try_from(data.clone()).unwrap(),
            )));
            let item = match &name {
                MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(literal),
                MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(literal),
                MessageDataItemName::BodyExt { section, .. } => MessageDataItem::BodyExt {
                    section: section.clone(),
                    origin,
                    data: literal,
                },
                _ => unreachable!(),
            };
            let mut ours = literal_prefix(&name);
            ours.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
            ours.extend_from_slice(&data);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&fetch_item_bytes(item))
            );
        }
    }
}
