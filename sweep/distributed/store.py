"""The output store: OUT on a filesystem, a trial's files written atomically, and what is done.

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
committed trials into a few ``part-*`` files per folder; the readers here count a trial done when it
is in a per-trial ``trials/`` file or in a complete, readable compacted unit.
"""

from __future__ import annotations

import io
import json
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep.contract import (COMPACTED_NAME, COMPACTION_JOURNAL, CONFUSION_SCHEMA, EPOCH_COUNT_COLUMNS,
                            EPOCHS_SCHEMA, FAILED_DIR, PROBS_SCHEMA, RESULT_DIRS, TRIALS_SCHEMA,
                            results_folder_around)
from sweep.distributed import fault_hooks

DIRS = RESULT_DIRS  # confusion, probs, epochs, trials
PARTS = tuple(d for d in DIRS if d != "trials")  # a trial's files before its commit marker

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


def trials_with_probs(out: Output) -> frozenset[str]:
    """Trial ids with per-example probabilities in ``OUT/probs/`` (kept when their run asked for them)."""
    return frozenset(_visible_ids(out, "probs")).union(*_compacted_ids(out, "probs"))


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
            _delete_quietly(out, out.path(name, f"{trial_id}.parquet"))
        raise
    clear_failed(out, trial_id)


def _delete_quietly(out: Output, path: str) -> bool:
    try:
        out.fs.delete_file(path)
        return True
    except OSError:  # FileNotFoundError included; a read-only disk leaves it to the next run
        return False


def remove_uncommitted(out: Output) -> int:
    """Delete confusion/probs/epochs files of trials without a ``trials/`` row: left by a trial that was
    interrupted (killed driver or node) between its writes. The trial runs again and rewrites
    them; until then they would show in ``pd.read_parquet("OUT/confusion")``. Call only while no
    trial of OUT runs (holding OUT's lock). Returns how many files were removed."""
    committed = set(_visible_ids(out, "trials")).union(*_compacted_ids(out, "trials"))
    return sum(_delete_quietly(out, path) for directory in PARTS
               for tid, path in _visible_ids(out, directory).items() if tid not in committed)


# ---- failures ---------------------------------------------------------------------------------
def write_failed(out: Output, trial_id: str, *, key: dict[str, Any], error: str, attempt: int) -> None:
    """Record a trial's latest failure (JSON, replaced by each new failure, removed on success)."""
    record = {"trial_id": trial_id, "key": key, "error": error, "attempt": attempt,
              "failed_at": datetime.now(timezone.utc).isoformat()}
    write_bytes_atomic(out, f"{FAILED_DIR}/{trial_id}.json", json.dumps(record, indent=1).encode())


def clear_failed(out: Output, trial_id: str) -> None:
    _delete_quietly(out, out.path(FAILED_DIR, f"{trial_id}.json"))


def read_failed(out: Output) -> dict[str, dict[str, Any]]:
    """trial_id -> the failure record, for every trial with one (done or not)."""
    records = {}
    for info in _list(out, FAILED_DIR):
        if info.base_name.endswith(".json") and not info.base_name.startswith((".", "_")):
            try:
                with out.fs.open_input_stream(info.path) as fh:
                    records[info.base_name[:-5]] = json.loads(fh.read())
            except (OSError, ValueError):
                continue  # an unreadable record is only a note; the trial is rerun either way
    return records


# ---- reading what is done ---------------------------------------------------------------------
@dataclass(frozen=True)
class DoneScan:
    done: frozenset[str]  # trial_ids whose trials row and confusion file both read
    corrupt: tuple[str, ...]  # paths (on OUT's filesystem) of result files that do not read as Parquet
    stray: tuple[str, ...] = ()  # paths of files in result folders that no sweep writes (notes, swap files)


_RESULT_NAME = re.compile(r"[0-9a-f]{16}\.parquet")  # <trial_id>.parquet, as contract.trial_id names them


def _stray(out: Output) -> list[str]:
    """Files in OUT's result folders that are neither a trial's file nor hidden (pyarrow skips names
    starting with '.' or '_'; anything else there breaks pd.read_parquet of the folder)."""
    found = []
    for directory in DIRS:
        for info in _list(out, directory):
            name = info.base_name
            if name.startswith((".", "_")) or (info.type == pafs.FileType.File and (
                    _RESULT_NAME.fullmatch(name) or COMPACTED_NAME.fullmatch(name))):
                continue
            found.append(info.path)
    return found


