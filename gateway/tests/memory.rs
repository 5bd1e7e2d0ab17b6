//! What one client can make a real `pluto serve` process hold, read from the process's
//! `/proc/PID/status` (VmHWM: the peak resident set since it started). A FETCH that asks
//! for a large body hundreds of times is streamed, not assembled; clients that have not
//! logged in cannot make the server buffer big literals; a SEARCH of bodies reads them
//! in batches bounded by bytes; a SORT or THREAD of thousands of messages reads their
//! headers only (counted in the process's `rchar`) and holds a small record per
//! message. The server stays up, and (FETCH, literals) another
//! client keeps being served meanwhile. The bounds are generous (tens of MiB over what
//! the server held before); the exact figures are in docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use pluto_testkit::imap::Blocking;
use support::{PASSWORD, Pluto, USER};

const MIB: u64 = 1024 * 1024;

/// A field of /proc/PID/status, in bytes (the kernel writes kB).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// A plain-text message of about `size` bytes, CRLF line ends.
/// Prints the peak resident set before and after `what`, and checks it grew by less
/// than `allowance`.
fn assert_peak_within(what: &str, before: u64, peak: u64, allowance: u64) {
    eprintln!(
        "{what}: VmHWM {} KiB before, {} KiB after",
        before / 1024,
        peak / 1024
    );
    assert!(
        peak < before + allowance,
        "{what}: peak RSS grew from {} to {} MiB",
        before / MIB,
        peak / MIB
    );
}

fn big_message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n\r\n".to_vec();
    let line = format!("{}\r\n", "x".repeat(76));
    while m.len() + line.len() <= size {
        m.extend_from_slice(line.as_bytes());
    }
    m
}

/// A client that keeps sending NOOP until told to stop; counts the OKs.
struct Bystander {
    stop: Arc<AtomicBool>,
    oks: Arc<AtomicU32>,
    thread: std::thread::JoinHandle<()>,
}

