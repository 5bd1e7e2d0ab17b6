//! The in-memory login counters: the whole throttle when no Redis is
//! configured, the fallback when it is down, and always a mirror of this
//! process's own attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Delays, Subject};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Attempts of one user from one address: the delay that matters.
    Pair(IpAddr, String),
    /// Attempts from one address for any user: the looser ceiling.
    Ip(IpAddr),
}

/// One key's record: attempts not (yet) successful, and the time slot given
/// to the latest of them.
#[derive(Debug, Clone, Copy)]
struct Counter {
    attempts: u64,
    slot: Instant,
}

/// Counters with a sliding expiry window and a bounded size.
#[derive(Debug)]
pub(crate) struct MemoryCounters {
    window: Duration,
    capacity: usize,
    counters: Mutex<HashMap<Key, Counter>>,
}

impl MemoryCounters {
    pub(crate) fn new(window: Duration, capacity: usize) -> MemoryCounters {
        MemoryCounters {
            window,
            capacity: capacity.max(16),
            counters: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Counter>> {
        // A panic elsewhere while holding the lock leaves plain counters
        // behind, still usable.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counter under `key`, unless it expired (a window after its slot).
    fn live(&self, map: &HashMap<Key, Counter>, key: &Key, now: Instant) -> Option<Counter> {
        map.get(key)
            .copied()
            .filter(|c| now.saturating_duration_since(c.slot) < self.window)
    }

    /// Takes the next slot on `key`: no earlier than now, and a penalty
    /// after the previous attempt's slot. Returns the new slot.
    fn take_slot(
        &self,
        map: &mut HashMap<Key, Counter>,
        key: Key,
        free: u64,
        d: &Delays,
        now: Instant,
    ) -> Instant {
        let (attempts, previous) = self
            .live(map, &key, now)
            .map_or((0, now), |c| (c.attempts, c.slot.max(now)));
        let slot = previous + d.penalty(attempts.saturating_sub(free));
        map.insert(
            key,
            Counter {
                attempts: attempts + 1,
                slot,
            },
        );
        slot
    }

    /// Reserves an attempt of `s` (counted as failed until it succeeds) and
    /// returns how long it must wait before its password is checked.
    pub(crate) fn reserve(&self, s: &Subject, d: &Delays) -> Duration {
        let mut map = self.lock();
        let now = Instant::now();
        let pair = self.take_slot(&mut map, Key::Pair(s.ip, s.user.clone()), 0, d, now);
        let ip = self.take_slot(&mut map, Key::Ip(s.ip), d.address_allowance, d, now);
        if map.len() > self.capacity {
            self.shrink(&mut map, now);
        }
        pair.max(ip).saturating_duration_since(now)
    }

    /// Reserved attempts and slots, for tests and status: (pair, address).
    pub(crate) fn attempts(&self, s: &Subject) -> (u64, u64) {
        let map = self.lock();
        let now = Instant::now();
        let count = |key: Key| self.live(&map, &key, now).map_or(0, |c| c.attempts);
        (count(Key::Pair(s.ip, s.user.clone())), count(Key::Ip(s.ip)))
    }

    /// A success: the pair's attempts go, and are taken back from the
    /// address's count.
    pub(crate) fn record_success(&self, s: &Subject) {
        let mut map = self.lock();
        let now = Instant::now();
        let own = self
            .live(&map, &Key::Pair(s.ip, s.user.clone()), now)
            .map_or(0, |c| c.attempts);
        map.remove(&Key::Pair(s.ip, s.user.clone()));
        self.take_back(&mut map, Key::Ip(s.ip), own.max(1), now);
    }

    /// An attempt whose outcome was not the client's doing (the user
    /// directory was down): it no longer counts.
    pub(crate) fn release(&self, s: &Subject) {
        let mut map = self.lock();
        let now = Instant::now();
        self.take_back(&mut map, Key::Pair(s.ip, s.user.clone()), 1, now);
        self.take_back(&mut map, Key::Ip(s.ip), 1, now);
    }

    fn take_back(&self, map: &mut HashMap<Key, Counter>, key: Key, n: u64, now: Instant) {
        let left = self
            .live(map, &key, now)
            .map_or(0, |c| c.attempts.saturating_sub(n));
        if left == 0 {
            map.remove(&key);
        } else if let Some(c) = map.get_mut(&key) {
            c.attempts = left;
        }
    }

    /// Drops expired counters, then — if an attacker made more live ones
    /// than the capacity — the oldest tenth.
    fn shrink(&self, map: &mut HashMap<Key, Counter>, now: Instant) {
        map.retain(|_, c| now.saturating_duration_since(c.slot) < self.window);
        if map.len() > self.capacity {
            let mut ages: Vec<Instant> = map.values().map(|c| c.slot).collect();
            let cut = map.len() - self.capacity + self.capacity / 10;
            let index = cut.min(ages.len() - 1);
            let (_, nth, _) = ages.select_nth_unstable(index);
            let threshold = *nth;
            map.retain(|_, c| c.slot > threshold);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MS: Duration = Duration::from_millis(1);

    fn subject(ip: u8, user: &str) -> Subject {
        Subject {
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, ip)),
            user: user.to_owned(),
        }
    }

    fn delays(allowance: u64) -> Delays {
        Delays {
            base: 1000 * MS,
            max: 8000 * MS,
            address_allowance: allowance,
        }
    }

    /// Rounds to whole seconds (the test itself takes microseconds).
    fn secs(d: Duration) -> u64 {
        (d + 100 * MS).as_secs()
    }

    #[test]
    fn others_failures_from_the_address_do_not_delay_a_user() {
        let m = MemoryCounters::new(Duration::from_secs(60), 1000);
        let d = delays(10);
        assert_eq!(secs(m.reserve(&subject(1, "alice"), &d)), 0);
        assert_eq!(secs(m.reserve(&subject(1, "bob"), &d)), 0);
        assert_eq!(secs(m.reserve(&subject(1, "carol"), &d)), 0);
        assert_eq!(m.attempts(&subject(1, "dave")), (0, 3));
        // Alice's second attempt is hers to wait for, not anyone else's.
        assert_eq!(secs(m.reserve(&subject(1, "alice"), &d)), 1);
        assert_eq!(secs(m.reserve(&subject(2, "alice"), &d)), 0);
    }

    #[test]
    fn parallel_reservations_queue_behind_each_other() {
        let m = MemoryCounters::new(Duration::from_secs(600), 1000);
        let d = delays(1000);
        let waits: Vec<u64> = (0..6)
            .map(|_| secs(m.reserve(&subject(1, "alice"), &d)))
            .collect();
        // 0, then +1, +2, +4, +8, +8: each slot after the previous one.
        assert_eq!(waits, [0, 1, 3, 7, 15, 23]);
    }

    #[test]
    fn success_forgives_only_the_users_own_attempts() {
        let m = MemoryCounters::new(Duration::from_secs(60), 1000);
        let d = delays(100);
        m.reserve(&subject(1, "alice"), &d);
        m.reserve(&subject(1, "alice"), &d);
        m.reserve(&subject(1, "bob"), &d);
        m.record_success(&subject(1, "alice"));
        assert_eq!(m.attempts(&subject(1, "alice")), (0, 1));
        m.release(&subject(1, "bob"));
        assert_eq!(m.attempts(&subject(1, "bob")), (0, 0));
    }

    #[test]
    fn counters_expire_after_the_window() {
        let m = MemoryCounters::new(Duration::from_millis(30), 1000);
        let d = Delays {
            base: MS,
            max: MS,
            address_allowance: 5,
        };
        m.reserve(&subject(1, "alice"), &d);
        assert_eq!(m.attempts(&subject(1, "alice")), (1, 1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(m.attempts(&subject(1, "alice")), (0, 0));
    }

    #[test]
    fn size_stays_bounded() {
        let m = MemoryCounters::new(Duration::from_secs(60), 100);
        let d = delays(1_000_000);
        for i in 0..2000 {
            m.reserve(&subject((i % 250) as u8, &format!("user{i}")), &d);
        }
        assert!(m.len() <= 100 + 2, "{} counters", m.len());
        assert_eq!(m.attempts(&subject((1999 % 250) as u8, "user1999")).0, 1);
    }
}
