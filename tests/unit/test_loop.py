import pytest
import torch

from stages.lib import device, loop, model
from stages.lib.params import parse, train_config


@pytest.fixture
def train_cfg(tiny_raw):
    return train_config(parse(tiny_raw))


def _with(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


def test_onecycle_warms_up_then_decays_to_zero(train_cfg):
    f = loop.lr_factor(_with(train_cfg, schedule="onecycle", warmup_fraction=0.2), 100)
    assert f(0) == pytest.approx(1 / 20)
    assert f(19) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5)
    assert f(100) == 0.0


def test_cosine_decays_smoothly(train_cfg):
    f = loop.lr_factor(_with(train_cfg, schedule="cosine", warmup_fraction=0.0), 101)
    assert f(1) == pytest.approx(1.0)
    assert f(51) == pytest.approx(0.5)
    assert f(101) == pytest.approx(0.0)


def test_steps_per_epoch_drops_the_ragged_tail_but_never_zero():
    assert loop.steps_per_epoch(1000, 64) == 15
    assert loop.steps_per_epoch(10, 64) == 1


def test_runtime_resolution_on_cpu(train_cfg):
    rt = device.resolve(train_cfg)
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if rt.device.type == "cpu":
        assert not rt.bf16 and not rt.compile
        with pytest.raises(Exception, match="train.device is cuda"):
            device.resolve(_with(train_cfg, device="cuda"))
    forced = device.resolve(_with(train_cfg, device="cpu", precision="bf16", compile="on"))
    assert forced.bf16 and forced.compile
    assert device.describe(forced)["precision"] == "bf16"


def test_normalizer_and_predict_shapes(train_cfg):
    rt = device.resolve(_with(train_cfg, device="cpu"))
    norm = loop.Normalizer([0.5] * 3, [0.25] * 3, rt)
    x = torch.full((5, 3, 32, 32), 255, dtype=torch.uint8)
    assert torch.allclose(norm(x), torch.full((5, 3, 32, 32), 2.0))
    net = model.build("small", 100)
    plain = loop.predict(net, x, 2, norm, rt, tta_flip=False)
    tta = loop.predict(net, x, 2, norm, rt, tta_flip=True, tta_translate=1)
    assert plain.shape == tta.shape == (5, 100)
    assert torch.allclose(plain, tta, atol=1e-5)  # a constant image is its own mirror and its own shift


@pytest.mark.parametrize("name", ["small", "resnet9", "resnet18"])
def test_architectures_map_images_to_logits(name):
    net = model.build(name, 100).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_serving_model_takes_raw_nhwc_uint8_and_returns_probabilities():
    serving = model.ServingModel(model.build("small", 100), [0.5] * 3, [0.25] * 3).eval()
    with torch.no_grad():
        probs = serving(torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8))
    assert probs.shape == (3, 100)
    assert torch.allclose(probs.sum(1), torch.ones(3))


def test_warmup_rises_linearly_to_the_peak(train_cfg):
    f = loop.lr_factor(_with(train_cfg, schedule="cosine", warmup_fraction=0.1), 50)
    rise = [f(s) for s in range(5)]
    assert rise == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    decay = [f(s) for s in range(5, 51)]
    assert all(a >= b for a, b in zip(decay, decay[1:])) and decay[-1] == pytest.approx(0.0)


def test_scheduler_drives_the_optimizer_to_the_configured_peak_and_back_to_zero(train_cfg):
    cfg = _with(train_cfg, lr=0.3, schedule="onecycle", warmup_fraction=0.25)
    net = model.build("small", 100)
    opt, sched = loop.build_optimizer(net, cfg, 8)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(seen) == pytest.approx(0.3) and seen.index(max(seen)) == 1
    assert opt.param_groups[0]["lr"] == 0.0


def test_nesterov_is_dropped_without_momentum(train_cfg):
    net = model.build("small", 100)
    opt, _ = loop.build_optimizer(net, _with(train_cfg, momentum=0.0, nesterov=True), 4)
    assert opt.param_groups[0]["nesterov"] is False
