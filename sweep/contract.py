"""The results contract: what a sweep writes and `analysis` reads, declared once.

The Parquet schemas of ``OUT/confusion``, ``OUT/trials``, ``OUT/probs`` and ``OUT/epochs`` (column
names, types and order are public), the folder names, and the trial-id hash. This module imports pyarrow and
nothing else heavy, so the writer (``sweep.distributed.store``), the engine's config
(``TrialConfig.trial_id``) and the reader (``analysis``, which must not import torch or Ray) all
derive from it. The README's column tables are tested against these schemas.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import pyarrow as pa

# The columns that name a trial, first in every table.
KEY_FIELDS = [
    pa.field("experiment", pa.string()),  # the spec's name
    pa.field("trial_id", pa.string()),  # trial_id(identity): 16 hex digits
    pa.field("dataset", pa.string()),  # dataset spec as given, e.g. "cifar10"
    pa.field("model", pa.string()),
    pa.field("noise_mode", pa.string()),
    pa.field("noise_fraction", pa.float64()),  # requested
    pa.field("realized_noise", pa.float64()),  # share of training labels that differ from the truth
    pa.field("train_size", pa.int64()),  # training examples actually used
    pa.field("train_fraction", pa.float64()),  # of the full train split
    pa.field("seed", pa.int64()),
]
CONFUSION_SCHEMA = pa.schema(KEY_FIELDS + [
    pa.field("true_class", pa.string()),
    pa.field("pred_class", pa.string()),
    pa.field("count", pa.int64()),  # test examples of true_class predicted as pred_class
])
TRIALS_SCHEMA = pa.schema(KEY_FIELDS + [
    pa.field("accuracy", pa.float64()),  # share of the test set classified correctly
    pa.field("test_size", pa.int64()),
    pa.field("epochs", pa.int64()),
    pa.field("train_seconds", pa.float64()),  # wall clock, training only
    pa.field("seconds", pa.float64()),  # wall clock, the whole trial
    pa.field("device", pa.string()),  # e.g. "cpu (2 threads)", "cuda:0 NVIDIA H100 80GB HBM3"
    pa.field("torch_version", pa.string()),
    pa.field("torchvision_version", pa.string()),
    pa.field("numpy_version", pa.string()),
    pa.field("python_version", pa.string()),
    pa.field("sweep_version", pa.string()),
    pa.field("finished_at", pa.timestamp("us", tz="UTC")),
    # Extra columns (after the contract's): provenance and placement.
    pa.field("started_at", pa.timestamp("us", tz="UTC")),
    pa.field("train_size_requested", pa.float64()),  # the spec's value: a count, or a fraction <= 1
    pa.field("subset_mode", pa.string()),
    pa.field("final_train_loss", pa.float64()),
    pa.field("hostname", pa.string()),
    pa.field("node_ip", pa.string()),
    pa.field("node_id", pa.string()),  # Ray node id, "" outside Ray
    pa.field("worker_pid", pa.int64()),  # the process that ran it (dataset decoded once per process)
    pa.field("attempt", pa.int64()),  # 1 = first try
    pa.field("config_json", pa.string()),  # the full TrialConfig, JSON
    # The training budget (sweep.engine.train.total_steps); null in trials written before it was recorded.
    pa.field("steps", pa.int64()),  # optimizer steps taken
    pa.field("epochs_trained", pa.float64()),  # steps / steps of a full pass: fractional under a steps budget
    pa.field("steps_requested", pa.int64()),  # the config's steps budget; null = an epochs budget
])
PROBS_SCHEMA = pa.schema(KEY_FIELDS + [
    pa.field("example", pa.int64()),  # index in the test split
    pa.field("true_class", pa.string()),
    pa.field("pred_class", pa.string()),
    pa.field("probs", pa.list_(pa.float32())),  # softmax over the classes, in class order
])
# Learning curves (sweep.engine.curves): one row per (trial, epoch, true class), from the training
# passes; the test columns are null at epochs where the test set was not scored (eval_every).
EPOCHS_SCHEMA = pa.schema(KEY_FIELDS + [
    pa.field("epoch", pa.int64()),  # 1-based
    pa.field("true_class", pa.string()),  # the true class of the training examples counted
    pa.field("examples", pa.int64()),  # training examples of true_class seen in the epoch
    pa.field("fitted", pa.int64()),  # of those, predicted as their given (possibly noisy) label
    pa.field("corrupted", pa.int64()),  # of those, given a label other than true_class
    pa.field("memorised", pa.int64()),  # corrupted and predicted as that wrong label
    pa.field("corrupted_true", pa.int64()),  # corrupted and predicted as true_class nevertheless
    pa.field("loss_sum", pa.float64()),  # summed training loss of the examples (mean = loss_sum / examples)
    pa.field("test_examples", pa.int64()),  # test images of true_class, null when not scored this epoch
    pa.field("test_correct", pa.int64()),  # of those, classified correctly by the epoch's model; null likewise
])
# The per-class counts of an epoch, as the engine computes them (sweep.engine.curves), in schema order.
EPOCH_COUNT_COLUMNS = ("examples", "fitted", "corrupted", "memorised", "corrupted_true")

# OUT/<folder>/<trial_id>.parquet; trials/ is written last: a trial is done when its row exists.
# probs/ and epochs/ are optional per trial (keep_probs; trials from before learning curves).
RESULT_SCHEMAS = {"confusion": CONFUSION_SCHEMA, "probs": PROBS_SCHEMA, "epochs": EPOCHS_SCHEMA,
                  "trials": TRIALS_SCHEMA}
RESULT_DIRS = tuple(RESULT_SCHEMAS)
FAILED_DIR = "failed"  # OUT/failed/<trial_id>.json: a trial's last error until it succeeds
EXPERIMENT_FILE = "experiment.json"
# Written only when `sweep run --log` asks; no reader of the results looks inside them.
TENSORBOARD_DIR = "tensorboard"  # OUT/tensorboard/<grid point>/events.out.tfevents.*
MLFLOW_DB = "mlflow.db"  # OUT/mlflow.db: MLflow's SQLite tracking store, when $MLFLOW_TRACKING_URI is unset

# Compaction (sweep.distributed.compact) merges committed trials' files into one file per unit
# (generation, model, noise fraction) in each result folder, OUT/<folder>/part-<gen>-<model>-nf<x>.parquet,
# next to the per-trial files and with the same schema, so pd.read_parquet("OUT/confusion") still reads all.
COMPACTED_NAME = re.compile(r"part-[0-9]{5}-[A-Za-z0-9_.-]+\.parquet")
COMPACTION_JOURNAL = ".compaction-journal.json"  # OUT/<this>: a compaction's commit record, until it finishes


def trial_id(identity: dict[str, Any]) -> str:
    """Stable 16-hex-digit name of a trial: SHA-256 of its identity as canonical JSON.

    The same on every machine and Python. It names the trial's files on disk, so the encoding
    (sorted keys, no spaces) must never change.
    """
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def results_folder_around(path: str) -> tuple[str, str] | None:
    """(results folder, data folder name) when local ``path`` lies inside a results folder's data
    folders (``X/confusion/...``, X holding experiment.json or both confusion/ and trials/), else
    None. Nothing may be written there: every reader of the folder would fail on it."""
    path = os.path.abspath(path)
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return None
        if os.path.basename(path) in (*RESULT_DIRS, FAILED_DIR) and (
                os.path.isfile(os.path.join(parent, EXPERIMENT_FILE))
                or all(os.path.isdir(os.path.join(parent, d)) for d in ("confusion", "trials"))):
            return parent, os.path.basename(path)
        path = parent
