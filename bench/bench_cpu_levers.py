"""Two CPU levers of the trial engine, side by side: glibc's allocator thresholds and pool-before-ReLU.

Each variant runs in a fresh process (the allocator setting is process-wide), rounds alternate the
variants, and the table gives medians with min-max. A variant trains blog_cnn at batch 128 on
random CIFAR-shaped data (channels_last, fused Adam, as ``sweep.engine.train`` does): 5 warm-up steps, then
``--steps`` timed steps; then it evaluates 10,000 images at the CPU evaluation batch size.

- ``plain``: the study's layer order (ReLU then max-pool), glibc's default allocator behaviour.
- ``allocator``: ``sweep.engine.malloc_tuning.retain_freed_memory()`` first.
- ``pool_first``: ``sweep.engine.models.build_model("blog_cnn")`` as shipped (max-pool then ReLU).
- ``both``: what a trial runs now.

Also counts minor page faults per training step (``getrusage``).

    python bench/bench_cpu_levers.py --rounds 3 --threads 2     # ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "allocator", "pool_first", "both")


def child(variant: str, threads: int, steps: int) -> dict:
    import resource
    import time

    import torch
    import torch.nn.functional as F
    from torch import nn

    sys.path.insert(0, str(ROOT))
    from sweep.engine.malloc_tuning import retain_freed_memory
    from sweep.engine.models import build_model
    from sweep.engine.train import EVAL_BATCH_SIZE

    if variant in ("allocator", "both"):
        assert retain_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("blog_cnn", (3, 32, 32), 10)
    if variant in ("plain", "allocator"):  # back to the study's order: ReLU before each max-pool
        layers = list(model)
        for i in [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]:
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
        model = nn.Sequential(*layers)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.perf_counter()
    for _ in range(steps):
        step()
    step_ms = (time.perf_counter() - started) / steps * 1000
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    test = torch.randn(10_000, 3, 32, 32)
    batch = EVAL_BATCH_SIZE["cpu"]
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(test), batch):
            model(test[start : start + batch].contiguous(memory_format=torch.channels_last))
    return {"step_ms": step_ms, "faults_per_step": faults, "eval_s": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="each round runs every variant once (>= 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (>= 1)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per variant (>= 1)")
    parser.add_argument("--child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("rounds", "threads", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.steps)))
        return 0
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--threads", str(args.threads), "--steps", str(args.steps)],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                lines = out.stderr.strip().splitlines()
                print(f"error: the {variant} process of round {round_} failed (exit code {out.returncode}): "
                      f"{lines[-1] if lines else '(no stderr)'}", file=sys.stderr)
                return 1
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results[variant].append(row)
            print(f"round {round_}: {variant:>10}: step {row['step_ms']:.1f} ms, {row['faults_per_step']:.0f} "
                  f"page faults/step, eval {row['eval_s']:.2f} s", flush=True)

    def cell(variant: str, key: str, fmt: str) -> str:
        values = [r[key] for r in results[variant]]
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"

    plain = statistics.median(r["step_ms"] for r in results["plain"])
    print(f"\nblog_cnn, batch 128, {args.threads} thread(s), {args.steps} steps, n={args.rounds}; median (min-max)")
    print("| variant | ms per training step | vs plain | page faults per step | eval s per 10,000 images |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        ratio = plain / statistics.median(r["step_ms"] for r in results[variant])
        print(f"| {variant} | {cell(variant, 'step_ms', '.1f')} | {ratio:.2f}x | "
              f"{cell(variant, 'faults_per_step', '.0f')} | {cell(variant, 'eval_s', '.2f')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
