"""The experiment spec: a base trial configuration and the grid axes that vary it.

A spec names the experiment and holds one :class:`~sweep.engine.config.TrialConfig` that every
trial shares (dataset, noise mode and its parameter, subset mode, recipe, device, outputs), plus
four axes — models, noise fractions, train sizes, seeds — and the resources each trial asks Ray
for. It expands into the full cross grid of trials, in a fixed order (model, noise fraction, train
size, seed). A *grid cell* is (model, noise_fraction, train_size); the seeds are its repetitions.

A spec file is TOML (``tomllib``) or YAML (``yaml.safe_load``: data only, nothing in it can run
code); its keys are the axes, ``name``, ``description``, ``retries``, the TrialConfig fields marked
for the top level, a ``[training]`` table (the recipe fields) and a ``[resources]`` table (cpus,
gpus, max_concurrent and device). The README's "Spec files" section shows one with every key.
An experiment's identity (what two runs into one OUT must agree on) is its name plus the trial
identity fields that are not axes, so it can never drift from what a trial id hashes.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sweep.engine.checks import is_int, is_number, short_repr
from sweep.engine.config import AXES, TrialConfig, spec_fields
from sweep.engine.recipes import MODEL_NAMES

PRESET_DIR = Path(__file__).parent / "presets"
PRESETS = ("quick", "blog", "blog-x20", "fast", "cifar-cpu")  # files sweep/distributed/presets/<name>.toml
# Starts with a letter or digit: "." or ".." as the default OUT (results/<name>) would be a folder
# that holds other things, or results/ itself.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch: no trailing newline slips through
MAX_SEED = 2**63 - 1  # the Parquet seed column is int64
MAX_SEED_COUNT = 100_000  # `seeds = N` / `--seeds N`: a typo must not mean a grid that cannot be built
MAX_SPEC_BYTES = 1 << 20  # a spec is a page of settings; a bigger file is a mistake (or an attack)
MAX_SPEC_DEPTH = 8  # tables and lists nest at most 3 deep in a valid spec (noise_matrix in a table)
RAY_RESOURCE_STEP = 1e-4  # Ray represents resource amounts in units of 0.0001
AXIS_KEYS = ("models", "noise_fractions", "train_sizes", "seeds")  # spec keys of AXES, in that order
_TOP_KEYS = ("name", "dataset", "models", "noise_mode", "noise_fractions", "train_sizes", "seeds",
             *(k for k in spec_fields("top") if k not in ("dataset", "noise_mode")), "retries", "training",
             "resources", "description")
_TRAINING_KEYS = spec_fields("training")
_RESOURCE_KEYS = ("cpus", "gpus", *spec_fields("resources"), "max_concurrent")


@dataclass(frozen=True)
class ExperimentSpec:
    """A whole sweep. Validated once, at construction; immutable afterwards."""

    name: str  # experiment name, written into every Parquet row; [A-Za-z0-9][A-Za-z0-9._-]{0,63}
    base: TrialConfig = field(default_factory=TrialConfig)  # what every trial shares; its axis fields are unused
    models: tuple[str, ...] = ("blog_cnn",)  # axis; each one of MODEL_NAMES
    noise_fractions: tuple[float, ...] = (0.0,)  # axis; requested share of corrupted labels, each in [0, 1]
    train_sizes: tuple[int | float, ...] = (1.0,)  # axis; int count >= 1 or float fraction in (0, 1]
    seeds: tuple[int, ...] = (0, 1, 2)  # axis; ints in [0, MAX_SEED], the trial's random streams derive from it
    retries: int = 2  # extra attempts for a failing trial, >= 0
    cpus: float = 1.0  # CPUs reserved per trial, > 0 (also its torch threads, rounded up)
    gpus: float = 0.0  # GPUs per trial: 0, a fraction in (0, 1) (shared GPU) or a whole number >= 1
    max_concurrent: int = 0  # trials at once; 0 = no limit beyond resources
    description: str = ""  # free text, for people

    def __post_init__(self) -> None:
        _validate(self)
        object.__setattr__(self, "noise_fractions", tuple(float(v) for v in self.noise_fractions))
        object.__setattr__(self, "cpus", float(self.cpus))
        object.__setattr__(self, "gpus", float(self.gpus))
        # Fail here, not on a worker an hour later: every cell must make a valid TrialConfig (its
        # checks combine axes: a BatchNorm model with a train size of 1). A seed's check does not
        # depend on the cell, and the seeds were checked above, so one seed per cell is enough.
        for model, noise_fraction, train_size in self.cells():
            self.trial_config(model, noise_fraction, train_size, self.seeds[0])

    # ---- what every trial shares (read through to the base config) -----------------------------
    dataset = property(lambda self: self.base.dataset, doc="the trials' dataset spec")
    noise_mode = property(lambda self: self.base.noise_mode, doc="the trials' noise mode")
    device = property(lambda self: self.base.device, doc="the trials' device request")
    keep_probs = property(lambda self: self.base.keep_probs, doc="whether trials keep per-example softmax")

    @property
    def threads(self) -> int:
        """Torch threads of each trial: its CPUs, rounded up."""
        return max(1, math.ceil(self.cpus))

    # ---- the grid ---------------------------------------------------------------------------
    @property
    def num_trials(self) -> int:
        return len(self.models) * len(self.noise_fractions) * len(self.train_sizes) * len(self.seeds)

    def cells(self) -> list[tuple[str, float, int | float]]:
        """Grid cells (model, noise_fraction, train_size), in grid order."""
        return [(m, f, s) for m in self.models for f in self.noise_fractions for s in self.train_sizes]

    def trial_config(self, model: str, noise_fraction: float, train_size: int | float, seed: int) -> TrialConfig:
        """The TrialConfig of one grid point (resources included; they do not change its trial_id)."""
        return self.base.replace(model=model, noise_fraction=noise_fraction, train_size=train_size, seed=seed,
                                 num_threads=self.threads)

    def trials(self) -> list[TrialConfig]:
        """Every trial of the full cross grid, in grid order (model, noise, size, seed)."""
        return [self.trial_config(m, f, s, seed) for (m, f, s) in self.cells() for seed in self.seeds]

    def check_fits(self, dataset: Any) -> None:
        """Refuse a grid that cannot run on ``dataset`` (every such trial would fail on a worker).

        One engine fit check per cell (``sweep.engine.fit``, numpy only), and one across cells: two
        spellings of one size (0.4 and 538 of 1,346) would be two trial ids for the same trial.
        """
        from sweep.engine.fit import check_fits
        from sweep.engine.subsets import resolve_train_size

        counts: dict[int, int | float] = {}
        for size in self.train_sizes:
            try:
                count = resolve_train_size(size, dataset.num_train)
            except ValueError as exc:
                raise ValueError(f"train_sizes of {self.dataset}: {exc}") from None
            if count in counts:
                raise ValueError(f"train_sizes of {self.dataset}: {short_repr(counts[count])} and {short_repr(size)} both select "
                                 f"{count} of the {dataset.num_train} train examples; keep one of them")
            counts[count] = size
        for cell in self.cells():
            check_fits(self.trial_config(*cell, self.seeds[0]), dataset)

    # ---- overrides and serialization --------------------------------------------------------
    def with_overrides(self, *, dataset: str | None = None, seeds: int | None = None,
                       max_concurrent: int | None = None, retries: int | None = None,
                       keep_probs: bool | None = None, eval_every: int | None = None,
                       steps: int | None = None) -> "ExperimentSpec":
        """The CLI's --dataset / --seeds N (seeds 0..N-1) / --max-concurrent / --retries / --keep-probs /
        --eval-every / --steps on top of a spec. keep_probs and eval_every are not part of a trial's
        identity: they change what is written, not which trials exist. steps is: it replaces the spec's
        training budget (its epochs, if set, are dropped), so it names other trials, another experiment."""
        changes: dict[str, Any] = {}
        base = self.base
        if dataset is not None:
            base = base.replace(dataset=dataset)
        if steps is not None:
            base = base.replace(steps=steps, epochs=None)
        if keep_probs is not None:
            base = base.replace(keep_probs=keep_probs)
        if eval_every is not None:
            base = base.replace(eval_every=eval_every)
        if base is not self.base:
            changes["base"] = base
        if seeds is not None:
            if not is_int(seeds) or seeds < 1:
                raise ValueError(f"--seeds must be an integer >= 1, got {short_repr(seeds)}")
            if seeds > MAX_SEED_COUNT:
                raise ValueError(f"--seeds must be at most {MAX_SEED_COUNT:,} (as a spec's seeds count), got {short_repr(seeds)}")
            changes["seeds"] = tuple(range(seeds))
        if max_concurrent is not None:
            changes["max_concurrent"] = max_concurrent
        if retries is not None:
            changes["retries"] = retries
        return replace(self, **changes) if changes else self

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment: the name and the trials' identity without the axes.

        Runs into one OUT must agree on it; the axes may grow (more seeds, sizes, noise levels).
        """
        return {"name": self.name, **{k: v for k, v in self.base.identity().items() if k not in AXES}}

    def to_dict(self) -> dict[str, Any]:
        """The spec in the file layout (``[training]``, ``[resources]`` tables; unset keys left out):
        ``spec_from_dict(spec.to_dict()) == spec``."""
        trial = self.base.to_dict()
        top = {"name": self.name, "description": self.description, "retries": self.retries,
               "models": list(self.models), "noise_fractions": list(self.noise_fractions),
               "train_sizes": list(self.train_sizes), "seeds": list(self.seeds)}
        top.update({k: trial[k] for k in spec_fields("top") if trial[k] is not None})
        top["training"] = {k: trial[k] for k in _TRAINING_KEYS if trial[k] is not None}
        top["resources"] = {"cpus": self.cpus, "gpus": self.gpus, "device": trial["device"],
                            "max_concurrent": self.max_concurrent}
        return top


