#!/usr/bin/env bash
# Make a Docker engine answer on this machine: install Debian's docker.io (and
# debootstrap, for the offline base image) if missing, then start dockerd
# without a bridge or iptables, which this sandbox does not allow. Idempotent.
set -euo pipefail

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker-compose >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap docker-compose >/dev/null
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

nohup dockerd --bridge=none --iptables=false --pidfile /var/run/dockerd-ci.pid >/tmp/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "dockerd up (pid $(cat /var/run/dockerd-ci.pid))"
        exit 0
    fi
    sleep 1
done
echo "error: dockerd did not answer within 60 s; see /tmp/dockerd.log" >&2
tail -20 /tmp/dockerd.log >&2
exit 1
