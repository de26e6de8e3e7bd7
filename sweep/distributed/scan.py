"""Reading what OUT holds: which trials are done, their rows, and the clean-ups before a run.

A trial is done when its ``trials/`` file (the commit marker written last by
``sweep.distributed.store.write_trial``) exists and, when validating, it and the trial's other
files read as Parquet to their last page; or when it is in a complete, readable compacted unit
(``part-<gen>-<model>-nf<x>.parquet``, the same name in every result folder, written by
``sweep.distributed.compact``). The scan also names what would break a reader of the folders:
files that do not read (``corrupt``) and files no sweep writes (``stray``). Once every check of a
run has passed and before its trials start, the driver moves those to ``OUT/_corrupt/``
(``quarantine``) and removes leftovers of interrupted writers (``remove_stale_temp_files``, and
``remove_uncommitted`` when it holds OUT's lock). Nothing here writes a result: these functions
read, move or delete files.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweep.contract import COMPACTED_NAME, COMPACTION_JOURNAL, FAILED_DIR
from sweep.distributed.store import DIRS, Output, delete_quietly, list_folder

PARTS = tuple(d for d in DIRS if d != "trials")  # a trial's files before its commit marker


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
        for info in list_folder(out, directory):
            name = info.base_name
            if name.startswith((".", "_")) or (info.type == pafs.FileType.File and (
                    _RESULT_NAME.fullmatch(name) or COMPACTED_NAME.fullmatch(name))):
                continue
            found.append(info.path)
    return found


def trial_files(out: Output, directory: str) -> dict[str, str]:
    """Per-trial files of ``directory`` (``<trial_id>.parquet``): trial_id -> path; hidden and other files skipped."""
    return {
        info.base_name[: -len(".parquet")]: info.path
        for info in list_folder(out, directory)
        if info.type == pafs.FileType.File and _RESULT_NAME.fullmatch(info.base_name)
    }


def compacted_files(out: Output, directory: str) -> dict[str, str]:
    """Compacted unit files of ``directory``: file name -> path."""
    return {info.base_name: info.path for info in list_folder(out, directory)
            if info.type == pafs.FileType.File and COMPACTED_NAME.fullmatch(info.base_name)}


def _ids_in(out: Output, path: str, *, validate: bool = False) -> frozenset[str] | None:
    """The trial ids in a compacted file (reading every column with ``validate``); None when it does not read."""
    try:
        with out.fs.open_input_file(path) as fh:
            table = pq.ParquetFile(fh).read(columns=None if validate else ["trial_id"], use_threads=False)
        return frozenset(pc.unique(table.column("trial_id")).to_pylist())
    except Exception:  # as _opens: a unit that does not read holds no result
        return None


def compacted_trial_ids(out: Output, directory: str) -> list[frozenset[str]]:
    """The trial ids of each compacted unit file of ``directory`` (an empty set for a file that does not read)."""
    return [ids or frozenset() for ids in (_ids_in(out, p) for p in compacted_files(out, directory).values())]


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
    trials = trial_files(out, "trials")
    if not validate:
        return DoneScan(frozenset(trials).union(*compacted_trial_ids(out, "trials")), ())
    files = {d: trial_files(out, d) for d in DIRS}
    units = {d: compacted_files(out, d) for d in DIRS}
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


def trials_with_probs(out: Output) -> frozenset[str]:
    """Trial ids with per-example probabilities in ``OUT/probs/`` (kept when their run asked for them)."""
    return frozenset(trial_files(out, "probs")).union(*compacted_trial_ids(out, "probs"))


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

    single = trial_files(out, "trials")
    rest = set(trial_ids) - set(single)
    with ThreadPoolExecutor(max_workers=16 if not out.is_local else 4) as pool:
        rows = [row for rows in pool.map(read, [single[t] for t in trial_ids if t in single]) for row in rows]
    for path in compacted_files(out, "trials").values() if rest else ():
        rows += read(path, rest)
    return rows


def remove_uncommitted(out: Output) -> int:
    """Delete confusion/probs/epochs files of trials without a ``trials/`` row: left by a trial that was
    interrupted (killed driver or node) between its writes. The trial runs again and rewrites
    them; until then they would show in ``pd.read_parquet("OUT/confusion")``. Call only while no
    trial of OUT runs (holding OUT's lock). Returns how many files were removed."""
    committed = set(trial_files(out, "trials")).union(*compacted_trial_ids(out, "trials"))
    return sum(delete_quietly(out, path) for directory in PARTS
               for tid, path in trial_files(out, directory).items() if tid not in committed)


def quarantine(out: Output, paths: list[str] | tuple[str, ...], *, also_ids: bool = True) -> list[str]:
    """Move corrupt files (and, with ``also_ids``, the same trial's other files) to OUT/_corrupt/,
    which readers skip, so the dataset opens again and the trial counts as not done. A compacted
    file takes its whole unit along (the same name in every folder): its trials are then not done.
    Returns moves."""
    ids = {p.rsplit("/", 1)[-1].removesuffix(".parquet") for p in paths}
    targets = set(paths)
    for directory in DIRS:
        targets.update(p for name, p in compacted_files(out, directory).items() if name.removesuffix(".parquet") in ids)
        if also_ids:
            targets.update(p for tid, p in trial_files(out, directory).items() if tid in ids)
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
        for info in list_folder(out, directory):
            if info.base_name.startswith(".") and ".tmp-" in info.base_name:
                mtime = info.mtime.timestamp() if info.mtime else 0.0
                if now - mtime > older_than_s:
                    try:
                        out.fs.delete_file(info.path)
                        removed += 1
                    except OSError:
                        pass
    return removed
