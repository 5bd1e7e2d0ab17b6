//! Tests of the login throttle: the delay curve and counters in memory, and
//! the shared counters in the real Redis named by PLUTO_TEST_REDIS_URL
//! (e.g. redis://127.0.0.1:6379), each test under its own key prefix.
//! The throttle only computes waits, it never sleeps: most tests look at
//! the waits it hands out and at its counts, with delays large enough (a
//! second and more) that the microseconds between calls cannot blur them;
//! the few that do sleep use millisecond delays.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Proxy, closed_port, service_url, unique_suffix, url_socket_addr, url_with_addr};
use pluto_auth::throttle::ThrottleBackend;
use pluto_auth::{Throttle, ThrottleConfig};

const URL_VAR: &str = "PLUTO_TEST_REDIS_URL";
const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))
}

/// Base 10 ms, cap 75 ms: the curve 10, 20, 40, 75 stands for 2, 4, 8, 15 s.
fn scaled(redis_url: Option<String>) -> ThrottleConfig {
    ThrottleConfig {
        redis_url,
        key_prefix: format!("pluto:test:{}:", unique_suffix()),
        base_delay: 10 * MS,
        max_delay: 75 * MS,
        address_allowance: 10,
        window: Duration::from_secs(60),
        redis_timeout: Duration::from_millis(300),
        redis_retry: Duration::from_millis(200),
        ..ThrottleConfig::default()
    }
}

/// Base 1 s, cap 4 s, for tests that only read the waits handed out.
fn seconds(redis_url: Option<String>) -> ThrottleConfig {
    ThrottleConfig {
        base_delay: SEC,
        max_delay: 4 * SEC,
        ..scaled(redis_url)
    }
}

/// A wait handed out `expected` from its reservation, give or take the
/// time the test itself took since (well under half a second).
fn about(wait: Duration, expected: Duration) -> bool {
    wait <= expected + 20 * MS && wait + 500 * MS >= expected
}

/// `n` failed attempts, one after the other (each waits its slot).
async fn fail_n(t: &Throttle, from: IpAddr, user: &str, n: usize) {
    for _ in 0..n {
        let wait = t.reserve(from, user).await;
        tokio::time::sleep(wait + 3 * MS).await;
    }
}

/// The waits handed to sequential attempts (each sleeps its wait first).
async fn curve(t: &Throttle, from: IpAddr, user: &str, steps: usize) -> Vec<Duration> {
    let mut seen = Vec::new();
    for _ in 0..steps {
        let wait = t.reserve(from, user).await;
        seen.push(wait);
        // A little past the slot, so the next slot counts from "now".
        tokio::time::sleep(wait + 3 * MS).await;
    }
    seen
}

/// The behaviour every throttle shows, in memory or in Redis: the curve of
/// sequential failures, (user, address) keys, a success clearing its own.
async fn check_behaviour(t: &Throttle) {
    assert_eq!(
        curve(t, ip(1), "alice", 7).await,
        [0, 10, 20, 40, 75, 75, 75].map(|m| m * MS)
    );
    assert_eq!(t.attempts(ip(1), "alice").await, (7, 7));
    // Other users from the same address are not slowed (7 < allowance 10)…
    assert_eq!(t.reserve(ip(1), "bob").await, Duration::ZERO);
    // …nor is alice from another address.
    assert_eq!(t.reserve(ip(2), "alice").await, Duration::ZERO);
    t.record_success(ip(1), "bob").await;
    t.record_success(ip(2), "alice").await;

    // Alice finally logs in: her own attempts from ip(1) go.
    t.record_success(ip(1), "ALICE").await;
    assert_eq!(t.attempts(ip(1), "alice").await, (0, 0));
    assert_eq!(t.reserve(ip(1), "alice").await, Duration::ZERO);
    t.record_success(ip(1), "alice").await;

    // Repeating the same correct password never escalates.
    for _ in 0..10 {
        assert_eq!(t.reserve(ip(4), "dave").await, Duration::ZERO);
        t.record_success(ip(4), "dave").await;
    }
    assert_eq!(t.attempts(ip(4), "dave").await, (0, 0));

    // A login to an account of one's own does not wipe guesses at others.
    fail_n(t, ip(5), "victim1", 2).await;
    fail_n(t, ip(5), "victim2", 1).await;
    fail_n(t, ip(5), "mallory", 1).await;
    assert_eq!(t.reserve(ip(5), "mallory").await, 10 * MS);
    t.record_success(ip(5), "mallory").await;
    assert_eq!(t.attempts(ip(5), "victim1").await, (2, 3));

    // An attempt that failed through no fault of the client is released.
    t.reserve(ip(6), "erin").await;
    t.release(ip(6), "erin").await;
    assert_eq!(t.attempts(ip(6), "erin").await, (0, 0));
}

