//! Password schemes: reading Dovecot-style `{SCHEME}hash` strings, verifying a
//! password against them, and hashing new passwords (argon2id).
//!
//! Read: `ARGON2ID`, `ARGON2I`, `SHA512-CRYPT`, `SHA256-CRYPT`, `BLF-CRYPT`
//! (Dovecot's name for bcrypt) and `BCRYPT`, `CRYPT` (dispatched on the hash's
//! `$id$` prefix), and `PLAIN` / `CLEAR` / `CLEARTEXT` only when the adapter
//! allows plaintext. A hash with no `{…}` prefix that starts with `$` is read
//! as `CRYPT`, as Dovecot's passwd-file does. Written: always
//! `{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$…` (the argon2 crate's defaults,
//! OWASP's recommendation).
//!
//! The hashes are slow on purpose, so the async entry points run them on
//! tokio's blocking pool, and at most a few at a time (each argon2 run takes
//! tens of MiB): a burst of logins queues instead of exhausting memory or
//! stalling the sessions' runtime threads.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::AuthError;

/// A password scheme named by a `{SCHEME}` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `{ARGON2ID}` — the default for new hashes.
    Argon2id,
    /// `{ARGON2I}`.
    Argon2i,
    /// `{SHA512-CRYPT}` — `$6$…`.
    Sha512Crypt,
    /// `{SHA256-CRYPT}` — `$5$…`.
    Sha256Crypt,
    /// `{BLF-CRYPT}` or `{BCRYPT}` — `$2y$…` and friends.
    Bcrypt,
    /// `{CRYPT}` or no prefix: the format follows from the `$id$` prefix.
    Crypt,
    /// `{PLAIN}`, `{CLEAR}`, `{CLEARTEXT}` — only when explicitly allowed.
    Plain,
}

impl Scheme {
    /// The scheme's canonical Dovecot name.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::Bcrypt => "BLF-CRYPT",
            Scheme::Crypt => "CRYPT",
            Scheme::Plain => "PLAIN",
        }
    }

    fn from_name(name: &str) -> Option<Scheme> {
        Some(match name.to_ascii_uppercase().as_str() {
            "ARGON2ID" => Scheme::Argon2id,
            "ARGON2I" => Scheme::Argon2i,
            "SHA512-CRYPT" => Scheme::Sha512Crypt,
            "SHA256-CRYPT" => Scheme::Sha256Crypt,
            "BLF-CRYPT" | "BCRYPT" => Scheme::Bcrypt,
            "CRYPT" => Scheme::Crypt,
            "PLAIN" | "CLEAR" | "CLEARTEXT" => Scheme::Plain,
            _ => return None,
        })
    }
}

/// Splits a stored `{SCHEME}hash` into its scheme and hash.
///
/// The error says why the string is unusable; it never contains the hash.
pub fn parse_stored(stored: &str) -> Result<(Scheme, &str), String> {
    if let Some(rest) = stored.strip_prefix('{') {
        let Some((name, hash)) = rest.split_once('}') else {
            return Err("'{' without a closing '}'".to_owned());
        };
        // Dovecot allows an encoding suffix (`{PLAIN.b64}`); we do not.
        match Scheme::from_name(name) {
            Some(scheme) => Ok((scheme, hash)),
            None => Err(format!("unsupported password scheme {{{name}}}")),
        }
    } else if stored.starts_with('$') {
        Ok((Scheme::Crypt, stored))
    } else {
        Err("no {SCHEME} prefix and not a $id$ crypt hash".to_owned())
    }
}

/// Checks `password` against a stored `{SCHEME}hash`, on the calling thread.
///
/// Returns `true` only for a match. An unusable stored value (unknown scheme,
/// malformed hash, `{PLAIN}` while plaintext is not allowed) is logged as a
/// warning and is a mismatch; the dummy hash is verified in its place so
/// that such an account answers as slowly as any other.
pub fn verify_password_blocking(password: &str, stored: &str, allow_plaintext: bool) -> bool {
    match check(password, stored, allow_plaintext) {
        Ok(matched) => matched,
        Err(reason) => {
            tracing::warn!(%reason, "stored password hash is unusable; login refused");
            verify_dummy_blocking(password);
            false
        }
    }
}

