import pytest
import torch

from stages.lib.augment import augment, random_crop, random_flip, tta_views


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _batch(n=16):
    # Image i is filled with value i+1, so any crop of it holds only 0 (padding) and i+1.
    return (torch.arange(n, dtype=torch.uint8) + 1).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()


def test_shapes_dtype_and_label_alignment():
    x = _batch()
    out = augment(x, pad=4, flip=True, gen=_gen())
    assert out.shape == x.shape and out.dtype == torch.uint8
    for i in range(len(x)):
        assert set(out[i].unique().tolist()) <= {0, i + 1}  # image i stays at index i
        assert (out[i] == i + 1).sum() >= 3 * 28 * 28  # at most 4 px of padding per side


def test_pad_zero_is_identity():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(random_crop(x, 0, _gen()), x)


def test_crop_is_a_window_of_the_padded_image():
    x = torch.randint(1, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = random_crop(x, 2, _gen(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_flip_mirrors_or_keeps_each_image():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = random_flip(x, _gen())
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(len(x))]
    kept = [torch.equal(out[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54  # about half


@pytest.mark.parametrize("flip", [True, False])
def test_same_seed_same_batch(flip):
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    a = augment(x, 4, flip, _gen(7))
    assert torch.equal(a, augment(x, 4, flip, _gen(7)))
    assert not torch.equal(a, augment(x, 4, flip, _gen(8)))


def test_flip_only_gives_each_image_or_its_mirror_in_place():
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    out = augment(x, pad=0, flip=True, gen=_gen(5))
    mirrored = torch.tensor([torch.equal(o, m) for o, m in zip(out, x.flip(3))])
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert torch.all(mirrored | same) and mirrored.any() and same.any()
    assert torch.equal(out[mirrored], x.flip(3)[mirrored])


def test_no_padding_and_no_flip_is_the_identity():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(augment(x, 0, False, _gen()), x)


def test_augment_does_not_touch_its_input():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    before = x.clone()
    augment(x, 4, True, _gen(1))
    assert torch.equal(x, before)


@pytest.mark.parametrize("flip, shift, sizes", [(False, 0, [1]), (True, 0, [2]), (False, 1, [1, 2]), (True, 2, [2, 4])])
def test_tta_views_come_in_groups_of_the_batch_shape(flip, shift, sizes):
    x = torch.randn(3, 3, 32, 32)
    groups = tta_views(x, flip, shift)
    assert [len(g) for g in groups] == sizes
    assert all(v.shape == x.shape for g in groups for v in g)
    assert torch.equal(groups[0][0], x)
    if flip:
        assert torch.equal(groups[0][1], x.flip(3))


def test_tta_translate_moves_the_image_both_ways_over_reflect_padding():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    left_up, right_down = tta_views(x, flip=False, shift=2)[1]
    assert torch.equal(left_up[..., 2:, 2:], x[..., :30, :30])  # content moved 2 px down and right
    assert torch.equal(right_down[..., :30, :30], x[..., 2:, 2:])
    assert torch.equal(left_up[..., 0, 2:], x[..., 2, :30])  # the border row is the reflected row 2
