"""`make ab-promote`: ops.ab_promote moves `champion` on a `promote` verdict, then the promotion is
notified through flows.notify (Apprise, AUTOMATION_NOTIFY_URLS). The entry lives here because
ops may not import flows. Prints one JSON line {"model", "from", "to", "run_id", "verdict", ...};
any other verdict: one line on stderr, exit 1, no alias moved, nothing sent.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows import notify
from ops import ab_settings
from ops.ab_promote import Promotion, promote
from ops.common import main as run_op


def message(done: Promotion) -> str:
    b = done.report
    champ, chall = b["variants"]["champion"], b["variants"]["challenger"]
    return (
        f"{done.model} v{done.new} is now champion (was v{done.old}) by an A/B test: top-1 "
        f"{chall['top1']:.4f} on {chall['labelled']} labels vs {champ['top1']:.4f} on {champ['labelled']}; "
        f"{b['test']}; e-value {b['e_value']:.3g}, always-valid p {b['p_value']:.3g}; MLflow run {done.run_id}"
    )


def _main(argv: list[str]) -> None:
    from mlflow import MlflowClient

    from stages.lib import params, tracking

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", type=Path)
    args = ap.parse_args(argv)
    cfg = params.load(args.params)
    settings = ab_settings.load()
    tracking.configure(cfg.mlflow.experiment)
    done = promote(
        MlflowClient(), cfg.register.model_name, cfg.mlflow.experiment, ab_settings.store_url(args.params), settings
    )
    notify.send("promotion", f"A/B test: v{done.new} is champion", message(done))
    keys = ("verdict", "e_value", "p_value", "difference")
    print(
        json.dumps(
            {
                "model": done.model,
                "from": done.old,
                "to": done.new,
                "run_id": done.run_id,
                **{k: done.report[k] for k in keys},
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    return run_op("ab-promote", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
