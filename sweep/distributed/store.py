"""The output store: where OUT lives, a trial's files written atomically, and failure records.

Layout under OUT (a local path, an NFS mount, or any pyarrow filesystem URI such as ``s3://bucket/prefix``)::

    OUT/experiment.json               the experiment (spec), see sweep.distributed.experiment_record
    OUT/confusion/<trial_id>.parquet  one row per (trial, true class, predicted class), all K x K cells
    OUT/probs/<trial_id>.parquet      per-example softmax, when the spec keeps it
    OUT/epochs/<trial_id>.parquet     learning curves: one row per (trial, epoch, true class)
    OUT/trials/<trial_id>.parquet     one row per finished trial: THE COMMIT MARKER
    OUT/failed/<trial_id>.json        a trial's last error, removed once the trial succeeds
    OUT/<folder>/part-<gen>-<model>-nf<x>.parquet  many committed trials, merged by ``sweep compact``

A trial's worker writes its files in that order, each atomically (``.<name>.tmp-<uuid>`` then a
rename; pyarrow skips names that start with "." or "_"), so a crash leaves no visible partial file.
A trial is *done* exactly when its ``trials/`` file exists and opens (trials written before learning
curves have no ``epochs/`` file and stay done): a confusion file without one is an interrupted trial, rerun and overwritten under the same name. File names derive from the
trial_id, so a retried or repeated trial replaces its files instead of duplicating rows. The
schemas are declared in ``sweep.contract``. Compaction (``sweep.distributed.compact``) later merges
committed trials into a few ``part-*`` files per folder. Reading what is done, compacted units
included, and the clean-ups a driver makes before it starts live in ``sweep.distributed.scan``.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep.contract import (CONFUSION_SCHEMA, EPOCH_COUNT_COLUMNS, EPOCHS_SCHEMA, FAILED_DIR, PROBS_SCHEMA,
                            RESULT_DIRS, TRIALS_SCHEMA, results_folder_around)
from sweep.distributed import fault_hooks

DIRS = RESULT_DIRS  # confusion, probs, epochs, trials

# ---- where OUT lives --------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """OUT resolved to a pyarrow filesystem and a root path on it."""

    uri: str  # as given (local paths made absolute), e.g. "/home/me/results/quick" or "s3://b/p"
    fs: pafs.FileSystem
    root: str  # path on fs, no trailing slash

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])


def open_output(out: str) -> Output:
    """Resolve OUT: a local/NFS path (made absolute) or a URI pyarrow understands (s3://, gs://, ...)."""
    if not isinstance(out, str) or not out.strip():
        raise ValueError(f"output location must be a non-empty path or URI, got {out!r}")
    if "://" not in out:
        root = os.path.abspath(os.path.expanduser(out))
        return Output(uri=root, fs=pafs.LocalFileSystem(), root=root)
    try:
        fs, root = pafs.FileSystem.from_uri(out)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise ValueError(f"cannot use output location {out!r}: {exc}") from None
    return Output(uri=out.rstrip("/"), fs=fs, root=root.rstrip("/"))


def check_not_inside_results(out: Output) -> None:
    """Refuse an OUT inside another sweep's data folders: its files would be read as that sweep's."""
    if not out.is_local:
        return
    around = results_folder_around(out.root)
    if around is not None:
        raise ValueError(f"--out {out.root} is inside the {around[1]}/ folder of the results folder {around[0]}; "
                         "its files would break that sweep's readers: choose a folder outside it")


class OutputNotWritableError(ValueError):
    """OUT (or a folder in it) cannot be written: read-only, not ours, or full. Bad input: exit 2."""


def check_writable(out: Output) -> None:
    """Refuse, before anything starts, an OUT whose files could not be written.

    Writes and removes a hidden probe file in OUT and in each result folder that already exists
    (a read-only ``trials/`` in a writable OUT fails every trial otherwise). Local paths only:
    object stores have no cheap, side-effect-free check, and their errors surface per trial.
    """
    if not out.is_local:
        return
    for folder in [out.root] + [out.path(d) for d in (*DIRS, FAILED_DIR) if os.path.isdir(out.path(d))]:
        probe = os.path.join(folder, f".write-probe-{uuid.uuid4().hex}")
        try:
            with open(probe, "wb") as fh:
                fh.write(b"probe")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputNotWritableError(
                f"cannot write to {folder}: {exc.strerror or exc}; free space or choose a writable --out "
                "(nothing was started)") from None
        finally:
            try:
                os.unlink(probe)
            except OSError:
                pass


def write_bytes_atomic(out: Output, rel_path: str, data: bytes) -> None:
    """Write OUT/rel_path so that readers see the whole file or nothing: temp name, then rename."""
    directory, name = rel_path.rsplit("/", 1) if "/" in rel_path else ("", rel_path)
    final = out.path(rel_path)
    tmp = out.path(*([directory] if directory else []), f".{name}.tmp-{uuid.uuid4().hex}")
    if out.is_local:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            with open(tmp, "wb") as fh:
                fault_hooks.write(fh, rel_path, data)
                fh.flush()
                os.fsync(fh.fileno())  # the bytes are on disk before the name is
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)  # a full or read-only disk may refuse this too: the name is hidden anyway
            except OSError:
                pass
            raise
        return
    out.fs.create_dir(os.path.dirname(final), recursive=True)
    with out.fs.open_output_stream(tmp) as fh:
        fault_hooks.write(fh, rel_path, data)
    out.fs.move(tmp, final)  # object stores: the final object appears whole (PUT is atomic)


