"""Experiment trackers for ``sweep run --log``: TensorBoard, MLflow, Weights & Biases.

Each tracker is one of Ray Tune's own logger callbacks, added to the sweep's ``Tuner.fit`` on the
driver; it logs whatever the trainable reports (every ``tune.report`` is a step), one tracker run per
trial, named by the trial's grid point (``run_name``: ``blog_cnn_shuffle-0.5_n300_seed0``), which is
the same in every run of the sweep, so a resumed sweep's trials land beside the earlier ones. They
are off by default: OUT's Parquet is the record of a sweep, a tracker is a view of it while it runs.

* ``tensorboard``: Tune's ``TBXLoggerCallback`` (tensorboardX), writing under
  ``OUT/tensorboard/<run name>/`` instead of Tune's scratch folder, so ``tensorboard --logdir OUT``
  shows every trial, live for a local OUT. A trial that runs again (a retry, or a rerun of an
  unfinished trial) replaces its folder's event files: the folder shows the attempt whose results
  OUT holds. An OUT on an object store gets the event files copied there after each ``Tuner.fit``.
* ``mlflow``: Ray's ``MLflowLoggerCallback``; the experiment is the spec's name, the tracking URI
  ``$MLFLOW_TRACKING_URI``, else an SQLite store ``OUT/mlflow.db`` (local OUT; MLflow 3 refuses its
  old ``mlruns/`` file store) or MLflow's own default.
* ``wandb``: Ray's ``WandbLoggerCallback``; the project is the spec's name, the group this run of
  ``sweep run``; ``WANDB_MODE=offline`` works as W&B documents it. W&B's local files go to
  ``$WANDB_DIR``, else ``OUT/wandb/`` (local OUT), else ``./wandb/`` where ``sweep run`` was started.

MLflow and W&B are optional extras (``pip install 'class-fragility-sweep[mlflow]'``); asking for a
tracker whose package is missing, or for an unknown one, is bad input (ValueError, one line) found
before Ray starts or OUT changes. Which trackers a run uses is not part of the experiment: trial ids
and ``experiment.json`` do not change with ``--log``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sweep.contract import MLFLOW_DB, TENSORBOARD_DIR
from sweep.distributed.store import Output


@dataclass(frozen=True)
class TrackerRun:
    """What a tracker needs to know about the sweep: where and under which names to log."""

    out: Output  # the sweep's OUT
    experiment: str  # the spec's name: MLflow's experiment, W&B's project
    run: str  # this `sweep run`'s name (spec name + start time): W&B's group, an MLflow tag
    staging: str  # a local scratch folder for files that end up on a non-local OUT


@dataclass(frozen=True)
class Tracker:
    package: str  # the module its Ray callback imports; checked before anything starts
    extra: str  # this project's pip extra that installs it
    make: Callable[[TrackerRun], Any]  # -> a Ray Tune logger callback for one Tuner.fit
    what: str  # one line: where its logs go


def run_name(tune_config: dict[str, Any]) -> str:
    """A trial's name in the trackers: its grid point, readable, unique within an OUT (OUT holds one
    experiment, so the noise mode and recipe are fixed) and the same in every run of the sweep.
    Train sizes keep their type: ``n300`` is a count, ``n0.5`` and ``n1.0`` fractions."""
    point = tune_config.get("point") or tune_config
    mode = tune_config["base"]["noise_mode"]
    return (f"{point['model']}_{mode}-{float(point['noise_fraction'])}_n{point['train_size']}"
            f"_seed{point['seed']}")


def trial_name(trial: Any) -> str:
    """Tune's ``trial_name_creator``: the grid point names the trial in Tune and in every tracker."""
    return run_name(trial.config)


# ---- the trackers -----------------------------------------------------------------------------
def _tensorboard(run: TrackerRun) -> Any:
    from ray.tune.logger import TBXLoggerCallback

    root = run.out.path(TENSORBOARD_DIR) if run.out.is_local else os.path.join(run.staging, TENSORBOARD_DIR)

    class TensorBoardCallback(TBXLoggerCallback):
        """Tune's TensorBoard logger, one folder per trial under ``root``, named by its grid point."""

        def log_trial_start(self, trial: Any) -> None:
            if trial in self._trial_writer:
                self._trial_writer[trial].close()
            folder = os.path.join(root, trial_name(trial))
            for old in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
                os.unlink(old)  # an earlier attempt's curves: the new attempt is the one OUT keeps
            self._trial_writer[trial] = self._summary_writer_cls(folder, flush_secs=30)
            self._trial_result[trial] = {}

    return TensorBoardCallback()


