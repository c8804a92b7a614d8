"""Bad params.yaml and settings: each refused in one line naming the file, field and value."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.faults import Expect, assert_clean, finish, read_yaml, write_yaml

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_params_unknown_key(sb):
    """item 12: `make run-local` (as `make run`) names the misspelt key before DVC templates."""
    raw = read_yaml(sb.root / "params.yaml")
    raw["train"]["recipee"] = raw["train"].pop("recipe")
    write_yaml(sb.root / "params.yaml", raw)
    venv = Path(sys.executable).parent.parent  # this interpreter's venv, already installed
    done = finish(sb.start(["make", "--no-print-directory", f"VENV={venv}", "STAMP=", "run-local"]))
    assert_clean(sb, Expect(done, words=("recipee",)))


def test_params_not_yaml(sb):
    (sb.root / "params.yaml").write_text("data: [unclosed\n")
    assert_clean(sb, Expect(sb.stage("ingest"), words=("params.yaml",)))


@pytest.mark.parametrize(
    ("section", "stage", "word"),
    [
        pytest.param({"recipes": {"fast": {"epochs": "ten"}}}, "train", "epochs", id="params_wrong_type"),
        pytest.param({"preprocess": {"val_fraction": 1.5}}, "preprocess", "val_fraction", id="params_out_of_range"),
    ],
)
def test_bad_value_is_named_by_the_stage(sb, section, stage, word):
    sb.params(**section)
    assert_clean(sb, Expect(sb.stage(stage), words=(word,)))


def test_params_unknown_recipe(sb):
    sb.params(train={"recipe": "nope"})
    assert_clean(sb, Expect(sb.dvc("repro"), words=("nope",)))


def test_executor_unknown(sb):
    done = sb.stage("ingest", env={"PIPELINE_EXECUTOR": "kubernetes"})
    assert_clean(sb, Expect(done, words=("PIPELINE_EXECUTOR",)))
