"""The thin Ray layer: a Tune trainable around :func:`sweep.engine.trial.run_trial`, and the fits.

The driver (``sweep.distributed.driver``) works out what is left to do before Tune starts and hands
only those trials here. Each axis becomes a ``tune.grid_search``; when the missing trials are not a
full cross product (a resumed run), the grid is one ``tune.grid_search`` over the missing points.
Tune's own experiment state is scratch (a temp folder, deleted at the end): OUT is the only state
that matters, so a killed driver simply runs again.

Each trial's worker writes its own files (``sweep.distributed.store``): nothing large travels back to
the driver, and a trial that finished is on disk even if the driver dies a second later. Actors are
reused between trials (``reuse_actors``), so a worker process decodes its dataset once
(``load_dataset`` is memoized per process) and serves many trials with it. Drills inject failures
through ``sweep.distributed.fault_hooks``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import product
from typing import Any, Sequence

from sweep.distributed import fault_hooks
from sweep.distributed.spec import ExperimentSpec
from sweep.distributed.scan import scan_done
from sweep.distributed.store import Output, read_failed, write_failed, write_trial
from sweep.distributed.trackers import Trackers, trial_name
from sweep.engine.config import AXES, TrialConfig


# ---- the trainable (runs on a Ray worker) ------------------------------------------------------
def config_from_tune(tune_config: dict[str, Any]) -> TrialConfig:
    """The TrialConfig a Tune trial stands for: the shared base plus its grid point."""
    return TrialConfig(**{**tune_config["base"], **_point(tune_config)})


def _point(tune_config: dict[str, Any]) -> dict[str, Any]:
    return tune_config.get("point") or {axis: tune_config[axis] for axis in AXES}


def _placement() -> dict[str, Any]:
    import ray

    return {"hostname": socket.gethostname(), "node_ip": ray.util.get_node_ip_address(),
            "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


def epoch_metrics(stats: Any) -> dict[str, float | int]:
    """What Tune (and any logger callback) gets after each epoch: flat names, no NaN (the memorised
    share is left out of a trial without corrupted labels), never ``sweep_trial_id``, which marks
    the one report after the trial's files are written (the progress line counts it)."""
    return {k: v for k, v in stats.metrics().items() if not (isinstance(v, float) and v != v)}


def sweep_trainable(tune_config: dict[str, Any]) -> None:
    """One Tune trial: build the TrialConfig, run the pure core (reporting each epoch's learning-curve
    numbers to Tune), write the files, then report the final, written result once."""
    from ray import tune

    from sweep.distributed.store import open_output
    from sweep.engine.trial import run_trial

    if os.path.isdir(tune_config["cwd"]):
        os.chdir(tune_config["cwd"])  # relative dataset paths mean what they meant on the driver
    config = config_from_tune(tune_config)
    out = open_output(tune_config["out"])
    hooks = tune_config.get("hooks", {})
    previous = read_failed_one(out, config.trial_id)
    attempt = int(previous.get("attempt", 0)) + 1 if previous else 1
    started_at = datetime.now(timezone.utc)
    try:
        fault_hooks.before_trial(hooks, config.trial_id, config.key, attempt, record_exit=lambda: write_failed(
            out, config.trial_id, key={}, error="SWEEP_FAIL_HOW=exit", attempt=attempt))
        result = run_trial(config, on_epoch=lambda stats: tune.report(epoch_metrics(stats)))
        with fault_hooks.failing_writes(hooks, attempt):
            write_trial(out, result, tune_config["experiment"], started_at=started_at,
                        placement=_placement(), attempt=attempt)
    except Exception as exc:
        # Recorded now, by the worker, so the error survives even if the driver is gone.
        record_failure(out, config.trial_id, key=_point(tune_config), error=f"{type(exc).__name__}: {exc}",
                       attempt=attempt)
        raise
    last = epoch_metrics(result.curves[-1]) if result.curves else {}
    tune.report({**last, "sweep_trial_id": config.trial_id, "accuracy": result.accuracy,
                 "trial_seconds": result.seconds})


def record_failure(out: Output, trial_id: str, *, key: dict[str, Any], error: str, attempt: int) -> bool:
    """write_failed, best effort: when OUT itself is what failed (full, read-only), the trial's
    error must still reach Tune and the user, not be replaced by a second OSError."""
    try:
        write_failed(out, trial_id, key=key, error=error, attempt=attempt)
        return True
    except OSError:
        return False


def read_failed_one(out: Output, trial_id: str) -> dict[str, Any] | None:
    import json

    try:
        with out.fs.open_input_stream(out.path("failed", f"{trial_id}.json")) as fh:
            return json.loads(fh.read())
    except (OSError, ValueError):
        return None


