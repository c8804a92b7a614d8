"""validate: check the raw dataset before anything learns from it.

Shapes and dtypes, 100 fine and 20 coarse labels with one coarse label per fine
label, per-class counts, no constant images, no image shared by train and test.
The measured figures become a DVC metrics file; any violated rule fails the
stage with every failure named, and then no report is written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from stages.lib import cli, fsio, params
from stages.lib.dataset import RawDataset, Split, read_raw

NUM_FINE, NUM_COARSE = 100, 20


class ValidationError(cli.PipelineError):
    pass


def _constant_images(images: np.ndarray, min_std: float, chunk: int = 8192) -> int:
    """Images whose pixel std (uint8 levels) is below min_std; chunked to bound memory."""
    count = 0
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float32)
        count += int((block.std(axis=1) < min_std).sum())
    return count


def _split_figures(split: Split, cfg: params.ValidateParams) -> dict:
    valid = split.fine[(split.fine >= 0) & (split.fine < NUM_FINE)]  # bad labels are reported on their own
    counts = np.bincount(valid, minlength=NUM_FINE)
    return {
        "images": int(len(split.fine)),
        "min_per_class": int(counts.min()),
        "max_per_class": int(counts.max()),
        "constant_images": _constant_images(split.images, cfg.min_image_std),
    }


def _digests(images: np.ndarray) -> set[bytes]:
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in images}


def _label_failures(ds: RawDataset) -> list[str]:
    failures = []
    if len(ds.fine_names) != NUM_FINE or len(ds.coarse_names) != NUM_COARSE:
        failures.append(
            f"meta: expected {NUM_FINE} fine and {NUM_COARSE} coarse names, "
            f"got {len(ds.fine_names)} and {len(ds.coarse_names)}"
        )
    for name, split in (("train", ds.train), ("test", ds.test)):
        for key, labels, n in (("fine_labels", split.fine, NUM_FINE), ("coarse_labels", split.coarse, NUM_COARSE)):
            if len(labels) and (labels.min() < 0 or labels.max() >= n):
                failures.append(f"{name}: {key} outside 0..{n - 1}")
    if failures:
        return failures
    pairs = np.unique(
        np.concatenate([np.stack([ds.train.fine, ds.train.coarse], 1), np.stack([ds.test.fine, ds.test.coarse], 1)]),
        axis=0,
    )
    if len(pairs) != len(np.unique(pairs[:, 0])):
        failures.append("fine_labels map to more than one coarse label")
    return failures


def check(ds: RawDataset, cfg: params.ValidateParams) -> tuple[dict, list[str]]:
    """Return the report figures and the list of violated rules."""
    failures = _label_failures(ds)
    report = {name: _split_figures(getattr(ds, name), cfg) for name in ("train", "test")}
    report["train_test_duplicates"] = len(_digests(ds.train.images) & _digests(ds.test.images))
    for name, floor in (("train", cfg.min_train_per_class), ("test", cfg.min_test_per_class)):
        if report[name]["min_per_class"] < floor:
            failures.append(f"{name}: a class has {report[name]['min_per_class']} images, need >= {floor}")
        if report[name]["constant_images"]:
            failures.append(f"{name}: {report[name]['constant_images']} constant images")
    if report["train_test_duplicates"] > cfg.max_train_test_duplicates:
        failures.append(
            f"{report['train_test_duplicates']} test images also in train, allowed {cfg.max_train_test_duplicates}"
        )
    return report, failures


def _main(argv) -> None:
    args = cli.parser(__doc__.splitlines()[0], "raw", "report").parse_args(argv)
    cfg = params.load(args.params)
    fsio.check_writable(args.report)
    fsio.remove(args.report)
    report, failures = check(read_raw(args.raw), cfg.validate)
    if failures:
        raise ValidationError(f"{args.raw} failed validation: " + "; ".join(failures))
    fsio.write_json(Path(args.report), report)
    print(f"validate: passed -> {args.report}")


def main(argv=None) -> int:
    return cli.run("validate", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
