"""Compaction: merge committed trials' per-trial files into a few large files, without breaking exactly-once.

At 100,000 trials OUT holds 200,000+ small Parquet files, and opening them costs minutes for every
reader. Compaction merges committed trials into *units*: one file per (model, noise fraction) in
each result folder, ``OUT/<folder>/part-<gen>-<model>-nf<x>.parquet`` (``gen`` counts compactions),
holding the same columns as the per-trial files, trials sorted by train fraction (descending),
seed and trial id, each trial's rows in their written order. The files stay flat in their folder
(no ``model=x/`` subfolders: pyarrow's hive discovery then fails to merge the partition columns with
the same columns stored in the files), so ``pd.read_parquet("OUT/confusion")`` reads per-trial and
compacted files alike with the contract's types, and a filter on ``model`` or ``noise_fraction``
skips the other units by their row-group statistics (one value each) without reading their pages.

The protocol, under OUT's lock (see docs/reliability.md, "Compaction"):

1. every unit's files are written under hidden names (``.part-....parquet.staged``), fsynced;
2. a journal, ``OUT/.compaction-journal.json``, naming each unit's staged and final files and the
   trial ids it covers, is written atomically: the commit point;
3. each staged file is renamed to its final name;
4. the covered trials' per-trial files are deleted;
5. the journal is deleted.

A crash before 2 leaves hidden staged files only (removed by the next compaction); a crash after 2
is rolled forward by the next ``sweep run`` or ``sweep compact`` (:func:`finish_interrupted`). At
every point each trial has its per-trial files or its unit's files visible (both, between 3 and
5), so it counts as done throughout and no row is lost; after the roll-forward no row is doubled.
"""

from __future__ import annotations

import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from sweep.contract import COMPACTED_NAME, COMPACTION_JOURNAL, RESULT_DIRS
from sweep.distributed.scan import compacted_files, compacted_trial_ids, trial_files
from sweep.distributed.store import Output, delete_quietly, list_folder, write_bytes_atomic

AUTO_MIN_TRIALS = 1_000  # `sweep run` compacts at its end once this many trials sit in per-trial files
ROW_GROUP_ROWS = 100_000  # per row group; about one train fraction of a 1,000-seed unit, so filters on it skip too
_BATCH = 2_000  # per-trial tables concatenated at a time (thousands of tiny tables cost memory)
Log = Callable[[str], None]


@dataclass(frozen=True)
class Compaction:
    """What one compaction did."""

    generation: int  # the gen in the unit names; 0 when nothing was compacted
    trials: int  # trials moved from per-trial files into units
    units: int  # (model, noise fraction) units written
    files_removed: int  # per-trial files deleted
    seconds: float  # wall clock


def _step(name: str) -> None:
    """A point of the protocol. Does nothing; the crash drill patches it to die there."""


def _unit_slug(model: str, noise_fraction: float) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.]+", "_", str(model))[:60] or "_"
    return f"{slug}-nf{noise_fraction:.6f}"  # fixed width: names sort in noise order, as readers list them


def _read_tables(out: Output, paths: list[str], on_batch: Callable[[int], None] | None = None) -> pa.Table:
    """The files' rows in the order given. Columns missing from some files are filled with nulls (older
    writers wrote fewer); a column whose type differs between files stops the compaction (TypeError)."""

    def read(path: str) -> pa.Table:
        try:
            with out.fs.open_input_file(path) as fh:
                # ParquetFile.read: half the cost per small file of pq.read_table (no dataset machinery)
                return pq.ParquetFile(fh).read(use_threads=False).replace_schema_metadata(None)
        except Exception as exc:  # stops the compaction before its commit point: nothing changed
            raise ValueError(f"{path} does not read as Parquet ({exc}); `sweep run` moves it to _corrupt/, "
                             "then compact again") from None

    parts = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(paths), _BATCH):
            batch = list(pool.map(read, paths[start:start + _BATCH]))
            parts.append(pa.concat_tables(batch, promote_options="default").combine_chunks())
            if on_batch:
                on_batch(min(start + _BATCH, len(paths)))
    return pa.concat_tables(parts, promote_options="default")


