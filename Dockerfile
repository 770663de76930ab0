# syntax=docker/dockerfile:1
# Liftoff's container image: the release binary on distroless, running as non-root.
#
#   docker build -t REGISTRY/liftoff:0.1.0 .
#
# scripts/check-image.sh builds the same binary with the same cargo command (no Docker engine
# needed) and reports its size and the shared libraries it needs.

# ---- build ------------------------------------------------------------------------------------
# Pinned tag; pin it by digest too (rust:1.95.0-bookworm@sha256:…) when you publish images.
FROM rust:1.95.0-bookworm AS build
# The image has make, gcc and g++, which build librdkafka from source for the Kafka triggers;
# rdkafka's `ssl` feature links the system OpenSSL 3 (the runtime image has the same libssl3).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev=3.0.* pkg-config=1.8.* \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Reproducible: locked dependencies, no paths of this machine in the binary, a fixed build time.
ENV CARGO_INCREMENTAL=0 \
    SOURCE_DATE_EPOCH=0 \
    RUSTFLAGS="--remap-path-prefix=/src=. --remap-path-prefix=/usr/local/cargo=cargo"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin liftoff --bin kubectl-launch \
 && cp target/release/liftoff target/release/kubectl-launch /

# ---- run --------------------------------------------------------------------------------------
# glibc, libgcc, libstdc++, OpenSSL 3 and CA certificates (Debian 12, as the builder), nothing
# else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="liftoff" \
      org.opencontainers.image.description="Kubernetes operator that scales a product launch on triggers and runs its staged rollout" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /liftoff /liftoff
# The console, for `kubectl cp` or `docker cp` onto a workstation's PATH.
COPY --from=build /kubectl-launch /kubectl-launch
# distroless "nonroot", numeric so the kubelet can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8080
# mimalloc returns freed pages to the system at once instead of after 1 s: at 10,000 policies
# 139 instead of 150 MiB, peak 152 instead of 168 MiB, for no measurable CPU (docs/benchmarks.md).
ENV MIMALLOC_PURGE_DELAY=0
# No transparent huge pages for the process, also on nodes whose THP setting is `always` (the
# binary already never asks for them): a 2 MiB page is resident whole, and at 1,000 policies
# they made the RSS 54-71 instead of 30-34 MiB (docs/benchmarks.md).
ENV MIMALLOC_ALLOW_THP=0
ENTRYPOINT ["/liftoff", "run"]
