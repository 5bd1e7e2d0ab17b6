//! Watching `new/` of the mailboxes sessions are watching, so that mail another program
//! drops there (an MDA, `procmail`, a script) reaches IDLE within moments instead of at
//! the next poll. One inotify (through the `notify` crate) for the whole store; one
//! counter per watched directory, bumped on every event in it.
//!
//! Best effort by design: when the watcher cannot be made or a directory cannot be
//! watched (inotify limits), the session's periodic poll still finds the mail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecursiveMode, Watcher};
use tokio::sync::watch;

use crate::concurrency::lock;

type Dirs = Arc<Mutex<HashMap<PathBuf, watch::Sender<u64>>>>;

pub(crate) struct DropWatch {
    dirs: Dirs,
    /// `None` once making the watcher failed (then only the poll finds drops).
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
}

impl DropWatch {
    pub(crate) fn new() -> DropWatch {
        let dirs: Dirs = Arc::default();
        let seen = dirs.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let dirs = lock(&seen);
            for path in &event.paths {
                let dir = path.parent().unwrap_or(path);
                if let Some(tx) = dirs.get(dir).or_else(|| dirs.get(path.as_path())) {
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch Maildir new/ directories; IDLE sees mail dropped there at its next poll");
                None
            }
        };
        DropWatch {
            dirs,
            watcher: Mutex::new(watcher),
        }
    }

    /// A receiver that changes whenever something happens in `dir`; `None` when `dir`
    /// cannot be watched. Directories nobody listens to any more are unwatched here.
    pub(crate) fn subscribe(&self, dir: &Path) -> Option<watch::Receiver<u64>> {
        // The watcher's lock serialises subscriptions. The directory map's lock is never
        // held while calling the watcher: `watch` waits for notify's event thread, which
        // may be in the callback, waiting for that map.
        let mut watcher = lock(&self.watcher);
        let watcher = watcher.as_mut()?;
        let (rx, unused) = {
            let mut dirs = lock(&self.dirs);
            let unused: Vec<PathBuf> = dirs
                .iter()
                .filter(|(path, tx)| tx.receiver_count() == 0 && path.as_path() != dir)
                .map(|(path, _)| path.clone())
                .collect();
            for path in &unused {
                dirs.remove(path);
            }
            if let Some(tx) = dirs.get(dir) {
                return Some(tx.subscribe());
            }
            // Registered before watching, so no early event is lost.
            let (tx, rx) = watch::channel(0);
            dirs.insert(dir.to_path_buf(), tx);
            (rx, unused)
        };
        for path in &unused {
            let _ = watcher.unwatch(path);
        }
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot watch a new/ directory; the poll will find drops");
            lock(&self.dirs).remove(dir);
            return None;
        }
        Some(rx)
    }
}
