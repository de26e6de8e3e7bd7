"""A training budget in steps: ids only when set, one budget at a time, exactly N steps with a partial last pass."""

from dataclasses import replace

import pytest
import torch

from sweep.engine.config import TrialConfig
from sweep.engine.curves import CurveCounter
from sweep.engine.recipes import RECIPES
from sweep.engine.train import epochs_trained, passes, steps_per_epoch, total_steps, train_model


def test_steps_enter_the_id_only_when_set():
    plain = TrialConfig(noise_fraction=0.2, seed=3)
    assert "steps" not in plain.identity() and plain.trial_id == TrialConfig(noise_fraction=0.2, seed=3).trial_id
    assert TrialConfig().trial_id == "1e5839859df40a5d"  # today's id of the default trial
    assert plain.replace(steps=2000).trial_id != plain.trial_id
    assert plain.replace(steps=2000).identity()["steps"] == 2000


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, r"steps must be an integer in \[1, 10,000,000\] \(optimizer steps\), got 0"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"steps": 100, "epochs": 3}, "epochs and steps are two training budgets; set one of them, got epochs 3 and steps 100"),
])
def test_bad_steps_are_refused_naming_the_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrialConfig(**kwargs)


def test_step_total_under_each_budget():
    recipe = replace(RECIPES["blog_cnn"], batch_size=4, epochs=3)
    assert steps_per_epoch(10, recipe) == 3 and total_steps(10, recipe) == 9  # batches of 4, 4, 2
    assert passes(10, recipe) == 3 and epochs_trained(10, recipe) == 3.0
    budget = replace(recipe, steps=7)
    assert total_steps(10, budget) == 7 and passes(10, budget) == 3
    assert epochs_trained(10, budget) == pytest.approx(7 / 3)
    assert total_steps(1000, budget) == 7 and passes(1000, budget) == 1  # whatever the train size


def test_the_loop_takes_exactly_the_budget_and_records_the_partial_last_pass():
    n, k = 10, 3
    images = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(n) % k
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, k))
    recipe = replace(RECIPES["blog_cnn"], batch_size=4, steps=7, ema=0.0, warmup=0.0)
    steps = []
    optimizer_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        return optimizer_step(self, *args, **kwargs)

    seen = []
    torch.optim.Adam.step = counting_step
    try:
        train_model(model, images, labels, recipe=recipe, mean=torch.full((1, 1, 1, 1), 0.5),
                    std=torch.full((1, 1, 1, 1), 0.25), augment=False, generator=torch.Generator().manual_seed(1),
                    curves=CurveCounter(labels, labels, k, label_smoothing=0.0), on_epoch=seen.append)
    finally:
        torch.optim.Adam.step = optimizer_step
    assert len(steps) == 7
    assert [s.epoch for s in seen] == [1, 2, 3] and all(s.epochs == 3 for s in seen)
    assert [int(s.column("examples").sum()) for s in seen] == [10, 10, 4]  # 3 + 3 + 1 steps: the last pass, one batch
