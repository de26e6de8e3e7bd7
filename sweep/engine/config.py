"""The trial configuration: one frozen, validated record that names a trial everywhere.

A *trial* is (dataset, model, noise mode, noise fraction, training-set size, seed) plus the
training recipe. Its key fields name it in Ray, in file names and in Parquet rows; ``trial_id``
is a stable hash of everything that changes the result (not of resources such as threads or
device, which must not).

Glossary used across the project:
    K               number of classes
    N               number of examples (train split unless said otherwise)
    noise_fraction  requested share of training labels that are corrupted, in [0, 1]
    train_size      training examples actually used, a count (int >= 1) or a fraction in (0, 1]
    true_class      the label of a test example
    pred_class      the model's prediction for it
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

MODEL_NAMES = ("blog_cnn", "fast_cnn", "resnet18")  # built by sweep.engine.models.build_model
# Models with BatchNorm layers: a training batch of one example has no batch statistics to normalize by.
BATCHNORM_MODELS = ("fast_cnn", "resnet18")
NOISE_MODES = ("shuffle", "symmetric", "pairs", "matrix")
SUBSET_MODES = ("random", "stratified")
DEVICES = ("auto", "cpu", "cuda")

# Customary asymmetric CIFAR-10 flips (Patrini et al., 2017): source class -> target class.
CIFAR10_PAIRS: tuple[tuple[str, str], ...] = (
    ("truck", "automobile"),
    ("bird", "airplane"),
    ("deer", "horse"),
    ("cat", "dog"),
    ("dog", "cat"),
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    """An int, or a float that is neither NaN nor infinite."""
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


@dataclass(frozen=True)
class TrialConfig:
    """Everything that defines one trial. Validated once, here; immutable afterwards."""

    # Dataset spec: "digits" | "cifar10" | "parquet:DIR" | "imagefolder:DIR".
    dataset: str = "digits"
    # Model name, one of MODEL_NAMES: "blog_cnn" | "fast_cnn" | "resnet18".
    model: str = "blog_cnn"
    # How labels are corrupted: "shuffle" | "symmetric" | "pairs" | "matrix" (see sweep.engine.noise).
    noise_mode: str = "shuffle"
    # Requested share of training labels to corrupt, in [0, 1].
    noise_fraction: float = 0.0
    # Training examples to use: int count >= 1, float fraction in (0, 1], or None for the whole split.
    train_size: int | float | None = None
    # Grid axis, not a random draw: every random stream of the trial derives from it. Integer >= 0.
    seed: int = 0
    # How the training subset is drawn: "random" | "stratified" (class shares kept, see sweep.engine.subsets).
    subset_mode: str = "random"
    # For noise_mode="pairs": (source class, target class) flips, at least one; None = CIFAR-10's customary pairs.
    noise_pairs: tuple[tuple[str, str], ...] | None = None
    # For noise_mode="matrix": K x K row-stochastic transition matrix, row = true class.
    noise_matrix: tuple[tuple[float, ...], ...] | None = None
    # Recipe overrides; None keeps the model's documented default (sweep.engine.models.RECIPES).
    epochs: int | None = None  # passes over the training subset, >= 1
    batch_size: int | None = None  # examples per optimizer step, >= 1 (>= 2 for BATCHNORM_MODELS)
    lr: float | None = None  # peak learning rate, finite, > 0
    weight_decay: float | None = None  # L2 coefficient, finite, >= 0
    augment: bool | None = None  # random crop + flip on the device; None = dataset default
    # Resources: not part of the trial's identity.
    device: str = "auto"  # "auto" (CUDA when present, else CPU) | "cpu" | "cuda"
    num_threads: int | None = None  # torch CPU threads, >= 1; None = leave torch's setting
    keep_probs: bool = False  # also return the per-example softmax on the test set
    data_dir: str | None = None  # where torchvision datasets live / download to

    def __post_init__(self) -> None:
        _validate(self)
        # Normalize nested lists (from JSON/TOML) into hashable tuples.
        if self.noise_pairs is not None:
            object.__setattr__(self, "noise_pairs", tuple((str(a), str(b)) for a, b in self.noise_pairs))
        if self.noise_matrix is not None:
            object.__setattr__(
                self, "noise_matrix", tuple(tuple(float(v) for v in row) for row in self.noise_matrix)
            )
        if _is_number(self.noise_fraction):
            object.__setattr__(self, "noise_fraction", float(self.noise_fraction))

    # Fields that change the result; resources and output options are excluded on purpose.
    IDENTITY_FIELDS = (
        "dataset", "model", "noise_mode", "noise_fraction", "train_size", "seed", "subset_mode",
        "noise_pairs", "noise_matrix", "epochs", "batch_size", "lr", "weight_decay", "augment",
    )

    def identity(self) -> dict[str, Any]:
        """The fields that define what is computed, as plain JSON-able values."""
        out = {}
        for name in self.IDENTITY_FIELDS:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = json.loads(json.dumps(value))
            out[name] = value
        return out

    @property
    def trial_id(self) -> str:
        """Stable 16-hex-digit hash of :meth:`identity`; the same on every machine and Python."""
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "TrialConfig":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(f"unknown trial option(s) {sorted(unknown)}; allowed: {sorted(values)}")
        values.update(changes)
        return TrialConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def batchnorm_message(model: str, got: str) -> str:
    """The error for a BatchNorm model whose training batches would hold one example."""
    return (f"{model} has BatchNorm layers and needs at least 2 examples per batch; got {got} "
            "(allowed: >= 2, or model blog_cnn, which has no BatchNorm)")


def _validate(c: TrialConfig) -> None:
    if not isinstance(c.dataset, str) or not c.dataset:
        raise TypeError(f"dataset must be a non-empty string, got {c.dataset!r}")
    if not isinstance(c.model, str):
        raise TypeError(f"model must be a string, got {c.model!r}")
    if c.model not in MODEL_NAMES:
        raise ValueError(f"unknown model {c.model!r}; allowed: {', '.join(MODEL_NAMES)}")
    if c.noise_mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {c.noise_mode!r}; allowed: {', '.join(NOISE_MODES)}")
    if not _is_number(c.noise_fraction) or not (0.0 <= c.noise_fraction <= 1.0) or math.isnan(c.noise_fraction):
        raise ValueError(f"noise_fraction must be in [0, 1], got {c.noise_fraction!r}")
    if c.train_size is not None:
        if _is_int(c.train_size):
            if c.train_size < 1:
                raise ValueError(f"train_size must be a count >= 1 or a fraction in (0, 1], got {c.train_size!r}")
        elif isinstance(c.train_size, float):
            if not (0.0 < c.train_size <= 1.0):
                raise ValueError(f"train_size must be a count >= 1 or a fraction in (0, 1], got {c.train_size!r}")
        else:
            raise TypeError(f"train_size must be an int count or a float fraction, got {c.train_size!r}")
    if not _is_int(c.seed) or c.seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {c.seed!r}")
    if c.subset_mode not in SUBSET_MODES:
        raise ValueError(f"unknown subset mode {c.subset_mode!r}; allowed: {', '.join(SUBSET_MODES)}")
    if c.noise_mode == "matrix" and c.noise_matrix is None and c.noise_fraction > 0:
        raise ValueError("noise_mode 'matrix' needs noise_matrix (a K x K row-stochastic matrix)")
    if c.noise_matrix is not None and c.noise_mode != "matrix":
        raise ValueError(f"noise_matrix is only used with noise_mode 'matrix', got noise_mode {c.noise_mode!r}")
    if c.noise_pairs is not None and c.noise_mode != "pairs":
        raise ValueError(f"noise_pairs is only used with noise_mode 'pairs', got noise_mode {c.noise_mode!r}")
    if c.noise_pairs is not None:
        if len(c.noise_pairs) == 0:
            raise ValueError(f"noise_pairs must name at least one source:target pair, got {list(c.noise_pairs)}; "
                             "leave it unset for CIFAR-10's customary pairs")
        for pair in c.noise_pairs:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(f"noise_pairs entries must be (source, target) pairs, got {pair!r}")
    for name, low in (("epochs", 1), ("batch_size", 1)):
        value = getattr(c, name)
        if value is not None and (not _is_int(value) or value < low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if c.model in BATCHNORM_MODELS:  # a fraction that selects one example is caught by sweep.engine.trial.prepare_labels
        for name in ("train_size", "batch_size"):
            value = getattr(c, name)
            if _is_int(value) and value == 1:
                raise ValueError(batchnorm_message(c.model, f"{name} 1"))
    for name, low, bound in (("lr", "> 0", lambda v: v > 0), ("weight_decay", ">= 0", lambda v: v >= 0)):
        value = getattr(c, name)
        if value is None:
            continue
        if _is_number(value) and not _is_finite_number(value):  # NaN passes no comparison; inf passes "> 0"
            raise ValueError(f"{name} must be a finite number {low}, got {value!r}")
        if not _is_number(value) or not bound(value):
            raise ValueError(f"{name} must be a number {low}, got {value!r}")
    if c.augment is not None and not isinstance(c.augment, bool):
        raise TypeError(f"augment must be true, false or unset, got {c.augment!r}")
    if c.device not in DEVICES:
        raise ValueError(f"unknown device {c.device!r}; allowed: {', '.join(DEVICES)}")
    if c.num_threads is not None and (not _is_int(c.num_threads) or c.num_threads < 1):
        raise ValueError(f"num_threads must be an integer >= 1, got {c.num_threads!r}")
