//! The two small concurrency helpers the backends share: taking a std mutex that a
//! panic may have poisoned, and turning a failed `spawn_blocking` join into a
//! [`StoreError`].

use std::sync::{Mutex, MutexGuard};

use tokio::task::JoinError;

use crate::error::StoreError;

/// Locks `m`, taking the data over even when a panic poisoned the lock: the mutexes
/// of this crate guard small plain data (maps, cursors, handles) that a panic while
/// holding them cannot leave half-changed in a way later readers would misread.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error a `spawn_blocking` task that panicked or was cancelled is reported as.
pub(crate) fn blocking_err(e: JoinError) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("blocking task failed: {e}")))
}
