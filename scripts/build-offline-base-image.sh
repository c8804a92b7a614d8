#!/usr/bin/env bash
# Build a base image with Python, torch and torchvision for hosts that reach a
# Debian mirror and a Python package index but no container registry:
# debootstrap a minimal Debian, add a venv, then `docker import` the tree.
# The last line printed is the image name, for BASE_IMAGE=<name>.
#
#   scripts/build-offline-base-image.sh            # -> cifar100-base:offline-<hash>
#   BASE_IMAGE_NAME=my/base:1 DEBIAN_MIRROR=http://mirror/debian scripts/build-offline-base-image.sh
set -euo pipefail

TORCH_PACKAGES="torch==2.14.1 torchvision==0.29.1"
SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# Content-addressed: a changed recipe gets a new name, an unchanged one is reused.
HASH=$(sha256sum "$0" | cut -c1-12)
NAME=${BASE_IMAGE_NAME:-cifar100-base:offline-$HASH}
log() { echo "build-offline-base-image: $*" >&2; }

if docker image inspect "$NAME" >/dev/null 2>&1; then
    log "$NAME already exists"
    echo "$NAME"
    exit 0
fi
for tool in debootstrap docker; do
    command -v "$tool" >/dev/null || { log "error: $tool not found (apt-get install debootstrap docker.io)"; exit 1; }
done

ROOT=$(mktemp -d /var/tmp/cifar100-base.XXXXXX)
MOUNTS=()
cleanup() {
    for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
    rm -rf "$ROOT"
}
trap cleanup EXIT
bind() {  # bind-mount host dir $1 read-only at the same path inside the tree
    mkdir -p "$ROOT$1"
    mount --bind "$1" "$ROOT$1" && mount -o remount,bind,ro "$ROOT$1"
    MOUNTS+=("$ROOT$1")
}

log "debootstrap $SUITE from $DEBIAN_MIRROR (about 80 s)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,git \
    "$SUITE" "$ROOT" "$DEBIAN_MIRROR" >&2
# The package proxy's CA: without it pip inside fails with CERTIFICATE_VERIFY_FAILED.
cp "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

# Local wheel folders, where this host has them, spare a multi-GB download.
PIP_ARGS=()
for dir in /opt/wheels /opt/pypi /opt/pypi-more; do
    [ -d "$dir" ] || continue
    bind "$dir"
    case $dir in
        /opt/wheels) PIP_ARGS+=(--find-links "$dir") ;;
        *) PIP_ARGS+=(--extra-index-url "file://$dir/simple") ;;
    esac
done
mount -t proc proc "$ROOT/proc"; MOUNTS+=("$ROOT/proc")

log "installing $TORCH_PACKAGES into /opt/venv (about 100 s)"
chroot "$ROOT" /usr/bin/python3 -m venv /opt/venv
# shellcheck disable=SC2086
chroot "$ROOT" env PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/venv/bin/pip install -q \
    --no-cache-dir --disable-pip-version-check "${PIP_ARGS[@]}" $TORCH_PACKAGES >&2
chroot "$ROOT" /opt/venv/bin/python -c "import torch, torchvision; print('torch', torch.__version__)" >&2

for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[i]}"; done
MOUNTS=()
rm -rf "$ROOT/var/cache/apt/archives/"*.deb "$ROOT/root/.cache"

log "docker import as $NAME (about 75 s)"
tar -C "$ROOT" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$NAME" >&2
echo "$NAME"