def list_folder(out: Output, directory: str) -> list[pafs.FileInfo]:
    """What OUT/directory holds (files, hidden ones included); empty when the folder does not exist."""
    try:
        return out.fs.get_file_info(pafs.FileSelector(out.path(directory), allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return []


def delete_quietly(out: Output, path: str) -> bool:
    """Delete one file of OUT; True when deleted, False when it was not there or the filesystem refused
    (the clean-ups that call this leave what a read-only disk keeps to the next run)."""
    try:
        out.fs.delete_file(path)
        return True
    except OSError:  # FileNotFoundError included; a read-only disk leaves it to the next run
        return False


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


# ---- one trial's tables -----------------------------------------------------------------------
def _key_columns(result: Any, experiment: str, rows: int) -> dict[str, list]:
    c = result.config
    values = {
        "experiment": experiment, "trial_id": c.trial_id, "dataset": c.dataset, "model": c.model,
        "noise_mode": c.noise_mode, "noise_fraction": float(c.noise_fraction),
        "realized_noise": float(result.realized_noise), "train_size": int(result.train_size),
        "train_fraction": float(result.train_fraction), "seed": int(c.seed),
    }
    return {k: [v] * rows for k, v in values.items()}


def confusion_table(result: Any, experiment: str) -> pa.Table:
    """All K x K cells of the trial's confusion matrix (zeros included), row-major: true, then pred."""
    k = len(result.classes)
    confusion = np.asarray(result.confusion, dtype=np.int64)
    if confusion.shape != (k, k):
        raise ValueError(f"confusion matrix must be {k} x {k} for {k} classes, got shape {confusion.shape}")
    cols = _key_columns(result, experiment, k * k)
    cols["true_class"] = [cls for cls in result.classes for _ in range(k)]
    cols["pred_class"] = list(result.classes) * k
    cols["count"] = confusion.reshape(-1).tolist()
    return pa.Table.from_pydict(cols, schema=CONFUSION_SCHEMA)


def trials_table(result: Any, experiment: str, *, started_at: datetime, placement: dict[str, Any],
                 attempt: int = 1, finished_at: datetime | None = None) -> pa.Table:
    """The trial's one row: key columns, what happened, provenance (versions, full config, placement)."""
    c = result.config
    versions = result.versions or {}
    size = c.train_size
    cols = _key_columns(result, experiment, 1)
    cols.update({
        "accuracy": [float(result.accuracy)], "test_size": [int(result.test_size)],
        "epochs": [int(result.epochs)], "train_seconds": [float(result.train_seconds)],
        "seconds": [float(result.seconds)], "device": [str(result.device)],
        **{f"{lib}_version": [versions.get(lib)] for lib in ("torch", "torchvision", "numpy", "python", "sweep")},
        "finished_at": [finished_at or datetime.now(timezone.utc)], "started_at": [started_at],
        "train_size_requested": [float("nan") if size is None else float(size)],
        "subset_mode": [c.subset_mode],
        "final_train_loss": [float(getattr(result, "final_train_loss", float("nan")))],
        "hostname": [str(placement.get("hostname", ""))], "node_ip": [str(placement.get("node_ip", ""))],
        "node_id": [str(placement.get("node_id", ""))], "worker_pid": [int(placement.get("pid", os.getpid()))],
        "attempt": [int(attempt)], "config_json": [json.dumps(c.to_dict(), sort_keys=True)],
        # A duck-typed result from before step budgets (tests, older callers) records them as unknown.
        "steps": [getattr(result, "steps", None)],
        "epochs_trained": [float(getattr(result, "epochs_trained", result.epochs))], "steps_requested": [c.steps],
    })
    return pa.Table.from_pydict(cols, schema=TRIALS_SCHEMA)


def probs_table(result: Any, experiment: str) -> pa.Table:
    """One row per test example: its label, the prediction and the softmax vector."""
    probs = np.asarray(result.probs, dtype=np.float32)
    labels = np.asarray(result.test_labels, dtype=np.int64)
    classes = np.asarray(result.classes, dtype=object)
    n = len(labels)
    if probs.shape != (n, len(classes)):
        raise ValueError(f"probs must be (test_size, K) = ({n}, {len(classes)}), got shape {probs.shape}")
    cols: dict[str, Any] = _key_columns(result, experiment, n)
    cols["example"] = np.arange(n, dtype=np.int64)
    cols["true_class"] = classes[labels].tolist()
    cols["pred_class"] = classes[probs.argmax(axis=1)].tolist()
    cols["probs"] = pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), probs.shape[1]).cast(
        pa.list_(pa.float32()))
    return pa.Table.from_pydict(cols, schema=PROBS_SCHEMA)