fn check(password: &str, stored: &str, allow_plaintext: bool) -> Result<bool, String> {
    let (scheme, hash) = parse_stored(stored)?;
    match scheme {
        Scheme::Plain if !allow_plaintext => {
            Err("{PLAIN} password but plaintext passwords are not allowed".to_owned())
        }
        Scheme::Plain => Ok(bool::from(password.as_bytes().ct_eq(hash.as_bytes()))),
        Scheme::Argon2id | Scheme::Argon2i => check_argon2(password, hash),
        Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::Bcrypt | Scheme::Crypt => {
            // Dovecot verifies every *-CRYPT scheme with crypt(3), which
            // follows the hash's own `$id$`; so do we.
            check_crypt(password, hash)
        }
    }
}

fn check_argon2(password: &str, hash: &str) -> Result<bool, String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("malformed argon2 hash: {e}"))?;
    if !matches!(
        parsed.algorithm.as_str(),
        "argon2id" | "argon2i" | "argon2d"
    ) {
        return Err(format!("not an argon2 hash: ${}$", parsed.algorithm));
    }
    let unusable = |e: &dyn std::fmt::Display| format!("unusable argon2 hash: {e}");
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm).map_err(|e| unusable(&e))?;
    let version = parsed
        .version
        .map(argon2::Version::try_from)
        .transpose()
        .map_err(|e| unusable(&e))?
        .unwrap_or_default();
    let params = argon2::Params::try_from(&parsed).map_err(|e| unusable(&e))?;
    let salt = parsed.salt.ok_or_else(|| unusable(&"no salt"))?;
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(|e| unusable(&e))?;
    let expected = parsed.hash.ok_or_else(|| unusable(&"no hash"))?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    with_argon2_memory(blocks, |memory| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)
    })
    .map_err(|e| unusable(&e))?;
    Ok(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

/// Argon2's working memory (19 MiB at our defaults), kept for reuse. Allocating it for
/// every login leaves glibc holding a copy in each blocking thread's arena — about
/// 90 KiB per open session in the idle-memory benchmark. At most as many buffers as
/// verifications may run at once are kept.
fn with_argon2_memory<T>(blocks: usize, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    static POOL: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());
    let take = || POOL.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut memory = take().unwrap_or_default();
    if memory.len() < blocks {
        memory = vec![argon2::Block::default(); blocks];
    }
    let result = f(&mut memory[..blocks]);
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < verify_slot_count() {
        pool.push(memory);
    }
    result
}

fn check_crypt(password: &str, hash: &str) -> Result<bool, String> {
    if hash.starts_with("$6$") {
        sha_crypt_shape(hash, 86).map_err(|e| format!("malformed SHA512-CRYPT hash: {e}"))?;
        // With the shape checked, the only remaining error is a mismatch
        // (sha-crypt 0.5 does not export its error type to tell them apart).
        Ok(sha_crypt::sha512_check(password, hash).is_ok())
    } else if hash.starts_with("$5$") {
        sha_crypt_shape(hash, 43).map_err(|e| format!("malformed SHA256-CRYPT hash: {e}"))?;
        Ok(sha_crypt::sha256_check(password, hash).is_ok())
    } else if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        // `verify` (not `non_truncating_verify`): bcrypt only ever looked at
        // the first 72 bytes, and the hashes we read were made that way.
        bcrypt::verify(password, hash).map_err(|e| format!("malformed bcrypt hash: {e}"))
    } else if hash.starts_with("$argon2") {
        check_argon2(password, hash)
    } else {
        Err("unsupported crypt format (only $6$, $5$, $2?$ and $argon2…$ are read)".to_owned())
    }
}

/// Checks the shape `$N$[rounds=R$]salt$digest` of a SHA-crypt hash: a
/// salt of at most 16 characters and a digest of `digest_len` characters of
/// the crypt alphabet.
fn sha_crypt_shape(hash: &str, digest_len: usize) -> Result<(), &'static str> {
    let crypt_alphabet = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    let mut parts: Vec<&str> = hash.split('$').skip(2).collect();
    if parts.first().is_some_and(|p| p.starts_with("rounds=")) {
        let rounds = parts.remove(0)["rounds=".len()..].parse::<u32>();
        if rounds.is_err() {
            return Err("bad rounds= value");
        }
    }
    match parts.as_slice() {
        [salt, digest] if salt.len() <= 16 && digest.len() == digest_len => {
            if crypt_alphabet(digest) {
                Ok(())
            } else {
                Err("digest is not in the crypt alphabet")
            }
        }
        _ => Err("expected salt$digest"),
    }
}

