//! The gateway's cache of message headers and the ENVELOPEs made from them, shared by
//! every session of the process.
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
use imap_codec::imap_types::envelope::Envelope;
use pluto_backends::{MailboxName, MessageBody, Uid, UidValidity, UserId};

/// One mailbox incarnation of one user: the part of the key shared by its messages.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct MailboxKey {
    pub user: UserId,
    pub mailbox: MailboxName,
    pub uid_validity: UidValidity,
}

/// A message's header section, and its ENVELOPE once some FETCH wanted it.
#[derive(Debug)]
pub struct CachedHeader {
    pub uid: Uid,
    pub header: Bytes,
    envelope: OnceLock<Envelope<'static>>,
}

impl CachedHeader {
    fn new(uid: Uid, header: Bytes) -> Self {
        Self {
            uid,
            header,
            envelope: OnceLock::new(),
        }
    }

    /// The ENVELOPE, parsed from the header at the first call.
    pub fn envelope(&self) -> &Envelope<'static> {
        self.envelope
            .get_or_init(|| pluto_mime::envelope(&self.header))
    }

    /// What an entry holds, roughly: the header, an ENVELOPE of about the same size, and
    /// the bookkeeping of the maps.
    fn cost(&self) -> usize {
        2 * self.header.len() + 256
    }
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
            self.young_bytes -= previous.cost();
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

    /// The cached headers of `uids` in `mailbox`, in the order asked (`None`: not cached).
    pub fn get(&self, mailbox: &Arc<MailboxKey>, uids: &[Uid]) -> Vec<Option<Arc<CachedHeader>>> {
        if self.budget == 0 {
            return vec![None; uids.len()];
        }
        let mut maps = self.maps();
        let found: Vec<_> = uids
            .iter()
            .map(|&uid| {
                let key = (mailbox.clone(), uid);
                if let Some(entry) = maps.young.get(&key) {
                    return Some(entry.clone());
                }
                let entry = maps.old.remove(&key)?;
                maps.put(key, entry.clone(), self.budget);
                Some(entry)
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
        let entries: Vec<Arc<CachedHeader>> = headers
            .into_iter()
            .map(|h| Arc::new(CachedHeader::new(h.uid, h.bytes)))
            .collect();
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
        let got = cache.get(&alice, &uids(&[2, 3, 1]));
        assert_eq!(
            &got[0].as_ref().unwrap().header[..],
            b"Subject: two\r\n\r\n"
        );
        assert!(got[1].is_none());
        assert_eq!(
            &got[2].as_ref().unwrap().header[..],
            b"Subject: one\r\n\r\n"
        );
        assert!(cache.get(&key("bob", 7), &uids(&[1]))[0].is_none());
        assert!(cache.get(&key("alice", 8), &uids(&[1]))[0].is_none());
    }

    #[test]
    fn the_envelope_is_made_from_the_cached_header() {
        let cache = HeaderCache::new(1 << 20);
        let k = key("alice", 1);
        let entry = cache.insert(&k, vec![header(5, "hello")]).remove(0);
        let subject = entry.envelope().subject.clone();
        assert_eq!(
            subject,
            pluto_mime::envelope(b"Subject: hello\r\n\r\n").subject
        );
    }

    #[test]
    fn it_holds_at_most_its_budget_and_keeps_what_is_used() {
        // Each entry costs 2 × 20 + 256 = 296 bytes; a generation holds 2,000 bytes.
        let cache = HeaderCache::new(4000);
        let k = key("alice", 1);
        for uid in 1..=200 {
            cache.insert(&k, vec![header(uid, "0123")]);
            // UID 1 is read after every insertion: it must survive every turnover.
            assert!(cache.get(&k, &uids(&[1]))[0].is_some(), "after {uid}");
            assert!(cache.held() <= 4000, "{} bytes held", cache.held());
        }
        let kept = cache.get(&k, &uids(&(1..=200).collect::<Vec<_>>()));
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
        assert!(cache.get(&k, &uids(&[1]))[0].is_none());
        assert_eq!(cache.held(), 0);
    }
}
