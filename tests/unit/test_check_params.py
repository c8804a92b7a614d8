"""`make check-params` (run before `dvc repro` by run-local, run and stage) names a bad key in one line."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from ops import check_params
from tests.conftest import ROOT, write_params


def _misspelt(base_params: dict, path: Path) -> Path:
    raw = copy.deepcopy(base_params)
    raw["train"]["recipee"] = raw["train"].pop("recipe")
    return write_params(path, raw)


def test_good_params_pass_silently(capsys):
    assert check_params.main([str(ROOT / "params.yaml")]) == 0
    assert capsys.readouterr() == ("", "")


def test_a_misspelt_train_key_is_named(tmp_path, base_params, capsys):
    path = _misspelt(base_params, tmp_path / "params.yaml")
    assert check_params.main([str(path)]) == 1
    assert capsys.readouterr().err == f"params: error: {path}: unknown key train.recipee\n"


def test_make_check_params_stops_before_dvc(tmp_path, base_params):
    _misspelt(base_params, tmp_path / "params.yaml")
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "check-params", f"VENV={venv}", "STAMP="],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "params: error: params.yaml: unknown key train.recipee" in done.stderr.splitlines()


@pytest.mark.parametrize(("section", "key"), [("serve", "max_wait_ms"), ("sweep", "grid")])
def test_a_misspelt_serve_or_sweep_key_is_named(tmp_path, base_params, capsys, section, key):
    """serve/ and sweep/ own their sections (no stage reads them), and check-params checks them too."""
    raw = copy.deepcopy(base_params)
    raw[section][f"{key}x"] = raw[section].pop(key)
    path = write_params(tmp_path / "params.yaml", raw)
    assert check_params.main([str(path)]) == 1
    assert capsys.readouterr().err == f"params: error: {path}: unknown key {section}.{key}x\n"
