#!/usr/bin/env bash
# Build the stages' base image (Debian bookworm, Python 3.11 and the stages layer of the
# dependency lock, env/stages.lock, in /opt/venv) on hosts that reach a Debian mirror
# and a Python package index but no container registry: debootstrap a minimal
# Debian, pip-install into a venv inside a chroot, then `docker import` the tree.
# Progress goes to stderr; the LAST line of stdout is the image name:
#   BASE_IMAGE=$(containers/build-offline-base-image.sh | tail -n 1)
# Env: BASE_IMAGE_NAME (default cifar100-base:offline-<hash of this script and the lock>),
#      DEBIAN_MIRROR (default: the mirror this host's apt uses). Needs root.
set -euo pipefail

# The stages layer of the lock (versions and sha256 hashes), which the stage image installs
# too (`make install` adds the layers above it); with it here, the stage image finds all satisfied.
LOCK=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/env/stages.lock
# git: the dvc-runner image is built FROM this base too, and DVC wants git.
DEBS=python3,python3-venv,python3-pip,ca-certificates,git
SUITE=bookworm
# The package proxy's CA; without it pip inside fails with CERTIFICATE_VERIFY_FAILED.
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

log() { echo "build-offline-base-image: [${SECONDS}s] $*" >&2; }
host_mirror() {  # first plain Debian archive URI in this host's apt sources
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | head -n 1 | tr -d ' ' || true
}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-$(host_mirror)}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Content-addressed: an edited recipe gets a new name, an unchanged one is reused.
[ -f "$LOCK" ] || { echo "build-offline-base-image: error: $LOCK not found (make lock)" >&2; exit 1; }
NAME=${BASE_IMAGE_NAME:-cifar100-base:offline-$(cat "${BASH_SOURCE[0]}" "$LOCK" | sha256sum | cut -c1-12)}

timeout 20 docker info >/dev/null 2>&1 || { log "error: no Docker daemon answers (.ci/start-docker.sh)"; exit 1; }
if docker image inspect "$NAME" >/dev/null 2>&1; then log "$NAME exists; not rebuilding"; echo "$NAME"; exit 0; fi
command -v debootstrap >/dev/null || { log "error: debootstrap not found (apt-get install debootstrap)"; exit 1; }

ROOT=$(mktemp -d /var/tmp/cifar100-base.XXXXXX)
MOUNTS=()   # mounted targets, unmounted in reverse order
CREATED=()  # mount points and config files we added to the tree, removed before import
mounts_under_root() { awk -v r="$ROOT" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo; }
unmount_all() {
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" || true
    done
    MOUNTS=()
}
cleanup() {
    unmount_all
    # Never rm -rf through a live bind mount: it would delete the host's /dev or wheels.
    if [ -n "$(mounts_under_root)" ]; then
        log "error: still mounted under $ROOT, not deleting it:"; mounts_under_root >&2
    else
        rm -rf "$ROOT"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so the EXIT trap runs on Ctrl-C and kill too

bind_ro() {  # host file or dir $1 at the same path in the tree, read-only
    local target=$ROOT$1
    if [ ! -e "$target" ]; then
        mkdir -p "$(dirname "$target")"
        if [ -d "$1" ]; then mkdir "$target"; else touch "$target"; fi
        CREATED+=("$target")
    fi
    mount --bind "$1" "$target"
    MOUNTS+=("$target")  # before the remount, so a failed remount is still unmounted
    mount -o remount,bind,ro "$target"
}

log "debootstrap $SUITE from $DEBIAN_MIRROR (about 80 s)"
debootstrap --variant=minbase --include="$DEBS" "$SUITE" "$ROOT" "$DEBIAN_MIRROR" >&2
cp "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"  # pip reaches the index by name

# Let pip inside resolve exactly what pip here does: the local folders its config
# names (wheels, file:// indexes, constraints) mounted at the same paths, and its
# config files copied. Index URLs .../simple link to ../../files: mount their parent.
PIP_PATHS=$({
    printf '%s\n' /opt/wheels /opt/pypi /opt/pypi-more /etc/xdg/pip
    { pip config list 2>/dev/null || true; } | grep -vE '\.(client-)?cert=' |
        sed -E "s/^[^=]*='?//; s/'$//" | tr ' ' '\n' | sed -E 's#^file://##; s#/simple/?$##'
} | grep '^/' | sort -u)
kept=()
for path in $PIP_PATHS; do
    [ -e "$path" ] || continue
    for k in "${kept[@]}"; do [[ $path == "$k"/* ]] && continue 2; done  # inside a kept dir
    kept+=("$path")
    bind_ro "$path"
done
for conf in /etc/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf" ${PIP_CONFIG_FILE:-}; do
    [ -f "$conf" ] && [ ! -e "$ROOT$conf" ] || continue
    mkdir -p "$(dirname "$ROOT$conf")"
    cp "$conf" "$ROOT$conf"
    CREATED+=("$ROOT$conf")
done
mount -t proc proc "$ROOT/proc"; MOUNTS+=("$ROOT/proc")
mount --bind /dev "$ROOT/dev"; MOUNTS+=("$ROOT/dev")  # not --rbind: no /dev/pts or /dev/shm needed
log "mounted read-only: ${kept[*]}"

log "pip install into /opt/venv: $LOCK ($(grep -c '^[a-z0-9]' "$LOCK") packages)"
chroot "$ROOT" /usr/bin/python3 -m venv /opt/venv
# Exactly the lock: --require-hashes refuses a file whose sha256 it does not list,
# --no-deps lets nothing else in. PIP_* env passes through.
cp "$LOCK" "$ROOT/tmp/stages.lock"
chroot "$ROOT" /opt/venv/bin/pip install --no-cache-dir --progress-bar off --require-hashes --no-deps \
    -r /tmp/stages.lock >&2
chroot "$ROOT" /opt/venv/bin/pip check >&2
chroot "$ROOT" env HOME=/tmp /opt/venv/bin/python -c \
    "import torch, torchvision, mlflow, numpy, matplotlib; print('torch', torch.__version__)" >&2

# Leave no trace of the host in the image: its pip config names paths that
# containers lack (a missing constraints file breaks every later pip install).
unmount_all
[ -z "$(mounts_under_root)" ] || { log "error: could not unmount under $ROOT"; exit 1; }
for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do  # and the empty folders above them
    target=${CREATED[i]}
    [ -d "$target" ] || { rm "$target"; target=$(dirname "$target"); }
    rmdir -p --ignore-fail-on-non-empty "$target"
done
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/tmp/* "$ROOT"/root/.cache

log "docker import $NAME ($(du -sh "$ROOT" | cut -f1); about 75 s)"
tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$NAME" >&2
log "done; removing $ROOT"
echo "$NAME"
