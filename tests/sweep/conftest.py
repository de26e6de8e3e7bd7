"""Fixtures for the sweep tests: one Ray session, tiny specs, results that need no training."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sweeptest import sweep_main

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
