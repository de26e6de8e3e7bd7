"""Data reduction: which training examples a trial uses.

For one seed, every training-set size takes a *prefix* of one fixed order of the train split, so
the subset at a smaller size is contained in the subset at a larger size (common random numbers:
two sizes with the same seed differ only by the examples added).

- ``random``: the order is a uniform random permutation.
- ``stratified``: the order interleaves classes so that every prefix keeps each class near its
  share of the split. The k-th example of class c (k = 0, 1, ..., in a random within-class order)
  gets the key (k + 1/2) / n_c, n_c being the class's size in the split; sorting by key gives the
  order (equal keys in random order).

What stratified guarantees, exactly. Let a prefix of size m hold x_c examples of class c, and t be
the largest key in it. Class c's x_c smallest keys are in and its next one is not below t, so
d_c = x_c - n_c * t lies in [-1/2, 1/2] for every class. The x_c add up to m, so
m = N * t + sum_j d_j (N = split size, K classes) and, against the class's exact share of the prefix,

    x_c - m * n_c / N = d_c * (1 - n_c / N) - (n_c / N) * sum_{j != c} d_j,
    |x_c - m * n_c / N| <= (1 + (K - 2) * n_c / N) / 2   examples,

and the bound is attained. That is at most 1/2 with two classes and, for K >= 3, at most one
example whenever no class holds more than 1/(K - 2) of the split (balanced classes: 1 - 1/K); on
imbalanced labels the largest class can run up to about (K - 1)/2 examples off its share: class
sizes 1, 3, 1, 17, seed 0, size 9 give counts 0, 1, 0, 8 for shares 0.41, 1.23, 0.41, 6.95. (The
order is part of what a trial_id means, so it stays as it is; tests/engine/test_subsets.py checks
the bound on random imbalanced label sets.)
"""

from __future__ import annotations

import numpy as np

from sweep.engine.rng import numpy_stream


def resolve_train_size(train_size: int | float | None, population: int) -> int:
    """Turn a count, a fraction of the split, or None (all) into a count of examples."""
    if train_size is None:
        return population
    if isinstance(train_size, float):
        count = int(np.floor(train_size * population + 0.5))
        if count < 1:
            raise ValueError(
                f"train_size {train_size} of a {population}-example train split selects no example; "
                f"allowed: a fraction in [{1 / population:.2g}, 1] or a count in [1, {population}]"
            )
        return count
    if train_size > population:
        raise ValueError(
            f"train_size {train_size} is above the train split of {population} examples; "
            f"allowed: a count in [1, {population}] or a fraction in (0, 1]"
        )
    return int(train_size)


def subset_order(labels: np.ndarray, *, seed: int, mode: str = "random") -> np.ndarray:
    """The seed's order of all train-split indices; the first n form the subset of size n."""
    n = len(labels)
    rng = numpy_stream(seed, "subset")
    if mode == "random":
        return rng.permutation(n)
    if mode == "stratified":
        keys = np.empty(n, dtype=np.float64)
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            members = members[rng.permutation(len(members))]
            keys[members] = (np.arange(len(members)) + 0.5) / len(members)
        # Equal keys (classes of equal size) are broken at random, not by class index.
        tie_break = rng.random(n)
        return np.lexsort((tie_break, keys))
    raise ValueError(f"unknown subset mode {mode!r}; allowed: random, stratified")


def nested_subset(labels: np.ndarray, size: int, *, seed: int, mode: str = "random") -> np.ndarray:
    """Indices (into the train split) of the ``size`` examples a trial trains on, in subset order."""
    if not 1 <= size <= len(labels):
        raise ValueError(f"subset size must be in [1, {len(labels)}], got {size}")
    return subset_order(labels, seed=seed, mode=mode)[:size]
