//! Login throttling: a growing delay before the password of a login is
//! checked, keyed by (user name, remote address), with a much looser
//! ceiling per address, shared by every gateway through Redis.
//!
//! The delay follows Dovecot's auth penalty: none for the first attempt,
//! then 2 s, doubling with each further failure, capped at 15 s (all three
//! configurable — tests scale them down). It is counted per (user, address):
//! a colleague's mistyped passwords behind the same NAT never slow anyone
//! else down. The address alone has its own counter that only bites after
//! `address_allowance` failures (default 50) for any users — a password
//! spray from one address — and then grows the same way.
//!
//! Parallel guesses cannot share a slot: every attempt *reserves* its slot
//! before its password is checked, atomically (one Lua script in Redis, one
//! lock in memory), and counts as a failure until it succeeds. A slot is no
//! earlier than now and one penalty after the previous attempt's slot, so
//! 40 parallel guesses queue up one behind the other exactly as 40
//! sequential ones would. A success wakes the attempts of the same user from
//! the same address that were queued on this gateway behind it
//! ([`Throttle::wait`]): their wait was for an attempt that turned out not to
//! be a failure, so each takes a fresh slot, and a client that opens five
//! connections with the right password at once is not held up by penalties.
//! A success clears its own (user, address) key and
//! takes that key's attempts back from the address's count (an attacker
//! cannot wipe the address's record of guesses at *other* users by logging
//! into an account of their own). An attempt that failed for a reason that
//! is not the client's (the user directory was down) is released. Counters
//! expire a window (15 min) after their latest slot.
//!
//! IPv6 addresses are counted per /64, the block a single host usually
//! controls; IPv4-mapped IPv6 addresses count as the IPv4 address.
//!
//! Backends: Redis ([`redis`] module) when a URL is configured, always
//! mirrored by an in-memory limiter ([`memory`] module). When Redis cannot be
//! reached, the throttle answers from the local limiter, logs one warning for
//! the outage (not one per login) and tries Redis again after a pause. A
//! login is never refused or held up for long because of Redis.

mod memory;
mod redis;

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::watch;

use crate::AuthError;

use self::memory::MemoryCounters;
use self::redis::RedisCounters;

/// Settings of the login throttle. Start from [`ThrottleConfig::default`].
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// `redis://host:port[/db]`; `None` keeps the counters in this process
    /// only. Default `None`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so that several deployments (or tests) can
    /// share one Redis. Default `pluto:throttle:`.
    pub key_prefix: String,
    /// Delay after the first failure. Default 2 s.
    pub base_delay: Duration,
    /// Largest delay. Default 15 s.
    pub max_delay: Duration,
    /// Failed attempts from one address, for any users, before the
    /// address's own delay starts (the per-address ceiling). Default 50.
    pub address_allowance: u64,
    /// A counter is forgotten this long after its last failure. Default 15 min.
    pub window: Duration,
    /// Longest wait for one Redis operation (and for connecting) before the
    /// local limiter answers instead. Default 500 ms.
    pub redis_timeout: Duration,
    /// After a Redis failure, how long to use only the local limiter before
    /// trying Redis again. Default 10 s.
    pub redis_retry: Duration,
    /// Most counters the local limiter keeps; beyond it, expired and then
    /// the oldest counters are dropped so memory stays bounded. Default 100 000.
    pub local_capacity: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            redis_url: None,
            key_prefix: "pluto:throttle:".to_owned(),
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15),
            address_allowance: 50,
            window: Duration::from_secs(15 * 60),
            redis_timeout: Duration::from_millis(500),
            redis_retry: Duration::from_secs(10),
            local_capacity: 100_000,
        }
    }
}

/// Where a throttle's answers currently come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleBackend {
    /// No Redis configured: this process only.
    Local,
    /// Redis answered the last operation: shared by all gateways.
    Redis,
    /// Redis is configured but unreachable: this process only, for now.
    LocalFallback,
}

/// What a throttle counts: an address (IPv6 per /64) and a user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Subject {
    pub(crate) ip: IpAddr,
    pub(crate) user: String,
}

impl Subject {
    fn new(ip: IpAddr, user: &str) -> Subject {
        Subject {
            ip: normalize_ip(ip),
            user: normalize_user(user),
        }
    }
}

fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// User names are counted case-insensitively (as the adapters look them up)
/// and cut at 256 bytes so that a huge name cannot make a huge key.
fn normalize_user(user: &str) -> String {
    let mut lower = user.to_lowercase();
    if lower.len() > 256 {
        let mut end = 256;
        while !lower.is_char_boundary(end) {
            end -= 1;
        }
        lower.truncate(end);
    }
    lower
}

/// The delay curve and the per-address allowance, as the counters need them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delays {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
    pub(crate) address_allowance: u64,
}

impl Delays {
    fn of(config: &ThrottleConfig) -> Delays {
        Delays {
            base: config.base_delay,
            max: config.max_delay,
            address_allowance: config.address_allowance,
        }
    }

    pub(crate) fn penalty(&self, failures: u64) -> Duration {
        penalty(failures, self.base, self.max)
    }
}

/// The delay after `failures` failures: 0, then base, doubling, capped.
pub fn penalty(failures: u64, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(31);
    base.saturating_mul(1u32 << doublings).min(max)
}