/// Three users behind one address: two of them fail again and again, the
/// third logs in at once.
async fn check_three_users_behind_one_address(t: &Throttle) {
    for _ in 0..4 {
        t.reserve(ip(20), "alice").await;
        t.reserve(ip(20), "bob").await;
    }
    assert_eq!(t.attempts(ip(20), "alice").await, (4, 8));
    assert_eq!(t.reserve(ip(20), "carol").await, Duration::ZERO);
    t.record_success(ip(20), "carol").await;
    assert_eq!(t.attempts(ip(20), "carol").await, (0, 8));
    // Alice's next attempt queues behind her own four.
    assert!(about(t.reserve(ip(20), "alice").await, 11 * SEC));
}

/// 40 parallel wrong passwords for one user from one address: each gets
/// its own slot, one penalty after the previous one, as if sequential.
async fn check_parallel_guesses(t: Arc<Throttle>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let t = t.clone();
        tasks.spawn(async move { t.reserve(ip(30), "alice").await });
    }
    let mut waits = tasks.join_all().await;
    waits.sort();
    // Slots 0, 1, 3, 7, 11, 15, … seconds: base 1 s doubling, capped at 4 s.
    let mut expected = Duration::ZERO;
    for (k, wait) in waits.iter().enumerate() {
        if k > 0 {
            let step = (SEC * (1 << (k - 1).min(10))).min(4 * SEC);
            expected += step;
        }
        assert!(
            about(*wait, expected),
            "attempt {k}: {wait:?}, not {expected:?}"
        );
    }
    assert!(waits[39] >= 140 * SEC, "{:?}", waits[39]);
    assert_eq!(t.attempts(ip(30), "alice").await, (40, 40));
}

/// One address trying 50 users: the first `address_allowance` go through at
/// once, the rest queue on the address's own curve; other addresses do not.
async fn check_spray(t: &Throttle) {
    let mut waits = Vec::new();
    for i in 0..50 {
        waits.push(t.reserve(ip(40), &format!("user{i}")).await);
    }
    assert!(waits[..11].iter().all(|w| w.is_zero()), "{waits:?}");
    assert!(about(waits[11], SEC), "{waits:?}");
    assert!(about(waits[12], 3 * SEC), "{waits:?}");
    assert!(waits[49] >= 100 * SEC, "{waits:?}");
    assert_eq!(t.attempts(ip(40), "user0").await, (1, 50));
    // A further user from the spraying address waits behind the spray…
    assert!(t.reserve(ip(40), "newcomer").await >= 100 * SEC);
    // …a user from another address does not.
    assert_eq!(t.reserve(ip(41), "user0").await, Duration::ZERO);
}

#[tokio::test]
async fn in_memory_throttle_behaves() {
    let t = Throttle::new(scaled(None)).unwrap();
    assert_eq!(t.backend(), ThrottleBackend::Local);
    check_behaviour(&t).await;
}

#[tokio::test]
async fn in_memory_three_users_behind_one_address() {
    check_three_users_behind_one_address(&Throttle::new(seconds(None)).unwrap()).await;
}

#[tokio::test]
async fn in_memory_parallel_guesses_are_serialized() {
    check_parallel_guesses(Arc::new(Throttle::new(seconds(None)).unwrap())).await;
}

#[tokio::test]
async fn in_memory_spray_hits_the_address_ceiling() {
    check_spray(&Throttle::new(seconds(None)).unwrap()).await;
}

#[tokio::test]
async fn default_delays_are_dovecots() {
    let t = Throttle::local();
    assert_eq!(t.config().address_allowance, 50);
    let mut secs = Vec::new();
    for _ in 0..6 {
        secs.push((t.reserve(ip(9), "x").await + 100 * MS).as_secs());
    }
    // Slots 2, 4, 8, 15, 15 s apart.
    assert_eq!(secs, [0, 2, 6, 14, 29, 44]);
}

#[tokio::test]
async fn redis_throttle_behaves() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let t = Throttle::new(scaled(Some(url))).unwrap();
    check_behaviour(&t).await;
    assert_eq!(t.backend(), ThrottleBackend::Redis);
}

#[tokio::test]
async fn redis_three_users_behind_one_address() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let t = Throttle::new(seconds(Some(url))).unwrap();
    check_three_users_behind_one_address(&t).await;
    assert_eq!(t.backend(), ThrottleBackend::Redis);
}

#[tokio::test]
async fn redis_parallel_guesses_are_serialized() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let t = Arc::new(Throttle::new(seconds(Some(url))).unwrap());
    check_parallel_guesses(t.clone()).await;
    assert_eq!(t.backend(), ThrottleBackend::Redis);
}

#[tokio::test]
async fn redis_spray_hits_the_address_ceiling() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let t = Throttle::new(seconds(Some(url))).unwrap();
    check_spray(&t).await;
    assert_eq!(t.backend(), ThrottleBackend::Redis);
}

