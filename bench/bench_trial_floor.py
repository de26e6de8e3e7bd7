"""The fastest a blog_cnn trial can be on this CPU: its convolutions alone, against the baseline.

A trial's convolutions cannot be skipped: every training image needs each conv layer's forward
pass and its two backward products (input and weight gradients; the first layer has no input
gradient), and every test image needs each forward pass. This benchmark times exactly those
convolution calls (ATen's ``convolution`` and ``convolution_backward``, channels_last, as the
trial runs them) at the trial's shapes, multiplies by the calls one trial makes, and compares the
sum with the plain baseline (``bench/baseline_trial.py``, on the same thread count) measured in the
same run, both as the first trial of a fresh process and as the second trial of that process:

    highest reachable ratio, warm  = warm baseline seconds / convolution seconds
    highest reachable ratio, first = first baseline seconds / (convolution seconds + first optimizer)

No trial that does the same arithmetic with these kernels can beat that ratio, however fast
everything else around the convolutions becomes. Also printed: the matrix-multiply peak of the
same threads (how close the convolution kernels already are to the machine), the measured
training step and evaluation (what the rest costs today), and the one-time cost of a fresh
process's first ``torch.optim`` optimizer (it imports ``torch._dynamo``), which both the baseline
and the project pay inside their first trial.

Rounds alternate: a fresh process measures the kernels and the step, then a fresh process runs
two baseline trials in a row, and so on; medians with min-max.

    python bench/bench_trial_floor.py --rounds 3     # ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# blog_cnn's convolutions on 32x32x3 images: (in channels, out channels, side).
CONVS = ((3, 32, 32), (32, 32, 32), (32, 64, 16), (64, 64, 16))


def conv_flops(c_in: int, c_out: int, side: int) -> float:
    """Multiply-adds x 2 of one forward pass of a 3x3 convolution, per image."""
    return 2.0 * c_in * 9 * c_out * side * side


def kernels_child(threads: int, batch: int, repeats: int) -> dict:
    """Times each convolution call at ``batch`` images, a matrix multiply, a training step and an
    evaluation of 10,000 images, in this fresh process with the trial's settings."""
    import time

    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(ROOT))
    from sweep.engine.malloc_tuning import retain_freed_memory
    from sweep.engine.models import build_model
    from sweep.engine.train import EVAL_BATCH_SIZE

    retain_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cl = torch.channels_last

    def best_of(fn, n: int) -> float:
        """Median seconds of ``n`` calls after two warm-up calls."""
        fn(), fn()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    matmul = best_of(lambda: torch.mm(a, b), repeats)
    layers = []
    for index, (c_in, c_out, side) in enumerate(CONVS):
        x = torch.randn(batch, c_in, side, side).contiguous(memory_format=cl)
        w = torch.randn(c_out, c_in, 3, 3).contiguous(memory_format=cl)
        bias = torch.randn(c_out)
        grad = torch.randn(batch, c_out, side, side).contiguous(memory_format=cl)
        mask = [index > 0, True, True]  # the first layer's input needs no gradient

        def forward(x=x, w=w, bias=bias):
            torch.ops.aten.convolution(x, w, bias, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)

        def backward(x=x, w=w, grad=grad, mask=mask):
            torch.ops.aten.convolution_backward(grad, x, w, [c_out], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

        with torch.inference_mode():
            fwd_eval = best_of(forward, repeats)
        layers.append({"shape": [c_in, c_out, side], "forward_s": best_of(forward, repeats),
                       "forward_eval_s": fwd_eval, "backward_s": best_of(backward, repeats)})

    model = build_model("blog_cnn", (3, 32, 32), 10).to(memory_format=cl)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=cl)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step_s = best_of(step, repeats)
    test = torch.randn(10_000, 3, 32, 32)
    eval_batch = EVAL_BATCH_SIZE["cpu"]
    model.eval()

    def evaluate() -> None:
        with torch.inference_mode():
            for start in range(0, len(test), eval_batch):
                model(test[start : start + eval_batch].contiguous(memory_format=cl))

    evaluate()
    started = time.perf_counter()
    evaluate()
    return {"matmul_gflops": 2 * 2048**3 / matmul / 1e9, "layers": layers, "step_s": step_s,
            "eval_10k_s": time.perf_counter() - started, "eval_batch": eval_batch}


def first_optimizer_child() -> dict:
    """Seconds of a fresh process's first ``torch.optim.Adam(...)`` (it imports torch._dynamo)."""
    import time

    import torch

    started = time.perf_counter()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    return {"first_optimizer_s": time.perf_counter() - started}


