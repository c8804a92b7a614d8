"""Move the registry's `champion` alias back to the previous champion.

The previous champions are the `champion_history` tag that
stages.lib.registry.move_champion writes on each new champion. Prints one JSON
line {"model", "from", "to"}; a running server follows within its poll interval.
MLFLOW_TRACKING_URI picks the registry (default: the project's store).
"""

from __future__ import annotations

import argparse
import json

from stages.lib import cli, registry


def roll_back(client, model_name: str) -> dict[str, str]:
    """Move `champion` of model_name back one step: {"model", "from", "to"} (the guardrail calls this too).
    PipelineError when there is no champion or no earlier one."""
    old, new = registry.rollback(client, model_name)
    return {"model": model_name, "from": old, "to": new}


def _main(argv) -> None:
    from mlflow import MlflowClient

    from stages.lib import params, tracking

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    cfg = params.load(args.params)
    tracking.configure(cfg.mlflow.experiment)
    print(json.dumps(roll_back(MlflowClient(), cfg.register.model_name)))


def main(argv=None) -> int:
    return cli.run("rollback", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
