# syntax=docker/dockerfile:1
# pluto in a container: `docker build -t pluto .` (docker-compose.yml builds it too).
# The builder compiles the one `pluto` binary; the final image is Debian slim with
# ca-certificates and that binary, run as an unprivileged user.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The caches keep crates and build artefacts between builds; the binary is copied out
# of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pluto-gateway --bin pluto \
    && install -m 0755 target/release/pluto /usr/local/bin/pluto

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/pluto \
        --shell /usr/sbin/nologin pluto \
    && mkdir -p /var/lib/pluto /etc/pluto/pki \
    && chown pluto:pluto /var/lib/pluto /etc/pluto/pki
COPY --from=builder /usr/local/bin/pluto /usr/local/bin/pluto
# Named volumes first mounted on these directories start out owned by pluto.
USER pluto
WORKDIR /var/lib/pluto
ENV PLUTO_DATA_DIR=/var/lib/pluto
# IMAP with STARTTLS and IMAPS (unprivileged ports: the process is not root), then a
# node's Store and replication services.
EXPOSE 1143 1993 7001 7002
ENTRYPOINT ["pluto"]
CMD ["serve", "--imap", "0.0.0.0:1143", "--imaps", "0.0.0.0:1993"]
