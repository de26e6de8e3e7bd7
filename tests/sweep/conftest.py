"""Fixtures for the sweep tests: one Ray session, tiny specs, results that need no training."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sweep.config import TrialConfig

HERE = Path(__file__).parent
REPO = HERE.parent.parent

# 2 noise levels x 2 sizes x 2 seeds = 8 digits trials of one epoch: about a second each here.
SMOKE_SPEC = """
name = "smoke"
dataset = "digits"
models = ["blog_cnn"]
noise_mode = "shuffle"
noise_fractions = [0.0, 0.5]
train_sizes = [300, 0.5]
seeds = 2
retries = 1

[training]
epochs = 1

[resources]
cpus = 1
device = "cpu"
"""


@pytest.fixture(scope="session")
def ray_session():
    """The one Ray runtime of the test session (about 10 s to start here), shared by the in-process sweeps."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name="spec.toml") -> path of a spec file in a fresh temp folder."""

    def write(text: str, name: str = "spec.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def smoke_spec_text() -> str:
    return SMOKE_SPEC


def sweep_main(argv: list[str]) -> int:
    """The real `sweep` command line, in this process."""
    sys.path.insert(0, str(HERE))
    try:
        import sweep_entry
    finally:
        sys.path.remove(str(HERE))
    return sweep_entry.main([str(a) for a in argv])


def sweep_command() -> list[str]:
    """argv prefix that runs the `sweep` command line in a subprocess."""
    return [sys.executable, str(HERE / "sweep_entry.py")]


def make_result(config: TrialConfig | None = None, *, k: int = 3, keep_probs: bool = False, seed: int = 0):
    """A real TrialResult with made-up numbers (no training): for tests of writing and reading only."""
    from sweep.trial import TrialResult

    config = config or TrialConfig(dataset="digits", noise_fraction=0.25, train_size=100, seed=seed,
                                   keep_probs=keep_probs)
    rng = np.random.default_rng(seed)
    confusion = rng.integers(1, 5, size=(k, k)).astype(np.int64)
    confusion[0, 1] = 0  # a zero cell, which must still be written
    labels = np.repeat(np.arange(k), confusion.sum(axis=1))
    probs = rng.dirichlet(np.ones(k), size=len(labels)).astype(np.float32) if keep_probs else None
    return TrialResult(
        config=config, classes=tuple(f"class{i}" for i in range(k)), confusion=confusion,
        accuracy=float(np.trace(confusion) / confusion.sum()),
        per_class_accuracy=np.diag(confusion) / confusion.sum(axis=1), realized_noise=0.24,
        train_size=100, train_fraction=0.5, test_size=int(confusion.sum()), epochs=1, train_seconds=0.5,
        seconds=0.7, final_train_loss=1.0, device="cpu (1 threads)",
        versions={"torch": "x", "torchvision": "y", "numpy": "z", "python": "3", "sweep": "0.1.0"},
        test_labels=labels, probs=probs,
    )


@pytest.fixture(scope="session")
def smoke_run(ray_session, tmp_path_factory):
    """One uninterrupted smoke sweep (8 trials) through `sweep run`, shared read-only by the tests
    that extend, fail, or kill sweeps of the same spec and compare against it."""
    folder = tmp_path_factory.mktemp("smoke")
    spec_path = folder / "smoke.toml"
    spec_path.write_text(SMOKE_SPEC)
    started = time.monotonic()
    code = sweep_main(["run", spec_path, "--out", folder / "out"])
    return {"code": code, "out": folder / "out", "spec": spec_path, "wall": time.monotonic() - started}
