"""sweep.engine.malloc_tuning: a training step reuses the pages of the step before instead of faulting in
fresh ones, on the main thread (mallopt) and in a worker thread (the worker environment)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")

# Minor page faults per blog_cnn training step (batch 128, 1 thread), in a fresh process because
# the settings are process-wide. argv: "on"/"off" (call retain_freed_memory), "main"/"thread"
# (where the steps run; Ray Tune runs a trial in a thread of its worker).
_PROBE = """
import resource, sys, threading, torch
import torch.nn.functional as F
from sweep.engine.malloc_tuning import retain_freed_memory
from sweep.engine.models import build_model
if sys.argv[1] == "on":
    assert retain_freed_memory() is True and retain_freed_memory() is True
torch.set_num_threads(1)

def measure():
    torch.manual_seed(0)
    model = build_model("blog_cnn", (3, 32, 32), 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(6):  # the heap reaches its working size in the first steps
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(8):
        step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 8)

if sys.argv[2] == "thread":
    worker = threading.Thread(target=measure)
    worker.start()
    worker.join()
else:
    measure()
"""


def _faults_per_step(mode: str, where: str = "main", env: dict | None = None) -> float:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode, where], capture_output=True, text=True, check=True,
                         env={**environment, **(env or {})})
    return float(out.stdout.strip().splitlines()[-1])


def test_training_steps_reuse_freed_pages():
    # A step allocates about 60 MiB of activations and gradients: 15,000 pages of 4 KiB. With glibc's
    # defaults many are mapped afresh each step (BENCHMARKS.md: 5,300 or more); retained, at most a
    # fifth of them may be, a bound no machine's scheduling noise reaches (seen: 0-1,152).
    retained = _faults_per_step("on")
    assert retained < 3000, f"{retained:.0f} page faults per step with freed memory retained"


def test_worker_env_keeps_pages_in_a_trial_thread_too(monkeypatch):
    """mallopt does not reach a thread's own malloc arena; the worker environment (read by glibc at
    process start, one arena) does (the faults without it: BENCHMARKS.md)."""
    from sweep.engine.malloc_tuning import worker_env

    for key in ("SWEEP_KEEP_FREED_MEMORY", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(key, raising=False)
    env = worker_env()
    assert env == {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
                   "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
    for _ in range(2):  # twice: glibc's defaults sometimes happen to reuse in a thread, this must always
        retained = _faults_per_step("off", "thread", env)
        assert retained < 3000, f"{retained:.0f} page faults per step in a thread with the worker environment"


def test_retain_is_idempotent_and_reports_success_on_glibc():
    from sweep.engine.malloc_tuning import retain_freed_memory

    assert retain_freed_memory() is True
    assert retain_freed_memory() is True


def test_switched_off_by_the_environment(monkeypatch):
    from sweep.engine import malloc_tuning as allocator

    monkeypatch.setenv("SWEEP_KEEP_FREED_MEMORY", "0")
    assert allocator.worker_env() == {} and not allocator.enabled()
    monkeypatch.setenv("SWEEP_KEEP_FREED_MEMORY", "no")
    with pytest.raises(ValueError, match="SWEEP_KEEP_FREED_MEMORY must be 0 \\(off\\) or 1 \\(on, the default\\), got 'no'"):
        allocator.enabled()