def epochs_table(result: Any, experiment: str) -> pa.Table:
    """The trial's learning curves: one row per (epoch, true class), epochs then classes in order."""
    curves = getattr(result, "curves", ())
    k = len(result.classes)
    for stats in curves:
        if stats.counts.shape[0] != k:
            raise ValueError(f"learning-curve counts must have {k} rows (one per class), got {stats.counts.shape[0]}")
    rows = len(curves) * k
    cols: dict[str, Any] = _key_columns(result, experiment, rows)
    cols["epoch"] = np.repeat([s.epoch for s in curves], k).astype(np.int64)
    cols["true_class"] = list(result.classes) * len(curves)
    counts = np.concatenate([s.counts for s in curves]).astype(np.int64) if curves else np.zeros((0, len(EPOCH_COUNT_COLUMNS)), np.int64)
    for i, name in enumerate(EPOCH_COUNT_COLUMNS):
        cols[name] = counts[:, i]
    cols["loss_sum"] = np.concatenate([s.loss_sum for s in curves]).astype(np.float64) if curves else []
    for name in ("test_examples", "test_correct"):  # null where the epoch's test set was not scored
        values: list[int | None] = []
        for stats in curves:
            per_class = getattr(stats, name)
            values += [None] * k if per_class is None else [int(v) for v in per_class]
        cols[name] = values
    return pa.Table.from_pydict(cols, schema=EPOCHS_SCHEMA)


def write_trial(out: Output, result: Any, experiment: str, *, started_at: datetime,
                placement: dict[str, Any] | None = None, attempt: int = 1) -> None:
    """Write one finished trial: confusion, probs, epochs, then the trials row (the commit marker).

    Called by the trial's own worker. Idempotent: a rerun of the same trial replaces its files.
    """
    trial_id = result.config.trial_id
    written = []
    try:
        for name, table in (("confusion", confusion_table(result, experiment)),
                            ("probs", probs_table(result, experiment) if result.probs is not None else None),
                            ("epochs", epochs_table(result, experiment) if getattr(result, "curves", ()) else None)):
            if table is not None:
                write_bytes_atomic(out, f"{name}/{trial_id}.parquet", _parquet_bytes(table))
                written.append(name)
        row = trials_table(result, experiment, started_at=started_at, placement=placement or {}, attempt=attempt)
        write_bytes_atomic(out, f"trials/{trial_id}.parquet", _parquet_bytes(row))
    except BaseException:
        # No commit marker, so no result: take back what this attempt made visible, so that
        # pd.read_parquet("OUT/confusion") never holds rows of a trial that is not in trials/.
        for name in written:
            delete_quietly(out, out.path(name, f"{trial_id}.parquet"))
        raise
    clear_failed(out, trial_id)


# ---- failures ---------------------------------------------------------------------------------
def write_failed(out: Output, trial_id: str, *, key: dict[str, Any], error: str, attempt: int) -> None:
    """Record a trial's latest failure (JSON, replaced by each new failure, removed on success)."""
    record = {"trial_id": trial_id, "key": key, "error": error, "attempt": attempt,
              "failed_at": datetime.now(timezone.utc).isoformat()}
    write_bytes_atomic(out, f"{FAILED_DIR}/{trial_id}.json", json.dumps(record, indent=1).encode())


def clear_failed(out: Output, trial_id: str) -> None:
    delete_quietly(out, out.path(FAILED_DIR, f"{trial_id}.json"))


def read_failed(out: Output) -> dict[str, dict[str, Any]]:
    """trial_id -> the failure record, for every trial with one (done or not)."""
    records = {}
    for info in list_folder(out, FAILED_DIR):
        if info.base_name.endswith(".json") and not info.base_name.startswith((".", "_")):
            try:
                with out.fs.open_input_stream(info.path) as fh:
                    records[info.base_name[:-5]] = json.loads(fh.read())
            except (OSError, ValueError):
                continue  # an unreadable record is only a note; the trial is rerun either way
    return records