def _check_axis(key: str, values: Any, check_one) -> None:
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{key} must be a list, got {short_repr(values)}")
    if len(values) == 0:
        raise ValueError(f"{key} must not be empty")
    seen: set[tuple[type, Any]] = set()
    for value in values:
        check_one(value)
        tag = (type(value), value)  # 1 (a count) and 1.0 (the whole split) are different sizes
        if tag in seen:
            raise ValueError(f"{key} has a duplicate value {short_repr(value)}")
        seen.add(tag)


def _model_ok(v: Any) -> None:
    if v not in MODEL_NAMES:
        raise ValueError(f"models: unknown model {short_repr(v)}; allowed: {', '.join(MODEL_NAMES)}")


def _noise_ok(v: Any) -> None:
    if not is_number(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"noise_fractions: each value must be in [0, 1], got {short_repr(v)}")


def _size_ok(v: Any) -> None:
    if not ((is_int(v) and v >= 1) or (isinstance(v, float) and 0.0 < v <= 1.0)):
        raise ValueError(f"train_sizes: each value must be a count >= 1 or a fraction in (0, 1], got {short_repr(v)}")


def _seed_ok(v: Any) -> None:
    if not is_int(v) or not 0 <= v <= MAX_SEED:
        raise ValueError(f"seeds: each value must be an integer in [0, 2**63 - 1] (the Parquet seed column "
                         f"is int64), got {short_repr(v)}")


