"""Claim: ingest + preprocess of an archive costs at most 1.5x a plain `tar xzf`.

Measured: wall time of the two stages as DVC runs them (`python -m runner
ingest` with data.source=archive, then `python -m runner preprocess`, each a
fresh interpreter, imports included) against `tar xzf` of the same archive
into an empty dir. Runs in turns, `--repeats` times, fastest of each. The archive is
../shared/cifar100 (the real 168 MB CIFAR-100) when present, else a generated
one. Ingest verifies the md5 and unpacks; preprocess reads the pickles, splits
and writes uint8 .npy arrays, so it does strictly more than tar.
Prints one JSON line: stages_s, tar_s, ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from bench._common import alternating_best, run
from smoke.sandbox import merge
from stages.lib import cifar_pickles, params, synthetic

ROOT = Path(__file__).resolve().parent.parent

REAL = ROOT.parent / "shared" / "cifar100" / "cifar-100-python.tar.gz"


def generated_archive(dest: Path) -> Path:
    cfg = params.load(ROOT / "params.yaml").data.synthetic
    cifar_pickles.write_pickles(dest / "src", synthetic.generate(cfg))
    path = dest / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(dest / "src" / "cifar-100-python", arcname="cifar-100-python")
    shutil.rmtree(dest / "src")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=REAL if REAL.exists() else None)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        archive = args.archive or generated_archive(work)
        with open(archive, "rb") as f:
            md5 = hashlib.file_digest(f, "md5").hexdigest()
        raw = merge(
            params.read_yaml(ROOT / "params.yaml"),
            {
                "data": {"source": "archive", "archive": {"path": str(archive.resolve()), "md5": md5}},
                "validate": {"max_train_test_duplicates": 10},
            },
        )
        from ruamel.yaml import YAML

        with open(work / "params.yaml", "w") as f:
            YAML(typ="safe", pure=True).dump(raw, f)
        size_mb = archive.stat().st_size / 2**20
        (work / "tar").mkdir()
        stage = [sys.executable, "-m", "runner"]
        env = {"PATH": "/usr/bin:/bin"}  # the stages import from the installed project

        def stages():
            run([*stage, "ingest", "--params", "params.yaml", "--out", "data/raw"], work, env)
            run(
                [*stage, "preprocess", "--params", "params.yaml", "--raw", "data/raw", "--out", "data/processed"],
                work,
                env,
            )

        def untar():
            shutil.rmtree(work / "tar")
            (work / "tar").mkdir()
            run(["tar", "xzf", str(archive), "-C", str(work / "tar")])

        stages_s, tar_s = alternating_best(stages, untar, args.repeats)
    print(f"ingest+preprocess {stages_s:.2f} s, tar xzf {tar_s:.2f} s ({archive})", file=sys.stderr)
    print(
        json.dumps(
            {
                "bench": "ingest",
                "archive_mb": round(size_mb, 1),
                "stages_s": round(stages_s, 3),
                "tar_s": round(tar_s, 3),
                "ratio": round(stages_s / tar_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
