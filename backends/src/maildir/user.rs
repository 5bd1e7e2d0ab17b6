//! Per-user state kept outside the mailboxes: subscriptions, special-use attributes and
//! the UIDVALIDITY counter, in `pluto-user.json` in the user's directory (replaced
//! atomically on every change; changes are rare).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, StoreResult};
use crate::fsutil::{is_not_found, now_secs, write_atomic};
use crate::types::{MailboxName, SpecialUse};

pub(crate) const USER_FILE: &str = "pluto-user.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserMeta {
    #[serde(default)]
    pub subscriptions: BTreeSet<MailboxName>,
    #[serde(default)]
    pub special_use: BTreeMap<MailboxName, SpecialUse>,
    /// The highest UIDVALIDITY ever given to a mailbox of this user.
    #[serde(default)]
    pub last_uid_validity: u32,
}

impl UserMeta {
    /// Reads the user's file; `Ok(None)` when there is none (a new user). A corrupt file
    /// is set aside with a warning, and the counter restarts from the clock, which is
    /// above any value it gave before unless the clock went back.
    pub(super) fn load(user_dir: &Path) -> StoreResult<Option<UserMeta>> {
        let path = user_dir.join(USER_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice(&bytes) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) => {
                let aside: PathBuf = user_dir.join(format!("{USER_FILE}.corrupt"));
                tracing::warn!(file = %path.display(), error = %e, "user file is corrupt; setting it aside, subscriptions are lost");
                fs::rename(&path, &aside)?;
                Ok(Some(UserMeta {
                    last_uid_validity: u32::try_from(now_secs()).unwrap_or(u32::MAX - 1),
                    ..UserMeta::default()
                }))
            }
        }
    }

    pub(super) fn save(&self, user_dir: &Path) -> StoreResult<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode the user file: {e}")))?;
        write_atomic(&user_dir.join(USER_FILE), &bytes)?;
        Ok(())
    }

    /// A UIDVALIDITY above every one given before: the clock, or one more than the last.
    pub(super) fn next_uid_validity(&mut self) -> StoreResult<u32> {
        let now = u32::try_from(now_secs()).unwrap_or(0);
        let next = now.max(self.last_uid_validity.saturating_add(1)).max(1);
        if next == u32::MAX {
            return Err(StoreError::NotAllowed(
                "this user's UIDVALIDITY counter is exhausted".into(),
            ));
        }
        self.last_uid_validity = next;
        Ok(next)
    }
}
