"""The sweep driver: what `sweep run` and `sweep status` do, as two functions a notebook can call.

:func:`run_sweep` takes a spec and an output location and does the whole run: every check that can
refuse bad input before anything changes (the spec against OUT's experiment, the grid against the
dataset, OUT writable, the lock), then the bookkeeping of OUT (corrupt files aside, interrupted
trials' files removed, ``experiment.json``), then hands the missing trials to the Tune layer and
returns what became of them. :func:`sweep_status` reads OUT and says, per grid cell, what is done.
Neither prints results: messages go to ``log``; the command line (``sweep.cli``) formats outcomes.

Bad input raises ValueError / TypeError / FileNotFoundError with one line, before anything in OUT
is touched.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sweep.distributed.compact import compact_after_run, finish_interrupted
from sweep.distributed.experiment_record import (check_experiment, check_sizes_against_out, read_experiment,
                                                 record_experiment, stored_spec)
from sweep.distributed.lock import OutputLock
from sweep.distributed.ray_connect import check_reachable, connect_ray, probe_ray
from sweep.distributed.scan import (quarantine, remove_stale_temp_files, remove_uncommitted, scan_done,
                                    trials_with_probs)
from sweep.distributed.spec import ExperimentSpec
from sweep.distributed.store import Output, check_not_inside_results, check_writable, open_output, read_failed
from sweep.distributed.trackers import TRACKERS, resolve_trackers
from sweep.distributed.tune_layer import SweepOutcome, concurrent_slots, fit_to_local_cluster, run_tune

Log = Callable[[str], None]


def _log_to_stderr(message: str) -> None:
    print(f"sweep: {message}", file=sys.stderr, flush=True)


def resolve_address(address: str | None) -> str | None:
    """The Ray to use: ``address``, else $RAY_ADDRESS; None (or "local") starts a local Ray."""
    if address is not None and not address.strip():  # as `--out ""`: a mistake, not a request for the default
        raise ValueError("--address must be host:port, ray://host:port, auto or local, got ''")
    address = address or os.environ.get("RAY_ADDRESS") or None
    return None if address == "local" else address


@dataclass(frozen=True)
class RunOptions:
    """How a run is carried out, not what it computes: none of these is part of the experiment or a trial id,
    so any run of a sweep may change them. :func:`run_sweep` and ``run_until_settled`` take the same object.
    """

    address: str | None = None  # Ray cluster to join (host:port, ray://host:port, auto); None: $RAY_ADDRESS, else local
    num_cpus: int | None = None  # CPUs of a local Ray (None: all cores); ignored with an address
    dashboard: bool = False  # start Ray's dashboard with a local Ray, bound to 127.0.0.1:8265
    verbose: bool = False  # Ray's and Tune's own logs and tables instead of one progress line
    progress: bool = True  # draw the live progress line on stderr
    adopt: bool = False  # take over an OUT whose experiment.json is gone, when every trial in it is spec's
    trackers: str | Sequence[str] = ()  # "tensorboard", "mlflow", "wandb", or a comma list (sweep.distributed.trackers)
    compact: bool = True  # merge the per-trial files at the end once there are many (compact.AUTO_MIN_TRIALS)


def run_sweep(spec: ExperimentSpec, out: str, options: RunOptions = RunOptions(), *,
              log: Log | None = None) -> SweepOutcome:
    """Run every trial of ``spec`` whose result OUT does not hold yet, and say what became of them.

    ``options`` (:class:`RunOptions`) say where and how: a Ray cluster to join, else a local Ray
    started and shut down here. Messages (what will run, on which Ray, corrupt files moved aside) go
    to ``log``, one line each. A local run checks the grid against the dataset first (and fills the
    dataset cache the workers then read); a cluster's driver does not read the dataset. ``adopt``
    takes over an OUT whose ``experiment.json`` is gone, when every trial in it belongs to ``spec``'s
    experiment; trackers log every trial's reports as well. Compaction is skipped when the run was
    interrupted.
    """
    from sweep.engine.malloc_tuning import enabled as malloc_tuning_enabled

    log = log or _log_to_stderr
    malloc_tuning_enabled()  # a bad SWEEP_KEEP_FREED_MEMORY stops here, before anything is started
    output = open_output(out)
    trackers = resolve_trackers(options.trackers)  # an unknown or uninstalled tracker stops here
    check_not_inside_results(output)
    check_experiment(output, spec, adopt=options.adopt)
    address = resolve_address(options.address)
    verbose, dashboard, num_cpus = options.verbose, options.dashboard, options.num_cpus
    num_train = None
    if address:
        check_reachable(address)
        probe_ray(address)
    else:
        from sweep.engine.datasets import load_dataset

        dataset = load_dataset(spec.dataset, data_dir=spec.base.data_dir)
        spec.check_fits(dataset)
        num_train = dataset.num_train
    created = _first_missing(output.root) if output.is_local else None
    lock = OutputLock(output)
    started_ray = False
    try:
        if address:  # join before OUT is touched: a cluster that does not answer costs nothing in OUT
            started_ray = connect_ray(address, verbose=verbose, dashboard=dashboard, num_cpus=num_cpus)
        lock.acquire()
        check_writable(output)
        if lock.held:  # a compaction that died after its commit point is finished before OUT is read
            finish_interrupted(output, log)
        scan = scan_done(output)
        check_sizes_against_out(output, spec, scan.done, num_train=num_train)
        todo = [c for c in spec.trials() if c.trial_id not in scan.done]
        fitted, note = spec, None  # OUT records the spec as asked for, not as fitted to this machine
        if todo:
            if not address:
                started_ray = connect_ray(None, verbose=verbose, dashboard=dashboard, num_cpus=num_cpus)
            if not address:  # a cluster may have no GPU node yet: its autoscaler adds them on demand
                import ray

                fitted, note = fit_to_local_cluster(spec, ray.cluster_resources())
        # Every check passed: from here on OUT changes.
        for path in scan.corrupt:
            log(f"{path} does not read as Parquet; moved to _corrupt/, its trial will be rerun")
        if scan.corrupt:
            quarantine(output, scan.corrupt)
        for path in scan.stray:
            log(f"{path} is not a result file (readers of the folder would fail on it); moved to _corrupt/")
        if scan.stray:
            quarantine(output, scan.stray, also_ids=False)
        remove_stale_temp_files(output)
        if lock.held:  # no trial of OUT runs now: an interrupted trial's files go, it reruns
            remove_uncommitted(output)
        skipped = spec.num_trials - len(todo)
        log(f"{spec.name}: {spec.num_trials} trials, {skipped} already done, {len(todo)} to run -> {output.uri}")
        record_experiment(output, spec)
        if spec.keep_probs and skipped:
            _log_done_without_probs(output, spec, todo, log)
        if not todo:
            log("nothing to do")
            return SweepOutcome(out=output.uri, total=spec.num_trials, skipped=skipped, ran=0, succeeded=0)
        if note:
            log(f"note: {note}")
        _log_cluster(fitted, local=not address, log=log)
        if trackers:
            log("logging every trial to " + "; ".join(f"{n}: {TRACKERS[n].what}" for n in trackers))
        outcome = run_tune(fitted, output, todo, skipped=skipped, verbose=verbose, progress=options.progress,
                           trackers=trackers)
        if options.compact and lock.held and not outcome.unfinished:
            compact_after_run(output, log)
        return outcome
    except BaseException:
        lock.release()
        if created:
            _remove_if_empty(output.root, created)  # we created OUT only to lock it: no trace of a failed start
        raise
    finally:
        lock.release()
        if started_ray:
            import ray

            ray.shutdown()


def _log_done_without_probs(output: Output, spec: ExperimentSpec, todo: list, log: Log) -> None:
    """keep_probs applies to the trials a run trains: done trials are not rerun for their probabilities."""
    pending = {c.trial_id for c in todo}
    done = [c.trial_id for c in spec.trials() if c.trial_id not in pending]
    missing = len(set(done) - trials_with_probs(output))
    if missing:
        log(f"note: {missing} of the {len(done)} trials already done have no per-example probabilities "
            "(they ran without keep_probs) and are not rerun for them; `sweep report` uses the trials that "
            "have them. For probabilities of every trial, run into a new --out")


def _log_cluster(spec: ExperimentSpec, *, local: bool, log: Log) -> None:
    import ray

    resources = ray.cluster_resources()
    slots = concurrent_slots(spec, resources)
    log(f"Ray {'local' if local else 'cluster'} with {resources.get('CPU', 0):g} CPUs, "
        f"{resources.get('GPU', 0):g} GPUs; {spec.cpus:g} CPU + {spec.gpus:g} GPU per trial, "
        f"{slots or 'waiting for'} at a time")


def _first_missing(path: str) -> str | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    while not os.path.exists(path):
        missing, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_if_empty(root: str, created: str) -> None:
    """Remove the folders from ``root`` up to ``created`` that this run made and left empty (from the
    deepest one that exists: a path too long for the OS stops part way down)."""
    path = root
    while not os.path.isdir(path) and path != created and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    while True:
        try:
            os.rmdir(path)
        except OSError:
            return
        if path == created:
            return
        path = os.path.dirname(path)


# ---- status -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellStatus:
    model: str
    noise_fraction: float
    train_size: int | float
    seeds: int  # seeds in the grid
    done: int
    missing: int
    failed: int


@dataclass(frozen=True)
class SweepStatus:
    """What OUT holds of a spec's grid: done, missing and failed trials per cell."""

    spec: ExperimentSpec
    uri: str
    cells: tuple[CellStatus, ...]
    outside: int  # finished trials in OUT that are not in this grid
    failed: dict[str, dict[str, Any]]  # trial_id -> failure record, for the grid's trials not done
    corrupt: tuple[str, ...]  # result files that do not read as Parquet
    stray: tuple[str, ...]  # files in result folders that no sweep writes

    @property
    def totals(self) -> tuple[int, int, int]:
        return (sum(c.done for c in self.cells), sum(c.missing for c in self.cells),
                sum(c.failed for c in self.cells))


