//! QRESYNC exact across a failover (issue 14): a client syncs INBOX through the gateway
//! while the user's worker serves it; the worker is killed; another client appends,
//! flags and expunges through the storage node; the first client reconnects with
//! `SELECT INBOX (QRESYNC (uidvalidity modseq known-uids))`, applies what the answer
//! says to its cache (the changes of the UIDs it knew), fetches the messages above
//! them, as a client does on EXISTS, and ends with exactly the state a full fetch shows.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, Client, Reply, code, message, ok};
use pluto_testkit::imap::item_number;

/// A client's cache of a mailbox: UID → flags (sorted words).
type Cache = BTreeMap<u32, Vec<String>>;

/// The flags of a FETCH line, without `\Recent` (a property of the session).
fn flags_of(line: &str) -> Vec<String> {
    let start = line.find("FLAGS (").unwrap() + "FLAGS (".len();
    let end = start + line[start..].find(')').unwrap();
    let mut words: Vec<String> = line[start..end]
        .split_whitespace()
        .filter(|w| !w.eq_ignore_ascii_case("\\Recent"))
        .map(str::to_owned)
        .collect();
    words.sort();
    words
}

/// Applies FETCH (UID FLAGS) lines to the cache.
fn apply_fetches(cache: &mut Cache, r: &Reply) {
    for line in r.untagged.iter().filter(|l| l.contains(" FETCH (")) {
        let uid = item_number(line, "UID").unwrap();
        if line.contains("FLAGS (") {
            cache.insert(uid, flags_of(line));
        }
    }
}

/// `* VANISHED (EARLIER) set`: the UIDs it names (ranges expanded).
fn vanished(r: &Reply) -> Vec<u32> {
    let mut out = Vec::new();
    for line in r.lines("* VANISHED") {
        let set = line.rsplit(' ').next().unwrap();
        for part in set.split(',') {
            match part.split_once(':') {
                Some((a, b)) => {
                    let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
                    out.extend(a.min(b)..=a.max(b));
                }
                None => out.push(part.parse().unwrap()),
            }
        }
    }
    out
}

async fn full_state(c: &mut Client) -> Cache {
    let r = ok(c, "UID FETCH 1:* (UID FLAGS)").await;
    let mut cache = Cache::new();
    apply_fetches(&mut cache, &r);
    cache
}

async fn login_retrying(cluster: &Cluster, user: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match mail::login(cluster.imap, user, USER_PASSWORD).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "{user} cannot log in: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A session with INBOX selected, through whatever node the gateway picks.
async fn selected(cluster: &Cluster, user: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = login_retrying(cluster, user).await;
        if c.try_cmd("SELECT INBOX").await.is_ok_and(|r| r.ok()) {
            return c;
        }
        assert!(Instant::now() < deadline, "{user} cannot select INBOX");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `$call` (an expression using the session `$c`) until it is answered OK, on a
/// new session whenever the failover ends one (a BYE or a dropped connection: the
/// command was not run, so running it again is safe).
macro_rules! retrying {
    ($cluster:expr, $user:expr, $c:ident, $call:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match $call.await {
                Ok(r) if r.ok() => break r,
                other => {
                    assert!(Instant::now() < deadline, "{other:?}");
                    $c = selected($cluster, $user).await;
                }
            }
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qresync_after_the_worker_died_tells_exactly_what_changed_on_the_storage_node() {
    let spec = Spec::default();
    let users = spec.users.clone();
    let mut cluster = Cluster::start(spec).await;
    let user = users
        .iter()
        .find(|u| cluster.replicas_of(u).first().map(String::as_str) == Some("worker1"))
        .unwrap()
        .clone();

    // The client syncs INBOX on the worker.
    let mut a = mail::login(cluster.imap, &user, USER_PASSWORD)
        .await
        .unwrap();
    for i in 0..6 {
        let r = a
            .try_append_plus("INBOX", "", &message(&format!("f{i}"), 150))
            .await
            .unwrap();
        assert!(r.ok(), "{r:?}");
    }
    ok(&mut a, "ENABLE QRESYNC").await;
    let r = ok(&mut a, "SELECT INBOX").await;
    let validity = code(&r, "[UIDVALIDITY");
    let modseq = code(&r, "[HIGHESTMODSEQ");
    let mut cache = full_state(&mut a).await;
    assert_eq!(cache.len(), 6);
    let known: Vec<u32> = cache.keys().copied().collect();
    drop(a);
    cluster
        .wait_caught_up("storage1", Duration::from_secs(30))
        .await;

    // The worker dies; another client changes the mailbox through the storage node.
    cluster.kill("worker1");
    let mut b = selected(&cluster, &user).await;
    for i in 0..2 {
        let m = message(&format!("g{i}"), 150);
        retrying!(&cluster, &user, b, b.try_append_plus("INBOX", "", &m));
    }
    let flag = format!("UID STORE {} +FLAGS (\\Flagged)", known[1]);
    retrying!(&cluster, &user, b, b.try_cmd(&flag));
    let delete = format!("UID STORE {} +FLAGS (\\Deleted)", known[3]);
    retrying!(&cluster, &user, b, b.try_cmd(&delete));
    let expunge = format!("UID EXPUNGE {}", known[3]);
    retrying!(&cluster, &user, b, b.try_cmd(&expunge));
    retrying!(&cluster, &user, b, b.try_cmd("NOOP"));
    let server = full_state(&mut b).await;
    drop(b);

    // The client comes back (to the storage node: the worker is still down) and
    // resyncs from what it knew.
    let mut a = login_retrying(&cluster, &user).await;
    ok(&mut a, "ENABLE QRESYNC").await;
    let set = known
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let r = ok(
        &mut a,
        &format!("SELECT INBOX (QRESYNC ({validity} {modseq} {set}))"),
    )
    .await;
    assert_eq!(
        code(&r, "[UIDVALIDITY"),
        validity,
        "UIDVALIDITY kept: {r:?}"
    );
    assert_eq!(vanished(&r), vec![known[3]], "{r:?}");
    for uid in vanished(&r) {
        cache.remove(&uid);
    }
    apply_fetches(&mut cache, &r);
    // Nothing was reported that had not changed: one flag change of a known message.
    let reported = r.untagged.iter().filter(|l| l.contains(" FETCH (")).count();
    assert_eq!(reported, 1, "{r:?}");
    // New messages are above what it knew: it fetches them, as on EXISTS.
    let above = known.iter().max().unwrap() + 1;
    let news = ok(&mut a, &format!("UID FETCH {above}:* (UID FLAGS)")).await;
    apply_fetches(&mut cache, &news);
    assert_eq!(
        cache, server,
        "the resynced cache is the server's state: {r:?} {news:?}"
    );
    assert!(!cache.contains_key(&known[3]));
    assert!(cache[&known[1]].contains(&"\\Flagged".to_owned()));
    assert_eq!(cache.len(), 7);
}
