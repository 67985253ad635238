# Production image of the kindling API.
#
#   docker build -t kindling-api .
#
# Base images are build arguments so that CI without a registry can pass local
# equivalents (verify/run dev_loop); the defaults are the official images.
#   RUST_IMAGE     compiler image (Debian 13 trixie, glibc 2.41, like the runtime)
#   RUNTIME_IMAGE  distroless "cc" on Debian 13: glibc, libgcc, CA certificates, no shell
ARG RUST_IMAGE=rust:1.95-slim-trixie
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot

# ---- plan: the dependency "recipe" ----------------------------------------
# The manifests without comment lines and blank lines, so that editing a
# comment in Cargo.toml does not invalidate the dependency layer below (Docker
# caches COPY --from by content). The idea of cargo-chef, without the tool.
FROM ${RUST_IMAGE} AS plan
WORKDIR /plan
COPY Cargo.toml Cargo.lock ./
COPY core/Cargo.toml core/
COPY dylib/Cargo.toml dylib/
COPY devbin/Cargo.toml devbin/
RUN for manifest in Cargo.toml core/Cargo.toml dylib/Cargo.toml devbin/Cargo.toml; do \
      mkdir -p "/recipe/$(dirname "$manifest")"; \
      grep -Ev '^[[:space:]]*(#|$)' "$manifest" > "/recipe/$manifest"; \
    done \
 && cp Cargo.lock /recipe/Cargo.lock

# ---- build -----------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# No query!() macros in this crate, so sqlx never needs a database at build
# time; SQLX_OFFLINE makes that a guarantee. Symbols are stripped from the
# release binary (smaller image; panics still name the failing location).
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=symbols

# Dependency layer, rebuilt only when the recipe changes: compile every
# dependency of the workspace's default members (the binary and core/; the
# dev loop's dylib/ and devbin/ are never built here) against placeholder
# targets, then drop the placeholders.
COPY --from=plan /recipe/ ./
RUN mkdir -p src core/src dylib/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs core/src/lib.rs dylib/src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src core/src dylib/src target/release/.fingerprint/kindling* \
           target/release/deps/kindling* target/release/deps/libkindling* target/release/kindling

# The crates themselves, with the real manifests (comments included). migrations/ is
# embedded into the binary at compile time. --offline: everything was fetched
# in the dependency layer. GIT_SHA becomes the git_sha label of
# kindling_build_info (`docker build --build-arg GIT_SHA=$(git rev-parse --short HEAD)`).
ARG GIT_SHA=unknown
ENV KINDLING_GIT_SHA=${GIT_SHA}
COPY Cargo.toml ./
COPY core/Cargo.toml core/
COPY dylib/Cargo.toml dylib/
COPY devbin/Cargo.toml devbin/
COPY src ./src
COPY core/src ./core/src
COPY dylib/src ./dylib/src
COPY migrations ./migrations
RUN cargo build --release --locked --offline \
 && cp target/release/kindling /kindling

# ---- runtime ---------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
COPY --from=build /kindling /usr/local/bin/kindling
# Listen on all interfaces inside the container (the service defaults to
# 127.0.0.1 for local runs). Kubernetes sets both through the ConfigMap too.
ENV ROCKET_ADDRESS=0.0.0.0 \
    ROCKET_PORT=8000
# Same numeric uid/gid as the Kubernetes securityContext (k8s/base/api).
USER 10001:10001
EXPOSE 8000
# No shell or curl in the runtime: the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/kindling", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/kindling"]
CMD ["serve"]
