"""Calibration of analysis.intervals on planted grids (bench/coverage.py's simulation, one fixed test set
per experiment), and the intervals' unit properties: inside [0, 1], never of zero width, no p-value
without a standard error, Satterthwaite degrees of freedom between S - 1 and infinity."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.intervals import binomial_var, contrast_interval, pulled_rate, rate_interval

BENCH = Path(__file__).resolve().parents[2] / "bench" / "coverage.py"


@pytest.fixture(scope="module")
def coverage():
    spec = importlib.util.spec_from_file_location("coverage_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    sys.path.insert(0, str(BENCH.parent))  # its `from _cli import ...`
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    yield module
    sys.modules.pop(spec.name, None)


def test_a_rate_interval_stays_in_0_1_with_width_at_0_of_45_and_45_of_45():
    rates = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # every seed 0/45 in one column, 45/45 in the other
    r = rate_interval(rates, 45)
    assert (r["ci_low"] >= 0).all() and (r["ci_high"] <= 1).all()
    assert (r["ci_high"] - r["ci_low"] > 0.01).all()
    assert r["ci_low"][0] == 0 and r["ci_high"][1] == 1
    assert r["ci_high"][0] < 0.2 and r["ci_low"][1] > 0.8


def test_a_contrast_with_no_standard_error_has_no_p_value_and_an_agreeing_one_has_a_floor():
    values = np.zeros((5, 2))
    r = contrast_interval(values, floor_var=np.array([0.0, binomial_var(1 / 45, 45)]))
    assert math.isnan(r["p"][0]) and not r["testable"][0]
    assert r["se"][0] == 0
    assert r["testable"][1] and r["p"][1] == pytest.approx(1.0) and r["se"][1] > 0


def test_satterthwaite_df_lies_between_seeds_minus_1_and_infinity():
    rng = np.random.default_rng(1)
    rates = np.clip(0.5 + rng.normal(0, [0.001, 0.03, 0.3], (5, 3)), 0, 1)
    df = rate_interval(rates, 1000)["df"]
    assert (df >= 4 - 1e-9).all() and np.isfinite(df).all()
    assert df[0] > 1e4 and df[2] < 5  # a negligible seed term: nearly z; a dominant one: nearly t(S-1)
    assert rate_interval(np.full((5, 1), 0.5), 1000)["df"][0] == np.inf  # no seed spread at all


def test_pulled_rate_is_never_0_or_1():
    p = pulled_rate(np.array([0.0, 1.0]), 45)
    assert 0 < p[0] < 0.05 and 0.95 < p[1] < 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rate", "asymmetry"])
def test_rate_and_asymmetry_intervals_cover_at_least_95_percent_and_stay_possible(coverage, kind):
    """Never liberal: coverage at least 93 % less 3 Monte-Carlo sd, at 3, 5 and 20 seeds, at the digits
    boundary (0.97 of 45), a confusion rate (0.02) and recall 0.5 of 1,000, images alike to very
    different. (They over-cover, up to 100 %: BENCHMARKS.md, "Interval coverage".) No interval leaves
    its possible range or has zero width, where the old t-interval's do."""
    rng = np.random.default_rng(11)
    rows = [r for sc in coverage.SMOKE if sc.kind == kind
            for r in coverage.run_scenario(sc, [3, 5, 20], 400, rng)]
    assert rows
    for row in rows:
        assert row["new"]["coverage"] >= 0.93 - 3 * math.sqrt(0.95 * 0.05 / row["sims"]), row["label"]
        assert row["new"]["outside"] == 0 and row["new"]["zero_width"] == 0 and row["new"]["nan"] == 0
    if kind == "rate":
        assert max(r["t"]["outside"] for r in rows) > 0.3 and max(r["t"]["zero_width"] for r in rows) > 0.05


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="a same-image contrast omits its between-image term (test_var 0)")
def test_a_same_image_loss_covers_at_20_seeds_on_different_images(coverage):
    rng = np.random.default_rng(12)
    sc = coverage.Scenario("loss", 1000, 0.95, 4.0, 0.01, other=0.10)
    row = coverage.run_scenario(sc, [20], 400, rng)[0]
    assert row["new"]["coverage"] >= 0.93 - 3 * math.sqrt(0.95 * 0.05 / row["sims"])
