"""Run one sweep on a simulated 3-node Ray cluster (for test_cluster.py; a script, not a test module).

    python cluster_driver.py SPEC OUT REPORT_JSON

Head with 0 CPUs (runs no trials) + two worker nodes that declare 6 and 1 CPUs and 1 (fake) GPU each. Once
both workers have committed a trial, the second worker node is removed mid-sweep. Writes what it
did to REPORT_JSON. Runs in its own process so its Ray does not meet the test session's.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pandas as pd
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).parent))
from sweep.cli import main as sweep_main  # noqa: E402


def committed_nodes(out: Path) -> set[str]:
    files = list((out / "trials").glob("*.parquet")) if (out / "trials").exists() else []
    return set(pd.concat([pd.read_parquet(f, columns=["node_id"]) for f in files]).node_id) if files else set()


def main(spec: str, out: str, report_path: str) -> int:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    # Worker 0 has CPUs for 6 trials but one GPU (4 x 0.25); worker 1 is small (1 trial), to keep the
    # number of trial processes, which start slowly on a 2-core machine, down to 5.
    workers = [cluster.add_node(num_cpus=6, num_gpus=1), cluster.add_node(num_cpus=1, num_gpus=1)]
    cluster.wait_for_nodes()
    report: dict = {"head": cluster.head_node.node_id, "workers": [w.node_id for w in workers]}

    def remove_second_worker_once_both_committed() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                nodes = committed_nodes(Path(out))
            except Exception:  # a file appearing mid-read: look again
                nodes = set()
            if set(report["workers"]) <= nodes:
                report["committed_before_removal"] = len(list((Path(out) / "trials").glob("*.parquet")))
                cluster.remove_node(workers[1], allow_graceful=False)
                report["removed"] = workers[1].node_id
                return
            time.sleep(0.2)

    remover = threading.Thread(target=remove_second_worker_once_both_committed, daemon=True)
    remover.start()
    report["code"] = sweep_main(["run", spec, "--out", out, "--address", cluster.address])
    remover.join(timeout=1)
    Path(report_path).write_text(json.dumps(report))
    cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
