"""The bend test's false-bend rate on straight lines and its power on planted bends, by simulation.

Draws whole synthetic sweeps (``analysis.synthetic``: per-seed offsets shared across levels,
per-trial jitter, multinomial test counts) and runs ``analysis.breakpoints`` on the noise axis of
each. Two grid shapes:

    quick  5 noise levels 0-0.6, 45 test examples per class (the digits preset's shape)
    blog   10 noise levels 0-0.6, 1,000 test examples per class (the reference study's shape)

Straight lines: every class of the default spec except the collapsing one (which is switched off):
ordinary linear slopes, a steep linear class, a nearly flat one and two flat ones. A false bend is
a class with p < 0.05; the family-wise rate is the share of grids with any class at p_holm < 0.05.
Power: the planted bend (``collapse_class`` "bird", flat to noise ``at`` then falling ``slope`` per
unit of noise), called when its p_holm < 0.05 (Holm over the 10 classes). Both tests are printed:
the lack-of-fit test (``p_value``) and the exact sign-flip test (``p_signflip``).

    python bench/bend_test_power.py                # 200 grids per row, about 3 minutes on 2 cores
    python bench/bend_test_power.py --grids 50     # a quick look
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np

from _cli import OneLineParser  # noqa: F401  (puts the repository root on sys.path)

from analysis import SyntheticSpec, breakpoints, synthetic_results  # noqa: E402

GRIDS = {
    "quick": dict(noise_fractions=(0.0, 0.15, 0.3, 0.45, 0.6), test_per_class=45),
    "blog": dict(noise_fractions=(0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50, 0.60), test_per_class=1000),
}
ALPHA = 0.05
# (grid, seeds, collapse_at, collapse_slope): None = straight lines only.
NULL_ROWS = [("quick", 3), ("quick", 5), ("quick", 10), ("blog", 3), ("blog", 5), ("blog", 10)]
POWER_ROWS = [("blog", 5, 0.3, 2.5), ("blog", 5, 0.3, 0.5), ("blog", 5, 0.3, 0.25), ("blog", 5, 0.175, 0.5),
              ("blog", 3, 0.3, 2.5), ("quick", 3, 0.3, 2.5), ("quick", 5, 0.3, 2.5)]


def _fits(grid: str, seeds: int, r: int, n_boot: int, **planted):
    spec = SyntheticSpec(train_fractions=(1.0,), n_seeds=seeds, random_state=r, **GRIDS[grid], **planted)
    confusion, _ = synthetic_results(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return breakpoints(confusion, factor="noise", n_boot=n_boot, random_state=r)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="bend_test_power.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=200, help="simulated sweeps per row (>= 10; default 200)")
    parser.add_argument("--n-boot", type=int, default=250,
                        help="breakpoints' n_boot (the lack-of-fit test draws 4x as many lines; >= 100)")
    parser.add_argument("--seed", type=int, default=0, help="first random_state of the simulated sweeps")
    args = parser.parse_args(argv)
    if args.grids < 10:
        parser.error(f"--grids must be >= 10, got {args.grids}")
    if args.n_boot < 100:
        parser.error(f"--n-boot must be >= 100, got {args.n_boot}")
    start = time.perf_counter()
    print(f"bend_test_power: {args.grids} simulated sweeps per row, n_boot {args.n_boot}; "
          f"{platform.machine()}, {platform.python_version()}")
    print("\nStraight lines (collapse switched off, 10 classes per sweep): false bends at p < 0.05")
    print(f"{'grid':6} {'seeds':>5} {'curves':>7} {'lack-of-fit':>12} {'sign-flip':>10} {'any class, Holm':>16}")
    for grid, seeds in NULL_ROWS:
        p, signflip, family = [], [], []
        for r in range(args.grids):
            fits = _fits(grid, seeds, args.seed + 10_000 * seeds + r, args.n_boot, collapse_class=None)
            p += list(fits["p_value"])
            signflip += list(fits["p_signflip"])
            family.append(bool((fits["p_holm"] < ALPHA).any()))
        print(f"{grid:6} {seeds:>5} {len(p):>7} {np.mean(np.asarray(p) < ALPHA):>11.1%} "
              f"{np.mean(np.asarray(signflip) < ALPHA):>10.1%} {np.mean(family):>16.1%}")
    print("\nPlanted bend (bird flat to `at`, then `slope` recall lost per unit noise): share called, Holm over 10")
    print(f"{'grid':6} {'seeds':>5} {'at':>6} {'slope':>6} {'sweeps':>7} {'lack-of-fit':>12} {'sign-flip':>10} "
          f"{'break within 0.05':>18}")
    for grid, seeds, at, slope in POWER_ROWS:
        called, called_sf, near = [], [], []
        for r in range(args.grids):
            fits = _fits(grid, seeds, args.seed + 500_000 + 10_000 * seeds + r, args.n_boot,
                         collapse_at=at, collapse_slope=slope)
            bird = fits[fits["class_name"].astype(str) == "bird"].iloc[0]
            called.append(bird["p_holm"] < ALPHA)
            called_sf.append(min(1.0, bird["p_signflip"] * len(fits)) < ALPHA)  # Bonferroni bound on Holm
            near.append(abs(bird["breakpoint"] - at) <= 0.05 + 1e-9)
        print(f"{grid:6} {seeds:>5} {at:>6g} {slope:>6g} {args.grids:>7} {np.mean(called):>11.1%} "
              f"{np.mean(called_sf):>10.1%} {np.mean(near):>18.1%}")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
