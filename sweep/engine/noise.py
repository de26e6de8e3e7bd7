"""Label noise on the training subset. The test set is never touched.

Noise is applied *after* data reduction. Which examples get corrupted is decided by one random
priority per example of the whole train split (the seed's ``noise`` stream): at fraction f of a
subset of n examples, the round(f * n) examples with the lowest priority are picked. So for one
seed and subset, the picked set at a smaller fraction is contained in the picked set at a larger
one, and changing the training-set size does not redraw the priorities (common random numbers).

Modes (each picked example's new label):
- ``shuffle`` (the reference study's definition): the picked labels are permuted among
  themselves. Class counts are preserved; some labels land back on the truth.
- ``symmetric``: a uniformly random class *other* than the true one.
- ``pairs``: class-conditional flips source -> target (e.g. cat -> dog). Fraction f of each
  source class is flipped; classes that are no source are untouched, so the realized noise is
  below f.
- ``matrix``: drawn from row ``true class`` of a K x K row-stochastic transition matrix T. A
  diagonal entry T[c, c] > 0 lets a picked label stay correct.

The realized noise (share of subset labels that differ from the truth) is returned beside the
labels, since for ``shuffle`` and ``matrix`` it is below the requested fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sweep.engine.rng import numpy_stream


@dataclass(frozen=True)
class NoisyLabels:
    labels: np.ndarray  # int64 (n,), the labels the model is trained on
    picked: np.ndarray  # bool (n,), examples chosen for corruption
    realized_noise: float  # share of labels that differ from the truth, in [0, 1]


def picked_count(fraction: float, n: int) -> int:
    """round(fraction * n), rounding halves up (not to even), so counts are monotone in fraction."""
    return int(np.floor(fraction * n + 0.5))


def check_pairs(pairs: Sequence[tuple[str, str]], classes: Sequence[str]) -> list[tuple[int, int]]:
    """Class-name pairs -> index pairs; rejects unknown names and a source listed twice."""
    index = {name: i for i, name in enumerate(classes)}
    out, seen = [], set()
    for source, target in pairs:
        for name in (source, target):
            if name not in index:
                raise ValueError(f"noise pair {source!r}->{target!r} names unknown class {name!r}; allowed: {', '.join(classes)}")
        if source == target:
            raise ValueError(f"noise pair {source!r}->{target!r} maps a class to itself")
        if source in seen:
            raise ValueError(f"noise pairs list source class {source!r} twice; each class flips to one target")
        seen.add(source)
        out.append((index[source], index[target]))
    return out


def check_matrix(matrix: Sequence[Sequence[float]], num_classes: int) -> np.ndarray:
    """Validates a K x K row-stochastic transition matrix (row = true class) and returns it."""
    try:
        t = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"noise matrix must be a K x K array of numbers, got {matrix!r}") from None
    if t.shape != (num_classes, num_classes):
        raise ValueError(f"noise matrix must be {num_classes} x {num_classes} (K x K), got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("noise matrix entries must be finite and >= 0")
    sums = t.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(bad):
        raise ValueError(f"noise matrix rows must sum to 1 (row-stochastic); row {bad[0]} sums to {sums[bad[0]]:.6g}")
    return t


def make_noisy_labels(
    labels: np.ndarray,
    fraction: float,
    *,
    mode: str,
    num_classes: int,
    seed: int,
    example_ids: np.ndarray | None = None,
    population: int | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    matrix: np.ndarray | None = None,
) -> NoisyLabels:
    """Corrupt ``fraction`` of ``labels`` (the training subset's true labels).

    ``example_ids`` are the subset's indices into the train split of ``population`` examples;
    the per-example random draws are made for the whole split and looked up by id, so they
    are shared across training-set sizes. Without them the subset is taken as the whole split.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if example_ids is None:
        example_ids = np.arange(n)
    population = int(population if population is not None else example_ids.max(initial=-1) + 1)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"noise_fraction must be in [0, 1], got {fraction!r}")
    rng = numpy_stream(seed, "noise")
    # Draw order is part of the contract: priority, then uniform, then the shuffle permutation.
    priority = rng.random(population)[example_ids]
    uniform = rng.random(population)[example_ids]
    noisy = labels.copy()
    picked = np.zeros(n, dtype=bool)

    if mode == "pairs":
        if pairs is None:
            raise ValueError("noise mode 'pairs' needs a mapping of source -> target classes")
        for source, target in pairs:
            members = np.flatnonzero(labels == source)
            chosen = members[np.argsort(priority[members], kind="stable")[: picked_count(fraction, len(members))]]
            picked[chosen] = True
            noisy[chosen] = target
    else:
        chosen = np.argsort(priority, kind="stable")[: picked_count(fraction, n)]
        picked[chosen] = True
        if mode == "shuffle":
            noisy[chosen] = labels[chosen][rng.permutation(len(chosen))]
        elif mode == "symmetric":
            if num_classes < 2:
                raise ValueError(f"symmetric noise needs at least 2 classes, got {num_classes}")
            offset = 1 + np.floor(uniform[chosen] * (num_classes - 1)).astype(np.int64)
            noisy[chosen] = (labels[chosen] + offset) % num_classes
        elif mode == "matrix":
            if matrix is None:
                raise ValueError("noise mode 'matrix' needs a K x K row-stochastic matrix")
            cdf = np.cumsum(np.asarray(matrix, dtype=np.float64), axis=1)
            rows = cdf[labels[chosen]]
            # Inverse-CDF draw; the clip guards against a last cumulative sum of 0.9999999.
            noisy[chosen] = np.minimum((uniform[chosen][:, None] >= rows).sum(axis=1), num_classes - 1)
        else:
            raise ValueError(f"unknown noise mode {mode!r}; allowed: shuffle, symmetric, pairs, matrix")
    realized = float(np.mean(noisy != labels)) if n else 0.0
    return NoisyLabels(labels=noisy, picked=picked, realized_noise=realized)
