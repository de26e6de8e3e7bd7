"""Named random streams derived from a trial's seed.

The seed is a grid axis. Each source of randomness gets its own stream, so changing one factor
(say the noise fraction) leaves every other draw (subset, init, batch order) untouched: two grid
cells with the same seed differ only by the factor that changed (common random numbers).
Nothing here touches global random state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a generator is made, so the numpy streams stay light
    import torch

# Order is part of the contract: appending is safe, reordering changes every result.
STREAMS = ("subset", "noise", "init", "batches")


def numpy_stream(seed: int, name: str) -> np.random.Generator:
    """A NumPy generator for stream ``name`` of ``seed``; the same on every machine."""
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r}; allowed: {', '.join(STREAMS)}")
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(name),)))


def torch_seed(seed: int, name: str) -> int:
    """A 63-bit integer seed for a ``torch.Generator`` (or ``fork_rng``) for stream ``name``."""
    return int(numpy_stream(seed, name).integers(0, 2**63 - 1))


def torch_generator(seed: int, name: str, device: "str | torch.device" = "cpu") -> "torch.Generator":
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(torch_seed(seed, name))
    return gen