# ---- the driver's side -------------------------------------------------------------------------
def param_space(spec: ExperimentSpec, todo: list[TrialConfig], *, out: Output) -> dict[str, Any]:
    """Tune's param space: a grid_search per axis when ``todo`` is a full cross product (a fresh
    sweep, or new seeds for every cell), else one grid_search over the missing points. The trials
    share ``spec``'s base config with its resources (threads), which may be fitted to this cluster."""
    from ray import tune

    base = {k: v for k, v in spec.trial_config(*_axes(todo[0])).to_dict().items() if k not in AXES}
    points = [dict(zip(AXES, _axes(c))) for c in todo]
    values = {axis: list(dict.fromkeys(p[axis] for p in points)) for axis in AXES}
    space: dict[str, Any] = {"base": base, "out": out.uri, "experiment": spec.name, "cwd": os.getcwd(),
                             "hooks": fault_hooks.hooks_from_env()}
    full_cross = set(product(*values.values()))
    if len(points) == len(full_cross) and {tuple(p.values()) for p in points} == full_cross:
        space.update({axis: tune.grid_search(values[axis]) for axis in AXES})
    else:
        space["point"] = tune.grid_search(points)
    return space


def _axes(config: TrialConfig) -> tuple[Any, ...]:
    return tuple(getattr(config, axis) for axis in AXES)


@dataclass(frozen=True)
class SweepOutcome:
    """What became of a run's trials."""

    total: int  # trials in the grid
    skipped: int  # already done before this run
    ran: int  # handed to Tune
    succeeded: int  # of those, done now
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial_id -> {"key", "error"}
    unfinished: tuple[str, ...] = ()  # trial_ids Tune stopped before they ran (interrupted)
    wall_seconds: float = 0.0  # Tune's fit, wall clock
    slots: int = 1  # trials that could run at once
    trial_seconds: float = 0.0  # sum of the finished trials' own wall clock
    out: str = ""  # OUT as resolved (local paths absolute)


def concurrent_slots(spec: ExperimentSpec, resources: dict[str, float]) -> int:
    """How many trials fit at once in a cluster with ``resources`` (by CPU, GPU and max_concurrent)."""
    # Rounded before the floor, as for GPUs: 2 // 0.2 is 9.0 in floating point, not 10.
    slots = int(round(resources.get("CPU", 0) / spec.cpus, 6)) if spec.cpus else 10**6
    if spec.gpus:
        slots = min(slots, int(round(resources.get("GPU", 0) / spec.gpus, 6)))
    if spec.max_concurrent:
        slots = min(slots, spec.max_concurrent)
    return max(slots, 0)


def fit_to_local_cluster(spec: ExperimentSpec, resources: dict[str, float]) -> tuple[ExperimentSpec, str | None]:
    """On a Ray we started here, make trials fit: no GPUs -> CPU trials; CPUs capped at what exists.

    A spec that insists on ``device = "cuda"`` cannot run on a machine without GPUs (every trial
    would fail): ValueError, before anything in OUT changes.
    """
    from dataclasses import replace

    if spec.device == "cuda" and resources.get("GPU", 0) == 0:
        raise ValueError("resources.device is 'cuda' but this machine's Ray has no GPUs; allowed here: "
                         "device 'auto' or 'cpu' (or run it with --address on a cluster with GPUs)")
    notes = []
    if spec.gpus and resources.get("GPU", 0) == 0:
        spec = replace(spec, gpus=0.0)
        notes.append("no GPUs here, so trials run on CPU")
    cpus = resources.get("CPU", 1)
    if spec.cpus > cpus:
        notes.append(f"{spec.cpus:g} CPUs per trial capped at the {cpus:g} available")
        spec = replace(spec, cpus=float(cpus))
    return spec, "; ".join(notes) or None


CHUNK_TRIALS = 1000  # trials per Tuner.fit, at least; see run_tune


def chunk_size(slots: int) -> int:
    """Trials per Tuner.fit: CHUNK_TRIALS, or 20 rounds of the cluster's slots if that is more, so
    that the slots idle while a chunk's last trials finish cost at most a few per cent."""
    return max(CHUNK_TRIALS, 20 * slots)


