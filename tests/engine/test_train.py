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


def test_a_warm_up_comes_before_any_schedule_and_the_decay_spans_the_rest():
    from dataclasses import replace

    cosine = replace(RECIPES["blog_cnn"], schedule="cosine", warmup=0.2)
    assert lr_factor(cosine, 0, 100) == 0.0 and lr_factor(cosine, 10, 100) == pytest.approx(0.5)
    assert lr_factor(cosine, 20, 100) == pytest.approx(1.0)
    assert lr_factor(cosine, 60, 100) == pytest.approx(0.5)  # halfway through the 80 steps after it
    assert lr_factor(cosine, 100, 100) == pytest.approx(0.0, abs=1e-12)
    constant = replace(RECIPES["blog_cnn"], warmup=0.5)
    assert [lr_factor(constant, s, 10) for s in (0, 4, 5, 9)] == [0.0, 0.8, 1.0, 1.0]


def test_ema_evaluates_the_moving_average_of_the_weights():
    """With ``ema`` the trained model holds the average the recipe asks for, not the last step's weights."""
    from dataclasses import replace

    from sweep.engine.models import build_model
    from sweep.engine.train import train_model

    def trained(ema: float, steps_seen: list | None = None):
        torch.manual_seed(0)
        model = build_model("blog_cnn", (1, 8, 8), 3)
        images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        labels = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(2))
        recipe = replace(RECIPES["blog_cnn"], epochs=3, batch_size=16, ema=ema)
        mean, std = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), 0.25)
        train_model(model, images, labels, recipe=recipe, mean=mean, std=std, augment=False,
                    generator=torch.Generator().manual_seed(3))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    last, averaged, barely = trained(0.0), trained(0.9), trained(1e-9)
    assert not torch.allclose(last, averaged)  # the average lags the last step
    torch.testing.assert_close(barely, last, rtol=0, atol=1e-6)  # a decay of ~0 keeps the last weights
