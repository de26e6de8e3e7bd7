"""The trial configuration: one frozen, validated record that names a trial everywhere.

A *trial* is (dataset, model, noise mode, noise fraction, training-set size, seed) plus the
training recipe. Its identity fields name it in Ray, in file names and in Parquet rows;
``trial_id`` is a stable hash of them (``sweep.contract.trial_id``), not of resources such as
threads or device, which must not change a result's name.

Each field says, in its metadata, where else it appears: ``identity`` (part of the trial id:
"always", or "when_set" for a field added after results existed, which leaves the id of every
trial that does not set it unchanged) and ``spec`` (the spec-file table it is read from: "top",
"training" or "resources"). The experiment spec, its file layout and ``experiment.json`` derive
from these, so a new recipe setting is one field here.

Glossary used across the project:
    K               number of classes
    N               number of examples (train split unless said otherwise)
    noise_fraction  requested share of training labels that are corrupted, in [0, 1]
    train_size      training examples actually used, a count (int >= 1) or a fraction in (0, 1]
    true_class      the label of a test example
    pred_class      the model's prediction for it
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sweep.contract import trial_id as hash_identity
from sweep.engine.checks import is_finite, is_int, is_number, short_repr
from sweep.engine.datasets import SPEC_FORMS
from sweep.engine.noise import NOISE_MODES
from sweep.engine.recipes import BATCHNORM_MODELS, MODEL_NAMES, SCHEDULES, batchnorm_message
from sweep.engine.subsets import SUBSET_MODES

DEVICES = ("auto", "cpu", "cuda")
AXES = ("model", "noise_fraction", "train_size", "seed")  # what a grid varies; the rest a spec fixes
MAX_EPOCHS = 100_000  # more is a typo (and the int64 epochs column must hold it)
MAX_BATCH_SIZE = 1_000_000  # examples per step
MAX_STEPS = 10_000_000  # optimizer steps of one trial; more is a typo (CIFAR-10, 15 epochs of 128: 5,865)


def _meta(identity: str | None = None, spec: str | None = None) -> dict[str, Any]:
    return {"identity": identity, "spec": spec}


@dataclass(frozen=True)
class TrialConfig:
    """Everything that defines one trial. Validated once, here; immutable afterwards."""

    # Dataset spec: one of SPEC_FORMS ("digits" | "cifar10" | "parquet:DIR" | "imagefolder:DIR").
    dataset: str = field(default="digits", metadata=_meta("always", "top"))
    # Model name, one of MODEL_NAMES: "blog_cnn" | "fast_cnn" | "resnet18". A grid axis.
    model: str = field(default="blog_cnn", metadata=_meta("always"))
    # How labels are corrupted, one of NOISE_MODES (see sweep.engine.noise).
    noise_mode: str = field(default="shuffle", metadata=_meta("always", "top"))
    # Requested share of training labels to corrupt, in [0, 1]. A grid axis.
    noise_fraction: float = field(default=0.0, metadata=_meta("always"))
    # Training examples: int count >= 1, float fraction in (0, 1], or None for the whole split. A grid axis.
    train_size: int | float | None = field(default=None, metadata=_meta("always"))
    # Grid axis, not a random draw: every random stream of the trial derives from it. Integer >= 0.
    seed: int = field(default=0, metadata=_meta("always"))
    # How the training subset is drawn: "random" | "stratified" (class shares kept, see sweep.engine.subsets).
    subset_mode: str = field(default="random", metadata=_meta("always", "top"))
    # Noise-mode parameters (NOISE_MODES[...].param), each only with its mode:
    # "pairs": (source class, target class) flips, at least one; None = CIFAR-10's customary pairs.
    noise_pairs: tuple[tuple[str, str], ...] | None = field(default=None, metadata=_meta("always", "top"))
    # "matrix": K x K row-stochastic transition matrix, row = true class; required at a fraction > 0.
    noise_matrix: tuple[tuple[float, ...], ...] | None = field(default=None, metadata=_meta("always", "top"))
    # Recipe overrides; None keeps the model's documented default (sweep.engine.recipes.RECIPES).
    epochs: int | None = field(default=None, metadata=_meta("always", "training"))  # passes over the subset, >= 1
    batch_size: int | None = field(default=None, metadata=_meta("always", "training"))  # per step, >= 1 (>= 2 with BatchNorm)
    lr: float | None = field(default=None, metadata=_meta("always", "training"))  # peak learning rate, finite, > 0
    weight_decay: float | None = field(default=None, metadata=_meta("always", "training"))  # L2, finite, >= 0
    augment: bool | None = field(default=None, metadata=_meta("always", "training"))  # crop + flip; None = dataset default
    # Added after results existed: part of the id only when set, so every earlier trial keeps its id.
    schedule: str | None = field(default=None, metadata=_meta("when_set", "training"))  # one of SCHEDULES
    warmup: float | None = field(default=None, metadata=_meta("when_set", "training"))  # share of steps, [0, 1)
    ema: float | None = field(default=None, metadata=_meta("when_set", "training"))  # weight EMA decay per step, [0, 1); 0 = off
    # Training budget in optimizer steps, integer in [1, MAX_STEPS], instead of epochs (which must then
    # be unset): every train size trains equally long, the last pass over the subset cut short.
    steps: int | None = field(default=None, metadata=_meta("when_set", "training"))
    # Resources and outputs: not part of the trial's identity.
    device: str = field(default="auto", metadata=_meta(spec="resources"))  # one of DEVICES; auto = CUDA if present
    num_threads: int | None = field(default=None, metadata=_meta())  # torch CPU threads, >= 1; None = torch's
    keep_probs: bool = field(default=False, metadata=_meta(spec="top"))  # also return the test set's softmax
    # Test-set learning curve: evaluate every N epochs, integer >= 0; 0 = off. Not identity: it
    # draws no random number and changes no weight, so the result is the same with it or without.
    eval_every: int = field(default=0, metadata=_meta(spec="top"))
    data_dir: str | None = field(default=None, metadata=_meta(spec="top"))  # where torchvision datasets live

    def __post_init__(self) -> None:
        _validate(self)
        for mode in NOISE_MODES.values():  # nested lists (JSON, TOML) -> hashable tuples
            if mode.param is not None and getattr(self, mode.param.field) is not None:
                object.__setattr__(self, mode.param.field, mode.param.normalize(getattr(self, mode.param.field)))
        object.__setattr__(self, "noise_fraction", float(self.noise_fraction))

    def identity(self) -> dict[str, Any]:
        """The fields that define what is computed, as plain JSON-able values (the trial id's input)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kind = f.metadata["identity"]
            if kind == "always" or (kind == "when_set" and value is not None):
                out[f.name] = json.loads(json.dumps(value)) if isinstance(value, tuple) else value
        return out

    @property
    def trial_id(self) -> str:
        """Stable 16-hex-digit name of the trial: the hash of :meth:`identity`."""
        return hash_identity(self.identity())

    @property
    def key(self) -> str:
        """The trial's grid point in words, for messages: "model=M/noise_fraction=F/train_size=S/seed=N"."""
        return (f"model={self.model}/noise_fraction={self.noise_fraction:g}/"
                f"train_size={self.train_size}/seed={self.seed}")

    def replace(self, **changes: Any) -> "TrialConfig":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ValueError(f"unknown trial option(s) {sorted(unknown)}; allowed: {sorted(values)}")
        values.update(changes)
        return TrialConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


IDENTITY_FIELDS = tuple(f.name for f in fields(TrialConfig) if f.metadata["identity"])


def spec_fields(table: str) -> tuple[str, ...]:
    """The TrialConfig fields a spec file sets in ``table`` ("top", "training" or "resources")."""
    return tuple(f.name for f in fields(TrialConfig) if f.metadata["spec"] == table)


def _validate(c: TrialConfig) -> None:
    if not isinstance(c.dataset, str) or not c.dataset.strip():
        raise TypeError(f"dataset must be a non-empty string ({' | '.join(SPEC_FORMS)}), got {short_repr(c.dataset)}")
    if not isinstance(c.model, str):
        raise TypeError(f"model must be a string, got {short_repr(c.model)}")
    if c.model not in MODEL_NAMES:
        raise ValueError(f"unknown model {short_repr(c.model)}; allowed: {', '.join(MODEL_NAMES)}")
    if c.noise_mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {short_repr(c.noise_mode)}; allowed: {', '.join(NOISE_MODES)}")
    if not is_number(c.noise_fraction) or not 0.0 <= c.noise_fraction <= 1.0:
        raise ValueError(f"noise_fraction must be in [0, 1], got {short_repr(c.noise_fraction)}")
    if c.train_size is not None:
        if not is_int(c.train_size) and not isinstance(c.train_size, float):
            raise TypeError(f"train_size must be an int count or a float fraction, got {short_repr(c.train_size)}")
        if (c.train_size < 1) if is_int(c.train_size) else not 0.0 < c.train_size <= 1.0:
            raise ValueError(f"train_size must be a count >= 1 or a fraction in (0, 1], got {short_repr(c.train_size)}")
    if not is_int(c.seed) or c.seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {short_repr(c.seed)}")
    if c.subset_mode not in SUBSET_MODES:
        raise ValueError(f"unknown subset mode {short_repr(c.subset_mode)}; allowed: {', '.join(SUBSET_MODES)}")
    for name, mode in NOISE_MODES.items():
        param = mode.param
        if param is None:
            continue
        value = getattr(c, param.field)
        if value is not None and c.noise_mode != name:
            raise ValueError(f"{param.field} is only used with noise_mode {short_repr(name)}, got noise_mode {short_repr(c.noise_mode)}")
        if c.noise_mode == name and value is None and param.default is None and c.noise_fraction > 0:
            raise ValueError(f"noise_mode {short_repr(name)} needs {param.field} ({param.what})")
    for name, high in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE)):
        value = getattr(c, name)
        if value is not None and (not is_int(value) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {short_repr(value)}")
        if value is not None and value > high:
            raise ValueError(f"{name} must be at most {high:,}, got {short_repr(value)}")
    if c.steps is not None and (not is_int(c.steps) or not 1 <= c.steps <= MAX_STEPS):
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS:,}] (optimizer steps), got {short_repr(c.steps)}")
    if c.steps is not None and c.epochs is not None:
        raise ValueError(f"epochs and steps are two training budgets; set one of them, got epochs {c.epochs} "
                         f"and steps {c.steps}")
    if c.model in BATCHNORM_MODELS:  # a fraction that selects one example is caught by sweep.engine.fit
        for name in ("train_size", "batch_size"):
            if is_int(getattr(c, name)) and getattr(c, name) == 1:
                raise ValueError(batchnorm_message(c.model, f"{name} 1"))
    for name, low, bound in (("lr", "> 0", lambda v: v > 0), ("weight_decay", ">= 0", lambda v: v >= 0)):
        value = getattr(c, name)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):  # NaN passes no comparison; inf passes "> 0"
            raise ValueError(f"{name} must be a finite number {low}, got {short_repr(value)}")
        if not is_finite(value) or not bound(value):
            raise ValueError(f"{name} must be a number {low}, got {short_repr(value)}")
    if c.schedule is not None and c.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {short_repr(c.schedule)}; allowed: {', '.join(SCHEDULES)}")
    for name, text in (("warmup", "a share of the steps in [0, 1)"), ("ema", "a decay per step in [0, 1), 0 = off")):
        value = getattr(c, name)
        if value is not None and (not is_finite(value) or not 0 <= value < 1):
            raise ValueError(f"{name} must be {text}, got {short_repr(value)}")
    if c.augment is not None and not isinstance(c.augment, bool):
        raise TypeError(f"augment must be true, false or unset, got {short_repr(c.augment)}")
    if c.device not in DEVICES:
        raise ValueError(f"unknown device {short_repr(c.device)}; allowed: {', '.join(DEVICES)}")
    if c.num_threads is not None and (not is_int(c.num_threads) or c.num_threads < 1):
        raise ValueError(f"num_threads must be an integer >= 1, got {short_repr(c.num_threads)}")
    if not isinstance(c.keep_probs, bool):
        raise TypeError(f"keep_probs must be true or false, got {short_repr(c.keep_probs)}")
    if not is_int(c.eval_every) or not 0 <= c.eval_every <= MAX_EPOCHS:
        raise ValueError(f"eval_every must be an integer in [0, {MAX_EPOCHS:,}] (epochs; 0 = off), "
                         f"got {short_repr(c.eval_every)}")
    if c.data_dir is not None and not isinstance(c.data_dir, str):
        raise TypeError(f"data_dir must be a string, got {short_repr(c.data_dir)}")
    if c.data_dir is not None and not c.data_dir.strip():  # as --out "": a mistake, not the default
        raise ValueError("data_dir must name a folder (leave it out for the default), got ''")
