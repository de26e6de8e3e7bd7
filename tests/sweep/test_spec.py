"""The experiment spec: parsing, the grid, presets, and every kind of bad input (one line, naming it)."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import numpy as np
import pytest

from sweep.distributed.spec import PRESETS, ExperimentSpec, load_preset, load_spec, spec_from_dict
from sweep.engine.config import TrialConfig


def test_smoke_spec_expands_to_the_cross_grid_in_order(write_spec, smoke_spec_text):
    spec = load_spec(write_spec(smoke_spec_text))
    trials = spec.trials()
    assert spec.num_trials == len(trials) == 8
    assert [(t.noise_fraction, t.train_size, t.seed) for t in trials[:4]] == [
        (0.0, 300, 0), (0.0, 300, 1), (0.0, 0.5, 0), (0.0, 0.5, 1)]
    assert len({t.trial_id for t in trials}) == 8
    assert all(t.epochs == 1 and t.device == "cpu" and t.num_threads == 1 for t in trials)
    assert spec.cells() == [("blog_cnn", 0.0, 300), ("blog_cnn", 0.0, 0.5), ("blog_cnn", 0.5, 300),
                            ("blog_cnn", 0.5, 0.5)]


def test_yaml_and_toml_give_the_same_spec(write_spec):
    toml = write_spec('name = "a"\nnoise_fractions = [0.0, 0.1]\ntrain_sizes = [10]\nseeds = [3, 5]\n'
                      '[training]\nepochs = 2\n', "s.toml")
    yaml = write_spec("name: a\nnoise_fractions: [0.0, 0.1]\ntrain_sizes: [10]\nseeds: [3, 5]\n"
                      "training: {epochs: 2}\n", "s.yaml")
    assert load_spec(toml) == load_spec(yaml)
    assert load_spec(toml).seeds == (3, 5)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name):
    spec = load_preset(name)
    assert spec.name == name
    assert spec_from_dict(spec.to_dict()) == spec


def test_preset_grids_are_the_ones_the_issue_names():
    quick = load_preset("quick")
    assert quick.dataset == "digits" and quick.device == "cpu"
    assert len(quick.noise_fractions) >= 3 and len(quick.train_sizes) >= 2 and len(quick.seeds) >= 3
    blog = load_preset("blog")
    assert blog.dataset == "cifar10" and blog.models == ("blog_cnn",)
    assert blog.noise_fractions == (0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50, 0.60)
    assert blog.train_sizes == (50000, 40000, 30000, 20000, 10000, 5000)
    assert blog.seeds == tuple(range(5)) and blog.num_trials == 300
    x20 = load_preset("blog-x20")
    assert x20.seeds == tuple(range(20)) and x20.num_trials == 1200
    assert x20.trials()[0].trial_id == blog.trials()[0].trial_id  # same trials, more seeds
    fast = load_preset("fast")
    assert fast.models == ("fast_cnn",) and fast.num_trials == 300


def test_overrides_replace_dataset_and_seeds():
    spec = load_preset("blog").with_overrides(dataset="parquet:/data/cifar", seeds=20)
    assert spec.dataset == "parquet:/data/cifar" and spec.seeds == tuple(range(20))
    assert {t.dataset for t in spec.trials()} == {"parquet:/data/cifar"}


def test_identity_ignores_axes_and_resources_but_not_recipe():
    spec = load_preset("quick")
    assert spec.with_overrides(seeds=10).identity() == spec.identity()
    assert replace(spec, cpus=2.0, gpus=0.5, retries=0).identity() == spec.identity()
    assert replace(spec, base=spec.base.replace(epochs=9)).identity() != spec.identity()
    # The identity is the trials' identity without the axes: it cannot drift from the trial ids.
    assert spec.identity() == {"name": "quick", **{k: v for k, v in spec.trials()[0].identity().items()
                                                   if k not in ("model", "noise_fraction", "train_size", "seed")}}


@pytest.mark.parametrize("text, match", [
    ('name = "a"\nbogus = 1\n', r"unknown key\(s\) 'bogus'; allowed: name, dataset"),
    ('name = "a"\n[training]\nepoch = 1\n', r"unknown key\(s\) training\.epoch; allowed: epochs"),
    ('name = "a"\n[resources]\ngpu = 1\n', r"unknown key\(s\) resources\.gpu"),
    ('dataset = "digits"\n', r"missing required key 'name'"),
    ('name = "a b"\n', r"name must be 1-64 characters .* got 'a b'"),
    ('name = "a"\nnoise_fractions = []\n', r"noise_fractions must not be empty"),
    ('name = "a"\nnoise_fractions = [0.1, 0.1]\n', r"noise_fractions has a duplicate value 0\.1"),
    ('name = "a"\nnoise_fractions = [1.5]\n', r"noise_fractions: each value must be in \[0, 1\], got 1\.5"),
    ('name = "a"\nnoise_fractions = ["x"]\n', r"noise_fractions: each value must be in \[0, 1\], got 'x'"),
    ('name = "a"\ntrain_sizes = [0]\n', r"train_sizes: each value must be a count >= 1 .* got 0"),
    ('name = "a"\ntrain_sizes = [1.5]\n', r"train_sizes: .* got 1\.5"),
    ('name = "a"\ntrain_sizes = [100, 100]\n', r"train_sizes has a duplicate value 100"),
    ('name = "a"\nseeds = 0\n', r"seeds as a count must be in \[1, 100000\], got 0"),
    ('name = "a"\nseeds = [-1]\n', r"seeds: each value must be an integer in \[0, 2\*\*63 - 1\] .* got -1"),
    ('name = "a"\nseeds = [9223372036854775808]\n', r"seeds: each value must be an integer in \[0, 2\*\*63 - 1\] "
     r"\(the Parquet seed column is int64\), got 9223372036854775808"),
    ('name = "a"\nseeds = 100001\n', r"seeds as a count must be in \[1, 100000\], got 100001"),
    ('name = ".."\n', r"name must be 1-64 characters .* starting with a letter or digit, got '\.\.'"),
    ('name = "."\n', r"name must be .* starting with a letter or digit, got '\.'"),
    ('name = "-x"\n', r"name must be .* starting with a letter or digit, got '-x'"),
    ('name = "a"\nseeds = [1, 1]\n', r"seeds has a duplicate value 1"),
    ('name = "a"\nmodels = ["vgg"]\n', r"models: unknown model 'vgg'; allowed: blog_cnn, fast_cnn, resnet18"),
    ('name = "a"\nmodels = "blog_cnn"\n', r"models must be a list, got 'blog_cnn'"),
    ('name = "a"\nnoise_mode = "gauss"\n', r"unknown noise mode 'gauss'; allowed: shuffle, symmetric, pairs, matrix"),
    ('name = "a"\nretries = -1\n', r"retries must be an integer in \[0, 100\], got -1"),
    ('name = "a"\n[resources]\ngpus = 1.5\n', r"resources\.gpus must be 0, a fraction .* got 1\.5"),
    ('name = "a"\n[resources]\ncpus = 0\n', r"resources\.cpus must be a number in \(0, 1024\], got 0"),
    ('name = "a"\n[resources]\ndevice = "tpu"\n', r"unknown device 'tpu'; allowed: auto, cpu, cuda"),
    ('name = "a"\n[training]\nepochs = 0\n', r"epochs must be an integer >= 1, got 0"),
    ('name = "a"\n[training]\nlr = -1.0\n', r"lr must be a number > 0, got -1\.0"),
    ('name = "a"\ntraining = 3\n', r"\[training\] must be a table, got 3"),
    ('name = "a"\nkeep_probs = "yes"\n', r"keep_probs must be true or false, got 'yes'"),
    ('name = "a"\nnoise_fractions = [0.1\n', r"not valid TOML"),
])
def test_bad_spec_is_one_line_naming_the_problem(write_spec, text, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        load_spec(write_spec(text))
    assert "\n" not in str(info.value)


def test_bad_yaml_and_unsafe_yaml_are_refused(write_spec):
    with pytest.raises(ValueError, match="not valid YAML"):
        load_spec(write_spec("name: [a\n", "s.yaml"))
    # safe_load never builds Python objects: the tag is an error, not code that runs.
    with pytest.raises(ValueError, match="not valid YAML"):
        load_spec(write_spec('name: !!python/object/apply:os.system ["echo hacked"]\n', "s.yaml"))
    with pytest.raises(ValueError, match="must be a table of keys, got list"):
        load_spec(write_spec("- 1\n- 2\n", "s.yml"))


def test_missing_file_wrong_suffix_and_unknown_preset(tmp_path, write_spec):
    with pytest.raises(FileNotFoundError, match="spec file not found: .*nope.toml"):
        load_spec(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match=r"must end in \.toml, \.yaml or \.yml, got 'spec\.json'"):
        load_spec(write_spec("{}", "spec.json"))
    with pytest.raises(ValueError, match="unknown preset 'huge'; allowed: quick, blog, blog-x20, fast"):
        load_preset("huge")
    with pytest.raises(ValueError, match="--seeds must be an integer >= 1, got 0"):
        load_preset("quick").with_overrides(seeds=0)


def test_an_invalid_grid_point_fails_at_spec_time_not_on_a_worker():
    # noise_mode "matrix" needs a matrix: TrialConfig's own check runs for the whole grid now.
    with pytest.raises(ValueError, match="noise_mode 'matrix' needs noise_matrix"):
        ExperimentSpec(name="a", base=TrialConfig(noise_mode="matrix"), noise_fractions=(0.2,))


def test_noise_matrix_in_a_spec_reaches_every_trial_and_the_experiment_identity():
    from sweep.engine.datasets import load_dataset
    from sweep.engine.trial import prepare_labels

    k = 10
    # Every class flips to the next one (k -> k+1 mod 10): a directional confusion, planted.
    matrix = [[1.0 if j == (i + 1) % k else 0.0 for j in range(k)] for i in range(k)]
    text = f"""
