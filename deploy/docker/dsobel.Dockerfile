# syntax=docker/dockerfile:1.7
# The one dsobel image: `dsobel serve` (backend) and `dsobel worker` by its command.
#   docker build -f deploy/docker/dsobel.Dockerfile -t dsobel:local .
#   docker run --rm -e DSOBEL_LISTEN=0.0.0.0:8080 -p 8080:8080 dsobel:local serve
# No target-cpu=native: the kernels pick their SIMD level at run time, so the
# image runs on any x86-64 machine.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Whole workspace (see .dockerignore); the web page is embedded by the binary.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features \
    && install -D -m 0755 target/release/dsobel /out/dsobel \
    && rustc --edition 2021 -O -o /out/dsobel-healthcheck deploy/docker/healthcheck.rs

# Runtime: glibc, CA certificates and a nonroot user; no shell, no package
# manager, no compiler.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/dsobel /usr/local/bin/dsobel
COPY --from=build /out/dsobel-healthcheck /usr/local/bin/dsobel-healthcheck
ENV DSOBEL_LISTEN=0.0.0.0:8080 \
    DSOBEL_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080 9090
# Checks /healthz on DSOBEL_HEALTH_LISTEN (worker) or DSOBEL_LISTEN (serve).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/dsobel-healthcheck"]
ENTRYPOINT ["/usr/local/bin/dsobel"]
CMD ["serve"]