def _list(out: Output, directory: str) -> list[pafs.FileInfo]:
    try:
        return out.fs.get_file_info(pafs.FileSelector(out.path(directory), allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _visible_ids(out: Output, directory: str) -> dict[str, str]:
    return {
        info.base_name[: -len(".parquet")]: info.path
        for info in _list(out, directory)
        if info.type == pafs.FileType.File and _RESULT_NAME.fullmatch(info.base_name)
    }


def _compacted(out: Output, directory: str) -> dict[str, str]:
    """Compacted unit files of ``directory``: file name -> path."""
    return {info.base_name: info.path for info in _list(out, directory)
            if info.type == pafs.FileType.File and COMPACTED_NAME.fullmatch(info.base_name)}


def _ids_in(out: Output, path: str, *, validate: bool = False) -> frozenset[str] | None:
    """The trial ids in a compacted file (reading every column with ``validate``); None when it does not read."""
    try:
        with out.fs.open_input_file(path) as fh:
            table = pq.ParquetFile(fh).read(columns=None if validate else ["trial_id"], use_threads=False)
        return frozenset(pc.unique(table.column("trial_id")).to_pylist())
    except Exception:  # as _opens: a unit that does not read holds no result
        return None


def _compacted_ids(out: Output, directory: str) -> list[frozenset[str]]:
    return [ids or frozenset() for ids in (_ids_in(out, p) for p in _compacted(out, directory).values())]


def _opens(out: Output, path: str) -> bool:
    """True when the file reads as Parquet to its last value: footer, then every data page (a file
    whose pages are damaged but whose footer is intact fails here too, not in the reader later)."""
    try:
        with out.fs.open_input_file(path) as fh:
            pq.ParquetFile(fh).read(use_threads=False)
        return True
    except Exception:  # any failure to read means "not a result": the trial is rerun
        return False


def scan_done(out: Output, *, validate: bool = True) -> DoneScan:
    """Which trials are done: a ``trials/`` file exists (the marker) and, if validating, it and the
    trial's confusion file read as Parquet. Files that do not read are reported in ``corrupt``,
    files that no sweep writes in ``stray``."""
    trials = _visible_ids(out, "trials")
    if not validate:
        return DoneScan(frozenset(trials).union(*_compacted_ids(out, "trials")), ())
    files = {d: _visible_ids(out, d) for d in DIRS}
    units = {d: _compacted(out, d) for d in DIRS}
    to_check = [p for d in DIRS for p in files[d].values()]
    unit_paths = [p for d in DIRS for p in units[d].values()]
    with ThreadPoolExecutor(max_workers=16 if not out.is_local else 4) as pool:
        ok = dict(zip(to_check, pool.map(lambda p: _opens(out, p), to_check)))
        unit_ids = dict(zip(unit_paths, pool.map(lambda p: _ids_in(out, p, validate=True), unit_paths)))
    corrupt = [p for p, good in ok.items() if not good] + [p for p, ids in unit_ids.items() if ids is None]
    optional = [d for d in DIRS if d not in ("trials", "confusion")]  # probs (and any later folder)
    done = {
        tid for tid, path in trials.items()
        if ok[path] and tid in files["confusion"] and ok[files["confusion"][tid]]
        and all(ok.get(files[d].get(tid, ""), True) for d in optional)
    }
    # A unit counts whole or not at all: its trials and confusion files present, each of its files read.
    # Its other files without those two are corrupt, unless a compaction is being finished right now.
    pending = out.fs.get_file_info(out.path(COMPACTION_JOURNAL)).type == pafs.FileType.File
    for name in {n for d in DIRS for n in units[d]}:
        paths = [units[d][name] for d in DIRS if name in units[d]]
        if name in units["trials"] and name in units["confusion"]:
            if all(unit_ids[p] is not None for p in paths):
                done |= unit_ids[units["trials"][name]]
        elif not pending:
            corrupt += [p for p in paths if unit_ids[p] is not None]
    return DoneScan(frozenset(done), tuple(sorted(corrupt)), tuple(sorted(_stray(out))))


def read_trial_rows(out: Output, trial_ids: list[str], *, columns: list[str]) -> list[dict[str, Any]]:
    """The ``trials/`` rows (only ``columns``) of ``trial_ids``; a file that does not open is skipped
    (scan_done reports it)."""

    def read(path: str, wanted: set[str] | None = None) -> list[dict[str, Any]]:
        try:
            with out.fs.open_input_file(path) as fh:
                table = pq.read_table(fh, columns=list(dict.fromkeys([*columns, "trial_id"])))
            if wanted is not None:  # a compacted file: only the asked-for trials
                table = table.filter(pc.is_in(table.column("trial_id"), pa.array(sorted(wanted), pa.string())))
            return table.select(columns).to_pylist()
        except Exception:
            return []

    single = _visible_ids(out, "trials")
    rest = set(trial_ids) - set(single)
    with ThreadPoolExecutor(max_workers=16 if not out.is_local else 4) as pool:
        rows = [row for rows in pool.map(read, [single[t] for t in trial_ids if t in single]) for row in rows]
    for path in _compacted(out, "trials").values() if rest else ():
        rows += read(path, rest)
    return rows


def quarantine(out: Output, paths: list[str] | tuple[str, ...], *, also_ids: bool = True) -> list[str]:
    """Move corrupt files (and, with ``also_ids``, the same trial's other files) to OUT/_corrupt/,
    which readers skip, so the dataset opens again and the trial counts as not done. A compacted
    file takes its whole unit along (the same name in every folder): its trials are then not done.
    Returns moves."""
    ids = {p.rsplit("/", 1)[-1].removesuffix(".parquet") for p in paths}
    targets = set(paths)
    for directory in DIRS:
        targets.update(p for name, p in _compacted(out, directory).items() if name.removesuffix(".parquet") in ids)
        if also_ids:
            targets.update(p for tid, p in _visible_ids(out, directory).items() if tid in ids)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    moved = []
    for path in sorted(targets):
        directory = path.rsplit("/", 2)[-2]
        dest = out.path("_corrupt", stamp, directory, path.rsplit("/", 1)[-1])
        out.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
        out.fs.move(path, dest)
        moved.append(dest)
    return moved


def remove_stale_temp_files(out: Output, *, older_than_s: float = 60.0) -> int:
    """Delete ``.<name>.tmp-*`` files a crashed writer left behind (invisible to readers anyway)."""
    now = datetime.now(timezone.utc).timestamp()
    removed = 0
    for directory in (*DIRS, FAILED_DIR):
        for info in _list(out, directory):
            if info.base_name.startswith(".") and ".tmp-" in info.base_name:
                mtime = info.mtime.timestamp() if info.mtime else 0.0
                if now - mtime > older_than_s:
                    try:
                        out.fs.delete_file(info.path)
                        removed += 1
                    except OSError:
                        pass
    return removed