def run_tune(spec: ExperimentSpec, out: Output, todo: list[TrialConfig], *, skipped: int,
             verbose: bool = False, progress: bool = True, trackers: Sequence[str] = ()) -> SweepOutcome:
    """Run ``todo`` on the connected Ray cluster and report what became of each trial.

    ``trackers`` (names checked by ``trackers.resolve_trackers``) add Ray Tune's logger callbacks
    for TensorBoard, MLflow or W&B to every fit (``sweep.distributed.trackers``).

    Tune's driver keeps every trial of a fit in memory until the fit ends (about 45 KB per trial
    here: 298 MiB at 500 finished trials, 367 MiB at 2,000), so a large grid runs as consecutive
    fits of ``chunk_size`` trials in the same Ray session; each chunk starts fresh trial processes
    (a few seconds), and memory stays flat.
    """
    import ray

    from sweep.distributed.progress import SweepProgress

    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # Tune propagates this to the trial actors
    # OUT is the record of a sweep; Tune's default per-trial CSV/JSON/TensorBoard loggers would
    # write a second one into scratch, and the TensorBoard logger imports torch on the driver
    # (2.5 s of a sweep's start-up here, measured). `--log tensorboard` adds that logger back,
    # writing into OUT/tensorboard (sweep.distributed.trackers).
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    if not verbose:
        logging.getLogger("ray").setLevel(logging.ERROR)
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # we list failed trials ourselves
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the legacy reporter at verbose=0 prints nothing
    slots = concurrent_slots(spec, ray.cluster_resources())
    callback = SweepProgress(total=spec.num_trials, skipped=skipped, enabled=progress)
    size = chunk_size(slots)
    name = f"{spec.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    tracking = Trackers(trackers, out=out, experiment=spec.name, run=name)
    failed: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        for index, first in enumerate(range(0, len(todo), size)):
            chunk = todo[first:first + size]
            errors = _fit(spec, out, chunk, callback, tracking, verbose=verbose, name=f"{name}-{index}")
            failed.update(_failures(spec, out, errors))
            done = scan_done(out, validate=False).done
            if any(c.trial_id not in done and c.trial_id not in failed for c in chunk):
                break  # interrupted (Ctrl-C ends a fit cleanly, leaving trials unrun): no next chunk
    finally:
        callback.close()
        tracking.close()
    wall = time.monotonic() - started

    todo_ids = [c.trial_id for c in todo]
    done = scan_done(out, validate=False).done
    # Neither done nor failed: Tune stopped before running them (Ctrl-C: Tune ends fit() cleanly).
    unfinished = tuple(t for t in todo_ids if t not in done and t not in failed)
    return SweepOutcome(
        out=out.uri, total=spec.num_trials, skipped=skipped, ran=len(todo), succeeded=len(done & set(todo_ids)),
        failed=failed, unfinished=unfinished, wall_seconds=wall, slots=slots,
        trial_seconds=sum(callback.trial_seconds),
    )


def _fit(spec: ExperimentSpec, out: Output, chunk: list[TrialConfig], callback: Any, tracking: Trackers, *,
         verbose: bool, name: str) -> list[tuple[dict[str, Any], BaseException]]:
    """One Tuner.fit over ``chunk``: (trial config, error) of each trial that ended in an error.
    Nothing of Tune's is kept past the return, so its memory goes with the chunk."""
    from ray import tune

    scratch = tempfile.mkdtemp(prefix="sweep-tune-")  # Tune's own state: not needed after the fit
    tuner = tune.Tuner(
        tune.with_resources(sweep_trainable, {"cpu": spec.cpus, "gpu": spec.gpus}),
        param_space=param_space(spec, chunk, out=out),
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent or None, reuse_actors=True,
                                    trial_name_creator=trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=scratch, failure_config=tune.FailureConfig(max_failures=spec.retries),
            callbacks=[callback, *tracking.callbacks()], verbose=2 if verbose else 0, progress_reporter=None,
        ),
    )
    try:
        return [(result.config, result.error) for result in tuner.fit() if result.error is not None]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        tracking.after_fit()


def _failures(spec: ExperimentSpec, out: Output,
              errors: list[tuple[dict[str, Any], BaseException]]) -> dict[str, dict[str, Any]]:
    """trial_id -> {"key", "error"} for the trials that failed for good (not those done after all)."""
    if not errors:
        return {}
    done = scan_done(out, validate=False).done
    records = read_failed(out)
    failed = {}
    for tune_config, error in errors:
        config = config_from_tune(tune_config)
        if config.trial_id in done:
            continue
        record = records.get(config.trial_id)
        if record is None:  # the process died before it could say why (or OUT refused the record)
            message = _one_line(error)
            record_failure(out, config.trial_id, key=_point(tune_config), error=message, attempt=spec.retries + 1)
            record = {"error": message}
        failed[config.trial_id] = {"key": config.key, "error": record["error"]}
    return failed


def _one_line(error: BaseException) -> str:
    """The most telling line of a Ray/Tune error: its last non-empty line."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    line = lines[-1] if lines else type(error).__name__
    if len(line) > 200 and ". " in line:  # Ray's long explanations: the first sentence says it
        line = line.split(". ", 1)[0] + "."
    return line[:300]
