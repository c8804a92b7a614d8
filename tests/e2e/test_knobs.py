"""A serving or sweep knob never reruns the pipeline; a stage's own setting does.

After one complete tiny `dvc repro` (real DVC, in-process stages) in a sandbox, what a user does
to serve, sweep or the lock's upper layers leaves `dvc status` clean, while a train setting
still reruns train and what follows. Each check restores the sandbox's committed files after.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from smoke.sandbox import merge
from stages.lib.params import read_yaml
from tests.conftest import ROOT, TINY, write_params
from tests.e2e.conftest import dvc, ran, sandbox

pytestmark = pytest.mark.slow
AFTER_TRAIN = ["train", "evaluate", "profile", "register"]
# One more package in a layer file, as `make lock` writes it (the hash need not be real: nothing installs it).
EXTRA_PACKAGE = f"example-extra==1.0 \\\n    --hash=sha256:{'0' * 64}\n    # via cifar100-pipeline (pyproject.toml)\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = sandbox(tmp_path_factory.mktemp("knobs"), merge(TINY, {"recipes": {"fast": {"epochs": 1}}}))
    dvc(root, "repro")
    assert _stale(root) == []
    return root


@pytest.fixture
def repo(built):
    """The built sandbox; its committed files (params.yaml, env/, code) put back afterwards."""
    yield built
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=built, check=True)
    subprocess.run(["git", "clean", "-q", "-f", "--", "serve"], cwd=built, check=True)  # a copied settings file
    assert _stale(built) == []


def _stale(root) -> list[str]:
    """The stages `dvc status` names (changed deps, params or outs), sorted."""
    return sorted(json.loads(dvc(root, "status", "--json").stdout or "{}"))


def _edit_params(root, section: str, key: str, value) -> None:
    raw = read_yaml(root / "params.yaml")
    raw[section][key] = value
    write_params(root / "params.yaml", raw)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("serve", "max_wait_ms", 9.5),  # changed
        ("serve", "max_batch_size", 8),
        ("serve", "new_knob", 1),  # added (check-params names it; DVC ignores it)
        ("sweep", "grid", ["recipes.fast.lr=0.1,0.3"]),
        ("sweep", "set", ["train.recipe=fast", "train.seed=3"]),
    ],
)
def test_a_serve_or_sweep_setting_reruns_no_stage(repo, section, key, value):
    _edit_params(repo, section, key, value)
    assert _stale(repo) == []


@pytest.mark.parametrize("layer", ["serve", "automation", "dev"])
def test_a_package_added_to_an_upper_layer_reruns_no_stage(repo, layer):
    lock = repo / "env" / f"{layer}.lock"
    assert lock.is_file(), f"the sandbox has no {lock.relative_to(repo)}"
    with open(lock, "a") as f:
        f.write(EXTRA_PACKAGE)
    assert _stale(repo) == []


def _defining(cls: str) -> str:
    """The project file (relative) that defines class `cls`, wherever the layout puts it."""
    found = [
        p.relative_to(ROOT).as_posix()
        for top in ("stages", "serve", "sweep")
        for p in (ROOT / top).rglob("*.py")
        if f"\nclass {cls}:" in p.read_text()
    ]
    assert len(found) == 1, f"class {cls} defined in {found}"
    return found[0]


@pytest.mark.parametrize("cls", ["ServeParams", "SweepParams"])
def test_a_new_serve_or_sweep_setting_in_code_reruns_no_stage(repo, cls):
    """A user adds a field to the serving or sweep settings class: no stage depends on that file."""
    rel = _defining(cls)
    text = (ROOT / rel).read_text()  # the sandbox copies stages/ and sweep/, not serve/: the file is put there
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text.replace(f"\nclass {cls}:\n", f"\nclass {cls}:\n    new_knob: int = 0\n", 1))
    assert _stale(repo) == []


def test_a_package_added_to_the_stages_layer_reruns_every_stage(repo):
    with open(repo / "env" / "stages.lock", "a") as f:
        f.write(EXTRA_PACKAGE)
    assert _stale(repo) == ["evaluate", "ingest", "preprocess", "profile", "register", "train", "validate"]


def test_a_train_setting_reruns_train_and_what_follows(repo):
    _edit_params(repo, "train", "seed", read_yaml(repo / "params.yaml")["train"]["seed"] + 1)
    assert _stale(repo) == ["train"]  # the others' inputs change only once train has run
    assert ran(dvc(repo, "repro").stdout) == AFTER_TRAIN
    subprocess.run(["git", "checkout", "-q", "--", "params.yaml"], cwd=repo, check=True)
    dvc(repo, "repro")  # back to the committed settings, so the next check starts clean
