"""The analysis recovers what analysis.synthetic planted (defaults of SyntheticSpec, 8 seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import (SyntheticSpec, breakpoints, directional_confusions, exchange_rate, model_comparison,
                      noise_vs_reduction, sensitivity_ranking, synthetic_results)

FLAT = {"automobile", "truck"}
NOISE_STEP = 0.1  # spacing of the planted grid's noise fractions


def test_collapsing_class_is_most_sensitive_to_noise(planted):
    ranking = sensitivity_ranking(planted, factor="noise", n_boot=500)
    top = ranking.iloc[0]
    assert top["class_name"] == "bird" and top["rank"] == 1
    assert top["rank_ci_high"] == 1  # every resample agrees
    assert set(ranking.tail(2)["class_name"].astype(str)) == FLAT


def test_flat_classes_rank_last_for_size_and_data_hungry_first(planted):
    ranking = sensitivity_ranking(planted, factor="size", n_boot=500)
    assert ranking.iloc[0]["class_name"] == "frog"
    assert set(ranking.tail(2)["class_name"].astype(str)) == FLAT
    flat = ranking[ranking["class_name"].astype(str).isin(FLAT)]
    assert (flat["ci_low"] <= 0).all() and (flat["ci_high"] >= 0).all()  # no loss, within the interval


def test_breakpoint_found_within_one_grid_step_and_significant(planted):
    fits = breakpoints(planted, factor="noise", n_boot=500)
    bird = fits[fits["class_name"] == "bird"].iloc[0]
    assert bird["breakpoint"] == pytest.approx(0.3, abs=NOISE_STEP)
    assert bird["ci_low"] <= 0.3 <= bird["ci_high"]
    assert bird["p_value"] < 0.01
    assert bird["slope_after"] < -1.5 < bird["slope_before"]
    assert bird["best_fit"] == "piecewise"
    assert fits.iloc[0]["class_name"] == "bird"  # sorted by p_value


def test_flat_classes_have_no_significant_break(planted):
    fits = breakpoints(planted, factor="noise", n_boot=500)
    flat = fits[fits["class_name"].astype(str).isin(FLAT)]
    assert (flat["p_value"] > 0.05).all()
    assert (flat["best_fit"] == "linear").all()


def test_chosen_matrix_cell(planted):
    fits = breakpoints(planted, factor="noise", cells=[("bird", "bird"), ("deer", "horse")], n_boot=300)
    assert list(fits["class_name"].astype(str)) == ["bird", "deer"]
    assert list(fits["pred_class"].astype(str)) == ["bird", "horse"]


def test_planted_directed_confusion_found_first(planted):
    for noise in (0.0, 0.4):
        pairs = directional_confusions(planted, noise_fraction=noise)
        first = pairs.iloc[0]
        assert (first["class_a"], first["class_b"]) == ("deer", "horse")
        assert first["rate_ab"] > 10 * first["rate_ba"]
        assert first["ci_low"] > 0 and first["p_holm"] < 0.01
        mirror = pairs[(pairs["class_a"] == "horse") & (pairs["class_b"] == "deer")].iloc[0]
        assert mirror["asymmetry"] == pytest.approx(-first["asymmetry"])


def test_noise_hurts_more_than_reduction_is_detected(planted):
    table = noise_vs_reduction(planted, fraction=0.2)
    first = table.iloc[0]
    assert first["class_name"] == "cat" and first["ci_low"] > 0
    frog = table[table["class_name"] == "frog"].iloc[0]
    assert frog["difference"] < 0  # the data-hungry class loses more to less data
    assert table["difference"].is_monotonic_decreasing


def test_exchange_rate_near_one_for_a_class_noise_barely_touches(planted):
    rates = exchange_rate(planted, n_boot=300)
    frog = rates[(rates["class_name"] == "frog") & (rates["noise_fraction"] == 0.1) & (rates["note"] == "ok")]
    assert len(frog) >= 3
    assert frog["exchange_rate"].median() == pytest.approx(1.0, abs=0.15)
    cat = rates[(rates["class_name"] == "cat") & (rates["noise_fraction"] >= 0.3)]
    assert (cat["note"] == "below grid").all()  # no amount of clean data in the grid is as bad


def test_ranking_depends_on_the_model_only_where_planted():
    confusion, _ = synthetic_results(SyntheticSpec(models=("a", "b"), n_seeds=6))
    comparison = model_comparison(confusion, factor="noise", n_boot=300)
    row = comparison.iloc[0]
    assert row["same_top"] and row["top_class_a"] == "bird"
    assert 0.3 < row["kendall_tau"] < 1.0  # the ordinary classes were rotated between models


@pytest.mark.slow
def test_break_test_false_positive_rate_is_near_its_level():
    """20 grids where every curve is a straight line: about 5 % of p-values fall below 0.05."""
    p = []
    for r in range(20):
        confusion, _ = synthetic_results(SyntheticSpec(n_seeds=10, random_state=100 + r, collapse_class=None))
        p += list(breakpoints(confusion, factor="noise", n_boot=300, random_state=r)["p_value"])
    rate = np.mean(np.asarray(p) < 0.05)
    assert rate < 0.12, f"false-positive rate {rate:.3f} at level 0.05 over {len(p)} straight curves"