def sweep_status(out: str, spec: ExperimentSpec | None = None, *, seeds: int | None = None) -> SweepStatus:
    """Read OUT (nothing is written) and count, per cell of ``spec``'s grid (default: the spec of
    OUT's latest run, with ``seeds`` 0..N-1 when given), the seeds done, missing and failed."""
    output = open_output(out)
    if spec is not None:
        if read_experiment(output) is not None:  # as `sweep run` would: another experiment's grid says nothing here
            check_experiment(output, spec, advice="leave out SPEC to check against OUT's own spec")
    else:
        spec = stored_spec(output)
        if spec is None:
            raise FileNotFoundError(f"{output.uri} holds no sweep (no experiment.json); give a SPEC to check against")
    spec = spec.with_overrides(seeds=seeds)
    scan = scan_done(output)
    records = read_failed(output)
    cells, grid_ids = [], set()
    for model, noise, size in spec.cells():
        ids = [spec.trial_config(model, noise, size, seed).trial_id for seed in spec.seeds]
        grid_ids.update(ids)
        done = sum(i in scan.done for i in ids)
        failed = sum(i not in scan.done and i in records for i in ids)
        cells.append(CellStatus(model, noise, size, len(ids), done, len(ids) - done - failed, failed))
    stuck = {i: r for i, r in records.items() if i in grid_ids and i not in scan.done}
    return SweepStatus(spec=spec, uri=output.uri, cells=tuple(cells), outside=len(scan.done - grid_ids),
                       failed=stuck, corrupt=scan.corrupt, stray=scan.stray)


__all__ = ["run_sweep", "RunOptions", "sweep_status", "SweepOutcome", "SweepStatus", "CellStatus"]
