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


SHOW = 5  # indices named in a message before "... (N in all)"


def _indices(idx: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:SHOW])
    return shown if len(idx) <= SHOW else f"{shown}, ... ({len(idx)} in all)"


def _constant_images(images: np.ndarray, min_std: float, chunk: int = 8192) -> np.ndarray:
    """Indices of images whose pixel std (uint8 levels) is below min_std; chunked to bound memory."""
    found = []
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float32)
        found.append(start + np.flatnonzero(block.std(axis=1) < min_std))
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _class_counts(split: Split) -> np.ndarray:
    valid = split.fine[(split.fine >= 0) & (split.fine < NUM_FINE)]  # bad labels are reported on their own
    return np.bincount(valid, minlength=NUM_FINE)


def _split_figures(split: Split, constant: np.ndarray) -> dict:
    counts = _class_counts(split)
    return {
        "images": int(len(split.fine)),
        "min_per_class": int(counts.min()),
        "max_per_class": int(counts.max()),
        "constant_images": int(len(constant)),
    }


def _duplicate_pairs(train: np.ndarray, test: np.ndarray) -> list[list[int]]:
    """[train index, test index] of every test image that is byte-identical to a train image."""
    first: dict[bytes, list[int]] = {}
    for i, row in enumerate(train):
        first.setdefault(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), []).append(i)
    pairs = []
    for j, row in enumerate(test):
        for i in first.get(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), ()):
            pairs.append([i, j])
    return sorted(pairs)


def _range_failures(name: str, split: Split) -> list[str]:
    failures = []
    for key, labels, n in (("fine_labels", split.fine, NUM_FINE), ("coarse_labels", split.coarse, NUM_COARSE)):
        bad = np.flatnonzero((labels < 0) | (labels >= n))
        if len(bad):
            more = f" (and {len(bad) - 1} more: {_indices(bad[1:])})" if len(bad) > 1 else ""
            failures.append(f"{name}: {key}[{bad[0]}] = {labels[bad[0]]}, outside 0..{n - 1}{more}")
    return failures


def _mapping_failures(ds: RawDataset) -> list[str]:
    """Each fine label with more than one coarse label, naming where each coarse label first occurs."""
    failures = []
    for fine in range(NUM_FINE):
        seen: dict[int, str] = {}
        for name, split in (("train", ds.train), ("test", ds.test)):
            idx = np.flatnonzero(split.fine == fine)
            coarse, where = np.unique(split.coarse[idx], return_index=True)
            for c, w in zip(coarse, where):
                seen.setdefault(int(c), f"{name}[{idx[w]}]")
        if len(seen) > 1:
            parts = " and ".join(f"coarse {c} ({where})" for c, where in sorted(seen.items()))
            failures.append(f"fine label {fine} ({_name(ds.fine_names, fine)}) maps to {parts}")
    return failures


def _name(names: list[str], i: int) -> str:
    return str(names[i]) if i < len(names) else "?"


def _label_failures(ds: RawDataset) -> list[str]:
    failures = []
    if len(ds.fine_names) != NUM_FINE or len(ds.coarse_names) != NUM_COARSE:
        failures.append(
            f"meta: expected {NUM_FINE} fine and {NUM_COARSE} coarse names, "
            f"got {len(ds.fine_names)} and {len(ds.coarse_names)}"
        )
    for name in ("train", "test"):
        failures += _range_failures(name, getattr(ds, name))
    return failures or _mapping_failures(ds)


def _split_failures(name: str, split: Split, constant: np.ndarray, floor: int, names: list[str]) -> list[str]:
    failures = []
    counts = _class_counts(split)
    low = np.flatnonzero(counts < floor)
    if len(low):
        named = ", ".join(f"class {c} ({_name(names, c)}) has {counts[c]} images" for c in low[:SHOW])
        more = f", ... ({len(low)} classes in all)" if len(low) > SHOW else ""
        failures.append(f"{name}: {named}{more}, need >= {floor}")
    if len(constant):
        failures.append(f"{name}: {len(constant)} constant images at {_indices(constant)}")
    return failures


def check(ds: RawDataset, cfg: params.ValidateParams) -> tuple[dict, list[str]]:
    """Return the report figures and the list of violated rules, each naming values and indices."""
    failures = _label_failures(ds)
    report: dict = {}
    for name, floor in (("train", cfg.min_train_per_class), ("test", cfg.min_test_per_class)):
        split = getattr(ds, name)
        constant = _constant_images(split.images, cfg.min_image_std)
        report[name] = _split_figures(split, constant)
        failures += _split_failures(name, split, constant, floor, ds.fine_names)
    pairs = _duplicate_pairs(ds.train.images, ds.test.images)
    report["train_test_duplicates"] = len(pairs)
    report["train_test_duplicate_pairs"] = pairs  # [train index, test index]
    if len(pairs) > cfg.max_train_test_duplicates:
        shown = ", ".join(f"train[{i}] = test[{j}]" for i, j in pairs[:SHOW])
        more = ", ..." if len(pairs) > SHOW else ""
        failures.append(
            f"{len(pairs)} test images also in train, allowed {cfg.max_train_test_duplicates}: {shown}{more}"
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
