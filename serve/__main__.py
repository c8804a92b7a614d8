"""`python -m serve`: serve the registry's champion (or the alias/version in SERVE_MODEL) over HTTP."""

from __future__ import annotations

import argparse
import logging
import sys

from stages.lib.cli import PipelineError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m serve", description=__doc__)
    ap.add_argument("--params", default="params.yaml", help="params file with the serve: section")
    ap.add_argument("--model", help="alias to follow or version to pin (default: params serve.model / SERVE_MODEL)")
    args = ap.parse_args(argv)
    import dataclasses

    from serve import settings as settings_mod
    from serve.app import create_app
    from serve.connections import serve

    try:
        settings = settings_mod.load(args.params)
        if args.model:
            settings = settings_mod._check(dataclasses.replace(settings, model=args.model))
    except PipelineError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    from serve.follow import bound_requests

    bound_requests(settings.registry_timeout_s)  # this process's MLflow client: the follower's bounds
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
