# syntax=docker/dockerfile:1
# The Cairn image: one static `cairn` binary (operator, gateways, mcp-bridge) on distroless.
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg REVISION="$(git rev-parse HEAD)" -t REGISTRY/cairn:0.1.0 .
# tests/image.rs checks this file with BuildKit's parser and builds the binary on the CI machine
# with the very `cargo build` command below (see the README's contributor notes).

ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
COPY . .
# musl: a static (static-pie) executable that needs nothing from the image.
RUN cargo build --locked --release --bin cairn --target "$(uname -m)-unknown-linux-musl"
# Stripped for the image (33 MB -> 27 MB on x86_64).
RUN install -D -s -m 0755 "target/$(uname -m)-unknown-linux-musl/release/cairn" /out/cairn

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION
LABEL org.opencontainers.image.title="cairn" \
      org.opencontainers.image.description="Kubernetes operator for the three gateway layers of an AI platform: LLM, MCP tools and agent-to-agent" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/cairn /usr/local/bin/cairn
USER 65532:65532
ENTRYPOINT ["cairn"]
