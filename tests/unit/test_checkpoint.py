import torch

from stages.lib import loop, model
from stages.lib.checkpoint import Checkpoint, fingerprint
from stages.lib.params import parse, train_config


def _state(cfg):
    net = model.build("small", 100)
    opt, sched = loop.build_optimizer(net, cfg, 10)
    return net, opt, sched


def test_checkpoint_round_trip_and_fingerprint_guard(tmp_path, tiny_raw):
    cfg = train_config(parse(tiny_raw))
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


def test_restore_brings_back_optimizer_and_schedule_position(tmp_path, tiny_raw):
    cfg = train_config(parse(tiny_raw))
    net, opt, sched = _state(cfg)
    for _ in range(3):  # momentum buffers and the schedule's step move
        net(torch.randn(2, 3, 32, 32)).sum().backward()
        opt.step()
        sched.step()
    ckpt = Checkpoint(tmp_path, "k")
    ckpt.save(1, net, opt, sched, [{"epoch": 1}])
    fresh, fopt, fsched = _state(cfg)
    assert ckpt.restore(fresh, fopt, fsched)[0] == 1
    assert fsched.last_epoch == sched.last_epoch == 3
    assert fopt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    first = next(iter(opt.state.values()))["momentum_buffer"]
    assert torch.equal(next(iter(fopt.state.values()))["momentum_buffer"], first)


def test_a_state_written_under_another_key_is_ignored_even_at_the_same_path(tmp_path, tiny_raw):
    cfg = train_config(parse(tiny_raw))
    net, opt, sched = _state(cfg)
    Checkpoint(tmp_path, "old").save(2, net, opt, sched, [])
    (tmp_path / "train-old.pt").rename(tmp_path / "train-new.pt")
    assert Checkpoint(tmp_path, "new").restore(*_state(cfg)) == (0, [])


def test_clear_removes_the_folder_only_when_empty(tmp_path, tiny_raw):
    cfg = train_config(parse(tiny_raw))
    net, opt, sched = _state(cfg)
    folder = tmp_path / "checkpoints"
    kept, done = Checkpoint(folder, "keep"), Checkpoint(folder, "done")
    kept.save(1, net, opt, sched, [])
    done.save(1, net, opt, sched, [])
    done.clear()
    assert folder.is_dir() and kept.peek() is not None  # another setting's checkpoint stays
    kept.clear()
    assert not folder.exists()  # no empty checkpoints/ after a finished run
    kept.clear()  # nothing there: still fine
