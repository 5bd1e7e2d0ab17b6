//! The users-file adapter and the editing functions behind
//! `pluto user add|passwd|del`.
//!
//! Format (compatible with Dovecot's passwd-file): one user per line,
//! `name:{SCHEME}hash`, optionally followed by more `:`-separated fields
//! (uid, gid, gecos, home, shell, extra fields, as in Dovecot's files), which are
//! preserved. Of them pluto reads only the extra fields' quota limits
//! (`userdb_quota_rule=*:storage=1G`, see [`crate::quota`]).
//! Lines starting with `#` and blank lines are ignored. Names are looked up
//! case-insensitively; the spelling in the file is the canonical name.
//!
//! [`FileAuthenticator`] re-reads the file whenever it changed: each login
//! costs one `stat`, compared with the last load's mtime, size, inode and
//! device (the editors below replace the file by rename, so the inode
//! changes even when the mtime's granularity would hide an edit).
//!
//! The editors rewrite the whole file atomically: a temporary file in the
//! same directory, mode 0600, fsync, rename over the old one, fsync the
//! directory. A crash leaves either the old or the new file, never half of
//! one. They do not lock against a second editor running at the same moment;
//! run one `pluto user` command at a time.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;

use pluto_model::Quota;

use crate::names::{lookup_key, validate_user_name};
use crate::scheme::{DecoyHash, hash_password, verify_password};
use crate::{Account, AuthError, Authenticated, Authenticator};

/// One user as read from the file.
#[derive(Debug, Clone)]
struct Entry {
    /// The canonical spelling.
    name: String,
    /// The stored `{SCHEME}hash`.
    hash: String,
    /// The limits in the line's extra fields.
    quota: Quota,
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    size: u64,
    ino: u64,
    dev: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            mtime: meta.modified().ok(),
            size: meta.len(),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    users: HashMap<String, Entry>,
}

/// Authenticates against a users file, re-reading it when it changes.
#[derive(Debug)]
pub struct FileAuthenticator {
    path: PathBuf,
    allow_plaintext: bool,
    loaded: RwLock<Loaded>,
    /// Verified for unknown users: one of the file's own hashes.
    decoy: DecoyHash,
}

impl FileAuthenticator {
    /// Opens the users file at `path` and reads it once.
    ///
    /// `allow_plaintext` lets `{PLAIN}` entries log in; without it they are
    /// refused (as a failed login, with a warning in the log). Fails with
    /// [`AuthError::Io`] when the file cannot be read. Warns when the file is
    /// readable by group or others.
    pub async fn open(
        path: impl Into<PathBuf>,
        allow_plaintext: bool,
    ) -> Result<FileAuthenticator, AuthError> {
        let path = path.into();
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| AuthError::io(&path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "users file is readable by other users; chmod 600 it"
            );
        }
        let auth = FileAuthenticator {
            path,
            allow_plaintext,
            loaded: RwLock::new(Loaded::default()),
            decoy: DecoyHash::new(),
        };
        auth.refresh().await?;
        Ok(auth)
    }

    /// The file this adapter reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if its stamp changed since the last load.
    async fn refresh(&self) -> Result<(), AuthError> {
        let meta = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| AuthError::io(&self.path, e))?;
        let stamp = Stamp::of(&meta);
        if self.current_stamp() == Some(stamp) {
            return Ok(());
        }
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| AuthError::io(&self.path, e))?;
        let users = index(&String::from_utf8_lossy(&bytes), &self.path);
        for entry in users.values() {
            self.decoy.remember(&entry.hash);
        }
        tracing::debug!(path = %self.path.display(), users = users.len(), "users file loaded");
        // If the file changed again between stat and read, the next login
        // sees a newer stamp and loads it again: never stuck on stale data.
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        *loaded = Loaded {
            stamp: Some(stamp),
            users,
        };
        Ok(())
    }

    fn current_stamp(&self) -> Option<Stamp> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).stamp
    }

    fn lookup(&self, user: &str) -> Option<Entry> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .users
            .get(&lookup_key(user))
            .cloned()
    }
}

#[async_trait]
impl Authenticator for FileAuthenticator {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Authenticated, AuthError> {
        // A file we cannot read is an outage, not a wrong password: a user
        // deleted from a file that vanished must not keep working from cache,
        // and a client must not be told its password is wrong.
        self.refresh()
            .await
            .map_err(|e| AuthError::Unavailable(format!("users file: {e}")))?;
        match self.lookup(user) {
            Some(entry) => {
                if verify_password(password, &entry.hash, self.allow_plaintext).await? {
                    Ok(Authenticated::new(entry.name).with_quota(entry.quota))
                } else {
                    Err(AuthError::Failed)
                }
            }
            None => {
                self.decoy.verify(password).await?;
                Err(AuthError::Failed)
            }
        }
    }

