"""Recipes as params, the run-time checks around them, sharding a batch over DDP ranks, and the weight EMA."""

import copy
import dataclasses
import os
import shutil

import pytest
import torch
from tqdm import tqdm

from stages.lib import device, distributed, loop, model, params
from stages.lib.checkpoint import Checkpoint
from stages.lib.cli import PipelineError
from stages.lib.ema import Ema
from stages.lib.params import ParamsError


@pytest.fixture
def raw(base_params):
    return copy.deepcopy(base_params)


def _error(raw: dict) -> str:
    with pytest.raises(ParamsError) as exc:
        params.parse(raw)
    return str(exc.value)


def test_committed_recipes_are_the_documented_ones(raw):
    p = params.parse(raw)
    assert (p.recipes["fast"].model, p.recipes["resnet18"].model) == ("resnet9", "resnet18")
    assert p.recipes["fast"].epochs <= 15 and p.recipes["fast"].tta_flip and p.recipes["fast"].label_smoothing > 0
    assert p.recipes["fast"].batch_size >= 512 and p.recipes["fast"].schedule == "onecycle"


@pytest.mark.parametrize("name", ["fast", "resnet18"])
def test_train_config_is_the_run_time_keys_plus_the_selected_recipe(raw, name):
    raw["train"]["recipe"] = name
    p = params.parse(raw)
    resolved = params.train_config(p)
    recipe = p.recipes[name]
    assert resolved.recipe == name and resolved.device == p.train.device and resolved.seed == p.train.seed
    assert all(getattr(resolved, f.name) == getattr(recipe, f.name) for f in dataclasses.fields(recipe))
    stored = params.as_dict(resolved)  # model.json's train_params round-trips
    assert params.parse_as(params.TrainConfig, stored, "model.json", "train_params") == resolved


def test_unknown_recipe_is_rejected(raw):
    raw["train"]["recipe"] = "x"
    assert _error(raw) == "params.yaml: train.recipe must be one of fast, resnet18, got 'x'"


def test_a_new_recipe_is_a_params_edit_only(raw):
    raw["recipes"]["mine"] = {**copy.deepcopy(raw["recipes"]["fast"]), "epochs": 3}
    raw["train"]["recipe"] = "mine"
    del raw["recipes"]["resnet18"]  # recipes not selected may come and go
    resolved = params.train_config(params.parse(raw))
    assert (resolved.recipe, resolved.epochs, resolved.model) == ("mine", 3, raw["recipes"]["fast"]["model"])


def test_recipes_are_checked_by_name_and_must_not_be_empty(raw):
    raw["recipes"]["mine"] = {**copy.deepcopy(raw["recipes"]["fast"]), "lr": -1}
    assert _error(raw) == "params.yaml: recipes.mine.lr must be > 0, got -1"
    raw["recipes"]["my.recipe"] = raw["recipes"].pop("mine")
    assert _error(raw).startswith("params.yaml: recipes.my.recipe must match ^[A-Za-z0-9_-]+$")
    raw["recipes"] = {}
    assert _error(raw) == "params.yaml: recipes must not be empty"


@pytest.mark.parametrize(
    "value, expected",
    [
        (0, "recipes.fast.batch_size must be >= 1, got 0"),
        (-512, "recipes.fast.batch_size must be >= 1, got -512"),
        (512.0, "recipes.fast.batch_size must be int, got 512.0"),
        ("512", "recipes.fast.batch_size must be int, got '512'"),
    ],
)
def test_bad_batch_size_is_rejected(raw, value, expected):
    raw["recipes"]["fast"]["batch_size"] = value
    assert _error(raw) == f"params.yaml: {expected}"


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("ema", 1.0, "recipes.fast.ema must be < 1, got 1.0"),
        ("tta_flip", "yes", "recipes.fast.tta_flip must be bool, got 'yes'"),
        ("tta_translate", 5, "recipes.fast.tta_translate must be <= 4, got 5"),
        ("tta_translate", -1, "recipes.fast.tta_translate must be >= 0, got -1"),
    ],
)
def test_recipe_extras_are_checked(raw, key, value, expected):
    raw["recipes"]["fast"][key] = value
    assert _error(raw) == f"params.yaml: {expected}"


def test_distributed_key_is_checked(raw):
    raw["train"]["distributed"] = "yes"
    assert _error(raw) == "params.yaml: train.distributed must be one of auto, off, got 'yes'"


def test_batch_that_does_not_split_over_the_processes_is_rejected(raw):
    cfg = params.train_config(params.parse(raw))
    distributed.Group(0, 0, 4).check(cfg)
    with pytest.raises(PipelineError, match=r"recipes.fast.batch_size 512 does not split evenly over 3 processes"):
        distributed.Group(0, 0, 3).check(cfg)


def _cpu(raw, **changes):
    return dataclasses.replace(params.train_config(params.parse(raw)), device="cpu", **changes)


