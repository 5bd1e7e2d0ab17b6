//! The gateway's cache of message headers, the ENVELOPEs made from them and, once a
//! FETCH read a whole message for it, its BODYSTRUCTURE; shared by every session of the
//! process.
//!
//! In IMAP a message is named for good by its user, its mailbox, the mailbox's
//! UIDVALIDITY and its UID: a UID is never given to another message while the
//! UIDVALIDITY stays, and a mailbox made again under an old name gets a new UIDVALIDITY
//! (both backends hand out UIDVALIDITYs that only grow per user). Messages never change
//! either. So a cached header never goes stale and the cache needs no invalidation; it
//! only has to forget what is not used. The user is part of the key: one user's
//! entries are never found by another's lookups.
//!
//! Why here and not in a store: clients ask for the same headers again and again
//! (every FETCH 1:n ENVELOPE on opening a mailbox), and in a cluster each miss costs a
//! Store RPC that carries the headers over the network. Kept in the gateway, a hit costs
//! neither a file read nor an RPC nor a MIME parse.
//!
//! Eviction is by two generations, a cheap approximation of LRU: entries go into the
//! young map; a hit in the old map moves the entry to the young one; when the young
//! map's bytes reach half the budget, the old map is dropped and the young one becomes
//! old. So at most the budget is held, and whatever was used within the last half-budget
//! of insertions survives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use imap_codec::imap_types::core::{IString, Literal, NString, Quoted};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::MessageDataItem;
use pluto_backends::{MailboxName, MessageBody, Uid, UidValidity, UserId};

/// One mailbox incarnation of one user: the part of the key shared by its messages.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct MailboxKey {
    pub user: UserId,
    pub mailbox: MailboxName,
    pub uid_validity: UidValidity,
}

/// A message's header section, and its ENVELOPE once some FETCH wanted it; its
/// BODYSTRUCTURE when the entry was made from the whole message.
#[derive(Debug)]
pub struct CachedHeader {
    pub uid: Uid,
    pub header: Bytes,
    envelope: OnceLock<Envelope<'static>>,
    /// The ENVELOPE item as sent (`ENVELOPE (…)`), encoded once.
    envelope_wire: OnceLock<Vec<u8>>,
    /// Set when the entry is made (it counts toward the entry's cost), never later.
    structure: Option<Structure>,
}

/// The BODYSTRUCTURE and BODY items of a message as sent.
#[derive(Debug)]
pub struct Structure {
    pub body_structure: Vec<u8>,
    pub body: Vec<u8>,
}

impl CachedHeader {
    fn new(uid: Uid, header: Bytes) -> Self {
        Self {
            uid,
            header,
            envelope: OnceLock::new(),
            envelope_wire: OnceLock::new(),
            structure: None,
        }
    }

    /// An entry from the whole message: its header (copied: the body is not kept) and
    /// its BODYSTRUCTURE and BODY, encoded.
    fn from_message(uid: Uid, raw: &[u8]) -> Self {
        let parsed = pluto_mime::Message::parse(raw);
        let structure = Structure {
            body_structure: crate::response::fetch_item_bytes(MessageDataItem::BodyStructure(
                parsed.body_structure(true),
            )),
            body: crate::response::fetch_item_bytes(MessageDataItem::Body(
                parsed.body_structure(false),
            )),
        };
        let header = Bytes::copy_from_slice(&raw[..pluto_backends::header_len(raw)]);
        Self {
            structure: Some(structure),
            ..Self::new(uid, header)
        }
    }

    /// BODYSTRUCTURE and BODY, when the entry was made from the whole message.
    pub fn structure(&self) -> Option<&Structure> {
        self.structure.as_ref()
    }

    /// The ENVELOPE, parsed from the header at the first call; borrowed from the entry,
    /// so that answering with it copies no string.
    pub fn envelope(&self) -> Envelope<'_> {
        let e = self
            .envelope
            .get_or_init(|| pluto_mime::envelope(&self.header));
        Envelope {
            date: borrow_nstring(&e.date),
            subject: borrow_nstring(&e.subject),
            from: borrow_addresses(&e.from),
            sender: borrow_addresses(&e.sender),
            reply_to: borrow_addresses(&e.reply_to),
            to: borrow_addresses(&e.to),
            cc: borrow_addresses(&e.cc),
            bcc: borrow_addresses(&e.bcc),
            in_reply_to: borrow_nstring(&e.in_reply_to),
            message_id: borrow_nstring(&e.message_id),
        }
    }

    /// The ENVELOPE data item as it goes on the wire, encoded at the first call.
    pub fn envelope_wire(&self) -> &[u8] {
        self.envelope_wire.get_or_init(|| {
            crate::response::fetch_item_bytes(MessageDataItem::Envelope(self.envelope()))
        })
    }

    /// What an entry holds, roughly: the header, an ENVELOPE and its encoding of about
    /// the same size each, and the bookkeeping of the maps.
    fn cost(&self) -> usize {
        let structure = self
            .structure
            .as_ref()
            .map_or(0, |s| s.body_structure.len() + s.body.len());
        3 * self.header.len() + structure + 256
    }
}

