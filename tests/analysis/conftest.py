"""Fixtures: synthetic results with planted truths (see analysis.synthetic), in memory and on disk."""

from __future__ import annotations

import pytest

from analysis import SyntheticSpec, load_results, synthetic_results, write_synthetic_results

# Small grid, four classes: fast enough for every property and report test.
SMALL = dict(classes=("ant", "bee", "cat", "dog"), collapse_class="bee", noise_hurts_class=None,
             data_hungry_class=None, flat_classes=("ant",), confusion_pair=("cat", "dog"),
             noise_fractions=(0.0, 0.2, 0.4, 0.6, 0.8), train_fractions=(1.0, 0.8, 0.6, 0.4, 0.2), n_seeds=5,
             test_per_class=200)


@pytest.fixture(scope="session")
def planted():
    """The default planted grid (CIFAR-10 names, 7 noise x 5 sizes x 8 seeds), confusion table only."""
    confusion, _ = synthetic_results(SyntheticSpec(n_seeds=8))
    return confusion


@pytest.fixture(scope="session")
def small():
    return synthetic_results(SyntheticSpec(**SMALL))[0]


@pytest.fixture(scope="session")
def small_spec():
    """SMALL as a dict, for tests that vary it (seeds, models)."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory):
    return write_synthetic_results(tmp_path_factory.mktemp("small"), SyntheticSpec(**SMALL))


@pytest.fixture(scope="session")
def small_loaded(small_dir):
    return load_results(small_dir)


@pytest.fixture
def write(tmp_path):
    """write(**spec_overrides) -> a fresh results folder under tmp_path."""
    def _write(**overrides):
        return write_synthetic_results(tmp_path / "out", SyntheticSpec(**{**SMALL, **overrides}))
    return _write


@pytest.fixture(scope="session")
def make():
    """make(**spec_overrides) -> an in-memory confusion table of the small grid with changes."""
    def _make(**overrides):
        return synthetic_results(SyntheticSpec(**{**SMALL, **overrides}))[0]
    return _make
