"""TrialConfig: validation at construction, stable identity."""

import pytest

from sweep.engine.config import TrialConfig


def test_trial_id_is_stable_and_ignores_resources():
    a = TrialConfig(dataset="digits", noise_fraction=0.2, train_size=500, seed=3)
    assert a.trial_id == TrialConfig(dataset="digits", noise_fraction=0.2, train_size=500, seed=3).trial_id
    assert a.trial_id == a.replace(num_threads=1, device="cpu", keep_probs=True).trial_id
    assert a.trial_id != a.replace(seed=4).trial_id
    assert a.trial_id != a.replace(noise_fraction=0.25).trial_id
    assert a.trial_id != a.replace(epochs=3).trial_id
    assert len(a.trial_id) == 16 and int(a.trial_id, 16) >= 0


def test_known_trial_id_does_not_drift():
    # Results folders name files by trial_id: changing the hash would orphan every stored result.
    assert TrialConfig().trial_id == "1e5839859df40a5d"


def test_int_noise_fraction_is_normalized_so_ids_match():
    assert TrialConfig(noise_fraction=0).trial_id == TrialConfig(noise_fraction=0.0).trial_id


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"noise_fraction": 1.5}, ValueError, r"noise_fraction must be in \[0, 1\], got 1.5"),
        ({"noise_fraction": -0.1}, ValueError, "noise_fraction must be in"),
        ({"noise_fraction": float("nan")}, ValueError, "noise_fraction must be in"),
        ({"train_size": 0}, ValueError, "train_size must be a count >= 1 or a fraction in"),
        ({"train_size": 1.5}, ValueError, "got 1.5"),
        ({"train_size": "100"}, TypeError, "train_size must be an int count or a float fraction"),
        ({"model": "vgg"}, ValueError, "unknown model 'vgg'; allowed: blog_cnn, fast_cnn, resnet18"),
        ({"noise_mode": "flip"}, ValueError, "unknown noise mode 'flip'; allowed: shuffle"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
        ({"seed": 1.0}, ValueError, "seed must be an integer"),
        ({"subset_mode": "balanced"}, ValueError, "unknown subset mode 'balanced'"),
        ({"epochs": 0}, ValueError, "epochs must be an integer >= 1, got 0"),
        ({"epochs": 10**10}, ValueError, "epochs must be at most 100,000, got 10000000000"),
        ({"schedule": "step"}, ValueError, "unknown schedule 'step'; allowed: constant, cosine, triangle"),
        ({"warmup": 1.0}, ValueError, r"warmup must be a share of the steps in \[0, 1\), got 1.0"),
        ({"ema": float("nan")}, ValueError, r"ema must be a decay per step in \[0, 1\), 0 = off, got nan"),
        ({"ema": "0.9"}, ValueError, "ema must be a decay per step"),
        ({"lr": 0}, ValueError, "lr must be a number > 0"),
        ({"device": "tpu"}, ValueError, "unknown device 'tpu'"),
        ({"num_threads": 0}, ValueError, "num_threads must be an integer >= 1"),
        ({"noise_mode": "matrix", "noise_fraction": 0.2}, ValueError, "needs noise_matrix"),
        ({"noise_pairs": (("cat", "dog"),)}, ValueError, "only used with noise_mode 'pairs'"),
        ({"dataset": ""}, TypeError, "dataset must be a non-empty string"),
        # NaN passes no comparison and inf passes "> 0": every float field must reject both.
        ({"lr": float("inf")}, ValueError, r"^lr must be a finite number > 0, got inf$"),
        ({"lr": float("nan")}, ValueError, r"^lr must be a finite number > 0, got nan$"),
        ({"weight_decay": float("nan")}, ValueError, r"^weight_decay must be a finite number >= 0, got nan$"),
        ({"weight_decay": float("inf")}, ValueError, r"^weight_decay must be a finite number >= 0, got inf$"),
        ({"weight_decay": -1e-4}, ValueError, r"^weight_decay must be a number >= 0, got -0.0001$"),
        ({"noise_fraction": float("inf")}, ValueError, r"noise_fraction must be in \[0, 1\], got inf"),
        ({"train_size": float("nan")}, ValueError, r"fraction in \(0, 1\], got nan"),
        ({"train_size": float("inf")}, ValueError, r"fraction in \(0, 1\], got inf"),
        ({"noise_mode": "pairs", "noise_pairs": ()}, ValueError,
         r"^noise_pairs must name at least one source:target pair, got \[\]; leave it unset for CIFAR-10's"),
        ({"noise_mode": "pairs", "noise_pairs": []}, ValueError, r"noise_pairs must name at least one"),
        ({"model": "fast_cnn", "train_size": 1}, ValueError,
         r"^fast_cnn has BatchNorm layers and needs at least 2 examples per batch; got train_size 1 \(allowed: >= 2"),
        ({"model": "resnet18", "batch_size": 1}, ValueError,
         r"^resnet18 has BatchNorm layers and needs at least 2 examples per batch; got batch_size 1 \(allowed: >= 2"),
    ],
)
def test_bad_values_name_the_value_and_what_is_allowed(kwargs, error, message):
    with pytest.raises(error, match=message):
        TrialConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrialConfig().seed = 3  # type: ignore[misc]


def test_replace_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown trial option"):
        TrialConfig().replace(sed=3)


def test_batch_of_one_is_fine_without_batchnorm_and_a_whole_split_fraction_is_not_one():
    assert TrialConfig(model="blog_cnn", train_size=1, batch_size=1).train_size == 1
    assert TrialConfig(model="fast_cnn", train_size=1.0).train_size == 1.0  # the whole split, not one example
    assert TrialConfig(model="fast_cnn", train_size=2, batch_size=2).batch_size == 2


def test_unset_noise_pairs_still_means_the_customary_pairs():
    assert TrialConfig(noise_mode="pairs", noise_pairs=None).noise_pairs is None


def test_recipe_settings_added_later_leave_every_earlier_trial_id_alone():
    """schedule, warmup and ema enter the id only when set: results written before they existed
    keep their names, and setting one makes a different trial."""
    plain = TrialConfig(noise_fraction=0.2, seed=3)
    assert "schedule" not in plain.identity() and plain.trial_id == TrialConfig(noise_fraction=0.2, seed=3).trial_id
    ids = {plain.trial_id, plain.replace(schedule="cosine").trial_id, plain.replace(warmup=0.2).trial_id,
           plain.replace(ema=0.99).trial_id, plain.replace(schedule="cosine", warmup=0.2).trial_id}
    assert len(ids) == 5
    assert plain.replace(ema=0.99).identity()["ema"] == 0.99