def _validate(s: ExperimentSpec) -> None:
    if not isinstance(s.name, str) or not _NAME_RE.fullmatch(s.name):
        raise ValueError("name must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a "
                         f"letter or digit, got {short_repr(s.name)}")
    if not isinstance(s.base, TrialConfig):
        raise TypeError(f"base must be a TrialConfig, got {type(s.base).__name__}")
    for key, check in zip(AXIS_KEYS, (_model_ok, _noise_ok, _size_ok, _seed_ok)):
        _check_axis(key, getattr(s, key), check)
    if not is_int(s.retries) or not 0 <= s.retries <= 100:
        raise ValueError(f"retries must be an integer in [0, 100], got {short_repr(s.retries)}")
    if not is_number(s.cpus) or not 0 < s.cpus <= 1024:
        raise ValueError(f"resources.cpus must be a number in (0, 1024], got {short_repr(s.cpus)}")
    if not is_number(s.gpus) or not 0 <= s.gpus <= 1024 or (s.gpus > 1 and s.gpus != int(s.gpus)):
        raise ValueError(f"resources.gpus must be 0, a fraction in (0, 1) or a whole number up to 1024, "
                         f"got {short_repr(s.gpus)}")
    for key in ("cpus", "gpus"):  # finer amounts would be rounded by Ray, or refused mid-run
        value = getattr(s, key)
        if abs(value / RAY_RESOURCE_STEP - round(value / RAY_RESOURCE_STEP)) > 1e-6:
            raise ValueError(f"resources.{key} must be a multiple of {RAY_RESOURCE_STEP:g} (Ray's resource unit), "
                             f"got {short_repr(value)}")
    if not is_int(s.max_concurrent) or s.max_concurrent < 0:
        raise ValueError(f"max_concurrent must be an integer >= 0 (0 = no limit), got {short_repr(s.max_concurrent)}")
    if not isinstance(s.description, str):
        raise TypeError(f"description must be a string, got {short_repr(s.description)}")


