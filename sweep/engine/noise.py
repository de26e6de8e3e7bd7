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
labels, since for ``shuffle`` and ``matrix`` it is below the requested fraction. ``NOISE_MODES`` is the registry: a mode is a function here and an
entry there; a mode with a parameter also declares it (``NoiseParam``) and adds its TrialConfig field.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sweep.engine.checks import is_number, short_repr
from sweep.engine.rng import numpy_stream

# Customary asymmetric CIFAR-10 flips (Patrini et al., 2017): source class -> target class.
CIFAR10_PAIRS: tuple[tuple[str, str], ...] = (
    ("truck", "automobile"),
    ("bird", "airplane"),
    ("deer", "horse"),
    ("cat", "dog"),
    ("dog", "cat"),
)


@dataclass(frozen=True)
class NoisyLabels:
    labels: np.ndarray  # int64 (n,), the labels the model is trained on
    picked: np.ndarray  # bool (n,), examples chosen for corruption
    realized_noise: float  # share of labels that differ from the truth, in [0, 1]


def picked_count(fraction: float, n: int) -> int:
    """round(fraction * n), rounding halves up (not to even), so counts are monotone in fraction."""
    return int(np.floor(fraction * n + 0.5))


# ---- the modes: each picks examples by priority and gives them new labels ---------------------
# (labels, fraction, priority, uniform, rng, num_classes, param) -> (noisy labels, picked mask).
# ``priority`` and ``uniform`` are the seed's per-example draws; ``param`` is the mode's resolved
# parameter (see NoiseParam.resolve), or None.
Corrupt = Callable[[np.ndarray, float, np.ndarray, np.ndarray, np.random.Generator, int, Any],
                   tuple[np.ndarray, np.ndarray]]