def _mlflow(run: TrackerRun) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = os.environ.get("MLFLOW_TRACKING_URI") or (
        "sqlite:///" + run.out.path(MLFLOW_DB) if run.out.is_local else None)
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=run.experiment, tags={"sweep_run": run.run})


def _wandb(run: TrackerRun) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    # wandb.init(dir=D) writes D/wandb/; Ray's logging actor would otherwise write into Tune's
    # scratch folder, which is deleted after each fit (an offline run would be lost).
    folder = os.environ.get("WANDB_DIR") or (run.out.root if run.out.is_local else os.getcwd())
    # The logging actor's process has the environment of Ray's workers, not of this driver (on a
    # cluster, of whoever started Ray): the driver's WANDB_MODE is handed to wandb.init itself.
    mode = {"mode": os.environ["WANDB_MODE"]} if os.environ.get("WANDB_MODE") else {}
    return WandbLoggerCallback(project=run.experiment, group=run.run, dir=os.path.abspath(folder), **mode)


TRACKERS: dict[str, Tracker] = {
    "tensorboard": Tracker("tensorboardX", "tensorboard", _tensorboard,
                           f"event files in OUT/{TENSORBOARD_DIR}/<grid point>/ (view: tensorboard --logdir OUT)"),
    "mlflow": Tracker("mlflow", "mlflow", _mlflow,
                      f"runs in the MLflow experiment named by the spec, at $MLFLOW_TRACKING_URI, else OUT/{MLFLOW_DB}"),
    "wandb": Tracker("wandb", "wandb", _wandb,
                     "runs in the W&B project named by the spec; WANDB_MODE=offline keeps them local"),
}


def resolve_trackers(values: str | Sequence[str] | None) -> tuple[str, ...]:
    """``--log`` values (each a name or a comma list of names) -> tracker names, each once, in order.

    ValueError (one line) for an unknown name, or a tracker whose package is not installed, naming
    the pip extra that installs it. Nothing is imported: the check finds the package's files only.
    """
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    names: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"--log takes tracker names (strings), got {value!r}")
        for name in value.split(","):
            name = name.strip()
            if name not in TRACKERS:
                raise ValueError(f"--log {name!r} is not a tracker; allowed: {', '.join(TRACKERS)} "
                                 "(a comma list or the flag repeated)")
            if name not in names:
                names.append(name)
    for name in names:
        tracker = TRACKERS[name]
        if importlib.util.find_spec(tracker.package) is None:
            raise ValueError(f"--log {name} needs the {tracker.package} package, which is not installed: "
                             f"pip install 'class-fragility-sweep[{tracker.extra}]'")
    return tuple(names)


class Trackers:
    """The trackers of one `sweep run`: fresh Tune callbacks for each ``Tuner.fit`` (the sweep runs in
    chunks), and after each fit the files that belong in a non-local OUT copied there."""

    def __init__(self, names: Sequence[str], *, out: Output, experiment: str, run: str) -> None:
        self.names = tuple(names)
        self.out = out
        self.experiment = experiment
        self.run = run
        self._staging = tempfile.mkdtemp(prefix="sweep-trackers-") if self.names and not out.is_local else ""

    def callbacks(self) -> list[Any]:
        run = TrackerRun(out=self.out, experiment=self.experiment, run=self.run, staging=self._staging)
        return [TRACKERS[name].make(run) for name in self.names]

    def after_fit(self) -> None:
        """Copy this fit's TensorBoard folders to a non-local OUT (replacing a rerun trial's old
        event files there), then empty the staging folder. A local OUT was written in place."""
        staged = os.path.join(self._staging, TENSORBOARD_DIR) if self._staging else ""
        if not os.path.isdir(staged):
            return
        import pyarrow.fs as pafs

        try:
            for name in sorted(os.listdir(staged)):
                target = self.out.path(TENSORBOARD_DIR, name)
                self.out.fs.create_dir(target, recursive=True)
                self.out.fs.delete_dir_contents(target, missing_dir_ok=True)
                pafs.copy_files(os.path.join(staged, name), target, source_filesystem=pafs.LocalFileSystem(),
                                destination_filesystem=self.out.fs)
        except OSError as exc:  # the trials' results are written: a view that did not arrive is a warning
            warnings.warn(f"TensorBoard files not copied to {self.out.uri}/{TENSORBOARD_DIR}: {exc}", stacklevel=2)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def close(self) -> None:
        if self._staging:
            shutil.rmtree(self._staging, ignore_errors=True)
