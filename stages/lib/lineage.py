"""What a registered version carries so that `make reproduce` can rebuild it.

Next to the logged model, register stores under the run's `lineage/` artifacts:
the model card (stages/lib/model_card.py: the whole settings file inside) and
the dvc.lock of the run (the md5 of every code file, param and data folder each
stage used). With the version's tags (git.commit, model_sha256, data.*) that is
the whole recipe: the commit's code, these settings, the data by these hashes.
"""

from __future__ import annotations

from pathlib import Path

from stages.lib import model_card

ARTIFACT_DIR = "lineage"
LOCK = "dvc.lock"


def record(client, run_id: str, model_dir: Path, lock: str | Path = LOCK) -> None:
    """Log the card and (when the run has one: `dvc repro` writes it) dvc.lock to the run."""
    client.log_artifact(run_id, str(model_card.card_path(model_dir)), ARTIFACT_DIR)
    if Path(lock).is_file():
        client.log_artifact(run_id, str(lock), ARTIFACT_DIR)
