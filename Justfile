# pluto's everyday commands. `just --list` shows them.

# Build everything (debug).
build:
    cargo build --workspace --all-targets

# The test suite, exactly as CI runs it (needs PostgreSQL and Redis on 127.0.0.1 for the
# tests that use them; they print "skipped" without PLUTO_TEST_POSTGRES_URL / _REDIS_URL).
test:
    scripts/test.sh

# fmt and clippy, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Run the single-process server on ./pluto-data (IMAP 127.0.0.1:1143, IMAPS 127.0.0.1:1993).
serve:
    cargo run --release --bin pluto -- serve --data-dir pluto-data

# pluto vs Dovecot side by side (installs dovecot-imapd when missing; release builds;
# about 10 minutes). Knobs: DURATION, CLIENTS, USERS, WATCHERS, IDLE_SESSIONS,
# DOVECOT_FSYNC, WORKLOADS, SERVERS (see scripts/bench-vs-dovecot.sh).
bench-vs-dovecot:
    scripts/bench-vs-dovecot.sh

# LMTP deliveries into Dovecot's LMTP, `pluto serve` and the cluster, side by side
# (installs dovecot-lmtpd when missing; release builds; about 3 minutes). Knobs:
# DURATION, CLIENTS, USERS, RECIPIENTS, DOVECOT_FSYNC, SERVERS, STRACE (see
# scripts/bench-lmtp.sh).
bench-lmtp:
    scripts/bench-lmtp.sh

# gw1 on 127.0.0.1:2143 (IMAPS 2993), gw2 on 2144/2994, state in ./pluto-cluster.
# Arguments go to the script (`just cluster --debug`); knobs are PLUTO_CLUSTER_*
# variables (scripts/cluster.sh, docs/CLUSTER.md).
# Run docker-compose.yml's topology as local processes (2 gateways, 2 workers, storage).
cluster *ARGS:
    scripts/cluster.sh start {{ARGS}}

# Stop the cluster that `just cluster` started.
cluster-stop:
    scripts/cluster.sh stop

# `pluto cluster status` for that cluster.
cluster-status:
    scripts/cluster.sh status
