import torch

from stages.lib import loop, model
from stages.lib.checkpoint import Checkpoint, fingerprint
from stages.lib.params import parse


def _state(cfg):
    net = model.build("small", 100)
    opt, sched = loop.build_optimizer(net, cfg, 10)
    return net, opt, sched


def test_checkpoint_round_trip_and_fingerprint_guard(tmp_path, tiny_raw):
    cfg = parse(tiny_raw).train
    net, opt, sched = _state(cfg)
    ckpt = Checkpoint(tmp_path, fingerprint({"a": 1}), extra={"run_id": "r1"})
    assert ckpt.restore(net, opt, sched) == (0, [])
    ckpt.save(3, net, opt, sched, [{"epoch": 3}])
    fresh, fopt, fsched = _state(cfg)
    assert ckpt.restore(fresh, fopt, fsched) == (3, [{"epoch": 3}])
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), fresh.state_dict().values()))
    assert ckpt.peek()["extra"] == {"run_id": "r1"}
    other = Checkpoint(tmp_path, fingerprint({"a": 2}))
    assert other.peek() is None  # other settings never resume this state
    ckpt.clear()
    assert ckpt.peek() is None


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