def run_child(*extra: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"error: a benchmark process failed (exit code {out.returncode}): "
                         f"{out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def floor_seconds(kernels: dict, train_images: int, test_images: int, batch: int) -> dict:
    """Convolution seconds of one trial, scaling the per-batch times by the images it processes."""
    per_image_train = sum(layer["forward_s"] + layer["backward_s"] for layer in kernels["layers"]) / batch
    per_image_test = sum(layer["forward_eval_s"] for layer in kernels["layers"]) / batch
    train, test = per_image_train * train_images, per_image_test * test_images
    flops_train = sum(3 * conv_flops(*s) for s in CONVS) - conv_flops(*CONVS[0])  # no input grad for conv1
    flops_test = sum(conv_flops(*s) for s in CONVS)
    return {"train_s": train, "eval_s": test, "total_s": train + test,
            "gflops": (flops_train * train_images + flops_test * test_images) / (train + test) / 1e9}


def spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main(argv: list[str] | None = None) -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cifar10-jpeg",
                        help="folder with the CIFAR-10 train/test.parquet, for the baseline")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each: kernels, first optimizer, baseline (>= 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the kernels (>= 1)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per kernel (>= 3)")
    parser.add_argument("--train-size", type=int, default=5000, help="training images of the trial (>= 1)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the trial (>= 1)")
    parser.add_argument("--child", choices=("kernels", "first_optimizer"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, low in (("rounds", 1), ("threads", 1), ("repeats", 3), ("train_size", 1), ("epochs", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    batch = 128  # the blog recipe's batch size, and the CPU evaluation batch
    if args.child == "kernels":
        print(json.dumps(kernels_child(args.threads, batch, args.repeats)))
        return 0
    if args.child == "first_optimizer":
        print(json.dumps(first_optimizer_child()))
        return 0
    if not (args.data / "train.parquet").is_file():
        print(f"error: {args.data / 'train.parquet'} not found; pass --data DIR with train/test.parquet",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "bench"))

    train_images, test_images = args.train_size * args.epochs, 10_000
    steps = args.epochs * -(-args.train_size // batch)
    rows: dict[str, list[float]] = {k: [] for k in (
        "matmul_gflops", "conv_train_s", "conv_eval_s", "conv_total_s", "conv_gflops", "step_s", "train_now_s",
        "eval_now_s", "first_optimizer_s", "baseline_first_s", "baseline_warm_s", "ratio_cap_warm", "ratio_cap_first")}
    for round_ in range(args.rounds):
        kernels = run_child("--child", "kernels", "--threads", str(args.threads), "--repeats", str(args.repeats))
        first = run_child("--child", "first_optimizer")["first_optimizer_s"]
        baseline = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "baseline_trial.py"), "--data", str(args.data),
             "--train-size", str(args.train_size), "--epochs", str(args.epochs), "--seed", str(2 * round_),
             "--threads", str(args.threads), "--trials", "2", "--json"],
            capture_output=True, text=True, cwd=ROOT)
        if baseline.returncode != 0:
            last = baseline.stderr.strip().splitlines()[-1] if baseline.stderr.strip() else ""
            raise SystemExit(f"error: the baseline failed (exit code {baseline.returncode}): {last}")
        first_trial, warm_trial = (json.loads(line) for line in baseline.stdout.strip().splitlines()[-2:])
        floor = floor_seconds(kernels, train_images, test_images, batch)
        values = {"matmul_gflops": kernels["matmul_gflops"], "conv_train_s": floor["train_s"],
                  "conv_eval_s": floor["eval_s"], "conv_total_s": floor["total_s"], "conv_gflops": floor["gflops"],
                  "step_s": kernels["step_s"], "train_now_s": kernels["step_s"] * steps,
                  "eval_now_s": kernels["eval_10k_s"], "first_optimizer_s": first,
                  "baseline_first_s": first_trial["seconds"], "baseline_warm_s": warm_trial["seconds"],
                  "ratio_cap_warm": warm_trial["seconds"] / floor["total_s"],
                  "ratio_cap_first": first_trial["seconds"] / (floor["total_s"] + first)}
        for key, value in values.items():
            rows[key].append(value)
        print(f"round {round_}: convolutions {floor['total_s']:.2f} s ({floor['gflops']:.0f} GFLOP/s; matmul "
              f"{kernels['matmul_gflops']:.0f}), step {1000 * kernels['step_s']:.1f} ms, eval {kernels['eval_10k_s']:.2f} s, "
              f"first optimizer {first:.2f} s, baseline {first_trial['seconds']:.1f} s first, "
              f"{warm_trial['seconds']:.1f} s warm", flush=True)

    print(f"\nblog_cnn trial: {args.train_size} images x {args.epochs} epochs ({steps} steps of {batch}), "
          f"10,000 test images; {args.threads} threads; n={args.rounds}, median (min-max)")
    print("| quantity | value |\n|---|---|")
    table = (
        ("matrix-multiply peak, GFLOP/s (2048^3 fp32)", "matmul_gflops", ".0f"),
        ("convolutions of a trial at their measured speed, GFLOP/s", "conv_gflops", ".0f"),
        ("convolution seconds: training", "conv_train_s", ".2f"),
        ("convolution seconds: evaluation", "conv_eval_s", ".2f"),
        ("**convolution seconds: the trial's floor**", "conv_total_s", ".2f"),
        ("training step today (seconds)", "step_s", ".4f"),
        ("training today: steps x step (seconds)", "train_now_s", ".2f"),
        ("evaluation today (seconds)", "eval_now_s", ".2f"),
        ("a fresh process's first optimizer (seconds)", "first_optimizer_s", ".2f"),
        ("baseline, first trial of a fresh process (seconds)", "baseline_first_s", ".1f"),
        ("baseline, second trial of that process (seconds)", "baseline_warm_s", ".1f"),
        ("**highest reachable ratio, warm process**: warm baseline / floor", "ratio_cap_warm", ".2f"),
        ("**highest reachable ratio, first trial**: first baseline / (floor + first optimizer)", "ratio_cap_first",
         ".2f"),
    )
    for label, key, fmt in table:
        print(f"| {label} | {spread(rows[key], fmt)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
