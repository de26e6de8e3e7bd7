"""A whole trial: confusion sums, determinism, untouched test set, realized noise, real CIFAR-10."""

import dataclasses
import json

import numpy as np
import pytest

from sweep.engine.config import TrialConfig
from sweep.engine.datasets import ImageDataset, load_dataset
from sweep.engine.trial import confusion_matrix, prepare_labels, run_trial

FAST = dict(epochs=2, num_threads=2, device="cpu")


@pytest.fixture
def digits():
    return load_dataset("digits")


def test_confusion_sums_to_test_set_and_matches_per_class_accuracy(digits):
    result = run_trial(TrialConfig(noise_fraction=0.2, train_size=600, seed=1, **FAST), digits)
    k = digits.num_classes
    assert result.confusion.shape == (k, k) and result.confusion.dtype == np.int64
    assert result.confusion.sum() == result.test_size == digits.num_test
    assert np.array_equal(result.confusion.sum(axis=1), np.bincount(digits.test_labels, minlength=k))
    assert result.per_class_accuracy == pytest.approx(np.diag(result.confusion) / result.confusion.sum(axis=1))
    assert result.accuracy == pytest.approx(np.trace(result.confusion) / result.test_size)
    assert result.train_size == 600 and result.train_fraction == pytest.approx(600 / digits.num_train)
    assert result.epochs == 2 and 0 < result.train_seconds <= result.seconds


def test_same_trial_twice_gives_identical_confusion_on_cpu(digits):
    config = TrialConfig(noise_fraction=0.3, seed=7, **FAST)
    assert np.array_equal(run_trial(config, digits).confusion, run_trial(config, digits).confusion)


def test_different_seeds_give_different_models(digits):
    a = run_trial(TrialConfig(noise_fraction=0.3, seed=1, **FAST), digits)
    b = run_trial(TrialConfig(noise_fraction=0.3, seed=2, **FAST), digits)
    assert not np.array_equal(a.confusion, b.confusion)


def test_test_set_is_never_touched(digits):
    before_images, before_labels = digits.test_images.copy(), digits.test_labels.copy()
    result = run_trial(TrialConfig(noise_fraction=1.0, noise_mode="symmetric", **FAST), digits)
    assert np.array_equal(digits.test_images, before_images)
    assert np.array_equal(digits.test_labels, before_labels)
    assert np.array_equal(result.test_labels, before_labels)


def test_realized_noise_is_reported_next_to_the_request(digits):
    config = TrialConfig(noise_fraction=0.4, noise_mode="symmetric", train_size=1000, **FAST)
    _, subset, noisy = prepare_labels(config, digits)
    assert noisy.realized_noise == pytest.approx(0.4)
    assert np.mean(noisy.labels != digits.train_labels[subset]) == pytest.approx(noisy.realized_noise)
    shuffled = prepare_labels(config.replace(noise_mode="shuffle"), digits)[2]
    assert shuffled.realized_noise < 0.4


def test_heavy_noise_hurts_accuracy(digits):
    clean = run_trial(TrialConfig(epochs=6, num_threads=2), digits)
    noisy = run_trial(TrialConfig(epochs=6, num_threads=2, noise_fraction=0.9, noise_mode="symmetric"), digits)
    assert clean.accuracy > 0.85
    assert noisy.accuracy < clean.accuracy - 0.2


def test_keep_probs_returns_a_softmax_per_test_image(digits):
    result = run_trial(TrialConfig(keep_probs=True, **FAST), digits)
    assert result.probs.shape == (digits.num_test, digits.num_classes)
    assert result.probs.sum(axis=1) == pytest.approx(np.ones(digits.num_test), abs=1e-4)
    assert np.array_equal(result.probs.argmax(axis=1), _predictions(result.confusion, result.test_labels, result.probs))


def _predictions(confusion, true, probs):
    pred = probs.argmax(axis=1)
    assert np.array_equal(confusion_matrix(true, pred, confusion.shape[0]), confusion)
    return pred


def test_json_summary_has_the_promised_fields(digits):
    summary = run_trial(TrialConfig(**FAST), digits).to_json()
    for key in ("accuracy", "per_class_accuracy", "confusion", "classes", "realized_noise", "train_size",
                "train_seconds", "seconds", "device"):
        assert key in summary
    assert set(summary["per_class_accuracy"]) == set(digits.classes)


def test_configs_that_do_not_fit_the_dataset_are_rejected(digits):
    with pytest.raises(ValueError, match="above the train split of 1346"):
        prepare_labels(TrialConfig(train_size=5000), digits)
    with pytest.raises(ValueError, match="unknown class 'truck'"):
        prepare_labels(TrialConfig(noise_mode="pairs", noise_fraction=0.1), digits)
    with pytest.raises(ValueError, match="must be 10 x 10"):
        prepare_labels(TrialConfig(noise_mode="matrix", noise_fraction=0.1, noise_matrix=((1.0, 0.0), (0.0, 1.0))), digits)


