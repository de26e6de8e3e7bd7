"""Many nodes and GPUs, simulated: a head plus two worker nodes with fake GPUs (ray.cluster_utils).

Trials land on both workers and never on the head; a GPU share of 0.25 lets four trials share one
declared GPU at once (and no more, though the node has CPUs for six); removing a worker node
mid-sweep still completes every trial exactly once; on nodes that declare a GPU but have no CUDA,
the engine runs on the CPU. The cluster lives in a subprocess, apart from the session's Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from sweeptest import HERE

from sweep.distributed.spec import load_spec

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.drill]

CLUSTER_SPEC = """
name = "cluster"
dataset = "digits"
models = ["blog_cnn"]
noise_fractions = [0.0, 0.5]
train_sizes = [200]
seeds = 6
retries = 3

[training]
epochs = 1

[resources]
cpus = 1
gpus = 0.25
device = "auto"
"""


def max_overlap(rows: pd.DataFrame) -> int:
    """Most trials in flight at one instant, from their [started_at, finished_at] intervals."""
    events = [(t, 1) for t in rows.started_at] + [(t, -1) for t in rows.finished_at]
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def test_three_node_cluster_with_shared_fake_gpus_and_a_node_removed(tmp_path):
    spec_path = tmp_path / "cluster.toml"
    spec_path.write_text(CLUSTER_SPEC)
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    env = {**os.environ, "SWEEP_TEST_HOLD_S": "3", "RAY_AIR_NEW_OUTPUT": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(HERE / "cluster_driver.py"), str(spec_path), str(out),
                           str(report_path)], env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["code"] == 0, proc.stderr[-3000:]
    assert report.get("removed") == report["workers"][1]  # removed mid-sweep...
    assert report["committed_before_removal"] < 12

    trials = pd.read_parquet(out / "trials")
    spec = load_spec(spec_path)
    assert sorted(trials.trial_id) == sorted(t.trial_id for t in spec.trials())  # ...yet all, exactly once
    assert len(pd.read_parquet(out / "confusion")) == 12 * 100
    assert set(trials.node_id) == set(report["workers"])  # both workers ran trials, the head none
    assert trials.device.str.startswith("cpu").all()  # declared GPUs, no CUDA: the engine fell back
    survivor = trials[trials.node_id == report["workers"][0]]
    # 0.25 GPU a trial: never more than 4 at once on the one GPU (its CPUs would allow 6), and the
    # GPU was shared (how many overlapped beyond that depends on how fast the node starts them).
    assert 2 <= max_overlap(survivor) <= 4
