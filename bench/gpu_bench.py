"""GPU benchmark of the trial engine, no Ray: accuracy and seconds per trial, packing, memory, FLOP/s.

Run from the repository root on a machine with one GPU (PyTorch, torchvision, pandas, pyarrow,
numpy; neither Ray nor this project installed)::

    python bench/gpu_bench.py --data .device-data/cifar10-jpeg          # about 5-7 min on one H100
    python bench/gpu_bench.py --data DIR --smoke --device cpu           # tiny, any machine, < 1 min

Sections, in this order (each appends to the results, which are rewritten after every section, so
a run cut short still leaves what it measured):

1. ``fast_cnn``: its recipe on all 50,000 training images, ``--seeds`` seeds after one warm-up
   trial: clean test accuracy and seconds per trial (decode excluded, evaluation included).
2. ``blog_cnn`` with the ``blog`` preset's recipe (15 epochs, batch 128, Adam) on 50,000 images
   and on 5,000: seconds per trial; the two sizes give seconds = fixed + per_image * size.
3. Per model: peak GPU memory of a trial (torch.cuda.max_memory_allocated), FLOPs of one training
   step (torch.utils.flop_counter.FlopCounterMode) and the achieved TFLOP/s against the card's
   dense bf16 peak.
4. Host syncs inside the training loop, counted with torch.cuda.set_sync_debug_mode("warn") over
   one short trial (expected: one per epoch, the epoch's loss, plus the end of the trial).
5. Packing: 1, 2, 4, 8 processes (multiprocessing spawn, as Ray's fractional GPUs run them) each
   running ``run_trial`` in a loop on one GPU for ``--window`` seconds: trials per hour, and the
   fraction of a GPU a trial should get.
6. The ``blog-x20`` preset (1,200 trials: 10 noise x 6 sizes x 20 seeds, 15 epochs, mean size
   25,833) estimated in hours on this GPU from 2 and 5.

Writes ``gpu_bench.json`` and ``gpu_bench.md`` to $OUT if set, else ./gpu_bench_out.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: `sweep` without installing

from sweep.engine.config import TrialConfig  # noqa: E402
from sweep.engine.datasets import ImageDataset, load_dataset  # noqa: E402
from sweep.engine.models import build_model  # noqa: E402
from sweep.engine.recipes import recipe_for  # noqa: E402
from sweep.engine.trial import run_trial  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks from the vendor's data sheets, TFLOP/s.
PEAK_BF16_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0,
                    "H200": 989.4, "A100": 312.0, "L4": 121.0, "A10G": 70.0}
BLOG_X20_TRIALS = 10 * 6 * 20
BLOG_X20_SIZES = (50_000, 40_000, 30_000, 20_000, 10_000, 5_000)


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def subset_test(dataset: ImageDataset, test_size: int | None) -> ImageDataset:
    """The dataset with ``test_size`` evenly strided test images (the smoke mode's shortcut; the
    test split may be sorted by class, so a prefix would hold one class)."""
    if test_size is None or test_size >= dataset.num_test:
        return dataset
    keep = np.linspace(0, dataset.num_test - 1, test_size).round().astype(np.int64)
    return dataclasses.replace(dataset, test_images=np.ascontiguousarray(dataset.test_images[keep]),
                               test_labels=np.ascontiguousarray(dataset.test_labels[keep]))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_trial(config: TrialConfig, dataset: ImageDataset) -> dict[str, float]:
    """One trial; seconds are wall clock including evaluation, excluding dataset decoding."""
    if config.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = run_trial(config, dataset)
    sync(config.device)
    out = {"seed": config.seed, "train_size": result.train_size, "accuracy": result.accuracy,
           "seconds": time.perf_counter() - started, "train_seconds": result.train_seconds}
    if config.device == "cuda":
        out["max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def step_flops(model_name: str, dataset: ImageDataset, device: str, batch_size: int) -> tuple[int, int]:
    """FLOPs of one training step (forward + backward) at ``batch_size``, and of one forward image."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(model_name, dataset.image_shape, dataset.num_classes).to(device)
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch_size, *dataset.image_shape, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, dataset.num_classes, (batch_size,), device=device)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        with FlopCounterMode(display=False) as counter:
            loss = F.cross_entropy(model(x).float(), y)
            loss.backward()
        train = counter.get_total_flops()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x[:1])
        forward_one = counter.get_total_flops()
    return train, forward_one


