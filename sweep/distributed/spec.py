"""The experiment spec: one frozen, validated record of a whole sweep, and its grid of trials.

A spec names the experiment, the dataset, and four axes — models, noise fractions, train sizes and
seeds — plus the training recipe and resources that every trial shares. It is read from TOML
(``tomllib``) or YAML (``yaml.safe_load``: data only, nothing in a spec can run code) and expands
into the full cross grid of :class:`~sweep.engine.config.TrialConfig` s, in a fixed order
(model, noise fraction, train size, seed).

A *grid cell* is (model, noise_fraction, train_size); the seeds are its repetitions.

Spec file layout (every key optional except name; defaults shown)::

    name = "my-study"              # experiment name: [A-Za-z0-9._-], 1-64 characters, starting with a
                                   # letter or digit (so never "." or "..": it names OUT's folder)
    dataset = "digits"             # "digits" | "cifar10" | "parquet:DIR" | "imagefolder:DIR"
    models = ["blog_cnn"]          # axis: model names
    noise_mode = "shuffle"         # "shuffle" | "symmetric" | "pairs" | "matrix"
    noise_fractions = [0.0]        # axis: each in [0, 1]
    train_sizes = [1.0]            # axis: counts (int >= 1) or fractions of the train split (float in (0, 1])
    seeds = 3                      # axis: a count N in [1, 100000] (seeds 0..N-1) or an explicit list of
                                   # ints in [0, 2**63 - 1] (the Parquet seed column is int64)
    subset_mode = "random"         # "random" | "stratified"
    noise_pairs = [["cat", "dog"]] # for noise_mode "pairs" (default: CIFAR-10's customary pairs)
    noise_matrix = [[0.9, 0.1], [0.2, 0.8]]  # for noise_mode "matrix" (required there): K x K,
                                   # row = true class, rows sum to 1; a picked example's new label
                                   # is drawn from its row. Written in the spec, so it is recorded
    keep_probs = false             # also write per-example softmax to OUT/probs/
    data_dir = "/data"             # where torchvision datasets live
    retries = 2                    # times a failed trial is retried (Tune FailureConfig.max_failures)

    [training]                     # recipe overrides; unset = the model's default recipe
    epochs = 5                     # >= 1
    batch_size = 128               # >= 1
    lr = 0.001                     # > 0
    weight_decay = 0.0             # >= 0
    augment = true

    [resources]                    # per trial
    cpus = 1                       # CPUs reserved per trial, > 0 (also torch threads, rounded up)
    gpus = 0                       # GPU share per trial: 0, a fraction in (0, 1) or a whole number
    device = "auto"                # "auto" (CUDA where present, else CPU) | "cpu" | "cuda"
    max_concurrent = 0             # trials at once across the cluster; 0 = as many as resources allow
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from sweep.engine.config import DEVICES, MODEL_NAMES, NOISE_MODES, SUBSET_MODES, TrialConfig

PRESETS = ("quick", "blog", "blog-x20", "fast")  # files sweep/distributed/presets/<name>.toml
AXES = ("model", "noise_fraction", "train_size", "seed")  # grid order; a cell is the first three
# Starts with a letter or digit: "." or ".." as the default OUT (results/<name>) would be a folder
# that holds other things, or results/ itself.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SEED = 2**63 - 1  # the Parquet seed column is int64
MAX_SEED_COUNT = 100_000  # `seeds = N` / `--seeds N`: a typo must not mean a grid that cannot be built
_TOP_KEYS = (
    "name", "dataset", "models", "noise_mode", "noise_fractions", "train_sizes", "seeds", "subset_mode",
    "noise_pairs", "noise_matrix", "keep_probs", "data_dir", "retries", "training", "resources", "description",
)
_TRAINING_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "augment")
_RESOURCE_KEYS = ("cpus", "gpus", "device", "max_concurrent")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value)
    )


@dataclass(frozen=True)
class ExperimentSpec:
    """A whole sweep. Validated once, at construction; immutable afterwards."""

    name: str  # experiment name, written into every Parquet row; [A-Za-z0-9][A-Za-z0-9._-]{0,63}
    dataset: str = "digits"  # dataset spec, see sweep.engine.datasets
    models: tuple[str, ...] = ("blog_cnn",)  # axis; each one of MODEL_NAMES
    noise_mode: str = "shuffle"  # one of NOISE_MODES
    noise_fractions: tuple[float, ...] = (0.0,)  # axis; requested share of corrupted labels, each in [0, 1]
    train_sizes: tuple[int | float, ...] = (1.0,)  # axis; int count >= 1 or float fraction in (0, 1]
    seeds: tuple[int, ...] = (0, 1, 2)  # axis; ints in [0, MAX_SEED], the trial's random streams derive from it
    subset_mode: str = "random"  # one of SUBSET_MODES
    noise_pairs: tuple[tuple[str, str], ...] | None = None  # noise_mode "pairs" only
    noise_matrix: tuple[tuple[float, ...], ...] | None = None  # noise_mode "matrix" only: K x K, rows sum to 1
    keep_probs: bool = False  # also write per-example softmax (OUT/probs/)
    data_dir: str | None = None  # torchvision dataset directory
    retries: int = 2  # extra attempts for a failing trial, >= 0
    epochs: int | None = None  # recipe overrides, None = the model's default (sweep.engine.models.RECIPES)
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    augment: bool | None = None
    cpus: float = 1.0  # CPUs reserved per trial, > 0
    gpus: float = 0.0  # GPUs per trial: 0, a fraction in (0, 1) (shared GPU) or a whole number >= 1
    device: str = "auto"  # one of DEVICES
    max_concurrent: int = 0  # trials at once; 0 = no limit beyond resources
    description: str = ""  # free text, for people

    def __post_init__(self) -> None:
        _validate(self)
        # Normalize: ints stay counts, floats stay fractions; noise fractions are floats.
        object.__setattr__(self, "noise_fractions", tuple(float(v) for v in self.noise_fractions))
        object.__setattr__(self, "cpus", float(self.cpus))
        object.__setattr__(self, "gpus", float(self.gpus))
        if self.noise_pairs is not None:
            object.__setattr__(self, "noise_pairs", tuple((str(a), str(b)) for a, b in self.noise_pairs))
        if self.noise_matrix is not None:
            object.__setattr__(self, "noise_matrix", tuple(tuple(float(v) for v in row) for row in self.noise_matrix))
        # Fail here, not on a worker an hour later: every trial of the grid must be a valid TrialConfig.
        # Every cell is checked (TrialConfig's checks combine axes: a BatchNorm model with a train size
        # of 1); a seed's check does not depend on the cell, so the seeds are checked on the first cell
        # only: the full grid of 100,000 seeds x every cell would not fit in memory.
        for model, noise_fraction, train_size in self.cells():
            self.trial_config(model, noise_fraction, train_size, self.seeds[0])
        model, noise_fraction, train_size = self.cells()[0]
        for seed in self.seeds:
            self.trial_config(model, noise_fraction, train_size, seed)

    # ---- the grid ---------------------------------------------------------------------------
    @property
    def num_trials(self) -> int:
        return len(self.models) * len(self.noise_fractions) * len(self.train_sizes) * len(self.seeds)

    def cells(self) -> list[tuple[str, float, int | float]]:
        """Grid cells (model, noise_fraction, train_size), in grid order."""
        return [(m, f, s) for m in self.models for f in self.noise_fractions for s in self.train_sizes]

    def trial_config(self, model: str, noise_fraction: float, train_size: int | float, seed: int) -> TrialConfig:
        """The TrialConfig of one grid point (resources included; they do not change its trial_id)."""
        return TrialConfig(
            dataset=self.dataset, model=model, noise_mode=self.noise_mode, noise_fraction=noise_fraction,
            train_size=train_size, seed=seed, subset_mode=self.subset_mode, noise_pairs=self.noise_pairs,
            noise_matrix=self.noise_matrix, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
            augment=self.augment, device=self.device, num_threads=max(1, math.ceil(self.cpus)),
            keep_probs=self.keep_probs, data_dir=self.data_dir,
        )

    def trials(self) -> list[TrialConfig]:
        """Every trial of the full cross grid, in grid order (model, noise, size, seed)."""
        return [self.trial_config(m, f, s, seed) for (m, f, s) in self.cells() for seed in self.seeds]

    # ---- overrides and serialization --------------------------------------------------------
    def with_overrides(self, *, dataset: str | None = None, seeds: int | None = None,
                       max_concurrent: int | None = None) -> "ExperimentSpec":
        """The CLI's --dataset / --seeds N (seeds 0..N-1) / --max-concurrent on top of a spec."""
        changes: dict[str, Any] = {}
        if dataset is not None:
            changes["dataset"] = dataset
        if seeds is not None:
            if not _is_int(seeds) or seeds < 1:
                raise ValueError(f"--seeds must be an integer >= 1, got {seeds!r}")
            if seeds > MAX_SEED_COUNT:
                raise ValueError(f"--seeds must be at most {MAX_SEED_COUNT:,} (as a spec's seeds count), got {seeds!r}")
            changes["seeds"] = tuple(range(seeds))
        if max_concurrent is not None:
            changes["max_concurrent"] = max_concurrent
        return replace(self, **changes) if changes else self

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment: everything but the axes' values and resources.

        Runs into one OUT must agree on it; the axes may grow (more seeds, sizes, noise levels).
        """
        keep = ("name", "dataset", "noise_mode", "subset_mode", "noise_pairs", "noise_matrix", "data_dir",
                "epochs", "batch_size", "lr", "weight_decay", "augment")
        return json.loads(json.dumps({k: getattr(self, k) for k in keep}))

    def to_dict(self) -> dict[str, Any]:
        """The spec in the file layout (``[training]``, ``[resources]`` tables; unset keys left out):
        ``spec_from_dict(spec.to_dict()) == spec``."""
        flat = json.loads(json.dumps(asdict(self)))
        nested: dict[str, Any] = {k: v for k, v in flat.items()
                                  if k not in _TRAINING_KEYS + _RESOURCE_KEYS and v is not None}
        nested["training"] = {k: flat[k] for k in _TRAINING_KEYS if flat[k] is not None}
        nested["resources"] = {k: flat[k] for k in _RESOURCE_KEYS}
        return nested


def _check_axis(key: str, values: Any, check_one) -> None:
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{key} must be a list, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{key} must not be empty")
    seen: set[tuple[type, Any]] = set()
    for value in values:
        check_one(value)
        tag = (type(value), value)  # 1 (a count) and 1.0 (the whole split) are different sizes
        if tag in seen:
            raise ValueError(f"{key} has a duplicate value {value!r}")
        seen.add(tag)


def _validate(s: ExperimentSpec) -> None:
    if not isinstance(s.name, str) or not _NAME_RE.match(s.name):
        raise ValueError("name must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a "
                         f"letter or digit, got {s.name!r}")
    if not isinstance(s.dataset, str) or not s.dataset.strip():
        raise TypeError(f"dataset must be a non-empty string, got {s.dataset!r}")

    def model_ok(v: Any) -> None:
        if v not in MODEL_NAMES:
            raise ValueError(f"models: unknown model {v!r}; allowed: {', '.join(MODEL_NAMES)}")

    def noise_ok(v: Any) -> None:
        if not _is_number(v) or not 0.0 <= v <= 1.0:
            raise ValueError(f"noise_fractions: each value must be in [0, 1], got {v!r}")

    def size_ok(v: Any) -> None:
        if _is_int(v) and v >= 1:
            return
        if isinstance(v, float) and 0.0 < v <= 1.0:
            return
        raise ValueError(f"train_sizes: each value must be a count >= 1 or a fraction in (0, 1], got {v!r}")

    def seed_ok(v: Any) -> None:
        if not _is_int(v) or not 0 <= v <= MAX_SEED:
            raise ValueError(f"seeds: each value must be an integer in [0, 2**63 - 1] (the Parquet seed column "
                             f"is int64), got {v!r}")

    _check_axis("models", s.models, model_ok)
    _check_axis("noise_fractions", s.noise_fractions, noise_ok)
    _check_axis("train_sizes", s.train_sizes, size_ok)
    _check_axis("seeds", s.seeds, seed_ok)
    for key, allowed in (("noise_mode", NOISE_MODES), ("subset_mode", SUBSET_MODES), ("device", DEVICES)):
        if getattr(s, key) not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {getattr(s, key)!r}")
    if s.noise_matrix is not None:
        rows = s.noise_matrix
        if (not isinstance(rows, (list, tuple)) or not rows
                or not all(isinstance(r, (list, tuple)) and len(r) == len(rows) for r in rows)
                or not all(_is_number(v) for r in rows for v in r)):
            raise ValueError(f"noise_matrix must be a square list of rows of numbers (K x K), got {rows!r}")
        if s.noise_mode != "matrix":
            raise ValueError(f"noise_matrix is only used with noise_mode 'matrix', got noise_mode {s.noise_mode!r}")
    if not isinstance(s.keep_probs, bool):
        raise TypeError(f"keep_probs must be true or false, got {s.keep_probs!r}")
    if s.data_dir is not None and not isinstance(s.data_dir, str):
        raise TypeError(f"data_dir must be a string, got {s.data_dir!r}")
    if not _is_int(s.retries) or not 0 <= s.retries <= 100:
        raise ValueError(f"retries must be an integer in [0, 100], got {s.retries!r}")
    if not _is_number(s.cpus) or not 0 < s.cpus <= 1024:
        raise ValueError(f"resources.cpus must be a number in (0, 1024], got {s.cpus!r}")
    if not _is_number(s.gpus) or s.gpus < 0 or (s.gpus > 1 and s.gpus != int(s.gpus)):
        raise ValueError(f"resources.gpus must be 0, a fraction in (0, 1) or a whole number, got {s.gpus!r}")
    if not _is_int(s.max_concurrent) or s.max_concurrent < 0:
        raise ValueError(f"max_concurrent must be an integer >= 0 (0 = no limit), got {s.max_concurrent!r}")
    if not isinstance(s.description, str):
        raise TypeError(f"description must be a string, got {s.description!r}")


def spec_from_dict(data: dict[str, Any], *, source: str = "spec") -> ExperimentSpec:
    """Build a spec from parsed TOML/YAML, rejecting unknown keys (typos must not be ignored)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: must be a table of keys, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(_TOP_KEYS)}")
    if "name" not in data:
        raise ValueError(f"{source}: missing required key 'name'")
    flat = {k: v for k, v in data.items() if k not in ("training", "resources")}
    for table, allowed in (("training", _TRAINING_KEYS), ("resources", _RESOURCE_KEYS)):
        sub = data.get(table, {})
        if not isinstance(sub, dict):
            raise ValueError(f"{source}: [{table}] must be a table, got {sub!r}")
        bad = sorted(set(sub) - set(allowed))
        if bad:
            raise ValueError(f"{source}: unknown key(s) {', '.join(f'{table}.{k}' for k in bad)}; "
                             f"allowed: {', '.join(allowed)}")
        flat.update(sub)
    seeds = flat.get("seeds", 3)
    if _is_int(seeds):
        if not 1 <= seeds <= MAX_SEED_COUNT:
            raise ValueError(f"{source}: seeds as a count must be in [1, {MAX_SEED_COUNT}], got {seeds!r}")
        flat["seeds"] = tuple(range(seeds))
    for key in ("models", "noise_fractions", "train_sizes", "seeds"):
        if key in flat:
            if not isinstance(flat[key], (list, tuple)):
                raise TypeError(f"{source}: {key} must be a list, got {flat[key]!r}")
            flat[key] = tuple(flat[key])
    if flat.get("noise_pairs") is not None:
        pairs = flat["noise_pairs"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise ValueError(f"{source}: noise_pairs must be a list of [source, target] pairs, got {pairs!r}")
        flat["noise_pairs"] = tuple(tuple(p) for p in pairs)
    return ExperimentSpec(**flat)


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read a spec file: ``.toml`` (tomllib) or ``.yaml``/``.yml`` (yaml.safe_load)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec file not found: {path}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        raise ValueError(f"spec file must end in .toml, .yaml or .yml, got {path.name!r}")
    return spec_from_dict(data, source=str(path))


def load_preset(name: str) -> ExperimentSpec:
    """A spec shipped with the package (sweep/distributed/presets/<name>.toml)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    text = (Path(__file__).parent / "presets" / f"{name}.toml").read_text(encoding="utf-8")
    return spec_from_dict(tomllib.loads(text), source=f"preset {name}")


def spec_field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(ExperimentSpec))