def spec_from_dict(data: dict[str, Any], *, source: str = "spec") -> ExperimentSpec:
    """Build a spec from parsed TOML/YAML, rejecting unknown keys (typos must not be ignored)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: must be a table of keys, got {type(data).__name__}")
    _check_keys_and_depth(data, source)
    unknown = sorted(set(data) - set(_TOP_KEYS), key=str)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(_TOP_KEYS)}")
    if "name" not in data:
        raise ValueError(f"{source}: missing required key 'name'")
    flat = {k: v for k, v in data.items() if k not in ("training", "resources")}
    for table, allowed in (("training", _TRAINING_KEYS), ("resources", _RESOURCE_KEYS)):
        sub = data.get(table, {})
        if not isinstance(sub, dict):
            raise ValueError(f"{source}: [{table}] must be a table, got {short_repr(sub)}")
        bad = sorted(set(sub) - set(allowed), key=str)
        if bad:
            raise ValueError(f"{source}: unknown key(s) {', '.join(f'{table}.{k}' for k in bad)}; "
                             f"allowed: {', '.join(allowed)}")
        flat.update(sub)
    seeds = flat.get("seeds", 3)
    if is_int(seeds):
        if not 1 <= seeds <= MAX_SEED_COUNT:
            raise ValueError(f"{source}: seeds as a count must be in [1, {MAX_SEED_COUNT}], got {short_repr(seeds)}")
        flat["seeds"] = tuple(range(seeds))
    for key in AXIS_KEYS:
        if key in flat:
            if not isinstance(flat[key], (list, tuple)):
                raise TypeError(f"{source}: {key} must be a list, got {short_repr(flat[key])}")
            flat[key] = tuple(flat[key])
    trial_keys = set(spec_fields("top")) | set(_TRAINING_KEYS) | set(spec_fields("resources"))
    base = TrialConfig(**{k: v for k, v in flat.items() if k in trial_keys})
    return ExperimentSpec(base=base, **{k: v for k, v in flat.items() if k not in trial_keys})


def _check_keys_and_depth(data: Any, source: str) -> None:
    """Every mapping key a string, nesting at most MAX_SPEC_DEPTH deep (walked iteratively: a
    hostile file must not reach Python's recursion limit here either)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SPEC_DEPTH:
            raise ValueError(f"{source}: nested more than {MAX_SPEC_DEPTH} levels deep; a spec's values are "
                             "numbers, strings and lists of them")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ValueError(f"{source}: keys must be strings, got the key {short_repr(key)}")
                stack.append((value, depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((value, depth + 1) for value in node)


def _yaml_without_aliases(text: str) -> Any:
    """``yaml.safe_load`` that refuses anchors and aliases: a spec needs none, and a few hundred bytes
    of nested aliases expand into a value of billions of elements."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("aliases (*name) are not allowed in a spec")
            return super().compose_node(parent, index)

    loader = Loader(text)  # a SafeLoader: plain data only, never Python objects or code
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise ValueError(f"{path}: {size:,} bytes; a spec file is at most {MAX_SPEC_BYTES:,} bytes")
    raw = path.read_bytes()
    if raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{path}: starts with a byte-order mark; save it as UTF-8 without one")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                         "save it as UTF-8") from None


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read a spec file: ``.toml`` (tomllib) or ``.yaml``/``.yml`` (``yaml.SafeLoader``, no aliases)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"spec file must end in .toml, .yaml or .yml, got {short_repr(path.name)}")
    text = _read_text(path)
    try:
        if suffix == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{path}: not valid TOML: {exc}") from None
        else:
            import yaml

            try:
                data = _yaml_without_aliases(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"{path}: not valid YAML: {' '.join(str(exc).split())[:300]}") from None
    except RecursionError:
        raise ValueError(f"{path}: nested more than {MAX_SPEC_DEPTH} levels deep; a spec's values are "
                         "numbers, strings and lists of them") from None
    return spec_from_dict(data, source=str(path))


def load_preset(name: str) -> ExperimentSpec:
    """A spec shipped with the package (sweep/distributed/presets/<name>.toml)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {short_repr(name)}; allowed: {', '.join(PRESETS)}")
    text = (PRESET_DIR / f"{name}.toml").read_text(encoding="utf-8")
    return spec_from_dict(tomllib.loads(text), source=f"preset {name}")
