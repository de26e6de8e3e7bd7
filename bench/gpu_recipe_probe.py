"""fast_cnn recipe probe on a GPU: clean CIFAR-10 accuracy and seconds for a few recipe overrides.

No Ray; run from the repository root on a machine with CUDA (the lent H100 in this project):

    python bench/gpu_recipe_probe.py --data .device-data/cifar10-jpeg     # about 100 s on one H100

Prints one JSON line per recipe (seed 0, full 50,000 training images, all 10,000 test images) and
writes them to $OUT/probe.jsonl when OUT is set. The first trial of the process includes CUDA and
cuDNN warm-up, so the default recipe is run twice. Results: BENCHMARKS.md, "fast_cnn recipe probe".
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `sweep` without installing

from sweep.engine.config import TrialConfig  # noqa: E402
from sweep.engine.datasets import load_dataset  # noqa: E402
from sweep.engine.trial import run_trial  # noqa: E402

# Each row names batch size, learning rate and epochs outright, so the probe reruns the same
# recipes whatever fast_cnn's default is (the default changed after this probe: BENCHMARKS.md).
_BASE = {"batch_size": 512, "lr": 0.2, "epochs": 10}
PROBES = [
    _BASE, _BASE, {**_BASE, "epochs": 20}, {**_BASE, "lr": 0.4}, {**_BASE, "batch_size": 1024, "lr": 0.4},
    {**_BASE, "epochs": 16, "lr": 0.3}, {**_BASE, "epochs": 20, "lr": 0.4, "batch_size": 1024},
    {**_BASE, "epochs": 30},
]


def main() -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=".device-data/cifar10-jpeg", help="folder with train/test.parquet")
    parser.add_argument("--seed", type=int, default=0, help="trial seed (>= 0)")
    args = parser.parse_args()
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    data = Path(args.data)
    if not (data / "train.parquet").is_file():
        print(f"error: {data / 'train.parquet'} not found; pass --data DIR with train/test.parquet", file=sys.stderr)
        return 2
    out = Path(os.environ.get("OUT", ".")) / "probe.jsonl"
    if not out.parent.is_dir():
        print(f"error: OUT={out.parent} is not a folder; set OUT to an existing folder (or unset it)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    dataset = load_dataset(f"parquet:{args.data}")
    print(f"decode {time.perf_counter() - started:.1f} s", flush=True)
    with out.open("w") as sink:
        for overrides in PROBES:
            result = run_trial(TrialConfig(dataset=dataset.name, model="fast_cnn", seed=args.seed, **overrides), dataset)
            row = dict(overrides, accuracy=result.accuracy, train_seconds=result.train_seconds,
                       seconds=result.seconds, device=result.device)
            print(json.dumps(row), flush=True)
            sink.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