#[tokio::test]
async fn two_gateways_share_one_redis() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let config = seconds(Some(url));
    let gateway_a = Throttle::new(config.clone()).unwrap();
    let gateway_b = Throttle::new(config).unwrap();

    // Parallel attempts spread over both gateways queue in one line.
    assert_eq!(gateway_a.reserve(ip(1), "alice").await, Duration::ZERO);
    assert!(about(gateway_b.reserve(ip(1), "alice").await, SEC));
    assert!(about(gateway_a.reserve(ip(1), "alice").await, 3 * SEC));
    assert_eq!(gateway_b.attempts(ip(1), "alice").await, (3, 3));
    // A success on one clears the pair on the other.
    gateway_b.record_success(ip(1), "alice").await;
    assert_eq!(gateway_a.attempts(ip(1), "alice").await, (0, 0));
    assert_eq!(gateway_a.reserve(ip(1), "alice").await, Duration::ZERO);
    assert_eq!(gateway_a.backend(), ThrottleBackend::Redis);
    assert_eq!(gateway_b.backend(), ThrottleBackend::Redis);
}

#[tokio::test]
async fn redis_counters_expire() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let mut config = scaled(Some(url.clone()));
    config.window = Duration::from_millis(300);
    let prefix = config.key_prefix.clone();
    let t = Throttle::new(config).unwrap();
    fail_n(&t, ip(1), "alice", 2).await;
    assert_eq!(t.attempts(ip(1), "alice").await, (2, 2));

    // Every key carries an expiry of at most the window past its slot.
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 300, "{key}: {ttl}");
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(t.attempts(ip(1), "alice").await, (0, 0));
    assert_eq!(t.reserve(ip(1), "alice").await, Duration::ZERO);
}

/// Captures what the tracing subscriber writes, to count warnings.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn redis_down_falls_back_to_memory_with_one_warning() {
    // Runs without any Redis: a loopback port nobody listens on.
    let (logs, _guard) = capture_logs();
    let port = closed_port().await;
    let t = Throttle::new(scaled(Some(format!("redis://127.0.0.1:{port}")))).unwrap();
    // The full behaviour holds on the local counters: logins are throttled,
    // never refused, and each call returns promptly.
    let started = std::time::Instant::now();
    check_behaviour(&t).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(t.backend(), ThrottleBackend::LocalFallback);
    // Dozens of logins, retries after `redis_retry` included: one warning.
    tokio::time::sleep(Duration::from_millis(250)).await;
    fail_n(&t, ip(8), "x", 3).await;
    assert_eq!(
        logs.count("WARN"),
        1,
        "{}",
        String::from_utf8_lossy(&logs.0.lock().unwrap())
    );
    assert_eq!(logs.count("Redis unreachable"), 1);
}

#[tokio::test]
async fn redis_outage_and_return() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let (logs, _guard) = capture_logs();
    let mut proxy = Proxy::start(url_socket_addr(&url, 6379)).await;
    let config = scaled(Some(url_with_addr(&url, proxy.addr)));
    let via_proxy = Throttle::new(config.clone()).unwrap();
    // Another gateway that still reaches Redis directly.
    let direct = Throttle::new(ThrottleConfig {
        redis_url: Some(url),
        ..config
    })
    .unwrap();

    fail_n(&via_proxy, ip(1), "alice", 1).await;
    assert_eq!(direct.attempts(ip(1), "alice").await, (1, 1));
    assert_eq!(via_proxy.backend(), ThrottleBackend::Redis);

    // Redis goes away for this gateway: it keeps throttling on its own
    // counters, which already hold its earlier failure.
    proxy.stop().await;
    assert_eq!(via_proxy.reserve(ip(1), "alice").await, 10 * MS);
    assert_eq!(via_proxy.backend(), ThrottleBackend::LocalFallback);
    tokio::time::sleep(15 * MS).await;
    assert_eq!(via_proxy.reserve(ip(1), "alice").await, 20 * MS);
    assert_eq!(via_proxy.attempts(ip(1), "alice").await, (3, 3));
    assert_eq!(logs.count("Redis unreachable"), 1);

    // Redis is back: after the retry pause the shared counters are used again.
    proxy.restart().await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    fail_n(&direct, ip(1), "alice", 1).await;
    // Redis saw one attempt through the proxy and one direct.
    assert_eq!(via_proxy.attempts(ip(1), "alice").await, (2, 2));
    assert_eq!(via_proxy.backend(), ThrottleBackend::Redis);
    assert_eq!(logs.count("Redis reachable again"), 1);
    assert_eq!(logs.count("Redis unreachable"), 1);
}

#[test]
fn bad_redis_url_is_a_config_error() {
    let config = ThrottleConfig {
        redis_url: Some("http://nope".to_owned()),
        ..ThrottleConfig::default()
    };
    assert!(matches!(
        Throttle::new(config),
        Err(pluto_auth::AuthError::Config(_))
    ));
}