    async fn find_user(&self, user: &str) -> Result<Option<Account>, AuthError> {
        // As for a login: an unreadable file is an outage (the MTA retries), never
        // "no such user" (which bounces the mail).
        self.refresh()
            .await
            .map_err(|e| AuthError::Unavailable(format!("users file: {e}")))?;
        // The file has no disabled flag: every entry may log in.
        Ok(self
            .lookup(user)
            .map(|entry| Account::new(entry.name, true).with_quota(entry.quota)))
    }
}

/// The extra fields of a line (its eighth field and the rest: they may hold `:`).
fn extra_fields(line: &str) -> Option<&str> {
    line.trim_end_matches(['\r', '\n']).splitn(8, ':').nth(7)
}

/// One parsed line: the name and hash fields, if the line holds a user.
fn parse_line(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_end_matches('\r');
    if trimmed.trim().is_empty() || trimmed.trim_start().starts_with('#') {
        return None;
    }
    let mut fields = trimmed.splitn(3, ':');
    let name = fields.next()?;
    let hash = fields.next()?;
    Some((name, hash))
}

/// Builds the lookup table; malformed and duplicate lines are skipped with a
/// warning naming the line number (never its content: it holds a hash).
fn index(text: &str, path: &Path) -> HashMap<String, Entry> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((name, hash)) = parse_line(line) else {
            tracing::warn!(path = %path.display(), line = i + 1, "users file: line without ':' skipped");
            continue;
        };
        if name.is_empty() || hash.is_empty() {
            tracing::warn!(path = %path.display(), line = i + 1, "users file: empty name or hash, line skipped");
            continue;
        }
        let key = lookup_key(name);
        if users.contains_key(&key) {
            tracing::warn!(path = %path.display(), line = i + 1, "users file: duplicate user, first entry wins");
            continue;
        }
        let (quota, problems) = extra_fields(line).map_or_else(
            || (Quota::default(), Vec::new()),
            crate::quota::from_extra_fields,
        );
        for problem in problems {
            tracing::warn!(path = %path.display(), line = i + 1, %problem, "users file: quota field not used");
        }
        users.insert(
            key,
            Entry {
                name: name.to_owned(),
                hash: hash.to_owned(),
                quota,
            },
        );
    }
    users
}

/// Reads the file; a missing file reads as empty when `missing_ok`.
fn read_text(path: &Path, missing_ok: bool) -> Result<String, AuthError> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
            AuthError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
            )
        }),
        Err(e) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(AuthError::io(path, e)),
    }
}

/// Whether the line holds the user `key` (a lookup key).
fn line_is_user(line: &str, key: &str) -> bool {
    parse_line(line).is_some_and(|(name, _)| lookup_key(name) == key)
}

/// Adds `name` with a new argon2id hash of `password`, creating the file
/// (mode 0600) if it does not exist.
///
/// Errors: [`AuthError::InvalidUserName`], [`AuthError::InvalidPassword`]
/// (empty), [`AuthError::UserExists`] (also for a name differing only in
/// case), [`AuthError::Io`].
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), AuthError> {
    validate_user_name(name)?;
    let hash = hash_password(password)?;
    add_user_with_hash(path, name, &hash)
}

