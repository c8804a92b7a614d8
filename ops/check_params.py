"""`make check-params`: read and check params.yaml before `dvc repro` templates it.

DVC resolves `recipes.${train.recipe}` before any stage runs, so a misspelt key
(`recipee`) would otherwise end in DVC's `Could not find 'train.recipe'`, which
does not name the bad key. This prints the same one line a stage would
(`params.yaml: unknown key train.recipee`) and exits 1, or exits 0 silently.
It checks the stages' sections and the `serve:` and `sweep:` sections their owners read.
"""

from __future__ import annotations

import argparse
import sys

from serve.settings import serve_params
from stages.lib import params
from sweep.settings import sweep_params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        raw = params.read_yaml(args.path)
        for check in (params.parse, serve_params, sweep_params):
            check(raw, str(args.path))
    except params.ParamsError as exc:
        print(f"params: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
