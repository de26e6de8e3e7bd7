"""Data reduction: nesting across sizes, stratification, size resolution."""

import numpy as np
import pytest

from sweep.subsets import nested_subset, resolve_train_size


@pytest.fixture
def labels():
    # Unequal classes: 0 has 500, 1 has 300, 2 has 200.
    return np.repeat([0, 1, 2], [500, 300, 200])


@pytest.mark.parametrize("mode", ["random", "stratified"])
def test_smaller_subsets_are_contained_in_larger_ones(labels, mode):
    sizes = [1000, 700, 400, 100, 10, 1]
    subsets = [set(nested_subset(labels, s, seed=4, mode=mode)) for s in sizes]
    for larger, smaller in zip(subsets, subsets[1:]):
        assert smaller <= larger
    assert [len(s) for s in subsets] == sizes


@pytest.mark.parametrize("size", [7, 50, 333, 999])
def test_stratified_prefix_keeps_class_shares_within_one_example(labels, size):
    subset = nested_subset(labels, size, seed=1, mode="stratified")
    counts = np.bincount(labels[subset], minlength=3)
    expected = size * np.array([0.5, 0.3, 0.2])
    assert np.all(np.abs(counts - expected) <= 1.0), (counts, expected)


def test_random_subsets_depend_on_seed_only(labels):
    assert np.array_equal(nested_subset(labels, 100, seed=3), nested_subset(labels, 100, seed=3))
    assert not np.array_equal(nested_subset(labels, 100, seed=3), nested_subset(labels, 100, seed=4))
    assert len(set(nested_subset(labels, 1000, seed=3))) == 1000


def test_train_size_resolution():
    assert resolve_train_size(None, 50000) == 50000
    assert resolve_train_size(0.1, 50000) == 5000
    assert resolve_train_size(1.0, 1347) == 1347
    assert resolve_train_size(5000, 50000) == 5000
    with pytest.raises(ValueError, match="train_size 60000 is above the train split of 50000"):
        resolve_train_size(60000, 50000)
    with pytest.raises(ValueError, match="selects no example"):
        resolve_train_size(1e-6, 1000)
