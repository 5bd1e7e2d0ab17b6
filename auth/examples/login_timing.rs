//! Measures whether a login for an unknown user takes as long as one with a
//! wrong password, on the users-file adapter — the property that keeps a
//! stopwatch from telling which user names exist.
//!
//! ```sh
//! cargo run --release -p pluto-auth --example login_timing
//! ```
//!
//! Prints the median time of each case for a file of argon2id users (made by
//! `add_user`) and for one migrated from Dovecot (its argon2id parameters).

#![allow(clippy::print_stdout)] // a measuring tool: printing is its output

use std::path::Path;
use std::time::{Duration, Instant};

use pluto_auth::{AuthError, Authenticator, FileAuthenticator, file};

// `doveadm pw -s ARGON2ID -p 'correct horse'` (Dovecot 2.3: m=65536, t=3).
const DOVECOT_ARGON2ID: &str = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$1j+BOmGGHIaMTnckmfDT5Q$qGGNlhUl7VvV5VFD6OaTyEpKgMGI1fqdwA8j2Ptnd8U";

async fn timed(auth: &FileAuthenticator, user: &str) -> Duration {
    let start = Instant::now();
    let outcome = auth.authenticate(user, "not the password").await;
    let took = start.elapsed();
    assert!(matches!(outcome, Err(AuthError::Failed)));
    took
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn measure(label: &str, path: &Path) -> Result<(), AuthError> {
    let auth = FileAuthenticator::open(path, false).await?;
    let rounds = 41;
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, so warm-up and machine noise hit both cases alike.
    for _ in 0..rounds {
        wrong.push(timed(&auth, "known").await);
        unknown.push(timed(&auth, "unknown").await);
    }
    let (wrong, unknown) = (median(wrong), median(unknown));
    println!(
        "{label}: wrong password {wrong:?}, unknown user {unknown:?} (median of {rounds}; ratio {:.2})",
        unknown.as_secs_f64() / wrong.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), AuthError> {
    let dir = std::env::temp_dir().join(format!("pluto-login-timing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| AuthError::Io {
        path: dir.clone(),
        source: e,
    })?;
    let fresh = dir.join("fresh");
    file::add_user(&fresh, "known", "secret")?;
    measure("argon2id (pluto defaults)", &fresh).await?;
    let migrated = dir.join("migrated");
    file::add_user_with_hash(&migrated, "known", DOVECOT_ARGON2ID)?;
    measure("argon2id (Dovecot's parameters)", &migrated).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
