"""Coverage of the 95 % intervals of ``analysis.intervals`` on planted grids, against the old t-interval.

Each simulated experiment draws ONE test set, shared by every seed and cell, as the product scores
every trial on the same untouched test set. A class has ``n`` test images; image i has a latent
difficulty ``a_i ~ Normal(mu, tau^2)`` on the logit scale, drawn once per experiment (the test set is a
sample of the class). Seed s in cell c adds a training shift shared by the class's images,
``e_{s,c} = sqrt(rho) u_s + sqrt(1 - rho) v_{s,c}`` with ``u, v ~ Normal(0, sigma^2)`` (rho: how much
two cells of one seed move together), and a cell effect ``delta_c``; image i is right with probability
``expit(a_i + delta_c + e_{s,c})``, drawn per seed (the within-image variation). The truth is the
population value: ``E expit(mu + delta_c + Z)`` with ``Z ~ Normal(0, tau^2 + sigma^2)``, over images of
the latent distribution (not this test set) and over seeds, by Gauss-Hermite quadrature. ``mu``,
``delta_c`` and ``sigma`` are solved so that the population rates and the seed sd of the class's rate
(the sd over seeds of the rate on the whole population, the training part alone) are the scenario's.

Three kinds of scenario, each one row:

    rate        a recall (or an off-diagonal confusion rate) in one cell: ``rate_interval``
    loss        a class's recall lost between two cells, the same images in both (same-image contrast):
                ``contrast_interval``, floor_var = binomial_var of each cell's mean rate, test_var 0
    asymmetry   rate_ab - rate_ba of two classes, different images (independent test sets):
                ``contrast_interval``, floor_var = test_var = binomial_var of each rate

``tau`` runs from images alike (0.3) to images very different (4: most images right in every seed or
in none, as on real data). The old interval is the t-interval over seeds alone, mean +- t(S-1) s/sqrt(S).
Every coverage is printed with its Monte-Carlo standard error sqrt(c (1 - c) / sims). The seed counts
share the simulations: S seeds are the first S of the largest count. ``--fix`` adds a prototype of a
sharper test term (docs/analysis.md, "The coverage benchmark").

    python bench/coverage.py                   # 2,000 experiments per row, the BENCHMARKS.md table
    python bench/coverage.py --smoke           # 7 rows, 300 experiments, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special, stats

from _cli import OneLineParser

from analysis.intervals import binomial_var, contrast_interval, rate_interval  # noqa: E402

KINDS = ("rate", "loss", "asymmetry")
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
WEIGHTS = WEIGHTS / WEIGHTS.sum()  # E f(Z), Z ~ Normal(0, 1), as a weighted sum over NODES
CHUNK = 200_000  # Bernoulli draws (sims x seeds x images) per block: bounds memory at a few MB


@dataclass(frozen=True)
class Scenario:
    """One row: ``kind`` (KINDS), ``n`` test images per class, ``rate`` (the rate; for a loss the clean
    recall; for an asymmetry rate_ab), ``other`` (loss: recall lost; asymmetry: rate_ba), ``tau`` (sd of
    image difficulty, logit), ``seed_sd`` (sd over seeds of the first cell's population rate), ``rho``
    (correlation of one seed's shifts in two cells)."""

    kind: str
    n: int
    rate: float
    tau: float
    seed_sd: float
    other: float = 0.0
    rho: float = 0.0

    @property
    def label(self) -> str:
        what = {"rate": f"rate {self.rate:g}", "loss": f"loss {self.rate:g}->{self.rate - self.other:g}",
                "asymmetry": f"asym {self.rate:g}-{self.other:g}"}[self.kind]
        rho = f" rho {self.rho:g}" if self.rho else ""
        return f"{what} n {self.n} tau {self.tau:g} sd {self.seed_sd:g}{rho}"


def _grid() -> list[Scenario]:
    rows = []
    for n in (45, 1000):
        for rate, sd in ((0.5, 0.03), (0.97, 0.01), (0.02, 0.005)):
            rows += [Scenario("rate", n, rate, tau, sd) for tau in (0.3, 1.5, 4.0)]
    rows += [Scenario("rate", 1000, 0.5, 1.5, sd) for sd in (0.01, 0.05)]
    for n in (45, 1000):
        rows += [Scenario("loss", n, 0.95, tau, 0.01, other=0.10) for tau in (0.3, 1.5, 4.0)]
    rows += [Scenario("loss", 1000, 0.95, tau, 0.01, other=0.10, rho=0.8) for tau in (1.5, 4.0)]
    for n in (45, 1000):
        rows += [Scenario("asymmetry", n, 0.04, tau, 0.005, other=0.02) for tau in (0.3, 1.5, 4.0)]
    return rows


SCENARIOS = _grid()
SMOKE = [Scenario("rate", 45, 0.97, 4.0, 0.01), Scenario("rate", 1000, 0.5, 4.0, 0.03),
         Scenario("rate", 45, 0.02, 1.5, 0.005), Scenario("rate", 1000, 0.5, 0.3, 0.03),
         Scenario("loss", 1000, 0.95, 1.5, 0.01, other=0.10),
         Scenario("asymmetry", 45, 0.04, 4.0, 0.005, other=0.02),
         Scenario("asymmetry", 1000, 0.04, 4.0, 0.005, other=0.02)]


def population_rate(mu: float, scale: float) -> float:
    """E expit(mu + scale Z), Z standard normal: the rate over the whole population."""
    return float(WEIGHTS @ special.expit(mu + scale * NODES))


def _seed_sd(mu: float, tau: float, sigma: float) -> float:
    """sd over the shift e ~ Normal(0, sigma^2) of the population rate E_a expit(mu + a + e)."""
    h = special.expit(mu + tau * NODES[None, :] + sigma * NODES[:, None]) @ WEIGHTS
    return float(np.sqrt(max(WEIGHTS @ h ** 2 - (WEIGHTS @ h) ** 2, 0.0)))


def _mu_for(rate: float, scale: float) -> float:
    return optimize.brentq(lambda mu: population_rate(mu, scale) - rate, -40, 40, xtol=1e-12)


def solve(rate: float, tau: float, seed_sd: float) -> tuple[float, float]:
    """(mu, sigma) whose population rate is ``rate`` and whose seed sd of that rate is ``seed_sd``."""
    def gap(sigma):
        return _seed_sd(_mu_for(rate, np.hypot(tau, sigma)), tau, sigma) - seed_sd
    if gap(8.0) < 0:
        raise ValueError(f"seed_sd {seed_sd} is out of reach for rate {rate} at tau {tau}")
    sigma = optimize.brentq(gap, 1e-6, 8.0, xtol=1e-10)
    return _mu_for(rate, np.hypot(tau, sigma)), sigma


def _cells(sc: Scenario) -> tuple[list[tuple[float, float]], float, float]:
    """Per group of images, [(mu, delta_c) per cell], plus sigma and the true value of the quantity."""
    if sc.kind == "rate":
        mu, sigma = solve(sc.rate, sc.tau, sc.seed_sd)
        return [[(mu, 0.0)]], sigma, sc.rate
    if sc.kind == "loss":
        mu, sigma = solve(sc.rate, sc.tau, sc.seed_sd)
        delta = _mu_for(sc.rate - sc.other, np.hypot(sc.tau, sigma)) - mu
        return [[(mu, 0.0), (mu, delta)]], sigma, sc.other
    mu_a, sigma = solve(sc.rate, sc.tau, sc.seed_sd)
    mu_b = _mu_for(sc.other, np.hypot(sc.tau, sigma))
    return [[(mu_a, 0.0)], [(mu_b, 0.0)]], sigma, sc.rate - sc.other


def draw_rates(sc: Scenario, seeds: int, sims: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Per-seed rates (groups x cells, seeds, sims) of ``sims`` experiments, and the true value."""
    groups, sigma, truth = _cells(sc)
    n_cells = len(groups[0])
    shared = rng.normal(0, sigma, (seeds, sims))  # one seed's part common to its cells
    out = np.empty((len(groups), n_cells, seeds, sims))
    for g, cells in enumerate(groups):
        latent = rng.normal(cells[0][0], sc.tau, (sims, sc.n))  # the test set: drawn once per experiment
        for c, (_, delta) in enumerate(cells):
            shift = np.sqrt(sc.rho) * shared + np.sqrt(1 - sc.rho) * rng.normal(0, sigma, (seeds, sims))
            step = max(1, CHUNK // (seeds * sc.n))
            for lo in range(0, sims, step):
                logit = latent[None, lo:lo + step] + delta + shift[:, lo:lo + step, None]
                right = rng.random(logit.shape) < special.expit(logit)
                out[g, c, :, lo:lo + step] = right.mean(axis=-1)
    return out, truth


def t_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The old interval: mean +- t(S-1) s / sqrt(S) over the seeds (axis 0), seeds alone."""
    S = values.shape[0]
    half = stats.t.ppf(0.975, S - 1) * values.std(axis=0, ddof=1) / np.sqrt(S)
    return values.mean(axis=0) - half, values.mean(axis=0) + half


def product_interval(sc: Scenario, rates: np.ndarray, *, fix: bool = False) -> dict[str, np.ndarray]:
    """The interval the product computes for the scenario's quantity from per-seed rates (groups, cells, S, sims).

    ``fix``: the prototype test term of a same-image loss, binomial_var of the loss itself, an upper
    bound on its between-image variance when no image is likelier right in the noisy cell."""
    if sc.kind == "rate":
        return rate_interval(rates[0, 0], sc.n, axis=0)
    if sc.kind == "loss":
        clean, noisy = rates[0, 0], rates[0, 1]
        floor = binomial_var(clean.mean(axis=0), sc.n) + binomial_var(noisy.mean(axis=0), sc.n)
        test = binomial_var(np.abs((clean - noisy).mean(axis=0)), sc.n) if fix else 0.0
        return contrast_interval(clean - noisy, floor_var=floor, test_var=test, axis=0)
    ab, ba = rates[0, 0], rates[1, 0]
    var = binomial_var(ab.mean(axis=0), sc.n) + binomial_var(ba.mean(axis=0), sc.n)
    return contrast_interval(ab - ba, floor_var=var, test_var=var, axis=0)


def _quantity(sc: Scenario, rates: np.ndarray) -> np.ndarray:
    if sc.kind == "rate":
        return rates[0, 0]
    return rates[0, 0] - (rates[0, 1] if sc.kind == "loss" else rates[1, 0])


def _summary(low: np.ndarray, high: np.ndarray, truth: float, bounds: tuple[float, float]) -> dict[str, float]:
    covered = (low <= truth) & (truth <= high)
    c = float(covered.mean())
    return {"coverage": c, "mc_se": float(np.sqrt(c * (1 - c) / covered.size)),
            "outside": float(((low < bounds[0]) | (high > bounds[1])).mean()),
            "zero_width": float((high - low <= 0).mean()), "nan": float(np.isnan(low).mean())}


def run_scenario(sc: Scenario, seed_counts: list[int], sims: int, rng: np.random.Generator,
                 *, fix: bool = False) -> list[dict]:
    """One scenario at every seed count: coverage of the product's and the old interval, and the fix's."""
    rates, truth = draw_rates(sc, max(seed_counts), sims, rng)
    bounds = (0.0, 1.0) if sc.kind == "rate" else (-1.0, 1.0)
    rows = []
    for S in seed_counts:
        part = rates[:, :, :S]
        new = product_interval(sc, part)
        row = {**asdict(sc), "label": sc.label, "seeds": S, "sims": sims, "truth": truth,
               "seed_sd_observed": float(_quantity(sc, part).std(axis=0, ddof=1).mean()),
               "new": _summary(new["ci_low"], new["ci_high"], truth, bounds),
               "t": _summary(*t_interval(_quantity(sc, part)), truth, bounds)}
        if fix and sc.kind == "loss":
            fixed = product_interval(sc, part, fix=True)
            row["fix"] = _summary(fixed["ci_low"], fixed["ci_high"], truth, bounds)
        rows.append(row)
    return rows


def _pct(summary: dict[str, float]) -> str:
    return f"{100 * summary['coverage']:5.1f}±{100 * summary['mc_se']:.1f}"


def print_table(rows: list[dict], seed_counts: list[int]) -> None:
    """One line per scenario: the product's coverage per seed count, then the old t-interval's
    coverage, share outside the possible range and share of zero width, per seed count."""
    head = " ".join(f"{f'new S={S}':>10}" for S in seed_counts)
    t_head = " ".join(f"{f't S={S}':>10}" for S in seed_counts)
    print(f"{'scenario':46} {head} | {t_head} | {'t outside':>14} | {'t zero width':>14}")
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    for label, group in by_label.items():
        new = " ".join(f"{_pct(r['new']):>10}" for r in group)
        old = " ".join(f"{_pct(r['t']):>10}" for r in group)
        outside = "/".join(f"{100 * r['t']['outside']:.0f}" for r in group)
        zero = "/".join(f"{100 * r['t']['zero_width']:.0f}" for r in group)
        print(f"{label:46} {new} | {old} | {outside:>14} | {zero:>14}")
    fixed = [r for r in rows if "fix" in r]
    if fixed:
        print("\nPrototype: a same-image loss with test_var = binomial_var(|loss|, n)")
        for label in dict.fromkeys(r["label"] for r in fixed):
            print(f"{label:46} " + " ".join(f"{_pct(r['fix']):>10}" for r in fixed if r["label"] == label))


def _seed_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be comma-separated integers >= 2, got {text!r}") from None
    if counts[0] < 2:
        raise argparse.ArgumentTypeError(f"--seeds must be comma-separated integers >= 2, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="coverage.py", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=None,
                        help="simulated experiments per row (>= 50; default 2000, 300 with --smoke)")
    parser.add_argument("--seeds", type=_seed_counts, default=[3, 5, 20],
                        help="seed counts, comma-separated, each >= 2 (default 3,5,20)")
    parser.add_argument("--smoke", action="store_true", help=f"only {len(SMOKE)} rows, 300 experiments each")
    parser.add_argument("--fix", action="store_true", help="also the prototype test term of a same-image loss")
    parser.add_argument("--random-state", type=int, default=0, help="seed of the simulation's generator")
    parser.add_argument("--json", metavar="PATH", help="write every row (both intervals, all shares) as JSON")
    args = parser.parse_args(argv)
    sims = args.sims if args.sims is not None else (300 if args.smoke else 2000)
    if sims < 50:
        parser.error(f"--sims must be >= 50, got {sims}")
    scenarios = SMOKE if args.smoke else SCENARIOS
    start = time.perf_counter()
    print(f"coverage: {len(scenarios)} scenarios x {sims} experiments, seeds {args.seeds}; "
          f"{platform.machine()}, {platform.python_version()}, load {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(args.random_state)
    rows = []
    for sc in scenarios:
        rows += run_scenario(sc, args.seeds, sims, rng, fix=args.fix)
    print_table(rows, args.seeds)
    seconds = time.perf_counter() - start
    print(f"\n{seconds:.0f} s, load {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sims": sims, "seeds": args.seeds, "seconds": seconds, "machine": platform.machine(),
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
