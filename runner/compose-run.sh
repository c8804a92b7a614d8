#!/usr/bin/env bash
# `runner/compose-run.sh COMPOSE-COMMAND -- CMD...`: run CMD in a fresh dvc-runner
# container (what `make run`, `make stage` and `make smoke EXECUTOR=docker` do),
# so that closing the terminal (SIGHUP), Ctrl-C (SIGINT) or SIGTERM stops it
# cleanly and leaves nothing behind.
#
# Compose v1 is not trusted with signals: on SIGHUP it SIGKILLs the container
# (no grace: the stage container is orphaned). So compose runs in a process group
# of its own (job control, `set -m`), which a terminal's hangup or Ctrl-C does
# not reach, with a known container name, and this script turns any of the
# three signals into `docker stop`, which sends the service's
# stop_signal (SIGINT) to its init; init relays it to the whole process group,
# so dvc waits while the launcher stops the stage container. A runner that died
# instead (docker kill, OOM) is followed by `runner.guard --clear`, which drops
# its stale DVC locks, so host-side dvc commands keep working; stage containers
# whose runner is gone are removed here. An interrupt or a kill ends in one line
# (runner/outcome.py), from here only if the runner said none.
#
# Secrets (the REMOTE_VARS the Makefile exports) go to the runner as a 0600 file
# on the host's tmpfs mounted at /run/secrets/pipeline, not as environment
# variables that `docker inspect` shows; PIPELINE_NO_SECRETS=1 passes none.
set -u
compose=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do compose+=("$1"); shift; done
shift
name="cifar100-runner-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
# runner/credentials.py STAGE_SECRETS is the list; tests/unit/test_credentials.py checks this copy.
SECRET_NAMES="MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD MLFLOW_TRACKING_TOKEN AWS_ACCESS_KEY_ID
  AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION MLFLOW_S3_ENDPOINT_URL"
unset DAGSHUB_TOKEN  # the Makefile already made it MLFLOW_TRACKING_PASSWORD; nothing in the runner reads it

secrets_file=/dev/null
if [ "${PIPELINE_NO_SECRETS:-0}" != 1 ]; then
    dir=${XDG_RUNTIME_DIR:-/dev/shm}
    [ -d "$dir" ] && [ -w "$dir" ] || dir=${TMPDIR:-/tmp}
    secrets_file=$(umask 077 && mktemp "$dir/cifar100-secrets.XXXXXX") || exit 1
    for var in $SECRET_NAMES; do
        if [ -n "${!var:-}" ]; then printf '%s=%s\n' "$var" "${!var}" >>"$secrets_file"; fi
        unset "$var"  # compose and the runner get them from the file only
    done
    # A root caller running as another uid (HOST_UID) must let that uid read it.
    if [ "$(id -u)" = 0 ] && [ -n "${HOST_UID:-}" ]; then chown "$HOST_UID:${HOST_GID:-0}" "$secrets_file"; fi
fi
export PIPELINE_SECRETS_FILE=$secrets_file

stopped="" halted=""
stop() {
    trap '' HUP INT TERM
    stopped=$1
    echo "run: $1: stopping the dvc-runner ($name) and its stage container" >&2
    docker stop -t 30 "$name" >/dev/null 2>&1 && halted=1
}
trap 'stop SIGHUP' HUP
trap 'stop SIGINT' INT
trap 'stop SIGTERM' TERM
trap '[ "$secrets_file" = /dev/null ] || rm -f "$secrets_file"' EXIT

set -m  # the next background job gets its own process group
"${compose[@]}" run --rm -T --name "$name" -e PIPELINE_RUN="$name" dvc-runner "$@" </dev/null &
pid=$!
set +m
rc=0
while :; do
    wait "$pid"; rc=$?
    kill -0 "$pid" 2>/dev/null || break  # wait returned for a trapped signal: compose still runs
    # The signal came before compose had created the runner (docker stop found nothing):
    # stop it as soon as it exists, or the run would go on. Bounded: 120 tries, 1 s apart.
    for _ in $(seq 120); do
        { [ -n "$halted" ] || ! kill -0 "$pid" 2>/dev/null; } && break
        sleep 1
        docker stop -t 30 "$name" >/dev/null 2>&1 && halted=1
    done
done
docker rm -f "$name" >/dev/null 2>&1  # compose killed before its --rm
project=${PROJECT_DIR:-$PWD}
# A stage container never outlives its runner: remove this project's whose runner is gone
# (a runner killed, or its launcher too slow to remove it under load). No container needed.
for c in $(docker ps -aq --filter "label=cifar100.workdir=$project" 2>/dev/null); do
    runner=$(docker inspect -f '{{index .Config.Labels "cifar100.runner"}}' "$c" 2>/dev/null)
    [ -n "$runner" ] && [ "$(docker inspect -f '{{.State.Running}}' "$runner" 2>/dev/null)" != true ] &&
        docker rm -f "$c" >/dev/null 2>&1
done
# One line per interrupt or kill (runner/outcome.py): say it here only if nobody in the runner did.
record=$(cat "$project/.dvc/tmp/runner.lock" 2>/dev/null)
case "$record" in *"\"run\": \"$name\""*) ;; *) record="" ;; esac  # another run's record tells nothing of this one
field() { sed -n "s/.*\"$1\": \"\([a-z]*\)\".*/\1/p" <<<"$record"; }
stage=$(field stage)
hint="rerun \`make run\` to resume: finished stages are not run again"
[ "$stage" = train ] && hint+=", and train continues from its last epoch checkpoint"
if [ -z "$(field said)" ]; then
    if [ -n "$stopped" ]; then
        echo "run: interrupted by $stopped${stage:+ during stage $stage}; $hint" >&2
    elif [ "$rc" = 137 ]; then
        echo "run: the dvc-runner was killed (exit 137: docker kill, or out of memory)${stage:+ during stage $stage}; $hint" >&2
    fi
fi
# dvc killed in the runner leaves its rwlock entries; dvc that ended on its own (an interrupt:
# 130 or 252, a failure: 255) released them.
case "$rc" in 130 | 252 | 255) ;; *)
    if [ "$rc" -ge 128 ]; then
        "${compose[@]}" run --rm -T dvc-runner python -m runner.guard --clear </dev/null >&2 || true
    fi ;;
esac
[ -n "$stopped" ] && exit 130
exit "$rc"
