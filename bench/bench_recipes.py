"""The cost of an answer: how many seeds each training recipe needs to settle every class's noise sensitivity.

A class's recall swings from seed to seed; the seeds a study needs grow with the square of that
swing. This runs the same trials under each recipe, side by side in one run, on real data (by
default CIFAR-10 from `../shared/data/cifar10-jpeg`, 5,000 training images, blog_cnn), for
seeds 0..S-1 at a clean and a noisy level, and prints per recipe:

- overall accuracy (clean), mean and between-seed standard deviation;
- the between-seed standard deviation of per-class recall, averaged over classes, at each level;
- each class's noise sensitivity, recall(clean) - recall(noisy) paired by seed, and the
  between-seed standard deviation of it (mean over classes, and the worst class);
- the seeds the project's power estimate (the t-interval the analysis reports,
  ``analysis.findings``' formula) needs for every class's sensitivity to be known to +-0.03
  (95 % interval half-width), and that count against the default recipe's;
- seconds per trial (mean; the trials of all recipes interleave, so contention is shared);
- whether the recipes agree on which classes are most sensitive: Spearman's rank correlation of
  the classes' mean sensitivities against the default recipe's, with a 95 % bootstrap interval
  over seeds.

Every trial runs in a worker process of its own thread (``--workers`` processes, 1 torch thread
each), recipes and seeds interleaved. Run by hand (about 2 minutes a trial per core here):

    python bench/bench_recipes.py                          # 3 recipes x 5 seeds x 2 levels = 30 trials
    python bench/bench_recipes.py --seeds 8 --recipes default,triangle
    python bench/bench_recipes.py --json bench-recipes.json  # also write every trial's numbers
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import time

import numpy as np

# name -> TrialConfig recipe overrides. "default" is blog_cnn's own recipe (Adam 1e-3, constant).
RECIPES: dict[str, dict] = {
    "default": {},
    # Linear warm-up over 20 % of the steps, then a straight line to 0, at twice the peak rate: a
    # model read at the end of a decay has no last-batches bias left to carry.
    "triangle": {"schedule": "triangle", "warmup": 0.2, "lr": 2e-3},
    # The default recipe, evaluated as a moving average of its weights (decay 0.99 a step: about
    # the last 100 steps, 2.5 epochs at 5,000 images).
    "ema": {"ema": 0.99},
    "triangle_ema": {"schedule": "triangle", "warmup": 0.2, "lr": 2e-3, "ema": 0.99},
    "cosine": {"schedule": "cosine", "warmup": 0.1, "lr": 2e-3},
}
HALF_WIDTH = 0.03  # the precision asked for: each class's sensitivity to +-0.03 (95 %)


def _run_one(job: dict) -> dict:
    import torch

    from sweep.engine.config import TrialConfig
    from sweep.engine.trial import run_trial

    torch.set_num_threads(1)
    config = TrialConfig(dataset=job["dataset"], model="blog_cnn", noise_fraction=job["noise"],
                         train_size=job["train_size"], seed=job["seed"], num_threads=1, device="cpu",
                         **RECIPES[job["recipe"]])
    started = time.perf_counter()
    result = run_trial(config)
    return {**job, "trial_id": config.trial_id, "accuracy": result.accuracy,
            "recall": [float(r) for r in result.per_class_accuracy], "classes": list(result.classes),
            "seconds": time.perf_counter() - started}


def seeds_needed(sd: float, half_width: float = HALF_WIDTH) -> int:
    """Smallest n with t_{0.975, n-1} * sd / sqrt(n) <= half_width (n >= 2)."""
    from scipy import stats

    if not np.isfinite(sd) or sd == 0:
        return 2
    n = 2
    while stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) > half_width:
        n += 1
        if n > 100_000:
            return n
    return n


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats

    return float(stats.spearmanr(a, b).statistic)


def summarize(rows: list[dict], recipes: list[str], noise: tuple[float, float], seeds: list[int],
              n_boot: int = 2000) -> dict:
    clean, noisy = noise
    out: dict = {}
    sens_by_recipe = {}
    for recipe in recipes:
        def recall(level: float) -> np.ndarray:  # (seeds, K)
            return np.array([next(r["recall"] for r in rows if r["recipe"] == recipe and r["noise"] == level
                                  and r["seed"] == s) for s in seeds])

        rc, rn = recall(clean), recall(noisy)
        acc = np.array([next(r["accuracy"] for r in rows if r["recipe"] == recipe and r["noise"] == clean
                             and r["seed"] == s) for s in seeds])
        sens = rc - rn  # paired by seed
        sens_by_recipe[recipe] = sens
        sd_sens = sens.std(axis=0, ddof=1)
        out[recipe] = {
            "accuracy_mean": float(acc.mean()), "accuracy_sd": float(acc.std(ddof=1)),
            "recall_sd_clean": float(rc.std(axis=0, ddof=1).mean()),
            "recall_sd_noisy": float(rn.std(axis=0, ddof=1).mean()),
            "sensitivity_sd_mean": float(sd_sens.mean()), "sensitivity_sd_max": float(sd_sens.max()),
            "seeds_needed": seeds_needed(float(sd_sens.max())),  # every class to +-0.03: the worst one decides
            "seconds_mean": float(np.mean([r["seconds"] for r in rows if r["recipe"] == recipe])),
            "sensitivity_mean": [float(v) for v in sens.mean(axis=0)],
        }
    base = out.get("default")
    rng = np.random.default_rng(0)
    for recipe in recipes:
        if base is None:
            break
        out[recipe]["seeds_ratio_vs_default"] = base["seeds_needed"] / out[recipe]["seeds_needed"]
        out[recipe]["variance_ratio_vs_default"] = float(
            np.mean(sens_by_recipe["default"].var(axis=0, ddof=1)) / np.mean(sens_by_recipe[recipe].var(axis=0, ddof=1)))
        a, b = sens_by_recipe["default"], sens_by_recipe[recipe]
        rho = _spearman(a.mean(axis=0), b.mean(axis=0))
        boots = []
        for _ in range(n_boot):  # resample seeds, the same draw for both recipes (they share seeds)
            idx = rng.integers(0, len(seeds), len(seeds))
            boots.append(_spearman(a[idx].mean(axis=0), b[idx].mean(axis=0)))
        boots = np.array([x for x in boots if np.isfinite(x)])
        out[recipe]["rank_agreement"] = {"spearman": rho, "ci_low": float(np.percentile(boots, 2.5)),
                                         "ci_high": float(np.percentile(boots, 97.5))}
    return out


def main() -> None:
    from _cli import ROOT, OneLineParser

    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=f"parquet:{ROOT.parent / 'shared' / 'data' / 'cifar10-jpeg'}",
                        help="dataset spec (default: the real CIFAR-10 beside the repository)")
    parser.add_argument("--train-size", type=int, default=5000, help="training examples (default 5000)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..S-1 per recipe and level (>= 3; default 5)")
    parser.add_argument("--noise", type=float, nargs=2, default=(0.0, 0.4), metavar=("CLEAN", "NOISY"),
                        help="the two noise levels whose difference is the sensitivity (default 0 0.4)")
    parser.add_argument("--recipes", default="default,triangle,ema",
                        help=f"comma list of {', '.join(RECIPES)} (default: default,triangle,ema)")
    parser.add_argument("--workers", type=int, default=2, help="trial processes, 1 thread each (default 2)")
    parser.add_argument("--json", metavar="FILE", help="also write every trial and the summary as JSON")
    args = parser.parse_args()
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown or not recipes:
        parser.error(f"--recipes: unknown recipe(s) {unknown or args.recipes!r}; allowed: {', '.join(RECIPES)}")
    if args.seeds < 3 or args.workers < 1 or args.train_size < 1:
        parser.error(f"--seeds must be >= 3, --workers and --train-size >= 1; got {args.seeds}, {args.workers}, "
                     f"{args.train_size}")
    if not all(0 <= x <= 1 for x in args.noise) or args.noise[0] == args.noise[1]:
        parser.error(f"--noise must be two different fractions in [0, 1], got {args.noise}")

    from sweep.engine.datasets import load_dataset

    load_dataset(args.dataset)  # decode once, into the disk cache the workers read
    seeds = list(range(args.seeds))
    jobs = [{"recipe": r, "noise": x, "seed": s, "dataset": args.dataset, "train_size": args.train_size}
            for s in seeds for x in args.noise for r in recipes]  # interleaved: contention is shared
    print(f"{len(jobs)} trials: {len(recipes)} recipes x {len(seeds)} seeds x 2 levels, {args.workers} workers",
          flush=True)
    started = time.perf_counter()
    rows = []
    with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=None) as pool:
        for row in pool.imap_unordered(_run_one, jobs):
            rows.append(row)
            print(f"  {len(rows)}/{len(jobs)} {row['recipe']:13s} noise {row['noise']:.2f} seed {row['seed']}: "
                  f"accuracy {row['accuracy']:.4f}, {row['seconds']:.0f} s", flush=True)
    wall = time.perf_counter() - started
    summary = summarize(rows, recipes, tuple(args.noise), seeds)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{args.dataset}, blog_cnn, {args.train_size} training images, seeds 0-{args.seeds - 1}, "
          f"noise {args.noise[0]:g} vs {args.noise[1]:g}; wall {wall / 60:.1f} min")
    header = (f"{'recipe':14s} {'accuracy':>15s} {'recall sd':>16s} {'sens. sd':>15s} {'seeds for':>9s} "
              f"{'vs':>6s} {'var':>6s} {'s/trial':>7s}  rank agreement with default")
    print(header)
    print(f"{'':14s} {'clean, mean±sd':>15s} {'clean / noisy':>16s} {'mean / worst':>15s} {'±0.03':>9s} "
          f"{'default':>6s} {'ratio':>6s}")
    for recipe in recipes:
        s = summary[recipe]
        agree = s.get("rank_agreement")
        agree_text = (f"rho {agree['spearman']:.2f} (95% CI {agree['ci_low']:.2f} to {agree['ci_high']:.2f})"
                      if agree else "")
        print(f"{recipe:14s} {s['accuracy_mean'] * 100:7.2f}±{s['accuracy_sd'] * 100:4.2f} % "
              f"{s['recall_sd_clean']:7.3f} / {s['recall_sd_noisy']:.3f} {s['sensitivity_sd_mean']:6.3f} / "
              f"{s['sensitivity_sd_max']:.3f} {s['seeds_needed']:9d} {s.get('seeds_ratio_vs_default', 1):5.2f}x "
              f"{s.get('variance_ratio_vs_default', 1):5.2f}x {s['seconds_mean']:7.0f}  {agree_text}")
    classes = rows[0]["classes"]
    print("\nmost sensitive classes (mean recall lost, clean -> noisy):")
    for recipe in recipes:
        order = np.argsort(summary[recipe]["sensitivity_mean"])[::-1][:3]
        print(f"  {recipe:14s} " + ", ".join(f"{classes[i]} {summary[recipe]['sensitivity_mean'][i]:.3f}"
                                              for i in order))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows, "summary": summary, "wall_s": wall}, fh, indent=1)


if __name__ == "__main__":
    main()
