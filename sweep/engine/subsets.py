"""Data reduction: which training examples a trial uses.

For one seed, every training-set size takes a *prefix* of one fixed order of the train split, so
the subset at a smaller size is contained in the subset at a larger size (common random numbers:
two sizes with the same seed differ only by the examples added).

- ``random``: the order is a uniform random permutation.
- ``stratified``: the order interleaves classes so that every prefix keeps each class near its
  share of the split. The k-th example of class c (k = 0, 1, ..., in a random within-class order)
  gets the key (k + 1/2) / n_c, n_c being the class's size in the split; sorting by key gives the
  order (equal keys in random order).

Stratified keeps every prefix within (1 + (K - 2) * n_c / N) / 2 examples of each class's exact
share (at most one example for balanced classes); the derivation and an example where the bound is
attained are in docs/datasets.md. The order is part of what a trial_id means, so it stays as it is.
"""

from __future__ import annotations

import numpy as np

from sweep.engine.rng import numpy_stream

SUBSET_MODES = ("random", "stratified")


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
    raise ValueError(f"unknown subset mode {mode!r}; allowed: {', '.join(SUBSET_MODES)}")


def nested_subset(labels: np.ndarray, size: int, *, seed: int, mode: str = "random") -> np.ndarray:
    """Indices (into the train split) of the ``size`` examples a trial trains on, in subset order."""
    if not 1 <= size <= len(labels):
        raise ValueError(f"subset size must be in [1, {len(labels)}], got {size}")
    return subset_order(labels, seed=seed, mode=mode)[:size]
