# pluto's everyday commands. `just --list` shows them.

# Build everything (debug).
build:
    cargo build --workspace --all-targets

# The test suite, exactly as CI runs it (needs PostgreSQL and Redis on 127.0.0.1 for the
# tests that use them; they print "skipped" without PLUTO_TEST_POSTGRES_URL / _REDIS_URL).
test:
    cargo test --workspace

# fmt and clippy, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Run the single-process server on ./pluto-data (IMAP 127.0.0.1:1143, IMAPS 127.0.0.1:1993).
serve:
    cargo run --release --bin pluto -- serve --data-dir pluto-data
