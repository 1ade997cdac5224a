# syntax=docker/dockerfile:1
# The Instance Portal image: our caddy binary, built with xcaddy from this
# repository, on a GPU base image with supervisord, the boot scripts of
# rootfs/, Jupyter and TensorBoard in /venv/main, Syncthing, cron and
# cloudflared. A template written for the reference base image runs on it
# unchanged. docs/boot.md describes what happens at container start.
#
#   docker build -f xcaddy.Dockerfile -t instance-portal .
#   docker buildx build -f xcaddy.Dockerfile --platform linux/amd64,linux/arm64 .
#   docker run --rm -p 1111:1111 -e WEB_PASSWORD=secret instance-portal
#
# Build arguments:
#   BASE_IMAGE      the runtime: nvidia/cuda, rocm/dev-ubuntu-22.04, or plain
#                   Ubuntu/Debian. The binary links glibc >= 2.34 (Ubuntu
#                   22.04, Debian 12 and later).
#   PYTHON_VERSION  Python of /venv/main (installed by uv).
#   GO_IMAGE        the builder; it must carry Go >= 1.26.8 (the go.mod floor).
#   CLOUDFLARED_VERSION, CLOUDFLARED_SHA256_AMD64, CLOUDFLARED_SHA256_ARM64
#                   the pinned cloudflared release and its checksums.
#   UV_VERSION, NVM_VERSION  pinned installers.
#
# The integration test TestImageBoot builds this runtime stage without Docker
# (mmdebstrap with the apt-get package list below, then the RUN steps that
# need no registry) and boots it; lines marked "image-test: needs ..." are
# the steps it leaves out, and it names them.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
ARG GO_IMAGE=golang:1.26-bookworm