fn borrow_nstring<'a>(s: &'a NString<'_>) -> NString<'a> {
    NString(s.0.as_ref().map(|s| match s {
        IString::Quoted(q) => IString::Quoted(Quoted::unvalidated(q.inner())),
        IString::Literal(l) => {
            let mut borrowed = Literal::unvalidated(l.data());
            borrowed.set_mode(l.mode());
            IString::Literal(borrowed)
        }
    }))
}

fn borrow_addresses<'a>(list: &'a [Address<'_>]) -> Vec<Address<'a>> {
    list.iter()
        .map(|a| Address {
            name: borrow_nstring(&a.name),
            adl: borrow_nstring(&a.adl),
            mailbox: borrow_nstring(&a.mailbox),
            host: borrow_nstring(&a.host),
        })
        .collect()
}

type Key = (Arc<MailboxKey>, Uid);

#[derive(Default)]
struct Generations {
    young: HashMap<Key, Arc<CachedHeader>>,
    old: HashMap<Key, Arc<CachedHeader>>,
    young_bytes: usize,
}

impl Generations {
    fn put(&mut self, key: Key, entry: Arc<CachedHeader>, budget: usize) {
        self.young_bytes += entry.cost();
        if let Some(previous) = self.young.insert(key, entry) {
            self.young_bytes = self.young_bytes.saturating_sub(previous.cost());
        }
        if self.young_bytes >= budget / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
    }
}

/// See the module documentation.
pub struct HeaderCache {
    budget: usize,
    maps: Mutex<Generations>,
}

impl HeaderCache {
    /// A cache that holds at most about `budget` bytes; 0 turns it off.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            maps: Mutex::default(),
        }
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached entries of `uids` in `mailbox` that are `usable` (the caller needs, say,
    /// a BODYSTRUCTURE), in the order asked (`None`: not cached, or not usable).
    pub fn get(
        &self,
        mailbox: &Arc<MailboxKey>,
        uids: &[Uid],
        usable: impl Fn(&CachedHeader) -> bool,
    ) -> Vec<Option<Arc<CachedHeader>>> {
        if self.budget == 0 {
            return vec![None; uids.len()];
        }
        let mut maps = self.maps();
        let found: Vec<_> = uids
            .iter()
            .map(|&uid| {
                let key = (mailbox.clone(), uid);
                if let Some(entry) = maps.young.get(&key) {
                    return Some(entry.clone()).filter(|e| usable(e));
                }
                let entry = maps.old.remove(&key)?;
                maps.put(key, entry.clone(), self.budget);
                Some(entry).filter(|e| usable(e))
            })
            .collect();
        drop(maps);
        let hits = found.iter().filter(|e| e.is_some()).count();
        metrics::counter!(crate::metrics::HEADER_CACHE, "result" => "hit").increment(hits as u64);
        metrics::counter!(crate::metrics::HEADER_CACHE, "result" => "miss")
            .increment((uids.len() - hits) as u64);
        found
    }

    /// Remembers headers a store returned; gives them back as entries, in their order.
    pub fn insert(
        &self,
        mailbox: &Arc<MailboxKey>,
        headers: Vec<MessageBody>,
    ) -> Vec<Arc<CachedHeader>> {
        // Copied: a store's buffer may be larger than the header it holds, and the
        // budget counts header bytes.
        let entries = headers
            .into_iter()
            .map(|h| Arc::new(CachedHeader::new(h.uid, Bytes::copy_from_slice(&h.bytes))))
            .collect();
        self.keep(mailbox, entries)
    }

    /// Remembers whole messages a store returned, as their headers and BODYSTRUCTUREs
    /// (the bodies are not kept); gives them back as entries, in their order.
    pub fn insert_messages(
        &self,
        mailbox: &Arc<MailboxKey>,
        messages: Vec<MessageBody>,
    ) -> Vec<Arc<CachedHeader>> {
        let entries = messages
            .into_iter()
            .map(|m| Arc::new(CachedHeader::from_message(m.uid, &m.bytes)))
            .collect();
        self.keep(mailbox, entries)
    }

    fn keep(
        &self,
        mailbox: &Arc<MailboxKey>,
        entries: Vec<Arc<CachedHeader>>,
    ) -> Vec<Arc<CachedHeader>> {
        if self.budget > 0 {
            let mut maps = self.maps();
            for entry in &entries {
                // Larger than a generation: serve it, do not keep it.
                if entry.cost() < self.budget / 2 {
                    maps.put((mailbox.clone(), entry.uid), entry.clone(), self.budget);
                }
            }
        }
        entries
    }

    /// Bytes held now (by the estimate entries are counted with).
    pub fn held(&self) -> usize {
        let maps = self.maps();
        maps.young_bytes + maps.old.values().map(|e| e.cost()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(user: &str, validity: u32) -> Arc<MailboxKey> {
        Arc::new(MailboxKey {
            user: UserId::new(user).unwrap(),
            mailbox: MailboxName::inbox(),
            uid_validity: UidValidity::new(validity).unwrap(),
        })
    }

    fn header(uid: u32, text: &str) -> MessageBody {
        MessageBody {
            uid: Uid::new(uid).unwrap(),
            bytes: Bytes::from(format!("Subject: {text}\r\n\r\n")),
        }
    }

    fn uids(list: &[u32]) -> Vec<Uid> {
        list.iter().map(|&u| Uid::new(u).unwrap()).collect()
    }

    #[test]
    fn a_header_is_found_only_under_its_own_user_and_uidvalidity() {
        let cache = HeaderCache::new(1 << 20);
        let alice = key("alice", 7);
        cache.insert(&alice, vec![header(1, "one"), header(2, "two")]);
        let got = cache.get(&alice, &uids(&[2, 3, 1]), |_| true);
        assert_eq!(
            &got[0].as_ref().unwrap().header[..],
            b"Subject: two\r\n\r\n"
        );
        assert!(got[1].is_none());
        assert_eq!(
            &got[2].as_ref().unwrap().header[..],
            b"Subject: one\r\n\r\n"
        );
        assert!(cache.get(&key("bob", 7), &uids(&[1]), |_| true)[0].is_none());
        // A header entry has no BODYSTRUCTURE: not usable by those who need one.
        assert!(cache.get(&alice, &uids(&[1]), |e| e.structure().is_some())[0].is_none());
        let whole = cache.insert_messages(
            &alice,
            vec![MessageBody {
                uid: Uid::new(1).unwrap(),
                bytes: Bytes::from_static(b"Subject: one\r\n\r\nbody\r\n"),
            }],
        );
        assert!(whole[0].structure().is_some());
        assert_eq!(
            &whole[0].header[..],
            b"Subject: one\r\n\r\n",
            "the body is not kept"
        );
        let got = cache.get(&alice, &uids(&[1]), |e| e.structure().is_some());
        let structure = got[0].as_ref().unwrap().structure().unwrap();
        assert!(structure.body_structure.starts_with(b"BODYSTRUCTURE ("));
        assert!(structure.body.starts_with(b"BODY ("));
        assert!(cache.get(&key("alice", 8), &uids(&[1]), |_| true)[0].is_none());
    }

    #[test]
    fn the_envelope_is_made_from_the_cached_header() {
        let cache = HeaderCache::new(1 << 20);
        let k = key("alice", 1);
        let parsed = pluto_mime::envelope(
            b"From: A <a@example.com>\r\nSubject: =?UTF-8?Q?h=C3=A9llo?=\r\n\r\n",
        );
        let entry = cache
            .insert(
                &k,
                vec![MessageBody {
                    uid: Uid::new(6).unwrap(),
                    bytes: Bytes::from_static(
                        b"From: A <a@example.com>\r\nSubject: =?UTF-8?Q?h=C3=A9llo?=\r\n\r\n",
                    ),
                }],
            )
            .remove(0);
        assert_eq!(entry.envelope(), parsed);
        // The second call answers from the entry, the same.
        assert_eq!(entry.envelope(), parsed);
        let wire = String::from_utf8(entry.envelope_wire().to_vec()).unwrap();
        assert!(
            wire.starts_with(
                "ENVELOPE (NIL \"=?UTF-8?Q?h=C3=A9llo?=\" ((\"A\" NIL \"a\" \"example.com\"))"
            ),
            "{wire}"
        );
        assert!(wire.ends_with(" NIL NIL)"), "{wire}");
    }

    #[test]
    fn it_holds_at_most_its_budget_and_keeps_what_is_used() {
        // Each entry costs 3 × 20 + 256 = 316 bytes; a generation holds 2,000 bytes.
        let cache = HeaderCache::new(4000);
        let k = key("alice", 1);
        for uid in 1..=200 {
            cache.insert(&k, vec![header(uid, "0123")]);
            // UID 1 is read after every insertion: it must survive every turnover.
            assert!(
                cache.get(&k, &uids(&[1]), |_| true)[0].is_some(),
                "after {uid}"
            );
            assert!(cache.held() <= 4000, "{} bytes held", cache.held());
        }
        let kept = cache.get(&k, &uids(&(1..=200).collect::<Vec<_>>()), |_| true);
        let count = kept.iter().filter(|e| e.is_some()).count();
        assert!((5..=14).contains(&count), "{count} entries kept");
        // The most recent insertions are there.
        assert!(kept[199].is_some());
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = HeaderCache::new(0);
        let k = key("alice", 1);
        let served = cache.insert(&k, vec![header(1, "x")]);
        assert_eq!(served.len(), 1);
        assert!(cache.get(&k, &uids(&[1]), |_| true)[0].is_none());
        assert_eq!(cache.held(), 0);
    }
}
