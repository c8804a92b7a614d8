"""`make git-sync`: commit the pipeline's tracked results and push them to origin.

Commits exactly these, and nothing else that is changed or staged: dvc.lock, the
params files the stages read, the outputs dvc.yaml keeps in git (`cache: false`:
metrics, reports, plots) and the .gitignore files DVC keeps for its cached outputs.
It refuses, naming the fix, when
- the pipeline is not up to date (`dvc status`): the commit would not match dvc.lock;
- code dvc.lock records (dvc.yaml, stage sources) has uncommitted changes;
- outputs dvc.lock references are not on the DVC remote yet (`dvc status --cloud`):
  a clone could not pull them. `make push` first.
Then `git push origin HEAD`, retried while origin is unreachable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ops.common import child_env, dvc, main
from ops.retry import classify, retry_policy, retrying
from ops.settings import settings
from proc.git import git, run_git, succeeds
from proc.run import Fail, last_error, run

MESSAGE = "pipeline: dvc.lock, params and reports"


def tracked_files(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(files to commit, git-tracked code whose hashes dvc.lock records, all outputs), relative to root."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        rel = lambda p: os.path.relpath(p, repo.root_dir)  # noqa: E731
        outs = [o for s in stages for o in s.outs]
        out_paths = {rel(o.fs_path) for o in outs}
        files = {"dvc.lock"} | {rel(o.fs_path) for o in outs if not o.use_cache}
        files |= {str(Path(rel(o.fs_path)).parent / ".gitignore") for o in outs if o.use_cache}
        code = {"dvc.yaml"}
        for dep in (d for s in stages for d in s.deps):
            path = rel(dep.fs_path)
            if type(dep).__name__ == "ParamsDependency":
                files.add(path)
            elif not any(path == p or path.startswith(p + os.sep) for p in out_paths):
                code.add(path)
    known = lambda f: succeeds("ls-files", "--error-unmatch", "--", f, cwd=root)  # noqa: E731
    files = {os.path.normpath(f) for f in files if (root / f).exists() or known(f)}
    return sorted(files), sorted(code), sorted(out_paths)


def _json(output: str) -> dict | None:
    """The JSON object in dvc's output (warnings may share the stream), or None."""
    start, end = output.find("{"), output.rfind("}")
    try:
        return json.loads(output[start : end + 1]) if start >= 0 else None
    except json.JSONDecodeError:
        return None


def check_pipeline(env: dict, code: list[str]) -> None:
    if not Path("dvc.lock").is_file():
        raise Fail("no dvc.lock: run the pipeline (`make run-local`) first")
    dirty = git("status", "--porcelain", "--", *code, env=env).split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    if dirty:
        raise Fail(f"uncommitted changes in code dvc.lock records ({', '.join(dirty[:5])}): commit them first")
    done = run(dvc("status", "--json"), env)
    changed = _json(done.output) if done.returncode == 0 else None
    if changed is None:
        raise Fail(f"`dvc status` failed: {last_error(done.output)}")
    if changed:
        raise Fail(f"the pipeline is not up to date (changed: {', '.join(sorted(changed))}): run `dvc repro` first")


def check_remote(env: dict, outs: list[str]) -> None:
    attempts, delay = retry_policy(env)
    done, tries = retrying(lambda: run(dvc("status", "--cloud", "--json"), env), attempts, delay, "git-sync")
    if done.returncode:
        kind = classify(done.output)
        fix = {
            "auth": ": fix the credentials in .env and run `make dagshub`",
            "transient": f": unreachable after {tries} attempts; check the network and the endpoint",
        }.get(kind, "")
        raise Fail(f"cannot tell whether the outputs are on the DVC remote ({last_error(done.output)}){fix}")
    missing = _json(done.output)
    if missing is None:
        raise Fail(f"`dvc status --cloud` gave no answer: {last_error(done.output)}")
    if missing:
        # dvc lists a directory's files one by one; name the outputs they belong to.
        owners = {next((o for o in outs if path == o or path.startswith(o + "/")), path) for path in missing}
        names = ", ".join(sorted(owners)[:6])
        raise Fail(f"outputs dvc.lock references are not on the DVC remote yet ({names}): run `make push` first")


def push(env: dict) -> None:
    branch = git("rev-parse", "--abbrev-ref", "HEAD", env=env).strip()
    if branch == "HEAD":
        raise Fail("detached HEAD: check out a branch first")
    attempts, delay = retry_policy(env)
    refspec = f"HEAD:refs/heads/{branch}"
    send = lambda: run_git("push", "origin", refspec, env=env, timeout=3600)  # noqa: E731
    done, tries = retrying(send, attempts, delay, "git-sync")
    if done.returncode == 0:
        print(f"git-sync: pushed {branch} to origin")
        return
    kind, low = classify(done.output), done.output.lower()
    if "rejected" in low or "fetch first" in low or "non-fast-forward" in low:
        raise Fail("origin has commits this branch lacks: `git pull --rebase`, then `make git-sync` again")
    if kind == "auth":
        raise Fail(
            f"origin rejected the credentials ({last_error(done.output)}): "
            "fix git's access to origin, then `make git-sync` again"
        )
    if kind == "transient":
        raise Fail(
            f"origin unreachable after {tries} attempts ({last_error(done.output)}): "
            "the commit is made; `make git-sync` again pushes it"
        )
    raise Fail(
        f"`git push` to origin failed ({last_error(done.output)}): check `git remote get-url origin` "
        "and your access to it, then `make git-sync` again"
    )


def _main(argv: list[str]) -> None:
    env = child_env(settings())
    if not succeeds("remote", "get-url", "origin", env=env):
        raise Fail("no git remote 'origin': add it with `git remote add origin URL`")
    files, code, outs = tracked_files(Path.cwd())
    check_pipeline(env, code)
    check_remote(env, outs)
    git("add", "-A", "--", *files, env=env)
    if succeeds("diff", "--cached", "--quiet", "--", *files, env=env):
        print("git-sync: nothing new to commit")
    else:
        git("commit", "-q", "-m", MESSAGE, "--", *files, env=env)  # only these paths, whatever else is staged
        print(f"git-sync: committed {', '.join(files)}")
    push(env)


if __name__ == "__main__":
    raise SystemExit(main("git-sync", _main))