impl Bystander {
    fn start(pluto: &Pluto) -> Bystander {
        let mut client = Blocking::login(pluto.imap, USER, PASSWORD);
        let stop = Arc::new(AtomicBool::new(false));
        let oks = Arc::new(AtomicU32::new(0));
        let thread = {
            let (stop, oks) = (stop.clone(), oks.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let reply = client.cmd("NOOP").expect("NOOP of the bystander");
                    assert!(reply.ok(), "{reply:?}");
                    oks.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Bystander { stop, oks, thread }
    }

    /// Stops; how many NOOPs were answered OK.
    fn finish(self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the bystander failed");
        self.oks.load(Ordering::Relaxed)
    }
}

/// Sends `command` and reads the whole answer without keeping it; the bytes received
/// and the tagged line.
fn run_counting(stream: &mut TcpStream, tag: &str, command: &str) -> (u64, String) {
    stream
        .write_all(format!("{tag} {command}\r\n").as_bytes())
        .unwrap();
    let done = format!("\r\n{tag} ");
    let mut total = 0u64;
    // As if the previous answer's line end were there, for an answer that is one line.
    let mut tail: Vec<u8> = b"\r\n".to_vec();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {total} bytes");
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 512 {
            tail.drain(..tail.len() - 512);
        }
        if tail.ends_with(b"\r\n") {
            let text = String::from_utf8_lossy(&tail).into_owned();
            if let Some(at) = text.rfind(&done) {
                let tagged = text[at + 2..].trim_end().to_owned();
                if !tagged.contains('\n') {
                    return (total, tagged);
                }
            }
        }
    }
}

fn logged_in_stream(pluto: &Pluto) -> TcpStream {
    let mut stream = TcpStream::connect(pluto.imap).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut greeting = [0u8; 4096];
    let _ = stream.read(&mut greeting).unwrap();
    let (_, tagged) = run_counting(&mut stream, "l1", &format!("LOGIN {USER} \"{PASSWORD}\""));
    assert!(tagged.starts_with("l1 OK"), "{tagged}");
    let (_, tagged) = run_counting(&mut stream, "l2", "SELECT INBOX");
    assert!(tagged.starts_with("l2 OK"), "{tagged}");
    stream
}

fn fetch_many_bodies(copies: usize) -> (u64, u64) {
    let mut pluto = support::start();
    let pid = pluto.pid().unwrap();
    let message = big_message(1024 * 1024);
    let mut client = Blocking::login(pluto.imap, USER, PASSWORD);
    let reply = client.append("INBOX", "", &message).unwrap();
    assert!(reply.ok(), "{reply:?}");
    let before = status_bytes(pid, "VmHWM");

    let bystander = Bystander::start(&pluto);
    let mut stream = logged_in_stream(&pluto);
    let items = vec!["BODY.PEEK[]"; copies].join(" ");
    let (bytes, tagged) = run_counting(&mut stream, "f1", &format!("FETCH 1 ({items})"));
    assert!(tagged.starts_with("f1 OK"), "{tagged}");
    assert!(
        bytes >= (copies * message.len()) as u64,
        "only {bytes} bytes for {copies} copies of {} bytes",
        message.len()
    );
    let peak = status_bytes(pid, "VmHWM");
    assert!(pluto.is_running(), "the server died:\n{}", pluto.logs());
    let oks = bystander.finish();
    assert!(
        oks > 0,
        "the other client got no answer while the FETCH ran"
    );
    // The session that fetched is still usable.
    let (_, tagged) = run_counting(&mut stream, "f2", "NOOP");
    assert!(tagged.starts_with("f2 OK"), "{tagged}");
    eprintln!(
        "FETCH 1 (BODY.PEEK[] x{copies}) of {} bytes: {bytes} bytes sent; VmHWM {} KiB before, {} KiB after",
        message.len(),
        before / 1024,
        peak / 1024
    );
    (before, peak)
}

#[test]
fn a_fetch_of_one_body_a_hundred_times_is_streamed() {
    let (before, peak) = fetch_many_bodies(100);
    assert!(
        peak < before + 64 * MIB,
        "peak RSS grew from {} to {} MiB",
        before / MIB,
        peak / MIB
    );
}

#[test]
fn a_fetch_of_one_body_seven_hundred_times_is_streamed() {
    let (before, peak) = fetch_many_bodies(700);
    assert!(
        peak < before + 64 * MIB,
        "peak RSS grew from {} to {} MiB",
        before / MIB,
        peak / MIB
    );
}

/// One client before login announcing a 40 MiB literal on LOGIN; it sends the bytes
/// whenever the server would take them. Whether the server refused the literal.
fn announce_big_literal(pluto: &Pluto, non_sync: bool) -> bool {
    const SIZE: usize = 40 * 1024 * 1024;
    let mut stream = TcpStream::connect(pluto.imap).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = stream.read(&mut buf).unwrap();
    let plus = if non_sync { "+" } else { "" };
    stream
        .write_all(format!("a LOGIN {{{SIZE}{plus}}}\r\n").as_bytes())
        .unwrap();
    let data = vec![b'x'; SIZE];
    if non_sync {
        // Sent at once, as LITERAL+ allows; the server may close while it comes.
        let _ = stream.write_all(&data);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        return answer.starts_with("* BYE") || answer.starts_with("a BAD");
    }
    let n = stream.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    if answer.starts_with('+') {
        // Taken: the bytes go in, and the command is never finished.
        stream.write_all(&data).unwrap();
        std::mem::forget(stream);
        return false;
    }
    answer.starts_with("a NO") || answer.starts_with("a BAD")
}

#[test]
fn big_literals_before_login_are_refused() {
    let mut pluto = support::start();
    let pid = pluto.pid().unwrap();
    let bystander = Bystander::start(&pluto);
    let before = status_bytes(pid, "VmHWM");
    let target = &pluto;
    let refused: Vec<bool> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..16)
            .map(|i| scope.spawn(move || announce_big_literal(target, i % 2 == 1)))
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    std::thread::sleep(Duration::from_millis(500));
    let peak = status_bytes(pid, "VmHWM");
    eprintln!(
        "16 clients announcing 40 MiB literals before login: VmHWM {} KiB before, {} KiB after",
        before / 1024,
        peak / 1024
    );
    assert!(refused.iter().all(|r| *r), "taken: {refused:?}");
    assert!(pluto.is_running(), "the server died:\n{}", pluto.logs());
    assert!(bystander.finish() > 0);
    let mut client = Blocking::login(pluto.imap, USER, PASSWORD);
    assert!(client.cmd("NOOP").unwrap().ok());
    assert!(
        peak < before + 32 * MIB,
        "peak RSS grew from {} to {} MiB",
        before / MIB,
        peak / MIB
    );
}