# --- packing: several trials on one GPU as separate processes ---------------------------------

def _packing_worker(rank: int, args: dict[str, Any], ready, start, results) -> None:
    """Runs trials in a loop from ``start`` for ``window`` seconds; reports completion times."""
    signalled = False
    try:
        torch.set_num_threads(1)
        torch.backends.cudnn.benchmark = args["cudnn_benchmark"]  # spawned: the parent's setting is not inherited
        dataset = subset_test(load_dataset(args["spec"]), args["test_size"])
        base = TrialConfig(dataset=args["spec"], model=args["model"], train_size=args["train_size"],
                           epochs=args["epochs"], device=args["device"], num_threads=1)
        run_trial(base.replace(seed=10_000 + rank, epochs=1), dataset)  # warm-up: CUDA context, cuDNN plans
        ready.put(rank)
        signalled = True
        t0 = start.get()
        done: list[float] = []
        seed = rank * 1000
        while time.time() - t0 < args["window"]:
            run_trial(base.replace(seed=seed), dataset)
            done.append(time.time() - t0)
            seed += 1
        mem = torch.cuda.max_memory_allocated() / 2**20 if args["device"] == "cuda" else None
        results.put({"rank": rank, "done": done, "max_memory_allocated_mib": mem})
    except Exception:  # reported to the parent, which records it
        results.put({"rank": rank, "error": traceback.format_exc(limit=5)})
        if not signalled:  # the parent waits for every worker to be ready: do not make it wait out its timeout
            ready.put(rank)


def packing(processes: int, args: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, start, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_packing_worker, args=(r, args, ready, start, results), daemon=True)
             for r in range(processes)]
    launched = time.perf_counter()
    for p in procs:
        p.start()
    for _ in range(processes):
        ready.get(timeout=args["window"] + 300)
    startup = time.perf_counter() - launched
    t0 = time.time()
    for _ in range(processes):
        start.put(t0)
    reports = [results.get(timeout=args["window"] * 10 + 300) for _ in range(processes)]
    for p in procs:
        p.join(timeout=60)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        return {"processes": processes, "error": errors[0]}
    # Each process's rate: its completed trials over the time its last one finished.
    rates = [len(r["done"]) / r["done"][-1] for r in reports if r["done"]]
    trials_per_hour = 3600 * sum(rates)
    mems = [r["max_memory_allocated_mib"] for r in reports if r["max_memory_allocated_mib"] is not None]
    return {"processes": processes, "trials_completed": sum(len(r["done"]) for r in reports),
            "trials_per_hour": trials_per_hour, "startup_seconds": startup,
            "seconds_per_trial_in_process": statistics.median(1 / r for r in rates) if rates else None,
            "max_memory_allocated_mib_per_process": max(mems) if mems else None}


# --- the run ------------------------------------------------------------------------------------

class Report:
    """Results so far; rewritten to OUT after every section."""

    def __init__(self, out_dir: Path, meta: dict[str, Any]) -> None:
        self.out_dir, self.data = out_dir, {"meta": meta, "sections": {}}
        out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, value: Any) -> None:
        self.data["sections"][name] = value
        (self.out_dir / "gpu_bench.json").write_text(json.dumps(self.data, indent=2, default=float))
        (self.out_dir / "gpu_bench.md").write_text(markdown(self.data))
        print(f"[{name}] {json.dumps(value, default=float)[:600]}", flush=True)


