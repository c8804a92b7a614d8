#!/usr/bin/env bash
# Make a Docker engine answer on this machine. Idempotent: with a daemon that
# answers it does nothing.
#  - Installs Debian's docker.io (and debootstrap, for
#    containers/build-offline-base-image.sh; docker-compose, for the Makefile,
#    since Debian's engine has no compose plugin) when missing: no registry or
#    download.docker.com here, only the Debian package proxy.
#  - Starts dockerd without a bridge or iptables, which these sandboxes do not
#    allow; containers then run with --network host.
set -euo pipefail

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
PIDFILE=${DOCKERD_PIDFILE:-/var/run/dockerd-ci.pid}
WAIT_S=60

answers() { timeout 10 docker info >/dev/null 2>&1; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
    echo "start-docker: apt-get install ${missing[*]}" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

if answers; then
    exit 0
fi

# A dockerd we started earlier may still be coming up: wait for it rather than
# start a second one, which would fail on the pid file and the socket.
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "start-docker: dockerd (pid $(cat "$PIDFILE")) is starting; waiting" >&2
else
    # setsid: out of this shell's process group, so the daemon outlives a CI
    # step that kills its group on exit.
    setsid dockerd --bridge=none --iptables=false --pidfile "$PIDFILE" \
        </dev/null >"$LOG" 2>&1 &
fi

deadline=$((SECONDS + WAIT_S))
while ((SECONDS < deadline)); do
    if answers; then
        echo "start-docker: dockerd up (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'))" >&2
        exit 0
    fi
    sleep 1
done
echo "start-docker: error: dockerd did not answer 'docker info' within ${WAIT_S} s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
