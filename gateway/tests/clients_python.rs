//! Python's imaplib against the real `pluto` binary: the realistic session in
//! `testdata/clients/imaplib_session.py` (LIST, CREATE, APPEND incl. 1 MiB, FETCH with
//! byte comparison, SEARCH, STORE, COPY, UID MOVE, EXPUNGE, IDLE push, LOGOUT), once
//! over STARTTLS and once over implicit TLS, with the server's own certificate as the
//! only trust anchor. The script checks every answer and exits non-zero on the first
//! mismatch; this test only runs it and reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use pluto_testkit::serve::run_with_timeout;
use support::{PASSWORD, USER, client_script};

fn run_session(mode: &str) {
    let pluto = support::start();
    let port = match mode {
        "starttls" => pluto.imap.port(),
        _ => pluto.imaps.port(),
    };
    let script = client_script("imaplib_session.py");
    assert!(script.exists(), "missing {}", script.display());
    let out = run_with_timeout(
        Command::new("python3")
            .arg(&script)
            .args(["--mode", mode, "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--cafile")
            .arg(pluto.cert_path())
            .args(["--user", USER, "--password", PASSWORD]),
        Duration::from_secs(50),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("imaplib session OK"),
        "imaplib session over {mode} failed ({}):\n--- script stdout ---\n{stdout}\n--- script stderr ---\n{stderr}\n--- server log ---\n{}",
        out.status,
        pluto.logs()
    );
}

#[test]
fn imaplib_session_over_starttls() {
    run_session("starttls");
}

#[test]
fn imaplib_session_over_implicit_tls() {
    run_session("imaps");
}