def markdown(data: dict[str, Any]) -> str:
    meta, s = data["meta"], data["sections"]
    lines = [f"# gpu_bench: {meta['device_name']}", "",
             f"{meta['date']}, torch {meta['torch']}, command `{meta['command']}`", "",
             "| measure | value |", "|---|---|"]

    def row(k: str, v: Any) -> None:
        lines.append(f"| {k} | {v} |")

    for model in ("fast_cnn", "blog_cnn"):
        m = s.get(model)
        if not m:
            continue
        if "accuracy_mean" in m:
            row(f"{model} accuracy (n={m['n']})", f"{100 * m['accuracy_mean']:.2f} % (min {100 * m['accuracy_min']:.2f}, "
                f"max {100 * m['accuracy_max']:.2f})")
        for key, label in (("seconds_median", "s per trial"), ("seconds_median_small", "s per trial, small size")):
            if key in m:
                row(f"{model} {label} ({m.get('label_' + key, '')})", f"{m[key]:.2f}")
    for key, v in s.get("flops", {}).items():
        row(f"{key} GPU memory per trial", f"{v.get('max_memory_allocated_mib', float('nan')):.0f} MiB")
        row(f"{key} achieved TFLOP/s (training)", f"{v['achieved_tflops_train']:.1f}"
            + (f" = {100 * v['share_of_peak']:.1f} % of {v['peak_tflops']:.0f} bf16 peak" if v.get("share_of_peak") else ""))
    if "syncs" in s:
        row("host syncs in one trial", f"{s['syncs']['syncs']} for {s['syncs']['epochs']} epochs")
    for p in s.get("packing", {}).get("runs", []):
        if "error" in p:
            row(f"{p['processes']} processes", "error: " + p["error"].splitlines()[-1])
        else:
            row(f"{p['processes']} processes: trials/hour ({s['packing']['trial']})", f"{p['trials_per_hour']:.0f}")
    if "packing" in s and "recommended_gpu_fraction" in s["packing"]:
        row("recommended GPU fraction per trial", s["packing"]["recommended_gpu_fraction"])
    if "blog_x20" in s:
        row("blog-x20 estimate (1,200 trials)", f"{s['blog_x20']['hours']:.2f} h at {s['blog_x20']['processes']} processes")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=".device-data/cifar10-jpeg", help="folder with train/test.parquet")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--smoke", action="store_true",
                        help="tiny setting for CPU testing: 512 train images, 1 epoch, 1 seed, 2 s windows, 1-2 processes")
    parser.add_argument("--seeds", type=int, default=4, help="timed fast_cnn trials after a warm-up")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--window", type=float, default=25.0, help="seconds each packing run measures")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds; later sections are skipped past it")
    parser.add_argument("--compile", action="store_true", help="also time fast_cnn under torch.compile")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="turn on cuDNN's autotuner in every section (a sweep's trials run without it)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available here", file=sys.stderr)
        return 2
    data = Path(args.data)
    if not (data / "train.parquet").is_file():
        print(f"error: {data / 'train.parquet'} not found; pass --data DIR with train/test.parquet", file=sys.stderr)
        return 2
    # cuDNN's autotuner is off unless asked for, as in a sweep's trials (run_trial does not set it), so
    # these figures are what a sweep gets; --cudnn-benchmark measures the lever, in every section.
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    smoke = args.smoke
    full_size = 512 if smoke else None  # None: the whole split
    small_size = 256 if smoke else 5000
    epochs = 1 if smoke else None
    test_size = 200 if smoke else None
    seeds = 1 if smoke else args.seeds
    processes = [1, 2] if smoke else args.processes
    window = 2.0 if smoke else args.window
    spec = f"parquet:{data}"
    device_name = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.processor() or platform.machine()})"
    out_dir = Path(os.environ.get("OUT") or "gpu_bench_out")
    report = Report(out_dir, {"device_name": device_name, "torch": torch.__version__, "smoke": smoke,
                              "command": " ".join([Path(sys.executable).name] + sys.argv),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "peak_bf16_tflops": peak_tflops(device_name)})

    load_started = time.perf_counter()
    dataset = subset_test(load_dataset(spec), test_size)
    report.add("load", {"seconds": time.perf_counter() - load_started, "train": dataset.num_train,
                        "test": dataset.num_test})

    def over_budget(section: str) -> bool:
        if time.perf_counter() - started > args.budget:
            report.add(section, {"skipped": f"past the {args.budget:.0f} s budget"})
            return True
        return False

    def base(model: str, **changes: Any) -> TrialConfig:
        fields = {"dataset": spec, "model": model, "train_size": full_size, "epochs": epochs, "device": device}
        return TrialConfig(**{**fields, **changes})

    # 1. fast_cnn
    # A warm-up trial pays for the CUDA context and cuDNN's plan search; not in the smoke test.
    warm = None if smoke else timed_trial(base("fast_cnn", seed=99), dataset)
    runs = [timed_trial(base("fast_cnn", seed=s), dataset) for s in range(seeds)]
    acc = [r["accuracy"] for r in runs]
    fast = {"n": len(runs), "warmup": warm, "runs": runs, "accuracy_mean": statistics.mean(acc),
            "accuracy_min": min(acc), "accuracy_max": max(acc),
            "seconds_median": statistics.median(r["seconds"] for r in runs),
            "label_seconds_median": f"{runs[0]['train_size']} images, {recipe_for(base('fast_cnn')).epochs} epochs",
            "note": "recipe untested on a GPU before this run"}
    if args.compile and not over_budget("fast_cnn_compiled"):
        import sweep.engine.trial as trial_module

        plain_build = trial_module.build_model
        trial_module.build_model = lambda *a, **k: torch.compile(plain_build(*a, **k))
        try:
            compiled = [timed_trial(base("fast_cnn", seed=s), dataset) for s in range(2)]
        finally:
            trial_module.build_model = plain_build
        fast["compiled_runs"] = compiled  # the first includes compilation
    report.add("fast_cnn", fast)

    # 2. blog_cnn, the blog preset's recipe
    if not over_budget("blog_cnn"):
        if not smoke:  # cuDNN's plan search for blog_cnn's shapes, outside the timed trials
            timed_trial(base("blog_cnn", seed=98, epochs=1, train_size=small_size), dataset)
        big = [timed_trial(base("blog_cnn", seed=s), dataset) for s in range(2 if not smoke else 1)]
        small = [timed_trial(base("blog_cnn", seed=s, train_size=small_size), dataset) for s in range(2 if not smoke else 1)]
        t_big = statistics.median(r["seconds"] for r in big)
        t_small = statistics.median(r["seconds"] for r in small)
        n_big, n_small = big[0]["train_size"], small[0]["train_size"]
        per_image = (t_big - t_small) / (n_big - n_small)
        fixed, fit = t_small - per_image * n_small, "linear in the train size through the two sizes"
        if per_image <= 0 or fixed < 0:  # timing noise swamped the difference (tiny smoke sizes, a busy CPU)
            per_image, fixed, fit = t_big / n_big, 0.0, "proportional to the train size (the two sizes did not separate)"
        report.add("blog_cnn", {"runs": big, "runs_small": small, "seconds_median": t_big, "seconds_median_small": t_small,
                                "label_seconds_median": f"{n_big} images, {recipe_for(base('blog_cnn')).epochs} epochs",
                                "label_seconds_median_small": f"{n_small} images",
                                "fixed_seconds": fixed, "seconds_per_train_image": per_image, "fit": fit,
                                "accuracy_mean": statistics.mean(r["accuracy"] for r in big), "n": len(big),
                                "accuracy_min": min(r["accuracy"] for r in big),
                                "accuracy_max": max(r["accuracy"] for r in big)})

    # 3. memory and FLOP/s
    if not over_budget("flops"):
        flops = {}
        for model, section in (("fast_cnn", "fast_cnn"), ("blog_cnn", "blog_cnn")):
            if section not in report.data["sections"] or "runs" not in report.data["sections"][section]:
                continue
            recipe = recipe_for(base(model))
            run = report.data["sections"][section]["runs"][0]
            n = run["train_size"]
            batch = min(recipe.batch_size, n)  # what the trial's steps hold
            train_flops, fwd_one = step_flops(model, dataset, device, batch)
            steps = (n // batch + (1 if n % batch > 1 else 0)) * recipe.epochs
            # FLOPs per training image x the images trained on (a trailing partial batch is not a full step)
            images = (n if n % batch != 1 else n - 1) * recipe.epochs
            achieved = train_flops / batch * images / run["train_seconds"] / 1e12
            peak = peak_tflops(device_name)
            flops[model] = {"train_step_gflop": train_flops / 1e9, "forward_mflop_per_image": fwd_one / 1e6,
                            "steps": steps, "achieved_tflops_train": achieved, "peak_tflops": peak,
                            "share_of_peak": achieved / peak if peak else None,
                            "max_memory_allocated_mib": run.get("max_memory_allocated_mib", float("nan"))}
        report.add("flops", flops)

    # 4. host syncs in the training loop
    if device == "cuda" and not over_budget("syncs"):
        sync_epochs = 2
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run_trial(base("fast_cnn", seed=7, epochs=sync_epochs, train_size=5000), dataset)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        messages = [str(w.message) for w in caught if "synchroniz" in str(w.message).lower()]
        report.add("syncs", {"syncs": len(messages), "epochs": sync_epochs, "first": messages[:3]})

    # 5. packing
    trial_size = small_size
    pack_args = {"spec": spec, "model": "blog_cnn", "train_size": trial_size, "epochs": epochs, "device": device,
                 "window": window, "test_size": test_size, "cudnn_benchmark": args.cudnn_benchmark}
    runs = []
    for p in processes:
        if over_budget(f"packing_{p}"):
            break
        runs.append(packing(p, pack_args))
        report.add("packing", {"trial": f"blog_cnn, {trial_size} images, blog recipe", "runs": runs})
    good = [r for r in runs if "trials_per_hour" in r]
    if good:
        single = next((r["trials_per_hour"] for r in good if r["processes"] == 1), good[0]["trials_per_hour"])
        best = max(good, key=lambda r: r["trials_per_hour"])
        # The smallest process count within 5 % of the best throughput: more only adds memory and latency.
        chosen = min((r for r in good if r["trials_per_hour"] >= 0.95 * best["trials_per_hour"]),
                     key=lambda r: r["processes"])
        for r in good:
            r["speedup_vs_1"] = r["trials_per_hour"] / single
        report.add("packing", {"trial": f"blog_cnn, {trial_size} images, blog recipe", "runs": runs,
                               "recommended_processes": chosen["processes"],
                               "recommended_gpu_fraction": round(1 / chosen["processes"], 3)})

        # 6. blog-x20 estimate from the blog_cnn size model and the packing speed-up.
        blog = report.data["sections"].get("blog_cnn", {})
        if "fixed_seconds" in blog:
            mean_size = statistics.mean(BLOG_X20_SIZES)
            alone = blog["fixed_seconds"] + blog["seconds_per_train_image"] * mean_size
            speedup = chosen["speedup_vs_1"]
            hours = BLOG_X20_TRIALS * alone / speedup / 3600
            report.add("blog_x20", {"trials": BLOG_X20_TRIALS, "mean_train_size": mean_size,
                                    "seconds_per_trial_alone": alone, "processes": chosen["processes"],
                                    "packing_speedup": speedup, "hours": hours,
                                    "assumes": "packing speed-up measured at the small size holds at the mean size"})
    report.add("total", {"seconds": time.perf_counter() - started})
    print(markdown(report.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
