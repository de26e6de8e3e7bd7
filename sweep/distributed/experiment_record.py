"""``OUT/experiment.json``: which experiment an output folder holds, and checks against it.

Written on the first run; later runs must agree on the experiment's identity (the spec's name and
the trials' identity fields that are not axes: dataset, noise mode and parameter, recipe), while the
axes may grow (more seeds, sizes, noise levels), so `--seeds 20` extends a 5-seed sweep. The file
also keeps the latest run's full spec, which `sweep status OUT` uses as the grid.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from sweep.contract import EXPERIMENT_FILE
from sweep.distributed.spec import ExperimentSpec, spec_from_dict
from sweep.distributed.store import Output, write_bytes_atomic

# Identity keys that records written before the spec was built on the trial config may hold, and
# that no longer name an experiment (where torchvision's files live does not change the data).
LEGACY_IDENTITY_KEYS = ("data_dir",)


def read_experiment(out: Output) -> dict[str, Any] | None:
    """The parsed experiment.json, or None when OUT holds none yet."""
    try:
        with out.fs.open_input_stream(out.path(EXPERIMENT_FILE)) as fh:
            raw = fh.read()
    except (FileNotFoundError, OSError):
        return None
    try:
        record = json.loads(raw)
        if not isinstance(record, dict) or "identity" not in record:
            raise ValueError("missing 'identity'")
        return record
    except ValueError as exc:
        raise ValueError(f"{out.uri}/{EXPERIMENT_FILE} is not a valid experiment record ({exc}); "
                         "it was not written by `sweep run`") from None


def stored_spec(out: Output) -> ExperimentSpec | None:
    """The spec of the latest run into OUT, or None."""
    record = read_experiment(out)
    if record is None:
        return None
    return spec_from_dict(record["spec"], source=f"{out.uri}/{EXPERIMENT_FILE}")


def check_experiment(out: Output, spec: ExperimentSpec, *, advice: str = "use another --out",
                     adopt: bool = False) -> None:
    """Refuse (ValueError, nothing touched) when OUT already holds a different experiment.

    Results without a record are not ours to mix into, unless ``adopt``: then every finished trial
    in OUT must belong to ``spec``'s experiment (its name and identity, read from each trial's own
    row), and the run that follows writes the record anew (the recovery of a deleted experiment.json).
    """
    record = read_experiment(out)
    if record is None:
        for directory in ("trials", "confusion"):
            try:
                info = out.fs.get_file_info(out.path(directory))
            except OSError:
                continue
            if info.type != info.type.NotFound and not adopt:
                raise ValueError(f"{out.uri} holds a {directory}/ folder but no {EXPERIMENT_FILE}; use an empty or "
                                 f"new --out, or pass --adopt with the spec that made it to write {EXPERIMENT_FILE} anew")
        if adopt:
            _check_adoptable(out, spec)
        return
    theirs, ours = record["identity"], spec.identity()
    keys = sorted((set(theirs) | set(ours)) - set(LEGACY_IDENTITY_KEYS))
    diffs = [f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in keys if theirs.get(k) != ours.get(k)]
    if diffs:
        raise ValueError(f"{out.uri} holds results of a different experiment ({'; '.join(diffs)}); {advice}")


def _check_adoptable(out: Output, spec: ExperimentSpec) -> None:
    """Every trials/ row of OUT was made by ``spec``'s experiment; else ValueError naming one that was not."""
    from sweep.distributed.scan import read_trial_rows, scan_done
    from sweep.engine.config import AXES

    ours = spec.identity()
    ids = sorted(scan_done(out, validate=False).done)
    for row in read_trial_rows(out, ids, columns=["trial_id", "experiment", "config_json"]):
        config = json.loads(row["config_json"])
        theirs = {"name": row["experiment"], **{k: config.get(k) for k in ours if k != "name" and k not in AXES}}
        diffs = [f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in ours if theirs.get(k) != ours.get(k)]
        if diffs:
            raise ValueError(f"cannot adopt {out.uri}: trial {row['trial_id']} belongs to another experiment "
                             f"({'; '.join(diffs)}); pass the spec that made these results")


def _rest(identity: dict[str, Any]) -> str:
    """A trial's identity without its size, as a key: unset values left out on both sides (a row's
    config_json lists every field; an identity leaves out the settings added later when unset)."""
    from sweep.engine.config import IDENTITY_FIELDS

    return json.dumps({k: v for k, v in identity.items() if k in IDENTITY_FIELDS and k != "train_size"
                       and v is not None}, sort_keys=True)


def check_sizes_against_out(out: Output, spec: ExperimentSpec, done: frozenset[str], *,
                            num_train: int | None) -> None:
    """Refuse a train size of the grid that selects as many examples as a size spelled differently
    (0.4 and 538 of 1,346) whose trials OUT already holds for the same model, noise and seed: the
    two would be two trial ids for one trial, and `sweep report` would find it twice.

    ``num_train`` is the dataset's train split; None (a cluster run, whose driver does not read the
    dataset) takes it from OUT's rows (train_size / train_fraction).
    """
    from sweep.distributed.scan import read_trial_rows
    from sweep.engine.subsets import resolve_train_size

    grid = {c.trial_id: c for c in spec.trials()}
    outside = done - grid.keys()  # the grid's own sizes were checked against each other already
    if not outside:
        return
    held: dict[tuple[str, int], Any] = {}  # (identity without the size, count) -> the size as spelled there
    for row in read_trial_rows(out, sorted(outside), columns=["train_size", "train_fraction", "config_json"]):
        config = json.loads(row["config_json"])
        held[_rest(config), int(row["train_size"])] = config.get("train_size")
        if num_train is None and row["train_fraction"]:
            num_train = round(row["train_size"] / row["train_fraction"])
    if num_train is None:
        return
    for config in grid.values():
        if config.trial_id in done:
            continue
        rest = _rest(config.identity())
        try:
            count = resolve_train_size(config.train_size, num_train)
        except ValueError:
            continue  # above the split: the dataset check says so on a local run, the trial on a cluster
        there = held.get((rest, count), config.train_size)
        if there != config.train_size or type(there) is not type(config.train_size):
            raise ValueError(f"train_sizes: {config.train_size!r} selects the same {count} of {num_train} train "
                             f"examples as {there!r}, whose trials {out.uri} already holds; write {there!r} "
                             "(or use another --out)")


def record_experiment(out: Output, spec: ExperimentSpec) -> None:
    """Write experiment.json: identity and creation time kept from the first run, spec from this one."""
    record = read_experiment(out) or {
        "identity": spec.identity(),
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    record["spec"] = spec.to_dict()
    record["updated_at"] = datetime.now(timezone.utc).isoformat()
    write_bytes_atomic(out, EXPERIMENT_FILE, json.dumps(record, indent=1, sort_keys=True).encode())
