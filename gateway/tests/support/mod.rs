//! Test support for the end-to-end client tests (`clients_python`, `clients_mbsync`,
//! `crash`, `memory`): the real `pluto` binary run as a child process
//! ([`pluto_testkit::serve`]) as the user these tests log in as, and where the client
//! scripts live. Unlike `tests/common`, nothing here runs the server in-process: these
//! tests see exactly what a user sees, including what survives a SIGKILL.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

pub(crate) use pluto_testkit::serve::Pluto;

/// The user every test logs in as. The password has a space so that clients must quote it.
pub(crate) const USER: &str = "tester";
pub(crate) const PASSWORD: &str = "e2e secret 42";

/// `pluto serve` on a fresh data dir with the user [`USER`].
pub(crate) fn start() -> Pluto {
    Pluto::start(&[(USER, PASSWORD)])
}

/// The repository root (the workspace), from the gateway crate's manifest dir.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("gateway/ has a parent")
        .to_path_buf()
}

/// `testdata/clients/NAME`.
pub(crate) fn client_script(name: &str) -> PathBuf {
    repo_root().join("testdata").join("clients").join(name)
}
