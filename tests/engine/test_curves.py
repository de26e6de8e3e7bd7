"""Learning curves from the training passes: exact counts on hand-checkable cases, a test curve that
changes nothing, and the trial id that does not depend on it."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sweep.engine.config import TrialConfig
from sweep.engine.curves import COUNT_COLUMNS, CurveCounter, due_for_test
from sweep.engine.datasets import load_dataset
from sweep.engine.recipes import RECIPES
from sweep.engine.train import train_model
from sweep.engine.trial import prepare_labels, run_trial

K = 3
TRUE = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
GIVEN = torch.tensor([0, 1, 2, 1, 0, 2, 2, 0, 1, 1])  # corrupted: examples 1, 2, 4, 7, 8


def one_hot_logits(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, K).float() * 5.0


def test_a_model_that_predicts_the_given_labels_memorises_every_corrupted_one():
    counter = CurveCounter(TRUE, GIVEN, K, label_smoothing=0.0)
    idx = torch.arange(10)
    counter.update(idx[:4], one_hot_logits(GIVEN[:4]), GIVEN[:4])  # two batches, as in an epoch
    counter.update(idx[4:], one_hot_logits(GIVEN[4:]), GIVEN[4:])
    stats = counter.finish(1, 1, 0.0)
    col = dict(zip(COUNT_COLUMNS, stats.counts.T))
    assert col["examples"].tolist() == [3, 3, 4]  # rows are the true classes
    assert col["fitted"].tolist() == [3, 3, 4]
    assert col["corrupted"].tolist() == [2, 1, 2]
    assert col["memorised"].tolist() == col["corrupted"].tolist()
    assert col["corrupted_true"].tolist() == [0, 0, 0]
    assert stats.memorised_share == 1.0 and stats.train_accuracy == 1.0
    expected = F.cross_entropy(one_hot_logits(GIVEN), GIVEN, reduction="none").double()
    np.testing.assert_allclose(stats.loss_sum, torch.zeros(K, dtype=torch.float64).index_add_(0, TRUE, expected))
    assert stats.train_loss == pytest.approx(expected.mean().item())
    assert counter.counts.sum() == 0 and counter.loss.sum() == 0  # zeroed for the next epoch


def test_a_model_that_predicts_the_true_labels_memorises_nothing():
    counter = CurveCounter(TRUE, GIVEN, K, label_smoothing=0.1)
    counter.update(torch.arange(10), one_hot_logits(TRUE), GIVEN)
    stats = counter.finish(1, 1, 0.0, test=(np.array([4, 4, 4]), np.array([4, 3, 2])))
    col = dict(zip(COUNT_COLUMNS, stats.counts.T))
    assert col["memorised"].sum() == 0 and (col["corrupted_true"] == col["corrupted"]).all()
    assert col["fitted"].tolist() == [1, 2, 2]  # the clean examples only
    assert stats.memorised_share == 0.0 and stats.train_accuracy == pytest.approx(0.5)
    assert stats.test_accuracy == pytest.approx(9 / 12)
    assert stats.metrics()["test_accuracy"] == pytest.approx(0.75)


def test_without_corrupted_labels_the_memorised_share_is_undefined():
    counter = CurveCounter(TRUE, TRUE, K, label_smoothing=0.0)
    counter.update(torch.arange(10), one_hot_logits(TRUE), TRUE)
    stats = counter.finish(1, 1, 0.0)
    assert np.isnan(stats.memorised_share) and stats.test_accuracy is None
    assert "test_accuracy" not in stats.metrics()


class GivenLabelLookup(nn.Module):
    """Predicts each training image's given label, read from the image's first pixel (its index)."""

    def __init__(self, given: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.given, self.mean, self.std = given, mean, std
        self.unused = nn.Parameter(torch.zeros(1))  # the optimizer needs a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = ((x[:, 0, 0, 0] * self.std.flatten()[0] + self.mean.flatten()[0]) * 255).round().long()
        return one_hot_logits(self.given[index]) + 0 * self.unused


def test_the_training_loop_counts_each_example_once_per_epoch_from_its_own_pass():
    n = 10
    images = torch.zeros((n, 1, 4, 4), dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    mean, std = torch.full((1, 1, 1, 1), 0.01), torch.full((1, 1, 1, 1), 0.02)
    model = GivenLabelLookup(GIVEN, mean, std)
    recipe = replace(RECIPES["blog_cnn"], epochs=3, batch_size=4, ema=0.0, warmup=0.0)
    seen = []
    train_model(model, images, GIVEN, recipe=recipe, mean=mean, std=std, augment=False,
                generator=torch.Generator().manual_seed(0), curves=CurveCounter(TRUE, GIVEN, K, label_smoothing=0.0),
                on_epoch=seen.append)
    assert [s.epoch for s in seen] == [1, 2, 3] and all(s.epochs == 3 for s in seen)
    for stats in seen:
        assert stats.column("examples").tolist() == [3, 3, 4]  # batches of 4, 4 and 2: every example once
        assert stats.column("memorised").tolist() == [2, 1, 2] and stats.memorised_share == 1.0
    assert seen[0].seconds <= seen[1].seconds <= seen[2].seconds


def test_on_epoch_without_curves_is_refused():
    with pytest.raises(ValueError, match="need curves"):
        train_model(nn.Linear(1, 1), torch.zeros((2, 1, 1, 1), dtype=torch.uint8), torch.zeros(2, dtype=torch.long),
                    recipe=RECIPES["blog_cnn"], mean=torch.zeros(1), std=torch.ones(1), augment=False,
                    generator=torch.Generator(), on_epoch=print)


def test_due_for_test_every_n_epochs():
    assert [e for e in range(1, 8) if due_for_test(e, 3)] == [3, 6]
    assert not any(due_for_test(e, 0) for e in range(1, 8))


def test_a_trial_records_its_curves_and_a_test_curve_changes_neither_its_id_nor_its_result():
    digits = load_dataset("digits")
    config = TrialConfig(noise_fraction=0.4, train_size=400, seed=3, epochs=3, num_threads=1, device="cpu")
    plain = run_trial(config, digits)
    tested = run_trial(config.replace(eval_every=1), digits)
    assert config.replace(eval_every=5).trial_id == config.trial_id
    np.testing.assert_array_equal(plain.confusion, tested.confusion)
    assert len(plain.curves) == 3 and all(s.test_examples is None for s in plain.curves)
    for a, b in zip(plain.curves, tested.curves):
        np.testing.assert_array_equal(a.counts, b.counts)  # same batches, same weights: scoring drew nothing
        np.testing.assert_array_equal(b.test_examples, np.bincount(digits.test_labels, minlength=10))
    assert tested.curves[-1].test_accuracy == pytest.approx(tested.accuracy)  # the last epoch's model is the final one
    _, subset, noisy = prepare_labels(config, digits)
    corrupted = np.bincount(digits.train_labels[subset][noisy.labels != digits.train_labels[subset]], minlength=10)
    for stats in plain.curves:
        np.testing.assert_array_equal(stats.column("corrupted"), corrupted)
        assert stats.column("examples").sum() == 400
    as_json = plain.to_json()["curves"]
    assert [c["epoch"] for c in as_json] == [1, 2, 3] and sum(as_json[0]["corrupted"].values()) == corrupted.sum()


def test_eval_every_is_checked():
    with pytest.raises(ValueError, match=r"eval_every must be an integer in \[0, 100,000\].*got -1"):
        TrialConfig(eval_every=-1)
    with pytest.raises(ValueError, match="eval_every must be an integer"):
        TrialConfig(eval_every=True)
