# The clerk-mcp-server OCI image: one static binary in an empty (scratch) image, run as a
# non-root user. In an MCP client's config:
#
#   {"command": "docker", "args": ["run", "-i", "--rm", "clerk/mcp-server", "https://example.com/mcp"]}
#
# Add `-v clerk-mcp:/config` to keep OAuth tokens between runs.
#
# The binary is not built here: it comes from the build context, so this file needs no Rust
# toolchain and no base image. BINARY must be a fully static Linux executable (musl, or glibc
# linked with +crt-static) for the image's platform, and must be let through by .dockerignore.
#   Local (musl):  cargo build --release --target x86_64-unknown-linux-musl
#                  docker build -t clerk/mcp-server .
#   Release:       docker build --build-arg BINARY=dist-musl/amd64/clerk-mcp-server \
#                    --build-arg VERSION=1.2.3 .
#   Smoke test:    installers/container/smoke.sh (buildah + podman, no Docker engine needed)
FROM scratch

ARG BINARY=target/x86_64-unknown-linux-musl/release/clerk-mcp-server
ARG VERSION=0.0.0-dev

LABEL org.opencontainers.image.title="clerk-mcp-server" \
      org.opencontainers.image.description="A fast stdio-to-HTTP bridge for remote MCP servers (Streamable HTTP and HTTP+SSE), with OAuth sign-in" \
      org.opencontainers.image.source="https://github.com/clerk/mcp-server" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

# A writable config dir for the non-root user (OAuth tokens, client registrations). Scratch has
# no shell for mkdir/chown, so an empty directory is copied in with its owner set (the
# directory's .gitkeep is left out by .dockerignore).
COPY --chown=65532:65532 installers/container/config-dir/ /config/
COPY ${BINARY} /clerk-mcp-server

# CLERK_MCP_IN_CONTAINER: the binary is replaced by pulling a new image, so self-update refuses.
# HOME: there is no /etc/passwd entry for 65532; give anything that asks a writable home.
ENV CLERK_MCP_IN_CONTAINER=1 \
    CLERK_MCP_CONFIG_DIR=/config \
    HOME=/config

USER 65532:65532
WORKDIR /config

ENTRYPOINT ["/clerk-mcp-server"]