/// A fixed argon2id hash with the same parameters as [`hash_password`]
/// produces (`m=19456,t=2,p=1`), verified for unknown users so that they take
/// as long as known ones. Its password is random and was thrown away.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Z2JVjBiKZ5hk8sL6RcZ5aA$97N0QL/a+sXLh6uYB24FA8NrbmEX0NsRE7agQjR0FRA";

/// Spends the time of one password verification and throws the result away.
pub fn verify_dummy_blocking(password: &str) {
    // The outcome is irrelevant; only the time spent matters.
    let _ = check_argon2(password, DUMMY_HASH);
}

/// How many verifications may run at once: twice the cores, at least 2.
/// How many password verifications may run at once.
fn verify_slot_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).max(2)
}

fn verify_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(verify_slot_count()))
}

async fn on_blocking_pool<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let _permit = verify_slots()
        .acquire()
        .await
        .map_err(|_| AuthError::Unavailable("password verifier shut down".to_owned()))?;
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| AuthError::Unavailable(format!("password verification task failed: {e}")))
}

/// Checks `password` against a stored `{SCHEME}hash` on tokio's blocking pool.
///
/// `Ok(true)` for a match, `Ok(false)` for a mismatch or an unusable stored
/// value (see [`verify_password_blocking`]); `Err(Unavailable)` only if the
/// blocking task itself failed.
pub async fn verify_password(
    password: &str,
    stored: &str,
    allow_plaintext: bool,
) -> Result<bool, AuthError> {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    on_blocking_pool(move || verify_password_blocking(&password, &stored, allow_plaintext)).await
}

/// Spends the time of one verification on the blocking pool: call it for an
/// unknown user so that the answer takes as long as for a known one.
pub async fn verify_dummy(password: &str) -> Result<(), AuthError> {
    let password = password.to_owned();
    on_blocking_pool(move || verify_dummy_blocking(&password)).await
}

/// The stand-in hash an adapter verifies for unknown users, so that they
/// cost what a real user costs *in that adapter's table*.
///
/// [`verify_dummy`] always spends the price of a new argon2id hash; but a
/// table migrated from Dovecot may hold argon2id with other parameters, or
/// SHA512-CRYPT, and then an unknown user would answer measurably faster
/// than a known one. A `DecoyHash` remembers a real stored hash (the
/// adapter calls [`remember`](DecoyHash::remember) with hashes it reads)
/// and verifies the password against that instead, throwing the result
/// away. Until it has seen one, it falls back to [`verify_dummy`].
#[derive(Debug, Default)]
pub struct DecoyHash {
    stored: std::sync::Mutex<Option<String>>,
}

impl DecoyHash {
    /// An empty decoy (falls back to the built-in dummy).
    pub fn new() -> Self {
        DecoyHash::default()
    }

    /// Remembers `stored` as the decoy if it is a usable, non-plaintext hash.
    pub fn remember(&self, stored: &str) {
        if matches!(parse_stored(stored), Ok((scheme, _)) if scheme != Scheme::Plain) {
            let mut slot = self.stored.lock().unwrap_or_else(|p| p.into_inner());
            if slot.as_deref() != Some(stored) {
                *slot = Some(stored.to_owned());
            }
        }
    }

    /// Spends the time of verifying `password` against the decoy, on the
    /// blocking pool; the outcome is discarded.
    pub async fn verify(&self, password: &str) -> Result<(), AuthError> {
        let decoy = self
            .stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match decoy {
            Some(stored) => {
                let password = password.to_owned();
                on_blocking_pool(move || {
                    // Quietly: a decoy that turns out unusable is not worth
                    // a warning per unknown-user login.
                    if check(&password, &stored, false).is_err() {
                        verify_dummy_blocking(&password);
                    }
                })
                .await
            }
            None => verify_dummy(password).await,
        }
    }
}

