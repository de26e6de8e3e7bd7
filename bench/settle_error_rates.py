"""The stopping rule of `sweep run --until-settled`: its false-settled rate with and without the guard.

Simulated seeds with a known truth (``analysis.settle.simulate_stops``: normal per-seed sensitivities,
revealed round by round as the sweep reveals them, rounds sized as the sweep sizes them). For each
scenario and guard it prints the share of runs whose claims at the stop include a false one (an
interval missing its true value, a pair called separated or tied wrongly), with its binomial sd,
the share that stopped as met, and the mean seeds at the stop. The figures go to docs/sequential.md.

    python bench/settle_error_rates.py --reps 1000
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from analysis.settle import max_looks, simulate_stops

SCENARIOS = {  # name -> (true per-seed means, per-seed sd, target, start seeds, budget)
    "null pair (2 equal classes, margin 0.001)": ([0.10, 0.10], 0.02, "ranking:0.001", 3, 30),
    "4 classes, half-width 0.03": ([0.05, 0.10, 0.15, 0.20], 0.02, "sensitivity:0.03", 3, 20),
    "10 classes, half-width 0.03": (list(np.linspace(0.05, 0.30, 10)), 0.02, "sensitivity:0.03", 3, 40),
    "4 classes, 2 tied pairs, margin 0.03": ([0.20, 0.20, 0.10, 0.10], 0.02, "ranking:0.03", 3, 40),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="simulated runs per scenario and guard")
    args = parser.parse_args()
    print(f"{'scenario':45} {'guard':7} {'looks':>5} {'false-settled':>14} {'sd':>6} {'met':>6} {'seeds':>6}")
    for name, (mean, sd, target, start, budget) in SCENARIOS.items():
        for guard in ("looks", "family", "none"):
            if guard == "none" and len(mean) * (len(mean) - 1) // 2 * 0.05 >= 1 and target.startswith("ranking"):
                continue
            if guard == "none" and len(mean) * 0.05 >= 1:
                continue
            started = time.perf_counter()
            runs = simulate_stops(mean, sd, target=target, start=start, max_seeds=budget, reps=args.reps,
                                  guard=guard, random_state=11)
            rate = runs["wrong"].mean()
            print(f"{name:45} {guard:7} {max_looks(start, budget):5d} {rate:14.3f} "
                  f"{math.sqrt(rate * (1 - rate) / args.reps):6.3f} {(runs['stop'] == 'met').mean():6.2f} "
                  f"{runs['seeds'].mean():6.1f}   ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
