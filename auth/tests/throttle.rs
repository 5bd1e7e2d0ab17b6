//! Tests of the login throttle: the delay curve and counters in memory, and
//! the shared counters in the real Redis named by PLUTO_TEST_REDIS_URL
//! (e.g. redis://127.0.0.1:6379), each test under its own key prefix.
//! Delays are scaled down (milliseconds instead of seconds) so nothing
//! sleeps for long; the throttle only computes delays, it never sleeps.

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
        window: Duration::from_secs(60),
        redis_timeout: Duration::from_millis(300),
        redis_retry: Duration::from_millis(200),
        ..ThrottleConfig::default()
    }
}

async fn fail_n(t: &Throttle, from: IpAddr, user: &str, n: usize) {
    for _ in 0..n {
        t.record_failure(from, user).await;
    }
}

/// The delays seen after 0, 1, 2, … failures of `user` from `from`.
async fn curve(t: &Throttle, from: IpAddr, user: &str, steps: usize) -> Vec<Duration> {
    let mut seen = vec![t.delay_for(from, user).await];
    for _ in 0..steps {
        t.record_failure(from, user).await;
        seen.push(t.delay_for(from, user).await);
    }
    seen
}

/// Runs the same behavioural checks on any throttle: the delay curve, the
/// per-address and per-user counting, and success handling.
async fn check_behaviour(t: &Throttle) {
    assert_eq!(
        curve(t, ip(1), "alice", 6).await,
        [0, 10, 20, 40, 75, 75, 75].map(|m| m * MS)
    );
    // The same address asking for another user is slowed too (spraying)…
    assert_eq!(t.delay_for(ip(1), "bob").await, 75 * MS);
    // …and so is another address asking for alice (distributed guessing).
    assert_eq!(t.delay_for(ip(2), "alice").await, 75 * MS);
    // An unrelated address and user are not.
    assert_eq!(t.delay_for(ip(3), "carol").await, Duration::ZERO);

    // Alice finally logs in: her counter and her own failures from ip(1) go.
    t.record_success(ip(1), "ALICE").await;
    assert_eq!(t.delay_for(ip(1), "alice").await, Duration::ZERO);
    assert_eq!(t.delay_for(ip(2), "alice").await, Duration::ZERO);

    // Repeating the same correct password never escalates.
    for _ in 0..10 {
        assert_eq!(t.delay_for(ip(4), "dave").await, Duration::ZERO);
        t.record_success(ip(4), "dave").await;
    }
    assert_eq!(t.delay_for(ip(4), "dave").await, Duration::ZERO);

    // A login to an account of one's own does not wipe guesses at others.
    fail_n(t, ip(5), "victim1", 1).await;
    fail_n(t, ip(5), "victim2", 1).await;
    fail_n(t, ip(5), "mallory", 1).await;
    t.record_success(ip(5), "mallory").await;
    assert_eq!(t.delay_for(ip(5), "anyone").await, 20 * MS);
}

#[tokio::test]
async fn in_memory_throttle_behaves() {
    let t = Throttle::new(scaled(None)).unwrap();
    assert_eq!(t.backend(), ThrottleBackend::Local);
    check_behaviour(&t).await;
}

#[tokio::test]
async fn default_delays_are_dovecots() {
    let t = Throttle::local();
    let secs: Vec<u64> = curve(&t, ip(9), "x", 6)
        .await
        .iter()
        .map(Duration::as_secs)
        .collect();
    assert_eq!(secs, [0, 2, 4, 8, 15, 15, 15]);
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
async fn two_gateways_share_one_redis() {
    let Some(url) = service_url(URL_VAR) else {
        return;
    };
    let config = scaled(Some(url));
    let gateway_a = Throttle::new(config.clone()).unwrap();
    let gateway_b = Throttle::new(config).unwrap();

    // Failures spread over both gateways add up.
    gateway_a.record_failure(ip(1), "alice").await;
    gateway_b.record_failure(ip(1), "alice").await;
    gateway_a.record_failure(ip(1), "alice").await;
    assert_eq!(gateway_b.delay_for(ip(1), "alice").await, 40 * MS);
    assert_eq!(gateway_a.delay_for(ip(7), "alice").await, 40 * MS);
    // A success on one clears the user on the other.
    gateway_b.record_success(ip(1), "alice").await;
    assert_eq!(gateway_a.delay_for(ip(1), "alice").await, Duration::ZERO);
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
    assert_eq!(t.delay_for(ip(1), "alice").await, 20 * MS);

    // Every key carries an expiry of at most the window.
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 300, "{key}: {ttl}");
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(t.delay_for(ip(1), "alice").await, Duration::ZERO);
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

    via_proxy.record_failure(ip(1), "alice").await;
    assert_eq!(direct.delay_for(ip(1), "alice").await, 10 * MS);
    assert_eq!(via_proxy.backend(), ThrottleBackend::Redis);

    // Redis goes away for this gateway: it keeps throttling on its own
    // counters, which already hold its earlier failure.
    proxy.stop().await;
    via_proxy.record_failure(ip(1), "alice").await;
    assert_eq!(via_proxy.backend(), ThrottleBackend::LocalFallback);
    assert_eq!(via_proxy.delay_for(ip(1), "alice").await, 20 * MS);
    via_proxy.record_failure(ip(1), "alice").await;
    assert_eq!(via_proxy.delay_for(ip(1), "alice").await, 40 * MS);
    assert_eq!(logs.count("Redis unreachable"), 1);

    // Redis is back: after the retry pause the shared counters are used again.
    proxy.restart().await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    direct.record_failure(ip(1), "alice").await;
    assert_eq!(via_proxy.delay_for(ip(1), "alice").await, 20 * MS);
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
