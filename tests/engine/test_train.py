"""Training-loop pieces: exact normalization stats, batched crop/flip, learning-rate schedules."""

import pytest
import torch

from sweep.engine.recipes import RECIPES
from sweep.engine.train import augment_batch, crop_padding, lr_factor, normalize_stats


def test_normalize_stats_match_a_float_computation():
    images = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = normalize_stats(images)
    x = images.double() / 255
    assert mean.shape == std.shape == (1, 3, 1, 1)
    torch.testing.assert_close(mean.double(), x.mean(dim=(0, 2, 3), keepdim=True), rtol=0, atol=1e-6)
    torch.testing.assert_close(std.double(), x.std(dim=(0, 2, 3), keepdim=True), rtol=0, atol=1e-6)


def test_crop_and_flip_move_pixels_exactly():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    pad = 1
    # Offset (pad, pad) is the identity crop; (0, 0) shifts the image down-right by one (zero fill).
    same = augment_batch(x, torch.tensor([[1, 1], [1, 1]]), torch.tensor([False, False]), pad)
    assert torch.equal(same, x)
    shifted = augment_batch(x, torch.tensor([[0, 0], [2, 2]]), torch.tensor([False, False]), pad)
    assert torch.equal(shifted[0, 0, 1:, 1:], x[0, 0, :3, :3]) and shifted[0, 0, 0].sum() == 0
    assert torch.equal(shifted[1, 0, :3, :3], x[1, 0, 1:, 1:]) and shifted[1, 0, :, 3].sum() == 0
    mirrored = augment_batch(x, torch.tensor([[1, 1], [1, 1]]), torch.tensor([True, False]), pad)
    assert torch.equal(mirrored[0], x[0].flip(-1)) and torch.equal(mirrored[1], x[1])


def test_crop_padding_scales_with_image_size():
    assert crop_padding(32) == 4 and crop_padding(8) == 1 and crop_padding(64) == 8


@pytest.mark.parametrize("name", list(RECIPES))
def test_schedules_start_peak_and_end_where_documented(name):
    recipe = RECIPES[name]
    total = 1000
    factors = [lr_factor(recipe, step, total) for step in range(total + 1)]
    assert max(factors) == pytest.approx(1.0, abs=1e-2) and min(factors) >= 0
    if recipe.schedule == "triangle":
        assert factors[0] == 0 and factors[-1] == pytest.approx(0)
        assert factors[int(recipe.warmup * total)] == pytest.approx(1.0)
    if recipe.schedule == "cosine":
        assert factors[0] == 1.0 and factors[-1] == pytest.approx(0, abs=1e-9)
    if recipe.schedule == "constant":
        assert set(factors) == {1.0}
