"""`python -m sweep {run,report,promote}`: the entry behind `make sweep`, `make sweep-report`, `make promote`.

run: the grid from --grid (DVC -S items separated by spaces, as GRID= gives
them) or params.yaml's `sweep.grid`, plus `sweep.set`; exits 1 naming any
failed experiment. report: rewrite reports/sweep.{md,png} of the last sweep
(reports/sweep.json). promote NAME: apply, commit and register one experiment.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from stages.lib import fsio
from stages.lib.cli import PipelineError
from sweep import settings


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m sweep", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="queue the grid and run it on DVC's queue")
    run.add_argument("--grid", default="", help="DVC -S sweep items, space-separated (default: params sweep.grid)")
    run.add_argument("--jobs", type=int, default=None, help="queue workers (default: visible GPUs, or 1)")
    sub.add_parser("report", help="rewrite reports/sweep.md and .png for the last sweep")
    promote = sub.add_parser("promote", help="apply one experiment, commit, run the register gate")
    promote.add_argument("name")
    for p in (run, promote, sub.choices["report"]):
        p.add_argument("--root", default=".", help="the project (a git + DVC repo)")
    return ap


def _run(args) -> int:
    from sweep import run

    root = Path(args.root)
    cfg = settings.load(root / "params.yaml")
    grid = shlex.split(args.grid) if args.grid.strip() else list(cfg.grid)
    if args.jobs is not None and args.jobs < 1:
        raise PipelineError(f"JOBS must be a whole number >= 1, got {args.jobs}")
    _, failed = run.run(root, grid, list(cfg.set), args.jobs)
    return 1 if failed else 0


def _report(args) -> int:
    from sweep import report
    from sweep.run import RECORD

    root = Path(args.root)
    if not (root / RECORD).is_file():
        raise PipelineError(f"{RECORD}: file not found (run `make sweep` first)")
    print(f"sweep-report: {report.write(root, fsio.read_json(root / RECORD))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            return _report(args)
        from sweep import promote

        promote.promote(Path(args.root), args.name)
        return 0
    except PipelineError as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sweep: interrupted: its experiments stopped, its MLflow parent run ended as KILLED", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