/// The login throttle. Cheap to share: put it in an `Arc`.
///
/// ```text
/// let wait = throttle.reserve(peer_ip, &user).await;   // counts as failed from now on
/// throttle.wait(peer_ip, &user, wait).await;          // shortened by a success
/// match authenticator.authenticate(&user, &password).await {
///     Ok(_) => throttle.record_success(peer_ip, &user).await,
///     Err(AuthError::Failed | AuthError::Disabled) => {}    // already counted
///     Err(_) => throttle.release(peer_ip, &user).await,     // not the client's fault
/// }
/// ```
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    delays: Delays,
    local: MemoryCounters,
    redis: Option<RedisCounters>,
    /// Bumped by every successful login, to wake attempts queued behind one.
    successes: watch::Sender<u64>,
}

impl Throttle {
    /// Builds a throttle. Does not connect to Redis yet (that happens on
    /// first use, so a gateway starts while Redis is down). Fails with
    /// [`AuthError::Config`] for an unparsable Redis URL.
    pub fn new(config: ThrottleConfig) -> Result<Throttle, AuthError> {
        let redis = match &config.redis_url {
            Some(url) => Some(RedisCounters::new(url, &config)?),
            None => None,
        };
        Ok(Throttle {
            local: MemoryCounters::new(config.window, config.local_capacity),
            delays: Delays::of(&config),
            redis,
            config,
            successes: watch::Sender::new(0),
        })
    }

    /// A throttle with the default delays that counts in this process only.
    pub fn local() -> Throttle {
        let config = ThrottleConfig::default();
        Throttle {
            local: MemoryCounters::new(config.window, config.local_capacity),
            delays: Delays::of(&config),
            redis: None,
            config,
            successes: watch::Sender::new(0),
        }
    }

    /// Waits out a reserved `delay`, unless a login of the same user from the
    /// same address succeeds on this gateway meanwhile: that success took
    /// back the attempts this one queued behind (none of them had failed), so
    /// this attempt takes a fresh slot instead and waits for that.
    /// Cancel-safe.
    pub async fn wait(&self, ip: IpAddr, user: &str, delay: Duration) {
        let subject = Subject::new(ip, user);
        let mut successes = self.successes.subscribe();
        let mut until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                changed = successes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(until).await;
                        return;
                    }
                    // Our own reservation went with the success's key. The local
                    // mirror knows (this gateway's success cleared it there too),
                    // so a busy gateway's waiters cost no Redis call per success.
                    if self.local.attempts(&subject).0 == 0 {
                        let fresh = self.reserve(ip, user).await;
                        until = until.min(tokio::time::Instant::now() + fresh);
                    }
                }
            }
        }
    }

    /// Reserves a login attempt from `ip` as `user` and returns how long it
    /// must wait before its password is checked. From now on the attempt
    /// counts as a failure, until [`Throttle::record_success`] or
    /// [`Throttle::release`]; parallel attempts get successive slots.
    pub async fn reserve(&self, ip: IpAddr, user: &str) -> Duration {
        let subject = Subject::new(ip, user);
        // The local limiter always counts too, so that it holds this
        // gateway's recent history should Redis go away.
        let local = self.local.reserve(&subject, &self.delays);
        match &self.redis {
            Some(redis) => redis.reserve(&subject, &self.delays).await.unwrap_or(local),
            None => local,
        }
    }

    /// A successful login: clears the (user, address) key and takes its
    /// attempts back from the address's count.
    pub async fn record_success(&self, ip: IpAddr, user: &str) {
        let subject = Subject::new(ip, user);
        self.local.record_success(&subject);
        if let Some(redis) = &self.redis {
            redis.record_success(&subject).await;
        }
        self.successes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Takes back a reserved attempt whose failure was not the client's
    /// doing (the user directory was unavailable).
    pub async fn release(&self, ip: IpAddr, user: &str) {
        let subject = Subject::new(ip, user);
        self.local.release(&subject);
        if let Some(redis) = &self.redis {
            redis.release(&subject).await;
        }
    }

    /// The attempts now counted against (`user` from `ip`, `ip` for any
    /// user): reserved and not successful, within the window.
    pub async fn attempts(&self, ip: IpAddr, user: &str) -> (u64, u64) {
        let subject = Subject::new(ip, user);
        let local = self.local.attempts(&subject);
        match &self.redis {
            Some(redis) => redis.attempts(&subject).await.unwrap_or(local),
            None => local,
        }
    }

    /// Where the answers currently come from (for `pluto cluster status`).
    pub fn backend(&self) -> ThrottleBackend {
        match &self.redis {
            None => ThrottleBackend::Local,
            Some(r) if r.is_healthy() => ThrottleBackend::Redis,
            Some(_) => ThrottleBackend::LocalFallback,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn penalty_doubles_from_two_seconds_up_to_fifteen() {
        let (b, m) = (Duration::from_secs(2), Duration::from_secs(15));
        let secs: Vec<u64> = (0..8).map(|n| penalty(n, b, m).as_secs()).collect();
        assert_eq!(secs, [0, 2, 4, 8, 15, 15, 15, 15]);
        assert_eq!(penalty(u64::MAX, b, m), m);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse()
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(normalize_ip(a), normalize_ip(b));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(
            normalize_ip(mapped),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
    }

    #[test]
    fn user_names_are_folded_and_bounded() {
        assert_eq!(normalize_user("Alice"), "alice");
        assert_eq!(normalize_user(&"é".repeat(300)).len(), 256);
    }
}