def _write_staged(out: Output, directory: str, name: str, table: pa.Table) -> str:
    """Write ``table`` to the hidden staged name of ``directory/name``, fsynced; returns the staged name."""
    staged = f".{name}.staged"
    path = out.path(directory, staged)
    with open(path, "wb") as fh:
        pq.write_table(table, fh, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        fh.flush()
        os.fsync(fh.fileno())
    return staged


def _journal_path(out: Output) -> str:
    return out.path(COMPACTION_JOURNAL)


def _next_generation(out: Output) -> int:
    names = [n for d in RESULT_DIRS for n in compacted_files(out, d)]
    return max((int(n.split("-")[1]) for n in names), default=0) + 1


def remove_orphaned_staged(out: Output) -> int:
    """Delete staged files that no journal names (a compaction that died before its commit point)."""
    if os.path.isfile(_journal_path(out)):
        return 0
    return sum(delete_quietly(out, info.path) for d in RESULT_DIRS for info in list_folder(out, d)
               if info.base_name.startswith(".part-") and info.base_name.endswith(".staged"))


def finish_interrupted(out: Output, log: Log | None = None) -> int:
    """Roll forward a compaction whose journal is left behind (steps 3-5); returns the trials it covered.

    Idempotent: a crash during this roll-forward is rolled forward again next time. Call under OUT's
    lock. A unit file that is neither staged nor in place (removed by hand) cannot be finished: then
    the compaction is undone instead (its placed files removed, the per-trial files kept).
    """
    path = _journal_path(out)
    if not out.is_local or not os.path.isfile(path):
        return 0
    with open(path) as fh:
        journal = json.load(fh)
    covered = _roll_forward(out, journal)
    if log:
        log(f"finished an interrupted compaction: {covered:,} trials in {len(journal['units'])} units"
            if covered else f"an interrupted compaction (generation {journal['generation']}) lost a unit file: "
            "undone, its trials stay in their per-trial files")
    return covered


def _roll_forward(out: Output, journal: dict) -> int:
    """Steps 3-5 for ``journal``: rename staged files into place, delete the covered per-trial files,
    delete the journal. Returns the trials covered (0 when undone, see finish_interrupted)."""
    moves = [(d, staged, final) for unit in journal["units"] for d, (staged, final) in unit["files"].items()]
    ids = [t for unit in journal["units"] for t in unit["trials"]]
    if any(not os.path.exists(out.path(d, s)) and not os.path.exists(out.path(d, f)) for d, s, f in moves):
        for d, staged, final in moves:
            delete_quietly(out, out.path(d, staged))
            delete_quietly(out, out.path(d, final))
        os.unlink(_journal_path(out))
        return 0
    for i, (d, staged, final) in enumerate(moves):
        if os.path.exists(out.path(d, staged)):
            os.replace(out.path(d, staged), out.path(d, final))
        if i == 0:
            _step("renamed-one")
    _step("renamed")
    for i, tid in enumerate(ids):
        for d in RESULT_DIRS:
            delete_quietly(out, out.path(d, f"{tid}.parquet"))
        if i == len(ids) // 2:
            _step("deleted-half")
    _step("deleted")
    os.unlink(_journal_path(out))
    return len(ids)


def compact(out: Output, *, min_trials: int = 1, progress: Log | None = None, log: Log | None = None) -> Compaction:
    """Merge every committed trial still in per-trial files into units (generation = previous + 1).

    Call under OUT's lock, on a local or NFS OUT. Finishes an interrupted compaction first. Only
    trials whose ``trials/`` and ``confusion/`` files both exist are taken (a corrupt one stops the
    compaction before its commit point, nothing changed: ``sweep run`` moves it aside). Does nothing
    when fewer than ``min_trials`` are waiting. ``progress`` gets a line per read batch and unit.
    """
    if not out.is_local:
        raise ValueError(f"compaction needs a local or NFS output folder (it holds OUT's lock), got {out.uri}")
    started = time.perf_counter()
    finish_interrupted(out, log)
    remove_orphaned_staged(out)
    files = {d: trial_files(out, d) for d in RESULT_DIRS}
    # A trial already in a unit is left alone (load_results then names it): a second copy would double it.
    in_units = set().union(*compacted_trial_ids(out, "trials"))
    ids = sorted((set(files["trials"]) & set(files["confusion"])) - in_units)
    if not ids or len(ids) < min_trials:
        return Compaction(0, 0, 0, 0, time.perf_counter() - started)
    generation = _next_generation(out)
    say = progress or (lambda message: None)
    say(f"reading {len(ids):,} trials' rows")
    trials = _read_tables(out, [files["trials"][t] for t in ids],
                          lambda n: say(f"trials: {n:,}/{len(ids):,} files read"))
    keys = trials.select(["model", "noise_fraction"]).to_pandas()
    keys["order"] = range(len(keys))
    sort = trials.select(["train_fraction", "seed", "trial_id"]).to_pandas()
    keys = keys.join(sort).sort_values(["model", "noise_fraction", "train_fraction", "seed", "trial_id"],
                                       ascending=[True, True, False, True, True])
    units = []
    staged_all: list[tuple[str, str]] = []
    try:
        groups = list(keys.groupby(["model", "noise_fraction"], sort=True, dropna=False))
        names: set[str] = set()
        for n, ((model, noise), group) in enumerate(groups, 1):
            name = f"part-{generation:05d}-{_unit_slug(model, noise)}.parquet"
            while name in names:  # two models that slugify alike, or noise levels equal to 6 decimals
                name = name.replace(".parquet", "-x.parquet")
            names.add(name)
            assert COMPACTED_NAME.fullmatch(name), name
            order = group["order"].to_numpy()
            unit_ids = [ids[i] for i in order]
            unit = {"name": name, "trials": unit_ids, "files": {}}
            for d in RESULT_DIRS:
                if d == "trials":
                    table = trials.take(pa.array(order))
                else:
                    paths = [files[d][t] for t in unit_ids if t in files[d]]
                    if not paths:
                        continue  # probs kept by no trial of this unit
                    table = _read_tables(out, paths)
                staged = _write_staged(out, d, name, table)
                staged_all.append((d, staged))
                unit["files"][d] = [staged, name]
                _step("staged")
            units.append(unit)
            say(f"unit {n}/{len(groups)}: {model} noise {noise:g}, {len(unit_ids):,} trials")
        journal = {"generation": generation, "units": units}
        write_bytes_atomic(out, COMPACTION_JOURNAL, json.dumps(journal).encode())  # the commit point
    except BaseException:
        if not os.path.isfile(_journal_path(out)):  # before the commit point: as if never started
            for d, staged in staged_all:
                delete_quietly(out, out.path(d, staged))
        raise
    _step("journal")
    removed = sum(t in files[d] for t in ids for d in RESULT_DIRS)
    say(f"committed; moving the units into place and removing {removed:,} per-trial files")
    _roll_forward(out, journal)
    return Compaction(generation, len(ids), len(units), removed, time.perf_counter() - started)


def compact_after_run(out: Output, log: Log) -> Compaction | None:
    """`sweep run`'s automatic compaction: once AUTO_MIN_TRIALS trials wait in per-trial files (below
    that, reading them costs under a second or two). Logs one line when it compacted."""
    if not out.is_local:
        return None
    try:
        result = compact(out, min_trials=AUTO_MIN_TRIALS, log=log)
    except Exception as exc:  # e.g. a full disk: the run's results stand, in their per-trial files
        log(f"not compacted: {' '.join(str(exc).split())}; the results are intact, `sweep compact` retries")
        return None
    if result.trials:
        log(f"compacted {result.trials:,} trials into {result.units} file(s) per result folder "
            f"(generation {result.generation}, {result.seconds:.1f} s); `sweep run --no-compact` skips this")
    return result


def compact_folder(out: str, *, progress: Log | None = None, log: Log | None = None) -> Compaction:
    """What `sweep compact OUT` does: check OUT, take its lock (refused while a sweep runs), compact."""
    from sweep.distributed.lock import OutputLock
    from sweep.distributed.store import open_output

    if "://" in out and not out.startswith("file://"):  # object stores have no lock to take (see lock.py)
        raise ValueError(f"sweep compact needs a local or NFS output folder (it takes OUT's lock), got {out}; "
                         "copy the folder to a local disk to compact it")
    output = open_output(out)
    if not os.path.isdir(output.root):
        raise FileNotFoundError(f"results folder not found: {out}")
    if not os.path.isdir(output.path("trials")) or not os.path.isdir(output.path("confusion")):
        raise ValueError(f"{out} is not a results folder: no trials/ and confusion/ inside (written by `sweep run`)")
    with OutputLock(output):
        return compact(output, progress=progress, log=log)
