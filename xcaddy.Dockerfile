# syntax=docker/dockerfile:1
# The Instance Portal image: our caddy binary, built with xcaddy from this
# repository, on Debian bookworm with supervisord and the boot scripts of
# rootfs/. docs/boot.md describes what happens at container start.
#
#   docker build -f xcaddy.Dockerfile -t instance-portal .
#   docker run --rm -p 1111:1111 -e WEB_PASSWORD=secret instance-portal
#
# Build arguments: GO_IMAGE (the builder; it must carry Go >= 1.26.8, the
# go.mod floor, and the same Debian release as the runtime because the
# binary links glibc), RUNTIME_IMAGE.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
# xcaddy builds with CGO_ENABLED=0 unless told otherwise, and without cgo the
# GPU metrics cannot load NVML (gpumetrics/nvmlgpu): keep it on. cgo would
# also switch Go to the external (gcc) linker, whose layout leaves ~12 MB
# more of the binary resident at run time; go-nvml links fine with Go's own
# linker (checked on an H200), so ask for it: these are the Makefile's
# RELEASE_FLAGS (setting XCADDY_GO_BUILD_FLAGS replaces xcaddy's defaults,
# which are repeated).
ENV CGO_ENABLED=1 \
    GOFLAGS=-buildvcs=false \
    XCADDY_GO_BUILD_FLAGS="-ldflags='-linkmode=internal -w -s' -trimpath -tags nobadger,nomysql,nopgx"
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    go install github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    xcaddy build v2.11.9 --with github.com/instanceportal/portal@v0.0.0-00010101000000-000000000000=. \
    && ./caddy list-modules | grep -q '^caddy.adapters.portal_yaml$' \
    && install -D -m 0755 caddy /out/caddy

FROM ${RUNTIME_IMAGE}
# supervisor runs the programs, openssl makes the instance certificate, curl
# fetches a PROVISIONING_SCRIPT given as a URL. setsid (util-linux) is in the
# base system.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        supervisor openssl ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/caddy /usr/local/bin/caddy
# Replaces Debian's /etc/supervisor/supervisord.conf with ours.
COPY rootfs/ /
RUN mkdir -p /var/log/portal /workspace /opt/workspace-internal \
    && install -d -m 0700 /var/lib/portal \
    && chmod 0755 /opt/instance-tools/bin/entrypoint.sh /opt/supervisor-scripts/*.sh /usr/local/bin/log-tee \
    && caddy list-modules | grep -q '^caddy.adapters.portal_yaml$'

# The dashboard is the "Instance Portal" entry: external :1111, served by
# caddy itself on 127.0.0.1:11111. Templates add their apps to this list.
ENV WORKSPACE=/workspace \
    PORTAL_CONFIG="localhost:1111:11111:/:Instance Portal"
EXPOSE 1111
# The entrypoint is PID 1: it forwards SIGTERM to supervisord, which stops
# every program, and it reaps orphans as bash does.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/instance-tools/bin/entrypoint.sh"]
