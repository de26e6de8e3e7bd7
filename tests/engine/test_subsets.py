"""Data reduction: nesting across sizes, stratification, size resolution."""

import numpy as np
import pytest

from sweep.engine.subsets import nested_subset, resolve_train_size, subset_order


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


def _prefix_counts(labels: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """(N, K): row m-1 holds the class counts of the prefix of size m."""
    onehot = np.zeros((len(order), k))
    onehot[np.arange(len(order)), labels[order]] = 1
    return onehot.cumsum(axis=0)


def test_stratified_prefixes_keep_the_documented_bound_on_random_imbalanced_label_sets():
    """Every prefix of every order: |x_c - m n_c / N| <= (1 + (K - 2) n_c / N) / 2 (sweep.engine.subsets), and
    |x_c - n_c t| <= 1/2 for the prefix's largest key t. The bound is attained, so it is the true one."""
    rng = np.random.default_rng(2024)
    worst_ratio = 0.0
    for trial in range(400):
        k = int(rng.integers(2, 13))
        shape = trial % 3  # uniform sizes, a long geometric tail, or one dominant class
        if shape == 0:
            sizes = rng.integers(1, 60, size=k)
        elif shape == 1:
            sizes = rng.geometric(0.05, size=k)
        else:
            sizes = np.append(rng.integers(1, 4, size=k - 1), rng.integers(10, 80))
        labels = np.repeat(np.arange(k), sizes)
        rng.shuffle(labels)
        n = len(labels)
        order = subset_order(labels, seed=trial, mode="stratified")
        assert np.array_equal(np.sort(order), np.arange(n))
        counts = _prefix_counts(labels, order, k)
        exact = np.arange(1, n + 1)[:, None] * sizes / n
        bound = (1 + (k - 2) * sizes / n) / 2
        assert np.all(np.abs(counts - exact) <= bound + 1e-9), (sizes.tolist(), trial)
        # The key threshold: within half an example of n_c * t for every class.
        within = np.concatenate([np.arange(c) for c in np.bincount(labels[order], minlength=k)])
        keys = np.empty(n)
        keys[np.argsort(labels[order], kind="stable")] = (within + 0.5) / np.repeat(sizes, sizes)
        t = np.maximum.accumulate(keys)[:, None]
        assert np.all(np.abs(counts - sizes * t) <= 0.5 + 1e-9)
        worst_ratio = max(worst_ratio, float((np.abs(counts - exact) / bound).max()))
    assert worst_ratio == pytest.approx(1.0, abs=1e-9)  # attained: a smaller bound would be false


def test_stratified_order_is_unchanged_even_where_it_drifts_from_the_share():
    """The documented example: the order is part of what a trial_id means, so it must not change."""
    labels = np.repeat([0, 1, 2, 3], [1, 3, 1, 17])
    counts = np.bincount(labels[nested_subset(labels, 9, seed=0, mode="stratified")], minlength=4)
    assert counts.tolist() == [0, 1, 0, 8]  # shares 0.41, 1.23, 0.41, 6.95
    assert 1 < 8 - 9 * 17 / 22 <= (1 + 2 * 17 / 22) / 2  # more than one example off, within the documented bound


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
