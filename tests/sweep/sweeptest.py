"""Helpers shared by the sweep tests (plain functions and paths; the fixtures live in conftest.py).

A module of its own, not conftest.py, because several conftest modules exist under tests/ and
``from conftest import ...`` would pick whichever one Python found first on sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sweep.engine.config import TrialConfig

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def sweep_main(argv: list[str]) -> int:
    """The real `sweep` command line, in this process."""
    from sweep.cli import main

    return main([str(a) for a in argv])


def sweep_command() -> list[str]:
    """argv prefix that runs the `sweep` command line in a subprocess."""
    return [sys.executable, str(HERE / "sweep_entry.py")]


def make_result(config: TrialConfig | None = None, *, k: int = 3, keep_probs: bool = False, seed: int = 0):
    """A real TrialResult with made-up numbers (no training): for tests of writing and reading only."""
    from sweep.engine.trial import TrialResult

    config = config or TrialConfig(dataset="digits", noise_fraction=0.25, train_size=100, seed=seed,
                                   keep_probs=keep_probs)
    rng = np.random.default_rng(seed)
    confusion = rng.integers(1, 5, size=(k, k)).astype(np.int64)
    confusion[0, 1] = 0  # a zero cell, which must still be written
    labels = np.repeat(np.arange(k), confusion.sum(axis=1))
    probs = rng.dirichlet(np.ones(k), size=len(labels)).astype(np.float32) if keep_probs else None
    curves = tuple(_epoch_stats(rng, k, epoch, tested=epoch == 2) for epoch in (1, 2))
    return TrialResult(
        config=config, classes=tuple(f"class{i}" for i in range(k)), confusion=confusion,
        accuracy=float(np.trace(confusion) / confusion.sum()),
        per_class_accuracy=np.diag(confusion) / confusion.sum(axis=1), realized_noise=0.24,
        train_size=100, train_fraction=0.5, test_size=int(confusion.sum()), epochs=1, steps=1, epochs_trained=1.0, train_seconds=0.5,
        seconds=0.7, final_train_loss=1.0, device="cpu (1 threads)",
        versions={"torch": "x", "torchvision": "y", "numpy": "z", "python": "3", "sweep": "0.1.0"},
        test_labels=labels, probs=probs, curves=curves,
    )


def _epoch_stats(rng: np.random.Generator, k: int, epoch: int, *, tested: bool):
    """Made-up but consistent per-class counts of one epoch (fitted, corrupted <= examples, ...)."""
    from sweep.engine.curves import EpochStats

    examples = rng.integers(20, 40, size=k)
    corrupted = rng.integers(0, 10, size=k)
    memorised = rng.integers(0, corrupted + 1)
    counts = np.column_stack([examples, examples - corrupted + memorised, corrupted, memorised,
                              corrupted - memorised]).astype(np.int64)
    test = rng.integers(5, 10, size=k) if tested else None
    return EpochStats(epoch=epoch, epochs=2, seconds=0.1 * epoch, counts=counts, loss_sum=examples * 0.5,
                      test_examples=test, test_correct=None if test is None else test - 1)
