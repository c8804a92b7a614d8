"""Run one stage in a sibling container (PIPELINE_EXECUTOR=docker).

Called by `python -m runner` (the docker executor) inside the dvc-runner (or on a host with Docker).
The container mounts the working dir at the same absolute path and works
there, so dvc.yaml's relative paths, `dvc exp run --temp` copies and bind
mounts all resolve alike on host and runner. It runs as the invoking uid:gid
on the host network with only the environment the stage needs. Credentials go
only to the stages that talk to MLflow (train, evaluate, register), as one JSON
line on the container's attached stdin (runner/tether.py), never in its
configuration (`docker inspect`), on a command line or in logs. That stdin is
also the stage's tether: when the launcher dies (its runner killed), the stream
closes and the stage stops itself. Output streams live; the exit code is the
stage's; the container is removed, and stopped first on Ctrl-C or SIGTERM; an
interrupt or a kill says which stage it hit and that rerunning resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from runner import gpu_lease
from runner.outcome import verdict
from runner.stage_spec import container_spec, git_env, gpu_request, image_digest, stage_secrets
from stages.lib.cli import PipelineError


def _client():
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env()
        client.ping()
        return client
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if "Permission denied" in str(exc) or "PermissionError" in str(exc):
            raise PipelineError(
                f"permission denied on the Docker socket ({where}): add your user to the docker group "
                "(sudo usermod -aG docker $USER, then log in again)"
            ) from None
        raise PipelineError(
            f"Docker daemon not reachable at {where}: start it (sudo systemctl start docker) or set DOCKER_HOST"
        ) from None


def _image(client, name: str):
    from docker.errors import ImageNotFound

    try:
        return client.images.get(name)
    except ImageNotFound:
        raise PipelineError(
            f"image {name} not found: build it with `make build` (project images are never pulled)"
        ) from None


def _stream(container) -> int:
    for chunk in container.logs(stream=True, follow=True):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return int(container.wait()["StatusCode"])


def _stop(container) -> None:
    """SIGTERM to the stage (it cleans its scratch and exits 143), then SIGKILL after 5 s."""
    from docker.errors import DockerException

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # one interrupt is enough: the rest must not cut the cleanup
    with contextlib.suppress(DockerException, OSError):  # a slow daemon: _remove() kills it anyway
        container.stop(timeout=5)


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds into run()'s finally, which stops the container


def tether(container, secrets: Mapping[str, str]):
    """Attach to the created container's stdin and send its secrets line; keep the socket
    open while it runs (closing it, or dying, ends the stage: runner/tether.py)."""
    sock = container.attach_socket(params={"stdin": 1, "stream": 1})
    raw = getattr(sock, "_sock", sock)
    try:
        container.start()
        raw.sendall(json.dumps(dict(secrets)).encode() + b"\n")
    except BaseException:
        sock.close()
        raw.close()
        raise
    return sock


def _finish(container, stage: str, code: int) -> int:
    container.reload()
    _say(stage, verdict(stage, code, bool(container.attrs.get("State", {}).get("OOMKilled"))))
    return code


def _say(stage: str, line: str | None) -> None:
    """The one line of an interrupted or killed stage; recorded as said (runner/outcome.py)."""
    if line:
        print(f"launch: {line}", file=sys.stderr, flush=True)
        _mark(said=stage)


def _runner_id(environ: Mapping[str, str]) -> str:
    """The dvc-runner container this launcher runs in ('' on a host): stage containers carry it."""
    from runner import guard

    return environ.get("PIPELINE_RUNNER_ID") or guard.container_id() or ""


def _mark(**info: str) -> None:
    from runner import guard

    guard.mark(guard.LOCK, **info)


def _remove(container) -> None:
    """Remove the stage container, stopping it first if it runs; a second signal or a slow
    daemon under load must not cut this short (a container never outlives its launcher)."""
    from docker.errors import DockerException, NotFound

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    for attempt in range(3):
        try:
            container.remove(force=True)
            return
        except NotFound:
            return
        except (DockerException, OSError) as exc:  # a timeout under load: try again
            if attempt == 2:
                print(f"launch: could not remove container {container.short_id}: {exc}", file=sys.stderr)


def run(argv: list[str], environ: Mapping[str, str]) -> int:
    """Run the stage's container, holding its GPU lease (runner/gpu_lease.py) while it lives."""
    with gpu_lease.container_lease(argv[0], environ) as leased_env:
        return _run_container(argv, leased_env)


def _run_container(argv: list[str], environ: Mapping[str, str]) -> int:
    image_name = environ.get("PIPELINE_IMAGE")
    if not image_name:
        raise PipelineError("PIPELINE_IMAGE is not set: run through `make run`, or set it to a built stage image")
    client = _client()
    image = _image(client, image_name)
    devices, notice = gpu_request(environ.get("PIPELINE_GPUS") or "auto", client.info())
    if notice and argv[0] == "train":
        print(f"launch: {notice}", file=sys.stderr)
    env = {**environ, **git_env(environ), "PIPELINE_RUNNER_ID": _runner_id(environ)}
    uid, gid = int(environ.get("PIPELINE_UID") or os.getuid()), int(environ.get("PIPELINE_GID") or os.getgid())
    spec = container_spec(argv, Path.cwd(), image_name, image.id, env, uid, gid, devices, image_digest(image.attrs))
    signal.signal(signal.SIGTERM, _terminate)
    container = client.containers.create(**{k: v for k, v in spec.items() if k != "detach"})
    sock = None
    try:
        where = f"container {container.short_id} ({spec['name']}), image {image.short_id}"
        print(f"launch: stage {argv[0]} in {where}", file=sys.stderr)
        _mark(stage=argv[0], stage_container=container.short_id, said="")
        sock = tether(container, stage_secrets(argv[0], environ))
        return _finish(container, argv[0], _stream(container))
    except KeyboardInterrupt:
        _stop(container)
        _say(argv[0], verdict(argv[0], 130, False))
        return 130
    finally:
        _remove(container)  # first: closing its stdin would interrupt it (runner/tether.py)
        if sock is not None:
            raw = getattr(sock, "_sock", None)
            sock.close()
            if raw is not None:
                raw.close()
        _mark(stage="")


def main(argv: list[str]) -> int:
    try:
        return run(argv, os.environ)
    except PipelineError as exc:
        print(f"launch: error: {exc}", file=sys.stderr)
        return 1