#[test]
fn a_search_of_bodies_reads_them_in_bounded_batches() {
    let mut pluto = support::start();
    let pid = pluto.pid().unwrap();
    let message = big_message(4 * 1024 * 1024);
    let mut client = Blocking::login(pluto.imap, USER, PASSWORD);
    for _ in 0..24 {
        let reply = client.append("INBOX", "", &message).unwrap();
        assert!(reply.ok(), "{reply:?}");
    }
    let before = status_bytes(pid, "VmHWM");
    let mut stream = logged_in_stream(&pluto);
    let (_, tagged) = run_counting(&mut stream, "s1", "SEARCH BODY nowhere-to-be-found");
    assert!(tagged.starts_with("s1 OK"), "{tagged}");
    let peak = status_bytes(pid, "VmHWM");
    assert!(pluto.is_running(), "the server died:\n{}", pluto.logs());
    let what = format!("SEARCH BODY over 24 messages of {} bytes", message.len());
    assert_peak_within(&what, before, peak, 48 * MIB);
}

#[test]
fn a_fetch_preview_of_every_message_reads_one_batch_of_bodies_at_a_time() {
    let mut pluto = support::start();
    let pid = pluto.pid().unwrap();
    // The first login makes the Maildir; the messages are dropped into its new/ (96 MiB
    // in all, twice the allowance).
    drop(Blocking::login(pluto.imap, USER, PASSWORD));
    let maildir = pluto.data_dir().join("mail").join(USER);
    let message = big_message(4 * 1024 * 1024);
    for i in 0..24 {
        let name = format!("1700000000.M{i}P2.preview");
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, &message).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
    let mut stream = logged_in_stream(&pluto);
    let before = status_bytes(pid, "VmHWM");
    let (bytes, tagged) = run_counting(&mut stream, "p1", "FETCH 1:* (PREVIEW)");
    assert!(tagged.starts_with("p1 OK"), "{tagged}");
    assert!(
        bytes > 24 * 256,
        "24 previews of 256 characters: only {bytes} bytes"
    );
    let peak = status_bytes(pid, "VmHWM");
    assert!(pluto.is_running(), "the server died:\n{}", pluto.logs());
    let what = format!(
        "FETCH 1:* (PREVIEW) over 24 messages of {} bytes",
        message.len()
    );
    assert_peak_within(&what, before, peak, 48 * MIB);
}

