//! The `pluto serve` binary at start-up, as a new user meets it: flags are checked
//! before anything is created, no listener is refused, paths that cannot be used are
//! named, the first start says where mail lives, how to add a user and how to stop,
//! and the log written to a file carries no colour escapes and no per-client rustls
//! warning for an IP address sent as SNI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pluto_testkit::ports::reserve;
use pluto_testkit::serve::{pluto_bin, run_with_timeout};

/// `pluto serve --data-dir DIR --imap IMAP --imaps IMAPS`, run to its end.
fn serve_fails(data_dir: &Path, imap: &str, imaps: &str) -> String {
    let out = run_with_timeout(
        Command::new(pluto_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--imap", imap, "--imaps", imaps, "--lmtp", ""])
            .env("RUST_LOG", "info"),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "pluto serve should have failed: {stderr}"
    );
    stderr
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_bad_listen_address_fails_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let imaps = reserve().to_string();
    let stderr = serve_fails(&data, "not-an-address", &imaps);
    assert!(stderr.contains("listen.imap"), "{stderr}");
    assert!(stderr.contains("not-an-address"), "{stderr}");
    assert!(
        entries(&data).is_empty(),
        "nothing may be created: {:?}",
        entries(&data)
    );
    let imap = reserve().to_string();
    let stderr = serve_fails(&data, &imap, "127.0.0.1:99999");
    assert!(stderr.contains("listen.imaps"), "{stderr}");
    assert!(entries(&data).is_empty(), "{:?}", entries(&data));
}

#[test]
fn no_listener_at_all_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let stderr = serve_fails(&data, "", "");
    assert!(stderr.contains("no IMAP listener"), "{stderr}");
    assert!(stderr.contains("--imap"), "{stderr}");
    assert!(entries(&data).is_empty(), "{:?}", entries(&data));
}

#[test]
fn a_data_dir_that_is_a_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("i-am-a-file");
    std::fs::write(&file, b"x").unwrap();
    let (imap, imaps) = (reserve().to_string(), reserve().to_string());
    let stderr = serve_fails(&file, &imap, &imaps);
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x", "the file is untouched");
}

#[test]
fn a_mail_dir_that_cannot_be_used_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // The mail dir is a file: it cannot be opened, whoever runs the test.
    let mail = data.join("mail");
    std::fs::write(&mail, b"x").unwrap();
    let (imap, imaps) = (reserve().to_string(), reserve().to_string());
    let stderr = serve_fails(&data, &imap, &imaps);
    assert!(stderr.contains(&mail.display().to_string()), "{stderr}");
    // Without permission (only meaningful when not run as root, who may write anyway).
    std::fs::remove_file(&mail).unwrap();
    std::fs::create_dir_all(&mail).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::create(mail.join("probe")).is_err() {
        let stderr = serve_fails(&data, &imap, &imaps);
        assert!(stderr.contains(&mail.display().to_string()), "{stderr}");
    }
    std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A running `pluto serve` whose stdout and stderr go to files (not a terminal).
struct Serve {
    child: Child,
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
    imaps: std::net::SocketAddr,
}

impl Serve {
    fn start(tmp: &Path, data: &Path, rust_log: &str) -> Serve {
        let (imap, imaps) = (reserve(), reserve());
        let stdout = tmp.join(format!("stdout-{}", imaps.port()));
        let stderr = tmp.join(format!("stderr-{}", imaps.port()));
        let child = Command::new(pluto_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(data)
            .args(["--imap", &imap.to_string(), "--imaps", &imaps.to_string()])
            .args(["--lmtp", ""])
            .env("RUST_LOG", rust_log)
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&imap, Duration::from_millis(200)).is_err()
            || TcpStream::connect_timeout(&imaps, Duration::from_millis(200)).is_err()
        {
            assert!(Instant::now() < deadline, "pluto serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve {
            child,
            stdout,
            stderr,
            imaps,
        }
    }

    fn stop(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (
            std::fs::read_to_string(&self.stdout).unwrap(),
            std::fs::read_to_string(&self.stderr).unwrap(),
        )
    }
}

#[test]
fn the_first_start_says_where_mail_lives_how_to_add_a_user_and_how_to_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let serve = Serve::start(tmp.path(), &data, "info");
    let (stdout, _) = serve.stop();
    let data = std::fs::canonicalize(&data).unwrap();
    assert!(stdout.contains("password:"), "{stdout}");
    assert!(
        stdout.contains(&format!("{}", data.join("mail").display())),
        "{stdout}"
    );
    let add = format!("pluto user add NAME --data-dir {}", data.display());
    assert!(stdout.contains(&add), "{stdout}");
    assert!(stdout.contains("Ctrl-C"), "{stdout}");
    // The command it printed works on that very data dir.
    let mut child = Command::new(pluto_bin())
        .args(["user", "add", "second", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a password\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let users = std::fs::read_to_string(data.join("users")).unwrap();
    assert!(users.contains("second"), "{users}");
}

/// `pluto user add` refuses a name the store would refuse at login (one user-name rule
/// for both), says why, and writes nothing: `.alice` is not added and then refused.
#[test]
fn user_add_refuses_a_name_that_could_not_log_in() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = run_with_timeout(
        Command::new(pluto_bin())
            .args(["user", "add", ".alice", "--data-dir"])
            .arg(&data)
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(
        stderr.contains("invalid user name \".alice\": a user name cannot start with '.'"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("password"),
        "refused before the password is read: {stderr}"
    );
    assert!(!data.join("users").exists(), "nothing written");
}

/// A TLS 1.2 ClientHello whose SNI is an IP address (RFC 6066 forbids it; clients
/// told to connect to an address send it anyway).
fn client_hello_with_ip_sni(ip: &str) -> Vec<u8> {
    let name = ip.as_bytes();
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut ext = vec![0, 0]; // server_name
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sni);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 2, 0xc0, 0x2f]); // ECDHE-RSA-AES128-GCM-SHA256
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

fn send_ip_sni(addr: std::net::SocketAddr) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(&client_hello_with_ip_sni("127.0.0.1"))
        .unwrap();
    // Read what the server answers (its hello or an alert) so the hello was handled.
    let mut buf = [0u8; 5];
    let _ = tcp.read(&mut buf);
}

#[test]
fn a_log_file_has_no_colour_and_no_rustls_warning_per_ip_sni_client() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let serve = Serve::start(tmp.path(), &data, "info");
    for _ in 0..3 {
        send_ip_sni(serve.imaps);
    }
    let (_, log) = serve.stop();
    assert!(log.contains("INFO"), "the log has lines: {log}");
    assert!(!log.contains('\u{1b}'), "colour escapes in a file: {log:?}");
    assert!(!log.contains("Illegal SNI"), "{log}");

    // Asked for explicitly, rustls's warnings are there (so the check above means something).
    let serve = Serve::start(tmp.path(), &data, "info,rustls=warn");
    send_ip_sni(serve.imaps);
    let (_, log) = serve.stop();
    assert!(log.contains("Illegal SNI"), "{log}");
}