# The builder runs on the build machine and cross-compiles for TARGETARCH.
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETARCH
ARG BUILDARCH
# cgo (NVML) needs a C compiler for the target: gcc itself on the same
# architecture, a cross gcc otherwise.
RUN set -e; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
        case "$TARGETARCH" in \
        arm64) pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
        amd64) pkgs="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
        *) echo "unsupported TARGETARCH=$TARGETARCH (amd64, arm64)"; exit 1 ;; \
        esac; \
        apt-get update && apt-get install -y --no-install-recommends $pkgs && rm -rf /var/lib/apt/lists/*; \
    fi
# xcaddy builds with CGO_ENABLED=0 unless told otherwise, and without cgo the
# GPU metrics cannot load NVML (gpumetrics/nvmlgpu): keep it on. cgo would
# also switch Go to the external (gcc) linker, whose layout leaves ~12 MB
# more of the binary resident at run time; go-nvml links fine with Go's own
# linker (checked on an H200), so ask for it: these are the Makefile's
# RELEASE_FLAGS (setting XCADDY_GO_BUILD_FLAGS replaces xcaddy's defaults,
# which are repeated). go-nvml's headers warn about deprecated NVML calls;
# the warnings are silenced for this build only.
ENV CGO_ENABLED=1 \
    CGO_CFLAGS=-Wno-deprecated-declarations \
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
    set -e; \
    cc=gcc; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
        case "$TARGETARCH" in arm64) cc=aarch64-linux-gnu-gcc ;; amd64) cc=x86_64-linux-gnu-gcc ;; esac; \
    fi; \
    CC=$cc GOOS=linux GOARCH=$TARGETARCH \
    xcaddy build v2.11.9 --with github.com/instanceportal/portal@v0.0.0-00010101000000-000000000000=. \
    && install -D -m 0755 caddy /out/caddy

FROM ${BASE_IMAGE}
ARG TARGETARCH
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.5.11
ARG NVM_VERSION=v0.40.1
ARG CLOUDFLARED_VERSION=2024.12.2
ARG CLOUDFLARED_SHA256_AMD64=5237675a5e806120729acc78c5be02f9db5f406717699587abfa72b49b39fe40
# Not downloaded here (no internet): two independent public pins of this
# release give this arm64 sum, and both give the amd64 sum above as well.
# A mismatch stops the build (sha256sum -c below).
ARG CLOUDFLARED_SHA256_ARM64=96e8f95e878c1d4154d91c42781749ab66ca8088f1f3e6e6bc78c25c921e6b64

# supervisor runs the programs; cron and syncthing are programs; curl fetches
# a PROVISIONING_SCRIPT given as a URL; git and python3-venv bootstrap uv,
# Python and NVM; ocl-icd-libopencl1 is the OpenCL ICD loader. script(1) and
# setpriv (the `pty` helper, Syncthing as `user`) are in the base system.
# The rest are the reference's everyday tools that Debian and Ubuntu both
# package (docs/boot.md lists those left out, and why).
# No openssl: the instance certificate is made by `caddy portal cert ensure`.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        supervisor cron syncthing ca-certificates curl git python3 python3-venv ocl-icd-libopencl1 \
        python3-pip wget jq git-lfs sudo less nano vim acl bc moreutils tzdata locales lsb-release \
        htop strace lsof procps psmisc iproute2 iputils-ping netcat-traditional dnsutils net-tools \
        traceroute rsync rclone tmux zip unzip xz-utils zstd dos2unix \
    && rm -rf /var/lib/apt/lists/*

# The non-root account templates expect: uid 1001, group root, so files
# made group-writable under umask 002 are shared with root; passwordless
# sudo, as on the reference.
RUN useradd -m -s /bin/bash -u 1001 -g 0 user \
    && echo 'user ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/user \
    && chmod 0440 /etc/sudoers.d/user

# The shell the reference's templates expect (docs/boot.md, "The shell"):
# unbuffered Python, pip allowed into the system Python, every driver
# capability (the CUDA base sets compute,utility, which hides the video
# and graphics libraries), uv's layout under /.uv (moved to the volume by
# --sync-environment).
ENV PYTHONUNBUFFERED=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    NVIDIA_DRIVER_CAPABILITIES=all \
    DATA_DIRECTORY=/workspace \
    UV_CACHE_DIR=/.uv/cache \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_BIN_DIR=/.uv/python_bin \
    UV_PYTHON_INSTALL_DIR=/.uv/python_install

# /venv/main: Python PYTHON_VERSION (fetched by uv), Jupyter, TensorBoard and
# the vastai CLI.
# image-test: needs PyPI and uv's Python downloads
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv \
    && uv python install "${PYTHON_VERSION}" \
    && uv venv --seed --python "${PYTHON_VERSION}" /venv/main \
    && uv pip install --python /venv/main/bin/python --no-cache jupyter tensorboard vastai ipykernel

# NVM with the current Node LTS, for templates that build web front ends.
# image-test: needs GitHub and nodejs.org
ENV NVM_DIR=/opt/nvm
RUN git clone --depth 1 --branch "${NVM_VERSION}" https://github.com/nvm-sh/nvm.git "${NVM_DIR}" \
    && bash -c '. "${NVM_DIR}/nvm.sh" && nvm install --lts && nvm alias default "lts/*"'

# cloudflared for the portal's tunnels, pinned and checked per architecture.
# image-test: needs GitHub releases
RUN set -e; \
    case "${TARGETARCH}" in \
    amd64) sum="${CLOUDFLARED_SHA256_AMD64}" ;; \
    arm64) sum="${CLOUDFLARED_SHA256_ARM64}" ;; \
    *) echo "unsupported TARGETARCH=${TARGETARCH}"; exit 1 ;; \
    esac; \
    if [ -z "$sum" ]; then echo "no sha256 for cloudflared ${CLOUDFLARED_VERSION} on ${TARGETARCH}: pass --build-arg CLOUDFLARED_SHA256_$(echo "${TARGETARCH}" | tr a-z A-Z)=..."; exit 1; fi; \
    curl -fsSL -o /usr/local/bin/cloudflared \
        "https://github.com/cloudflare/cloudflared/releases/download/${CLOUDFLARED_VERSION}/cloudflared-linux-${TARGETARCH}"; \
    echo "${sum}  /usr/local/bin/cloudflared" | sha256sum -c -; \
    chmod 0755 /usr/local/bin/cloudflared

COPY --from=build /out/caddy /usr/local/bin/caddy
# Replaces Debian's /etc/supervisor/supervisord.conf with ours.
COPY rootfs/ /
# Every bash loads the instance shell (login shells from /etc/profile.d; the
# line goes first in /etc/bash.bashrc, above its return for non-interactive
# shells, so that `ssh host 'cmd'` gets it too). log-tee runs a hard link of
# the binary named log-tee, so that `pidof caddy` finds the server only.
# caddy must run here, which checks the glibc match. /.env_hash names what
# made the venvs (--sync-environment).
RUN mkdir -p /var/log/portal /workspace /opt/workspace-internal /etc/vast_boot.d/first_boot /usr/local/lib/portal \
    && chmod 1777 /var/log/portal \
    && ln -f /usr/local/bin/caddy /usr/local/lib/portal/log-tee \
    && install -d -m 0700 /var/lib/portal \
    && chmod 0755 /opt/instance-tools/bin/* /opt/supervisor-scripts/*.sh /opt/supervisor-scripts/utils/*.sh /usr/local/bin/log-tee \
    && sed -i '1i . /etc/profile.d/instance-environment.sh' /etc/bash.bashrc \
    && caddy list-modules | grep -q '^caddy.adapters.portal_yaml$' \
    && caddy portal env-hash >/.env_hash

# The default apps, the reference template's: the dashboard (:1111, served
# by caddy itself on 127.0.0.1:11111), Jupyter on 8080 (the launch-mode rules
# decide whether it is proxied, a link, or absent), Syncthing (:8384, whose
# GUI wants Host: localhost). Templates set their own PORTAL_CONFIG.
ENV WORKSPACE=/workspace \
    PATH=/opt/instance-tools/bin:${PATH} \
    PORTAL_CONFIG="localhost:1111:11111:/:Instance Portal|localhost:8080:8080:/:Jupyter|localhost:8384:18384:/:Syncthing" \
    CADDY_HEADER_UP_LOCALHOST=18384
EXPOSE 1111 8080 8384
# The entrypoint is PID 1: it forwards SIGTERM to supervisord, which stops
# every program, and it reaps orphans as bash does.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/instance-tools/bin/entrypoint.sh"]