/// Adds `name` with an already made `{SCHEME}hash` (for imports). The hash
/// must be one line without `:`-free guarantees broken: it is refused if it
/// contains a line break.
pub fn add_user_with_hash(path: &Path, name: &str, stored_hash: &str) -> Result<(), AuthError> {
    validate_user_name(name)?;
    if stored_hash.is_empty() || stored_hash.contains(['\n', '\r', ':']) {
        return Err(AuthError::Hash(
            "a stored hash must be non-empty, one line and free of ':'".to_owned(),
        ));
    }
    let mut text = read_text(path, true)?;
    let key = lookup_key(name);
    if text.lines().any(|l| line_is_user(l, &key)) {
        return Err(AuthError::UserExists(name.to_owned()));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(name);
    text.push(':');
    text.push_str(stored_hash);
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Replaces the password of `name` with a new argon2id hash, keeping any
/// extra fields on its line.
///
/// Errors: [`AuthError::NoSuchUser`] (also when the file does not exist),
/// [`AuthError::InvalidPassword`], [`AuthError::Io`].
pub fn set_password(path: &Path, name: &str, password: &str) -> Result<(), AuthError> {
    let hash = hash_password(password)?;
    let text = read_text(path, true)?;
    let key = lookup_key(name);
    let mut found = false;
    let mut out = String::with_capacity(text.len() + hash.len());
    for line in text.split_inclusive('\n') {
        if line_is_user(line, &key) {
            found = true;
            let ending = if line.ends_with("\r\n") {
                "\r\n"
            } else if line.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            let body = &line[..line.len() - ending.len()];
            let mut fields = body.splitn(3, ':');
            let user = fields.next().unwrap_or_default();
            let _old_hash = fields.next();
            out.push_str(user);
            out.push(':');
            out.push_str(&hash);
            if let Some(rest) = fields.next() {
                out.push(':');
                out.push_str(rest);
            }
            out.push_str(ending);
        } else {
            out.push_str(line);
        }
    }
    if !found {
        return Err(AuthError::NoSuchUser(name.to_owned()));
    }
    write_atomic(path, out.as_bytes())
}

/// Removes `name` from the file.
///
/// Errors: [`AuthError::NoSuchUser`] (also when the file does not exist),
/// [`AuthError::Io`].
pub fn delete_user(path: &Path, name: &str) -> Result<(), AuthError> {
    let text = read_text(path, true)?;
    let key = lookup_key(name);
    let before = text.split_inclusive('\n').count();
    let out: String = text
        .split_inclusive('\n')
        .filter(|l| !line_is_user(l, &key))
        .collect();
    if out.split_inclusive('\n').count() == before {
        return Err(AuthError::NoSuchUser(name.to_owned()));
    }
    write_atomic(path, out.as_bytes())
}

/// The canonical names in the file, in file order (duplicates dropped).
pub fn list_users(path: &Path) -> Result<Vec<String>, AuthError> {
    let text = read_text(path, false)?;
    let mut seen = std::collections::HashSet::new();
    Ok(text
        .lines()
        .filter_map(parse_line)
        .filter(|(name, hash)| !name.is_empty() && !hash.is_empty())
        .filter(|(name, _)| seen.insert(lookup_key(name)))
        .map(|(name, _)| name.to_owned())
        .collect())
}

/// Replaces `path` with `contents` so that a crash leaves the old or the new
/// file, never a mix: temporary file beside it (0600), fsync, rename, fsync
/// the directory so the rename itself is durable.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), AuthError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| AuthError::Config(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| AuthError::io(&tmp, e))?;
        f.write_all(contents).map_err(|e| AuthError::io(&tmp, e))?;
        f.sync_all().map_err(|e| AuthError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| AuthError::io(path, e))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AuthError::io(&dir, e))
    })();
    if result.is_err() {
        // Best effort: the rename did not happen, so the temp file is litter.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_dovecot_lines() {
        let text = "# comment\n\n  \nalice:{PLAIN}a:1000:1000::/home/alice::\nBob:{PLAIN}b\r\nbroken line\n:{PLAIN}x\ncarol:\nalice:{PLAIN}dup\n";
        let users = index(text, Path::new("t"));
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"].hash, "{PLAIN}a");
        assert_eq!(users["bob"].name, "Bob");
        assert_eq!(users["bob"].hash, "{PLAIN}b");
        assert_eq!(users["alice"].quota, Quota::default());
    }

    #[test]
    fn quota_limits_come_from_the_extra_fields() {
        let text = "a:{PLAIN}a:1000:1000::/home/a::userdb_quota_rule=*:storage=1M userdb_quota_rule2=*:messages=9\r\n\
                    b:{PLAIN}b::::::quota_storage_size=1k\n\
                    c:{PLAIN}c:1:1:userdb_quota_rule=*:storage=1M:/home/c\n\
                    d:{PLAIN}d::::::userdb_quota_rule=Trash:storage=+1M\n";
        let users = index(text, Path::new("t"));
        assert_eq!(
            users["a"].quota,
            Quota {
                storage_bytes: Some(1 << 20),
                messages: Some(9)
            }
        );
        assert_eq!(users["b"].quota.storage_bytes, Some(1024));
        // Only the eighth field holds extra fields: the same text in the gecos is not one.
        assert_eq!(users["c"].quota, Quota::default());
        // A rule pluto cannot honour is left out (the default applies).
        assert_eq!(users["d"].quota, Quota::default());
    }
}