#[test]
fn a_search_of_many_sequence_sets_costs_its_line_not_the_mailbox_times_its_line() {
    let mut pluto = support::start();
    let pid = pluto.pid().unwrap();
    // The first login makes the Maildir; the messages are dropped into its new/.
    drop(Blocking::login(pluto.imap, USER, PASSWORD));
    let maildir = pluto.data_dir().join("mail").join(USER);
    for i in 0..4000 {
        let name = format!("1700000000.M{i}P1.test");
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, format!("Subject: {i}\r\n\r\nbody {i}\r\n")).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
    let mut stream = logged_in_stream(&pluto);
    let (_, tagged) = run_counting(&mut stream, "s0", "SEARCH 4000");
    assert!(tagged.starts_with("s0 OK"), "{tagged}");
    let before = status_bytes(pid, "VmHWM");
    // 15,000 keys in one 60 KB line, each naming every message: held as one UID set
    // each, that was 15,000 × 4,000 entries (hundreds of MiB).
    let keys = " 1:*".repeat(15_000);
    let (bytes, tagged) = run_counting(&mut stream, "s1", &format!("SEARCH{keys}"));
    assert!(tagged.starts_with("s1 OK"), "{tagged}");
    assert!(bytes > 4000 * 2, "every message matched: {bytes} bytes");
    let peak = status_bytes(pid, "VmHWM");
    assert!(pluto.is_running(), "the server died:\n{}", pluto.logs());
    let what = "SEARCH of 15,000 sequence sets over 4,000 messages";
    assert_peak_within(what, before, peak, 48 * MIB);
}

/// Bytes the process read through read(2) and the like so far (`rchar` of
/// /proc/PID/io): what a command cost in file reads.
fn read_chars(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_sort_or_thread_of_thousands_of_messages_reads_headers_only() {
    const COUNT: usize = 3000;
    const BODY: usize = 32 * 1024;
    let mut pluto = support::start();
    let pid = pluto.pid().unwrap();
    drop(Blocking::login(pluto.imap, USER, PASSWORD));
    let maildir = pluto.data_dir().join("mail").join(USER);
    let body = format!("{}\r\n", "y".repeat(78)).repeat(BODY / 80);
    for i in 0..COUNT {
        // A long References (150 IDs, the field alone about 5 KB) on every message.
        let refs: Vec<String> = (0..150)
            .map(|k| format!("<r{}.{k}@example.com>", i / 10))
            .collect();
        let message = format!(
            "Subject: Re: thread {}\r\nFrom: User {} <u{}@example.com>\r\nDate: Mon, 1 Jan 2024 {:02}:{:02}:00 +0000\r\nMessage-ID: <m{i}@example.com>\r\nReferences: {}\r\n\r\n{body}",
            i / 10,
            i % 97,
            i % 89,
            (i / 60) % 24,
            i % 60,
            refs.join("\r\n ")
        );
        let name = format!("1700000000.M{i}P1.test");
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, message).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
    let mut stream = logged_in_stream(&pluto);
    let (_, tagged) = run_counting(&mut stream, "s0", &format!("SEARCH {COUNT}"));
    assert!(tagged.starts_with("s0 OK"), "{tagged}");
    let before = status_bytes(pid, "VmHWM");
    for (tag, command) in [
        ("s1", "SORT (SUBJECT REVERSE DATE FROM) UTF-8 ALL"),
        ("s2", "THREAD REFERENCES UTF-8 ALL"),
        ("s3", "THREAD ORDEREDSUBJECT UTF-8 ALL"),
    ] {
        let read_before = read_chars(pid);
        let (bytes, tagged) = run_counting(&mut stream, tag, command);
        assert!(tagged.starts_with(&format!("{tag} OK")), "{tagged}");
        assert!(
            bytes > (COUNT * 2) as u64,
            "{command}: every message answered"
        );
        let read = read_chars(pid) - read_before;
        eprintln!("{command} of {COUNT} messages: {} KiB read", read / 1024);
        // Headers only: the bodies alone are COUNT × 32 KiB. (The first command reads
        // the headers, 8 KiB at a time; the others may find them in the cache.)
        assert!(
            read < (COUNT * 12 * 1024) as u64,
            "{command} read {read} bytes for {COUNT} messages"
        );
    }
    let peak = status_bytes(pid, "VmHWM");
    assert!(pluto.is_running(), "the server died:\n{}", pluto.logs());
    let what = format!("SORT and THREAD over {COUNT} messages with 5 KB References");
    assert_peak_within(&what, before, peak, 48 * MIB);
}
