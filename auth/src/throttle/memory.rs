//! The in-memory failure counters: the whole throttle when no Redis is
//! configured, the fallback when it is down, and always a mirror of this
//! process's own failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Subject;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
    /// Failures of one user from one address: what a success takes back
    /// from the address's counter.
    Pair(IpAddr, String),
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u64,
    last: Instant,
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

    fn live(&self, map: &HashMap<Key, Counter>, key: &Key, now: Instant) -> u64 {
        map.get(key)
            .filter(|c| now.duration_since(c.last) < self.window)
            .map_or(0, |c| c.failures)
    }

    pub(crate) fn failures(&self, s: &Subject) -> u64 {
        let map = self.lock();
        let now = Instant::now();
        self.live(&map, &Key::Ip(s.ip), now)
            .max(self.live(&map, &Key::User(s.user.clone()), now))
    }

    pub(crate) fn record_failure(&self, s: &Subject) {
        let mut map = self.lock();
        let now = Instant::now();
        for key in [
            Key::Ip(s.ip),
            Key::User(s.user.clone()),
            Key::Pair(s.ip, s.user.clone()),
        ] {
            let failures = self.live(&map, &key, now) + 1;
            map.insert(
                key,
                Counter {
                    failures,
                    last: now,
                },
            );
        }
        if map.len() > self.capacity {
            self.shrink(&mut map, now);
        }
    }

    pub(crate) fn record_success(&self, s: &Subject) {
        let mut map = self.lock();
        let now = Instant::now();
        let own = self.live(&map, &Key::Pair(s.ip, s.user.clone()), now);
        map.remove(&Key::Pair(s.ip, s.user.clone()));
        map.remove(&Key::User(s.user.clone()));
        if own > 0 {
            let ip = Key::Ip(s.ip);
            let left = self.live(&map, &ip, now).saturating_sub(own);
            if left == 0 {
                map.remove(&ip);
            } else if let Some(c) = map.get_mut(&ip) {
                c.failures = left;
            }
        }
    }

    /// Drops expired counters, then — if an attacker made more live ones
    /// than the capacity — the oldest tenth.
    fn shrink(&self, map: &mut HashMap<Key, Counter>, now: Instant) {
        map.retain(|_, c| now.duration_since(c.last) < self.window);
        if map.len() > self.capacity {
            let mut ages: Vec<Instant> = map.values().map(|c| c.last).collect();
            let cut = map.len() - self.capacity + self.capacity / 10;
            let index = cut.min(ages.len() - 1);
            let (_, nth, _) = ages.select_nth_unstable(index);
            let threshold = *nth;
            map.retain(|_, c| c.last > threshold);
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

    fn subject(ip: u8, user: &str) -> Subject {
        Subject {
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, ip)),
            user: user.to_owned(),
        }
    }

    #[test]
    fn counts_per_address_and_per_user() {
        let m = MemoryCounters::new(Duration::from_secs(60), 1000);
        m.record_failure(&subject(1, "alice"));
        m.record_failure(&subject(1, "bob"));
        m.record_failure(&subject(1, "carol"));
        // Address 1 made three failures, whoever it asks for.
        assert_eq!(m.failures(&subject(1, "dave")), 3);
        // Alice failed once; another address asking for her sees that.
        assert_eq!(m.failures(&subject(2, "alice")), 1);
        assert_eq!(m.failures(&subject(2, "erin")), 0);
    }

    #[test]
    fn success_forgives_only_the_users_own_failures() {
        let m = MemoryCounters::new(Duration::from_secs(60), 1000);
        m.record_failure(&subject(1, "alice"));
        m.record_failure(&subject(1, "alice"));
        m.record_failure(&subject(1, "bob"));
        m.record_success(&subject(1, "alice"));
        assert_eq!(m.failures(&subject(3, "alice")), 0);
        // Bob's failure from address 1 still counts against it.
        assert_eq!(m.failures(&subject(1, "zed")), 1);
        m.record_success(&subject(1, "bob"));
        assert_eq!(m.failures(&subject(1, "zed")), 0);
    }

    #[test]
    fn counters_expire_after_the_window() {
        let m = MemoryCounters::new(Duration::from_millis(30), 1000);
        m.record_failure(&subject(1, "alice"));
        assert_eq!(m.failures(&subject(1, "alice")), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(m.failures(&subject(1, "alice")), 0);
        // A failure after expiry starts again from one.
        m.record_failure(&subject(1, "alice"));
        assert_eq!(m.failures(&subject(1, "alice")), 1);
    }

    #[test]
    fn size_stays_bounded() {
        let m = MemoryCounters::new(Duration::from_secs(60), 100);
        for i in 0..2000 {
            m.record_failure(&subject((i % 250) as u8, &format!("user{i}")));
        }
        assert!(m.len() <= 100 + 3, "{} counters", m.len());
        // The newest failure is still counted.
        assert!(m.failures(&subject((1999 % 250) as u8, "user1999")) >= 1);
    }
}