name = "planted"
noise_mode = "matrix"
noise_fractions = [0.0, 0.4]
noise_matrix = {matrix}
seeds = 2
"""
    spec = spec_from_dict(tomllib.loads(text))
    assert spec.base.noise_matrix == tuple(tuple(row) for row in matrix)
    assert all(t.noise_matrix == spec.base.noise_matrix for t in spec.trials())
    assert spec_from_dict(spec.to_dict()) == spec
    other = replace(spec, base=spec.base.replace(noise_matrix=tuple(tuple(row) for row in np.eye(k).tolist())))
    assert other.identity() != spec.identity()  # a different matrix is a different experiment
    assert {t.trial_id for t in other.trials()}.isdisjoint(t.trial_id for t in spec.trials())

    dataset = load_dataset("digits")
    config = spec.trials()[-1]  # noise 0.4
    _, subset, noisy = prepare_labels(config, dataset)
    truth = dataset.train_labels[subset]
    flipped = noisy.labels != truth
    assert abs(flipped.mean() - 0.4) < 0.01  # every picked label moves: the matrix has a zero diagonal
    assert np.array_equal(noisy.labels[flipped], (truth[flipped] + 1) % k)


def test_a_spec_is_validated_without_building_its_grid():
    # 10 cells x 100,000 seeds: building every TrialConfig to check it took gigabytes (MemoryError
    # behind `sweep run --seeds 10000000`); one trial per axis value checks the same.
    import tracemalloc

    tracemalloc.start()
    try:
        spec = load_preset("quick").with_overrides(seeds=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spec.num_trials == 1_000_000
    assert peak < 50e6, f"{peak / 1e6:.0f} MB to check a spec"
    with pytest.raises(ValueError, match=r"--seeds must be at most 100,000 .* got 100001"):
        load_preset("quick").with_overrides(seeds=100_001)
    # Still every cell: a bad value anywhere in an axis, or a bad combination of two, is found.
    with pytest.raises(ValueError, match="noise_mode 'matrix' needs noise_matrix"):
        ExperimentSpec(name="a", base=TrialConfig(noise_mode="matrix"), noise_fractions=(0.0, 0.0001),
                       seeds=tuple(range(5)))
    with pytest.raises(ValueError, match="fast_cnn has BatchNorm layers"):
        ExperimentSpec(name="a", models=("blog_cnn", "fast_cnn"), train_sizes=(100, 1))


def test_recipe_settings_of_a_spec_reach_every_trial_and_name_a_different_experiment():
    base = {"name": "r", "noise_fractions": [0.0, 0.4], "seeds": 2}
    plain = spec_from_dict(base)
    tuned = spec_from_dict({**base, "training": {"schedule": "triangle", "warmup": 0.2, "ema": 0.99}})
    assert all((t.schedule, t.warmup, t.ema) == ("triangle", 0.2, 0.99) for t in tuned.trials())
    assert tuned.identity() != plain.identity() and tuned.identity()["schedule"] == "triangle"
    assert "schedule" not in plain.identity()  # the experiments of every earlier spec are unchanged
    assert spec_from_dict(tuned.to_dict()) == tuned
    with pytest.raises(ValueError, match=r"warmup must be a share of the steps in \[0, 1\), got 1.5"):
        spec_from_dict({**base, "training": {"warmup": 1.5}})


def test_keep_probs_override_changes_what_is_written_not_which_trials_exist():
    from sweep.cli import build_parser
    from sweep.cli_sweep import resolve_spec

    spec = load_preset("quick")
    kept = resolve_spec(build_parser().parse_args(["run", "--keep-probs"]))
    assert not spec.keep_probs and kept.keep_probs and all(c.keep_probs for c in kept.trials())
    assert [c.trial_id for c in kept.trials()] == [c.trial_id for c in spec.trials()]
    assert kept.identity() == spec.identity()  # so it may extend a folder run without it
    assert resolve_spec(build_parser().parse_args(["run"])).keep_probs is False  # the spec's value by default
