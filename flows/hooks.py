"""`make hooks`: an opt-in git pre-push hook so `git push` first pushes the DVC outputs
that the pushed commits' dvc.lock names, and refuses the push (one line) when it cannot.

`python -m flows.hooks install [--force]` writes the hook (where `git rev-parse
--git-path hooks` says, so worktrees and core.hooksPath work); it will not replace
a pre-push hook it did not write unless forced. `git push --no-verify` skips it.
Git runs `python -m flows.hooks pre-push REMOTE URL` with one line per pushed ref
on stdin: `<local ref> <local sha> <remote ref> <remote sha>`. Credentials come
from the environment or .env, as for `make push`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ops.common import Fail, child_env
from ops.common import main as run_main
from ops.retry import classify
from ops.settings import settings
from proc.git import git, succeeds

MARKER = "# installed by `make hooks` (flows/hooks.py)"
ZERO = "0" * 40


def hook_text(python: str) -> str:
    return (
        f"#!/bin/sh\n{MARKER}: push the DVC outputs of the pushed commits first.\n"
        f'exec "{python}" -m flows.hooks pre-push "$@"\n'
    )


def install(repo: Path, force: bool = False) -> Path:
    hooks = Path(git("rev-parse", "--git-path", "hooks", cwd=repo).strip())
    hook = (repo / hooks if not hooks.is_absolute() else hooks) / "pre-push"
    if hook.exists() and MARKER not in hook.read_text(errors="replace") and not force:
        raise Fail(f"{hook} exists and is not ours: merge it by hand, or `python -m flows.hooks install --force`")
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(hook_text(sys.executable))
    hook.chmod(0o755)
    return hook


def pushed_revs(lines: list[str], remote: str) -> list[str]:
    """Commits being pushed that carry a dvc.lock change, plus each pushed tip (oldest first, unique)."""
    revs: list[str] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or parts[1] == ZERO:  # malformed, or a branch deletion: nothing to push
            continue
        local, remote_sha = parts[1], parts[3]
        span = [f"{remote_sha}..{local}"] if remote_sha != ZERO else [local, "--not", f"--remotes={remote}"]
        touched = git("rev-list", "--reverse", *span, "--", "dvc.lock").split()
        for rev in [*touched, local]:
            if rev not in revs:
                revs.append(rev)
    return revs


def has_lock(rev: str) -> bool:
    return succeeds("cat-file", "-e", f"{rev}:dvc.lock")


def push_outputs(revs: list[str]) -> int:
    """`dvc push` of what those commits' dvc.lock files name, to DVC's default remote; files sent."""
    from dvc.config import Config
    from dvc.repo import Repo

    if not Config(".dvc")["core"].get("remote"):
        raise Fail("no default DVC remote to push the outputs to: run `make dagshub` (or `dvc remote add -d`)")
    os.environ.update(child_env(settings()))  # .env's credentials, as `make push` has them
    with Repo(".") as repo:
        return repo.push(revs=revs, workspace=False)


def pre_push(remote: str, stdin_lines: list[str]) -> None:
    revs = [r for r in pushed_revs(stdin_lines, remote) if has_lock(r)]
    if not revs:
        return
    try:
        sent = push_outputs(revs)
    except Fail:
        raise
    except Exception as exc:  # dvc's errors are many types; all mean the same to the push
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        hint = {"auth": "fix the credentials in .env", "transient": "check the network and the endpoint"}
        fix = hint.get(classify(reason), "see `make push`")
        raise Fail(
            f"push refused: the DVC outputs of {len(revs)} pushed commit(s) did not reach the DVC remote "
            f"({reason}): {fix}, then push again (`git push --no-verify` skips this)"
        ) from None
    print(f"pre-push: DVC outputs of {len(revs)} commit(s) on the remote ({sent} file(s) sent)", file=sys.stderr)


def _body(argv: list[str]) -> None:
    if argv[:1] == ["install"]:
        hook = install(Path.cwd(), force="--force" in argv)
        print(f"hooks: installed {hook}: `git push` now pushes the DVC outputs first")
    elif argv[:1] == ["pre-push"] and len(argv) >= 2:
        pre_push(argv[1], sys.stdin.read().splitlines())
    else:
        raise Fail("usage: python -m flows.hooks install [--force] | pre-push REMOTE [URL]")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_main("pre-push" if argv[:1] == ["pre-push"] else "hooks", _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