def _pick(priority: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the round(fraction * n) examples of lowest priority: nested in the fraction."""
    return np.argsort(priority, kind="stable")[: picked_count(fraction, len(priority))]


def _shuffle(labels, fraction, priority, uniform, rng, num_classes, param):
    chosen = _pick(priority, fraction)
    noisy = labels.copy()
    noisy[chosen] = labels[chosen][rng.permutation(len(chosen))]
    return noisy, chosen


def _symmetric(labels, fraction, priority, uniform, rng, num_classes, param):
    chosen = _pick(priority, fraction)
    noisy = labels.copy()
    offset = 1 + np.floor(uniform[chosen] * (num_classes - 1)).astype(np.int64)
    noisy[chosen] = (labels[chosen] + offset) % num_classes
    return noisy, chosen


def _pairs(labels, fraction, priority, uniform, rng, num_classes, param):
    noisy = labels.copy()
    parts = []
    for source, target in param:  # fraction f of each source class flips to its target
        members = np.flatnonzero(labels == source)
        chosen = members[np.argsort(priority[members], kind="stable")[: picked_count(fraction, len(members))]]
        noisy[chosen] = target
        parts.append(chosen)
    return noisy, np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _matrix(labels, fraction, priority, uniform, rng, num_classes, param):
    chosen = _pick(priority, fraction)
    noisy = labels.copy()
    rows = np.cumsum(param, axis=1)[labels[chosen]]
    # Inverse-CDF draw; the clip guards against a last cumulative sum of 0.9999999.
    noisy[chosen] = np.minimum((uniform[chosen][:, None] >= rows).sum(axis=1), num_classes - 1)
    return noisy, chosen


# ---- the modes' parameters ------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseParam:
    """A mode's parameter: a TrialConfig field and spec key of the same name, and a `sweep trial` flag."""

    field: str  # TrialConfig field and spec key, e.g. "noise_pairs"
    what: str  # what it is, for messages and help
    flag: str  # the `sweep trial` option
    metavar: str
    parse_arg: Callable[[str], Any]  # the option's text -> a value; ValueError naming the text
    normalize: Callable[[Any], Any]  # a config/spec value -> a hashable one; ValueError naming the value
    resolve: Callable[[Any, Sequence[str]], Any]  # value + the dataset's classes -> what the mode takes
    default: Any = None  # used when unset; None: the mode needs the parameter at a fraction above 0
    show: Callable[[Any], str] = str  # a value as the flag's text, e.g. the default in --help

    def default_help(self) -> str:
        """The default as the flag's help states it: its text, or that the mode needs the parameter."""
        return "required above noise 0" if self.default is None else f"default: {self.show(self.default)}"


def _normalize_pairs(pairs: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(pairs, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise ValueError(f"noise_pairs must be a list of (source, target) pairs, got {short_repr(pairs)}")
    if len(pairs) == 0:
        raise ValueError(f"noise_pairs must name at least one source:target pair, got {list(pairs)}; "
                         "leave it unset for CIFAR-10's customary pairs")
    return tuple((str(a), str(b)) for a, b in pairs)


def parse_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """'cat:dog,dog:cat' -> (('cat', 'dog'), ('dog', 'cat'))."""
    pairs = []
    for item in text.split(","):
        source, sep, target = item.strip().partition(":")
        if not sep or not source or not target:
            raise ValueError(f"noise pairs must look like 'cat:dog,truck:automobile', got {short_repr(item)}")
        pairs.append((source, target))
    return tuple(pairs)


def format_pairs(pairs: Sequence[tuple[str, str]]) -> str:
    """(('cat', 'dog'), ('dog', 'cat')) -> 'cat:dog,dog:cat': the inverse of :func:`parse_pairs`."""
    return ",".join(f"{source}:{target}" for source, target in pairs)


def check_pairs(pairs: Sequence[tuple[str, str]], classes: Sequence[str]) -> list[tuple[int, int]]:
    """Class-name pairs -> index pairs; rejects unknown names and a source listed twice."""
    index = {name: i for i, name in enumerate(classes)}
    out, seen = [], set()
    for source, target in pairs:
        for name in (source, target):
            if name not in index:
                raise ValueError(f"noise pair {short_repr(source)}->{short_repr(target)} names unknown class {short_repr(name)}; allowed: {', '.join(classes)}")
        if source == target:
            raise ValueError(f"noise pair {short_repr(source)}->{short_repr(target)} maps a class to itself")
        if source in seen:
            raise ValueError(f"noise pairs list source class {short_repr(source)} twice; each class flips to one target")
        seen.add(source)
        out.append((index[source], index[target]))
    return out


def _normalize_matrix(rows: Any) -> tuple[tuple[float, ...], ...]:
    if (not isinstance(rows, (list, tuple)) or not rows
            or not all(isinstance(r, (list, tuple)) and len(r) == len(rows) for r in rows)
            or not all(is_number(v) for r in rows for v in r)):
        raise ValueError(f"noise_matrix must be a square list of rows of numbers (K x K), got {short_repr(rows)}")
    return tuple(tuple(float(v) for v in row) for row in rows)


def read_matrix(path: str) -> tuple[tuple[float, ...], ...]:
    """A K x K matrix from a .json (list of rows), .npy, or .csv/.txt (comma or space separated) file."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"noise matrix file {path!r} does not exist")
    allowed = "it must hold a K x K row-stochastic matrix (2-D numbers, one row per true class)"
    try:
        if file.suffix == ".json":
            matrix = np.asarray(json.loads(file.read_text()), dtype=float)
        elif file.suffix == ".npy":
            matrix = np.asarray(np.load(file, allow_pickle=False), dtype=float)
        else:
            with warnings.catch_warnings():  # an empty file warns before it fails: keep the error one line
                warnings.simplefilter("ignore")
                matrix = np.loadtxt(file, delimiter="," if "," in file.read_text() else None, ndmin=2)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"noise matrix file {path!r} is not a numeric matrix ({' '.join(str(exc).split())}); "
                         f"{allowed}") from None
    if matrix.ndim != 2 or matrix.size == 0:
        held = "no numbers" if matrix.size == 0 else f"a {matrix.ndim}-D array of shape {matrix.shape}"
        raise ValueError(f"noise matrix file {path!r} holds {held}; {allowed}")
    return tuple(tuple(float(v) for v in row) for row in matrix)


def check_matrix(matrix: Sequence[Sequence[float]], num_classes: int) -> np.ndarray:
    """Validates a K x K row-stochastic transition matrix (row = true class) and returns it."""
    try:
        t = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"noise matrix must be a K x K array of numbers, got {short_repr(matrix)}") from None
    if t.shape != (num_classes, num_classes):
        raise ValueError(f"noise matrix must be {num_classes} x {num_classes} (K x K), got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("noise matrix entries must be finite and >= 0")
    sums = t.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if len(bad):
        raise ValueError(f"noise matrix rows must sum to 1 (row-stochastic); row {bad[0]} sums to {sums[bad[0]]:.6g}")
    return t


@dataclass(frozen=True)
class NoiseMode:
    corrupt: Corrupt
    help: str  # each picked example's new label, in a few words
    param: NoiseParam | None = None


# The registry: a new mode is a function above and an entry here (plus, with a parameter, its
# TrialConfig field, sweep.engine.config). Order is the order of help texts and error messages.
NOISE_MODES: dict[str, NoiseMode] = {
    "shuffle": NoiseMode(_shuffle, "the picked labels are permuted among themselves (class counts kept)"),
    "symmetric": NoiseMode(_symmetric, "a uniformly random different class"),
    "pairs": NoiseMode(_pairs, "fraction f of each source class flips to its target class", NoiseParam(
        field="noise_pairs", what="source -> target class flips", flag="--noise-pairs", metavar="SRC:DST,...",
        parse_arg=parse_pairs, normalize=_normalize_pairs, resolve=check_pairs, default=CIFAR10_PAIRS,
        show=format_pairs)),
    "matrix": NoiseMode(_matrix, "drawn from row true class of a K x K row-stochastic matrix", NoiseParam(
        field="noise_matrix", what="a K x K row-stochastic matrix", flag="--noise-matrix", metavar="FILE",
        parse_arg=read_matrix, normalize=_normalize_matrix,
        resolve=lambda matrix, classes: check_matrix(matrix, len(classes)))),
}


def resolve_param(mode: str, value: Any, classes: Sequence[str]) -> Any:
    """Mode ``mode``'s parameter (``value``, or its default when None) checked against the dataset's
    classes, in the form the mode takes; None for a mode without one (or a matrix left unset)."""
    param = NOISE_MODES[mode].param
    if param is None:
        return None
    value = param.default if value is None else value
    return None if value is None else param.resolve(value, classes)


def make_noisy_labels(
    labels: np.ndarray,
    fraction: float,
    *,
    mode: str,
    num_classes: int,
    seed: int,
    example_ids: np.ndarray | None = None,
    population: int | None = None,
    param: Any = None,
) -> NoisyLabels:
    """Corrupt ``fraction`` of ``labels`` (the training subset's true labels).

    ``example_ids`` are the subset's indices into the train split of ``population`` examples;
    the per-example random draws are made for the whole split and looked up by id, so they
    are shared across training-set sizes. Without them the subset is taken as the whole split.
    ``param`` is the mode's resolved parameter (:func:`resolve_param`).
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {short_repr(mode)}; allowed: {', '.join(NOISE_MODES)}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"noise_fraction must be in [0, 1], got {short_repr(fraction)}")
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {num_classes}")
    spec = NOISE_MODES[mode]
    if spec.param is not None and param is None and fraction > 0:
        raise ValueError(f"noise mode {short_repr(mode)} needs {spec.param.field} ({spec.param.what})")
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if example_ids is None:
        example_ids = np.arange(n)
    population = int(population if population is not None else example_ids.max(initial=-1) + 1)
    rng = numpy_stream(seed, "noise")
    # Draw order is part of the contract: priority, then uniform, then the mode's own draws.
    priority = rng.random(population)[example_ids]
    uniform = rng.random(population)[example_ids]
    if fraction == 0 or n == 0:
        noisy, chosen = labels.copy(), np.zeros(0, dtype=np.int64)
    else:
        noisy, chosen = spec.corrupt(labels, fraction, priority, uniform, rng, num_classes, param)
    picked = np.zeros(n, dtype=bool)
    picked[chosen] = True
    realized = float(np.mean(noisy != labels)) if n else 0.0
    return NoisyLabels(labels=noisy, picked=picked, realized_noise=realized)