/// Hashes a new password as `{ARGON2ID}$argon2id$v=19$…` with a random salt.
///
/// Refuses the empty password. Blocking (tens of milliseconds); in async
/// code use [`hash_password_async`].
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.is_empty() {
        return Err(AuthError::InvalidPassword("empty"));
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(format!("{{ARGON2ID}}{hash}"))
}

/// [`hash_password`] on tokio's blocking pool.
pub async fn hash_password_async(password: &str) -> Result<String, AuthError> {
    let password = password.to_owned();
    on_blocking_pool(move || hash_password(&password)).await?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // Vectors made on this machine with Dovecot 2.3's own hasher:
    //   doveadm pw -s <SCHEME> -p 'correct horse'        (and -r for rounds)
    // plus one from OpenSSL and one from Python's crypt module, so that the
    // formats Dovecot, glibc and OpenSSL write are all covered.
    const PW: &str = "correct horse";
    const DOVECOT_ARGON2ID: &str = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$1j+BOmGGHIaMTnckmfDT5Q$qGGNlhUl7VvV5VFD6OaTyEpKgMGI1fqdwA8j2Ptnd8U";
    const DOVECOT_ARGON2I: &str = "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$WdsYuB1Q2PSdel8QUAjW3Q$yvbv5I1b9iRkMwUrsiX37Qan0fZrjCKOyFxXaCF/jRE";
    const DOVECOT_SHA512: &str = "{SHA512-CRYPT}$6$Wmf3nSQ8f9kM44RY$mAM/WKuqxrPy60p0wHVauhTtn8eu581XxCLQniYg8yO/79AU3JwVxiDw7Gyqsiyb6YoYc2db9Kp5tQTMWNAed.";
    const DOVECOT_SHA512_ROUNDS: &str = "{SHA512-CRYPT}$6$rounds=10000$UoqOBL3jN0GTPM28$87ixpiwAKex.Wd4vkBbf3V4VQtnex9/aNxy07Om41cEsJpa2aZ4PbqpoRzZ1tYnlA8LaWj73FovyxTsttJ8Zf1";
    const DOVECOT_SHA256: &str =
        "{SHA256-CRYPT}$5$/qM6UcIHlvtq4v83$0MV2wRB28nEjUBrPMKzXkEvBskN7tlaFzxwt7YVpjU3";
    const DOVECOT_BLF: &str =
        "{BLF-CRYPT}$2y$05$8QlzyO0/qu0H3xftZP00BeMggHRr1BuwThfgG6qSnssCPaK2a0RNK";
    // `openssl passwd -6 -salt saltsalt 'correct horse'`
    const OPENSSL_SHA512: &str = "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0";
    // python3: crypt.crypt('correct horse', crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1<<5))
    const PYTHON_BCRYPT_2B: &str = "$2b$05$1rfG7E9fGGbwSy0NB9a7bOHoCXJMIkMjSC3TEj5x/x2eyLrZuoKWe";
    // Non-ASCII password, `doveadm pw -s BLF-CRYPT -r 6 -p 'pässwörd ✓'` and ARGON2ID.
    const UNICODE_PW: &str = "pässwörd ✓";
    const DOVECOT_BLF_UNICODE: &str =
        "{BLF-CRYPT}$2y$06$.vz5IGkwWJibQXrshzeDge1UKK5la3HXgn5xRNIWf/xbhwdJF9tG2";
    const DOVECOT_ARGON2ID_UNICODE: &str = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$q29y5r802qPvKV5iz5KDPQ$KeItkzT/pxBoiJQK13FOCNwlcgn9xlPBx65Vuvf0L+g";

    fn both(stored: &str, right: &str) {
        assert!(verify_password_blocking(right, stored, false), "{stored}");
        assert!(
            !verify_password_blocking("wrong horse", stored, false),
            "{stored}"
        );
        assert!(!verify_password_blocking("", stored, false), "{stored}");
    }

    #[test]
    fn dovecot_vectors_verify() {
        for v in [
            DOVECOT_ARGON2ID,
            DOVECOT_ARGON2I,
            DOVECOT_SHA512,
            DOVECOT_SHA512_ROUNDS,
            DOVECOT_SHA256,
            DOVECOT_BLF,
        ] {
            both(v, PW);
        }
        both(DOVECOT_BLF_UNICODE, UNICODE_PW);
        both(DOVECOT_ARGON2ID_UNICODE, UNICODE_PW);
    }

    #[test]
    fn other_tools_vectors_verify() {
        // Without prefix: read as CRYPT.
        both(OPENSSL_SHA512, PW);
        both(PYTHON_BCRYPT_2B, PW);
        // With the other spellings of the scheme names.
        both(&format!("{{CRYPT}}{OPENSSL_SHA512}"), PW);
        both(&format!("{{BCRYPT}}{PYTHON_BCRYPT_2B}"), PW);
        both(&format!("{{sha512-crypt}}{OPENSSL_SHA512}"), PW);
    }

    #[test]
    fn a_changed_hash_does_not_verify() {
        // Flip one character of the digest: must no longer match.
        let mut tampered = DOVECOT_SHA512.to_owned();
        tampered.pop();
        tampered.push('/');
        assert!(!verify_password_blocking(PW, &tampered, false));
    }

    #[test]
    fn plaintext_only_when_allowed() {
        for stored in ["{PLAIN}secret", "{CLEAR}secret", "{cleartext}secret"] {
            assert!(!verify_password_blocking("secret", stored, false));
            assert!(verify_password_blocking("secret", stored, true));
            assert!(!verify_password_blocking("secreT", stored, true));
            assert!(!verify_password_blocking("secret2", stored, true));
        }
    }

    #[test]
    fn unusable_values_never_match() {
        for stored in [
            "",
            "secret",
            "{MD5}x",
            "{ARGON2ID",
            "{ARGON2ID}garbage",
            "{SHA512-CRYPT}$6$",
            "{BLF-CRYPT}$2y$99$x",
            "$1$saltsalt$abc", // MD5-crypt: not read
            "{ARGON2ID}$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA",
        ] {
            assert!(
                !verify_password_blocking("secret", stored, true),
                "{stored}"
            );
        }
    }

    #[test]
    fn parse_names_schemes() {
        assert_eq!(parse_stored("{BLF-CRYPT}$2y$x").unwrap().0, Scheme::Bcrypt);
        assert_eq!(parse_stored("{bcrypt}$2y$x").unwrap().0, Scheme::Bcrypt);
        assert_eq!(parse_stored("$6$a$b").unwrap(), (Scheme::Crypt, "$6$a$b"));
        assert_eq!(parse_stored("{PLAIN}a}b").unwrap(), (Scheme::Plain, "a}b"));
        assert!(parse_stored("{NOPE}x").is_err());
    }

    #[test]
    fn new_hashes_are_argon2id_and_verify() {
        let h = hash_password(PW).unwrap();
        assert!(
            h.starts_with("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"),
            "{h}"
        );
        assert!(verify_password_blocking(PW, &h, false));
        assert!(!verify_password_blocking("correct horsE", &h, false));
        // Fresh salt every time.
        assert_ne!(h, hash_password(PW).unwrap());
        assert!(matches!(
            hash_password(""),
            Err(AuthError::InvalidPassword(_))
        ));
    }

    #[test]
    fn dummy_hash_costs_what_a_new_hash_costs() {
        let new = hash_password("x").unwrap();
        let params = |h: &str| h.split('$').nth(3).map(str::to_owned);
        assert_eq!(params(DUMMY_HASH), params(&new));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[tokio::test]
    async fn decoy_takes_what_the_remembered_hash_takes() {
        let decoy = DecoyHash::new();
        decoy.verify("x").await.unwrap(); // built-in dummy
        decoy.remember("{PLAIN}never a decoy");
        assert!(decoy.stored.lock().unwrap().is_none());
        decoy.remember(DOVECOT_ARGON2ID);
        assert_eq!(
            decoy.stored.lock().unwrap().as_deref(),
            Some(DOVECOT_ARGON2ID)
        );
        decoy.verify(PW).await.unwrap();
    }

    #[tokio::test]
    async fn async_verification_runs() {
        assert!(verify_password(PW, DOVECOT_BLF, false).await.unwrap());
        assert!(!verify_password("nope", DOVECOT_BLF, false).await.unwrap());
        verify_dummy("x").await.unwrap();
        let h = hash_password_async(PW).await.unwrap();
        assert!(verify_password(PW, &h, false).await.unwrap());
    }
}