def test_compile_on_where_it_cannot_run_fails_at_resolve_time(raw, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")  # Inductor's CPU backend has no compiler to call
    with pytest.raises(PipelineError) as exc:
        device.resolve(_cpu(raw, compile="on"))
    assert str(exc.value) == (
        "params.yaml: train.compile is on, but torch.compile cannot run on cpu: Inductor "
        "needs a C++ compiler for CPU code and '/nonexistent/c++' is not on PATH"
    )
    assert device.resolve(_cpu(raw, compile="auto")).compile is False  # auto never compiles on CPU
    assert device.resolve(_cpu(raw, compile="off")).compile is False


@pytest.mark.skipif(shutil.which(os.environ.get("CXX") or "g++") is None, reason="no C++ compiler on PATH")
def test_compile_on_with_a_compiler_is_honoured_on_cpu(raw):
    assert device.compile_blocker(torch.device("cpu")) is None
    assert device.resolve(_cpu(raw, compile="on")).compile is True


def test_torchrun_is_used_only_with_several_gpus_outside_torchrun(raw, monkeypatch):
    cfg = params.train_config(params.parse(raw))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # stands in for a GPU machine
    for count, expected in ((0, 0), (1, 0), (4, 4)):
        monkeypatch.setattr(torch.cuda, "device_count", lambda count=count: count)
        assert distributed.processes_to_launch(cfg) == expected
    assert distributed.processes_to_launch(dataclasses.replace(cfg, distributed="off")) == 0
    assert distributed.processes_to_launch(dataclasses.replace(cfg, device="cpu")) == 0
    monkeypatch.setenv("WORLD_SIZE", "4")  # already one of torchrun's processes
    assert distributed.processes_to_launch(cfg) == 0
    cmd = distributed.torchrun_command(4, "stages.train", ["--params", "params.yaml"])
    assert cmd[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=4",
        "-m",
        "stages.train",
        "--params",
        "params.yaml",
    ]


def test_group_from_torchruns_environment(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.Group.from_env() == distributed.SOLO and distributed.SOLO.main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    group = distributed.Group.from_env()
    assert (group.rank, group.local_rank, group.world, group.main) == (3, 1, 4, False)
    assert group.share(64) == slice(48, 64)


class _Recorder(torch.nn.Module):
    """A tiny classifier that keeps every batch it is given."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3 * 32 * 32, 100)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.head(x.flatten(1))


def _epoch_batches(cfg, data, group) -> list[torch.Tensor]:
    rt = device.resolve(cfg)
    net = _Recorder()
    opt, sched = loop.build_optimizer(net, cfg, 100)
    gen = torch.Generator().manual_seed(7)
    loop.train_epoch(
        net, opt, sched, data, cfg, loop.Normalizer([0.5] * 3, [0.25] * 3, rt), rt, gen, tqdm(disable=True), group
    )
    return net.seen


def test_ranks_split_each_global_batch_of_a_single_process(raw):
    """Two ranks see, step by step, the two halves of what one process sees: same samples, same crops and flips."""
    cfg = _cpu(raw, batch_size=16, log_every=1)
    data = loop.DeviceData(torch.randint(0, 256, (70, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 100, (70,)))
    solo = _epoch_batches(cfg, data, distributed.SOLO)
    ranks = [_epoch_batches(cfg, data, distributed.Group(r, 0, 2)) for r in (0, 1)]
    assert len(solo) == len(ranks[0]) == len(ranks[1]) == 70 // 16
    for whole, first, second in zip(solo, *ranks):
        assert first.shape[0] == second.shape[0] == 8
        assert torch.equal(torch.cat([first, second]), whole)


def test_ema_follows_the_weights_with_a_warm_up(raw):
    net = model.build("small", 100)
    ema = Ema(net, decay=0.9)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)  # first update: decay min(0.9, 1/10) = 0.1
    for key, value in ema.module.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.1 * before[key] + 0.9 * net.state_dict()[key], atol=1e-6)
    for _ in range(200):
        ema.update(net)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ema.module.parameters(), net.parameters()))
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_fit_with_ema_checkpoints_the_average_and_ends_holding_it(raw, tmp_path):
    cfg = _cpu(raw, model="small", epochs=2, batch_size=32, ema=0.9, lr=0.05)
    rt = device.resolve(cfg)
    data = loop.DeviceData(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 100, (64,)))
    norm = loop.Normalizer([0.5] * 3, [0.25] * 3, rt)
    torch.manual_seed(0)
    net = model.build("small", 100)
    ckpt = Checkpoint(tmp_path, "k")
    rows = []
    history = loop.fit(net, data, data, cfg, norm, rt, ckpt, lambda row, timing: rows.append(timing))
    assert [r["epoch"] for r in history] == [1, 2] and [t["epoch_images"] for t in rows] == [64, 64]
    saved = ckpt.peek()["ema"]
    assert saved["updates"] == 4  # two steps per epoch
    assert all(torch.equal(saved["module"][k], v) for k, v in net.state_dict().items())
    fresh = model.build("small", 100)
    opt, sched = loop.build_optimizer(fresh, cfg, 4)
    again = Ema(fresh, 0.9)
    assert ckpt.restore(fresh, opt, sched, again)[0] == 2 and again.updates == 4
