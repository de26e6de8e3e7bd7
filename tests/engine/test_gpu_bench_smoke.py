"""bench/gpu_bench.py runs end to end in its smoke mode on the CPU, without Ray, and writes its report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).parents[2]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def tiny_cifar_like(tmp_path, encode_image, write_parquet) -> Path:
    """DIR/{train,test}.parquet: 600 + 200 random 16x16 RGB JPEGs over CIFAR-10's ten class names."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "tiny-cifar"
    for split, n in (("train", 600), ("test", 200)):
        pixels = rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)
        write_parquet(folder / f"{split}.parquet", {"image": [encode_image(p, format="JPEG") for p in pixels],
                                                    "label": [CLASSES[i % 10] for i in range(n)]})
    return folder


@pytest.mark.slow
def test_smoke_mode_runs_every_section_and_writes_json_and_markdown(tiny_cifar_like, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHONPATH": ""}  # the script must find `sweep` by itself
    proc = subprocess.run(
        [sys.executable, "bench/gpu_bench.py", "--data", str(tiny_cifar_like), "--smoke", "--device", "cpu"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu_bench.json").read_text())
    sections = report["sections"]
    assert report["meta"]["smoke"] is True
    assert sections["fast_cnn"]["n"] == 1 and 0.0 <= sections["fast_cnn"]["accuracy_mean"] <= 1.0
    assert sections["blog_cnn"]["runs"][0]["train_size"] == 512
    assert sections["flops"]["blog_cnn"]["train_step_gflop"] > 0
    assert [r["processes"] for r in sections["packing"]["runs"]] == [1, 2]
    assert all(r["trials_per_hour"] > 0 for r in sections["packing"]["runs"])
    assert sections["blog_x20"]["hours"] > 0
    assert "| blog-x20 estimate" in (out / "gpu_bench.md").read_text()


def test_missing_data_folder_is_one_line_and_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "bench/gpu_bench.py", "--data", str(tmp_path / "absent"), "--smoke"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "train.parquet not found" in proc.stderr and "Traceback" not in proc.stderr