def _tiny_dataset(side: int, test_labels=(0, 1, 0, 1)) -> ImageDataset:
    """12 random side x side grayscale train images of classes a, b, c; test images of ``test_labels``."""
    rng = np.random.default_rng(side)
    return ImageDataset(
        name=f"tiny{side}", classes=("a", "b", "c"),
        train_images=rng.integers(0, 256, size=(12, 1, side, side), dtype=np.uint8),
        train_labels=np.arange(12, dtype=np.int64) % 3,
        test_images=rng.integers(0, 256, size=(len(test_labels), 1, side, side), dtype=np.uint8),
        test_labels=np.asarray(test_labels, dtype=np.int64), source_id=f"tiny{side}", augment=False,
    )


def test_batchnorm_model_with_a_fraction_selecting_one_example_is_rejected_before_training(digits):
    for model in ("fast_cnn", "resnet18"):
        with pytest.raises(ValueError, match=rf"^{model} has BatchNorm layers and needs at least 2 examples per "
                                             r"batch; got train_size 0\.0005, which selects 1 example of the "
                                             r"1346-example train split \(allowed: >= 2"):
            prepare_labels(TrialConfig(model=model, train_size=0.0005), digits)


def test_blog_cnn_trains_on_one_example_and_fast_cnn_on_two(digits):
    assert run_trial(TrialConfig(model="blog_cnn", train_size=1, **FAST), digits).train_size == 1
    # Two examples, and three in batches of two (the trailing batch of one is dropped): BatchNorm is fine.
    assert run_trial(TrialConfig(model="fast_cnn", train_size=2, epochs=1, num_threads=2), digits).train_size == 2
    config = TrialConfig(model="fast_cnn", train_size=3, batch_size=2, epochs=1, num_threads=2)
    assert run_trial(config, digits).train_size == 3


def test_a_model_that_cannot_take_the_image_size_is_rejected_by_prepare_labels():
    with pytest.raises(ValueError, match=r"blog_cnn needs image sides divisible by 4 .* got 6x6"):
        prepare_labels(TrialConfig(model="blog_cnn"), _tiny_dataset(6))
    with pytest.raises(ValueError, match=r"fast_cnn needs images of at least 8x8 .* got 4x4"):
        prepare_labels(TrialConfig(model="fast_cnn"), _tiny_dataset(4))
    assert prepare_labels(TrialConfig(model="blog_cnn"), _tiny_dataset(8))[0] == 12


def test_json_summary_is_strict_json_with_null_for_a_class_without_test_examples():
    result = run_trial(TrialConfig(**FAST), _tiny_dataset(8, test_labels=(0, 1, 0, 1)))  # no test image of "c"
    assert np.isnan(result.per_class_accuracy[2])
    summary = result.to_json()
    assert summary["per_class_accuracy"]["c"] is None
    assert summary["per_class_accuracy"]["a"] == pytest.approx(result.per_class_accuracy[0])
    text = json.dumps(summary, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text)["per_class_accuracy"]["c"] is None
    diverged = dataclasses.replace(result, final_train_loss=float("nan"))
    assert json.loads(json.dumps(diverged.to_json(), allow_nan=False))["final_train_loss"] is None


def test_cuda_requested_without_cuda_is_a_clear_error(digits, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        run_trial(TrialConfig(device="cuda", **{k: v for k, v in FAST.items() if k != "device"}), digits)


def test_auto_device_falls_back_to_cpu(digits, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run_trial(TrialConfig(device="auto", epochs=1, num_threads=1), digits)
    assert result.device.startswith("cpu")


@pytest.mark.slow
def test_real_cifar10_blog_cnn_one_epoch_is_well_above_chance(cifar10_parquet_dataset):
    config = TrialConfig(dataset=cifar10_parquet_dataset.name, model="blog_cnn", train_size=2000,
                         epochs=1, seed=0, num_threads=2)
    result = run_trial(config, cifar10_parquet_dataset)
    assert result.test_size == 10_000
    assert result.accuracy > 0.2, result.accuracy  # chance is 0.10
    assert result.confusion.sum(axis=1).tolist() == [1000] * 10


@pytest.mark.slow
def test_real_cifar10_pairs_noise_uses_the_customary_flips(cifar10_parquet_dataset):
    config = TrialConfig(dataset=cifar10_parquet_dataset.name, noise_mode="pairs", noise_fraction=0.4,
                         train_size=10_000, seed=0)
    _, subset, noisy = prepare_labels(config, cifar10_parquet_dataset)
    classes = cifar10_parquet_dataset.classes
    true = cifar10_parquet_dataset.train_labels[subset]
    flipped = noisy.labels != true
    pairs = {(classes[a], classes[b]) for a, b in zip(true[flipped], noisy.labels[flipped])}
    assert pairs == {("truck", "automobile"), ("bird", "airplane"), ("deer", "horse"), ("cat", "dog"), ("dog", "cat")}
    assert noisy.realized_noise == pytest.approx(0.4 * np.isin(true, [2, 3, 4, 5, 9]).mean(), abs=1e-3)
