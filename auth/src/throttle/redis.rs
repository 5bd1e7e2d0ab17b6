//! The Redis login counters, shared by every gateway, with the bookkeeping
//! that falls back to the local limiter while Redis is unreachable.
//!
//! Keys (all under the configured prefix, all expiring a window after their
//! latest slot): `pair:<addr>|<name>` (one user's attempts from one address)
//! and `ip:<addr>` (every attempt from the address). Each is a hash of `n`
//! (attempts not yet successful) and `slot` (the Redis server time, in ms,
//! given to the latest attempt). Reserving, succeeding and releasing are one
//! Lua script each, so concurrent gateways and sessions never share a slot
//! or see half of a change; the script reads Redis' own clock, so gateways'
//! clocks need not agree.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Delays, Subject, ThrottleConfig};
use crate::AuthError;

/// Takes the next slot on the pair and on the address and returns the wait
/// in ms. KEYS: pair, ip. ARGV: base ms, max ms, window ms, address allowance.
const RESERVE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base, max, window, allowance =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function penalty(n)
  if n <= 0 then return 0 end
  local d = base * 2 ^ math.min(n - 1, 40)
  if d > max then d = max end
  return d
end
local function take(key, free)
  local v = redis.call('HMGET', key, 'n', 'slot')
  local n = tonumber(v[1] or '0') or 0
  local previous = math.max(now, tonumber(v[2] or '0') or 0)
  local slot = previous + penalty(n - free)
  redis.call('HSET', key, 'n', n + 1, 'slot', slot)
  redis.call('PEXPIRE', key, math.floor(slot - now + window))
  return slot
end
local wait = math.max(take(KEYS[1], 0), take(KEYS[2], allowance)) - now
return math.floor(wait)
";

/// Clears the pair and takes its attempts back from the address's count
/// (at least this one). KEYS: pair, ip.
const SUCCESS_SCRIPT: &str = r"
local own = tonumber(redis.call('HGET', KEYS[1], 'n') or '0') or 0
if own < 1 then own = 1 end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], 'n', -own) <= 0 then redis.call('DEL', KEYS[2]) end
end
return 0
";

/// Takes one attempt back from the pair and the address. KEYS: pair, ip.
const RELEASE_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    if redis.call('HINCRBY', key, 'n', -1) <= 0 then redis.call('DEL', key) end
  end
end
return 0
";

pub(crate) struct RedisCounters {
    client: redis::Client,
    prefix: String,
    window_ms: u64,
    timeout: Duration,
    retry: Duration,
    reserve: redis::Script,
    success: redis::Script,
    release: redis::Script,
    /// The live connection manager, made on first use and dropped after a
    /// failure (the next attempt makes a fresh one).
    manager: Mutex<Option<ConnectionManager>>,
    /// Until when to skip Redis after a failure.
    down_until: Mutex<Option<Instant>>,
    /// False during an outage: the warning is logged on the way down only.
    healthy: AtomicBool,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    pub(crate) fn new(url: &str, config: &ThrottleConfig) -> Result<RedisCounters, AuthError> {
        // redis' URL errors do not echo the URL (which may hold a password).
        let client =
            redis::Client::open(url).map_err(|e| AuthError::Config(format!("redis url: {e}")))?;
        Ok(RedisCounters {
            client,
            prefix: config.key_prefix.clone(),
            window_ms: u64::try_from(config.window.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            timeout: config.redis_timeout,
            retry: config.redis_retry,
            reserve: redis::Script::new(RESERVE_SCRIPT),
            success: redis::Script::new(SUCCESS_SCRIPT),
            release: redis::Script::new(RELEASE_SCRIPT),
            manager: Mutex::new(None),
            down_until: Mutex::new(None),
            healthy: AtomicBool::new(true),
        })
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn keys(&self, s: &Subject) -> [String; 2] {
        [
            format!("{}pair:{}|{}", self.prefix, s.ip, s.user),
            format!("{}ip:{}", self.prefix, s.ip),
        ]
    }

    /// A connection manager, unless Redis failed less than `retry` ago.
    fn connection(&self) -> Option<ConnectionManager> {
        {
            let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
            if down.is_some_and(|until| Instant::now() < until) {
                return None;
            }
        }
        let mut slot = self.manager.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Some(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        // Lazy: connects on the first command, inside our timeout.
        match ConnectionManager::new_lazy_with_config(self.client.clone(), config) {
            Ok(m) => {
                *slot = Some(m.clone());
                Some(m)
            }
            Err(e) => {
                drop(slot);
                self.failed(&e);
                None
            }
        }
    }

    /// Runs one Redis operation bounded by the timeout; `None` (and the
    /// fallback) on any failure.
    async fn run<T, F>(&self, op: F) -> Option<T>
    where
        F: AsyncFnOnce(ConnectionManager) -> redis::RedisResult<T>,
    {
        let conn = self.connection()?;
        match tokio::time::timeout(self.timeout, op(conn)).await {
            Ok(Ok(value)) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis reachable again; login throttling is shared again");
                }
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed(&e);
                None
            }
            Err(_) => {
                self.failed(&format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    fn failed(&self, reason: &dyn std::fmt::Display) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + self.retry);
        *self.manager.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                %reason,
                retry_after = ?self.retry,
                "Redis unreachable; login throttling falls back to this process's in-memory counters"
            );
        }
    }

    /// The wait before this attempt's password may be checked; `None`
    /// when Redis did not answer.
    pub(crate) async fn reserve(&self, s: &Subject, d: &Delays) -> Option<Duration> {
        let [pair, ip] = self.keys(s);
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (base, max, window) = (ms(d.base), ms(d.max), self.window_ms);
        let allowance = d.address_allowance;
        let wait: i64 = self
            .run(async |mut c| {
                self.reserve
                    .key(&pair)
                    .key(&ip)
                    .arg(base)
                    .arg(max)
                    .arg(window)
                    .arg(allowance)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
    }

    /// Reserved attempts (pair, address), for tests and status.
    pub(crate) async fn attempts(&self, s: &Subject) -> Option<(u64, u64)> {
        let [pair, ip] = self.keys(s);
        self.run(async |mut c| {
            let a: Option<u64> = redis::cmd("HGET")
                .arg(&pair)
                .arg("n")
                .query_async(&mut c)
                .await?;
            let b: Option<u64> = redis::cmd("HGET")
                .arg(&ip)
                .arg("n")
                .query_async(&mut c)
                .await?;
            Ok((a.unwrap_or(0), b.unwrap_or(0)))
        })
        .await
    }

    pub(crate) async fn record_success(&self, s: &Subject) {
        self.two_keys(&self.success, s).await;
    }

    pub(crate) async fn release(&self, s: &Subject) {
        self.two_keys(&self.release, s).await;
    }

    async fn two_keys(&self, script: &redis::Script, s: &Subject) {
        let [pair, ip] = self.keys(s);
        self.run(async |mut c| script.key(&pair).key(&ip).invoke_async::<()>(&mut c).await)
            .await;
    }
}
