"""Shapes, ranges, sort orders, any number of classes, and partial grids that degrade with a reason."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import (breakpoints, class_curves, class_table, directional_confusions,
                      directional_trends, exchange_rate, mean_confusion, model_comparison, noise_vs_reduction,
                      relative_confusion, sensitivity_ranking)

K = 4  # classes of the small grid (conftest.SMALL)


def test_mean_confusion_shape_and_rows_sum_to_one(small):
    table = mean_confusion(small)
    cells = small[["noise_fraction", "train_fraction"]].drop_duplicates()
    assert len(table) == len(cells) * K * K
    rows = table.groupby(["noise_fraction", "train_fraction", "true_class"], observed=True)["rate"].sum()
    np.testing.assert_allclose(rows.to_numpy(), 1.0)
    assert ((table["rate"] >= 0) & (table["rate"] <= 1)).all() and (table["count_se"] >= 0).all()
    key = table[["noise_fraction", "train_fraction"]].drop_duplicates()
    assert key.equals(key.sort_values(["noise_fraction", "train_fraction"], ascending=[True, False]))


def test_relative_confusion_pairs_by_seed_and_rows_sum_to_zero(small):
    table = relative_confusion(small)
    assert not ((table["noise_fraction"] == 0) & (table["train_fraction"] == 1)).any()
    rows = table.groupby(["noise_fraction", "train_fraction", "true_class"], observed=True)["difference"].sum()
    np.testing.assert_allclose(rows.to_numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(table["rate"] - table["baseline_rate"], table["difference"], atol=1e-12)
    assert (table["ci_low"] <= table["difference"]).all() and (table["difference"] <= table["ci_high"]).all()


@pytest.mark.parametrize("factor", ["noise", "size"])
def test_ranking_columns_ranges_and_order(small, factor):
    table = sensitivity_ranking(small, factor=factor, n_boot=200)
    assert list(table["rank"]) == list(range(1, K + 1))
    assert table["sensitivity"].is_monotonic_decreasing
    assert (table["ci_low"] <= table["sensitivity"] + 1e-12).all()
    assert (table["sensitivity"] <= table["ci_high"] + 1e-12).all()
    assert ((table["rank_ci_low"] >= 1) & (table["rank_ci_high"] <= K)).all()
    assert table["p_vs_next"].iloc[-1] != table["p_vs_next"].iloc[-1]  # NaN for the last class
    assert -1 <= table["rank_tau_halves"].iloc[0] <= 1
    assert table.index.equals(pd.RangeIndex(K))


def test_ranking_is_reproducible_and_seeded(small):
    a = sensitivity_ranking(small, n_boot=200, random_state=1)
    pd.testing.assert_frame_equal(a, sensitivity_ranking(small, n_boot=200, random_state=1))


def test_curves_breakpoints_directions_tables(small):
    curves = class_curves(small, factor="size")
    assert len(curves) == K * 5 and curves.groupby("class_name", observed=True)["train_fraction"].apply(
        lambda s: s.is_monotonic_increasing).all()
    fits = breakpoints(small, factor="noise", n_boot=200)
    assert len(fits) == K and fits["p_value"].is_monotonic_increasing
    assert ((fits["p_value"] > 0) & (fits["p_value"] <= 1)).all()
    pairs = directional_confusions(small)
    assert len(pairs) == K * (K - 1) and pairs["asymmetry"].is_monotonic_decreasing
    trends = directional_trends(small, top=2)
    assert set(trends["pair_rank"]) == {1, 2} and set(trends["factor"]) == {"noise", "size"}
    table = class_table(small)
    assert (table.groupby(["noise_fraction", "train_fraction"])["recall"].apply(
        lambda s: s.is_monotonic_decreasing)).all()
    assert len(table) == K * (5 + 5 - 1)


def test_exchange_rate_and_nvr_ranges(small):
    rates = exchange_rate(small, n_boot=200)
    ok = rates[rates["note"] == "ok"]
    assert ((ok["clean_equivalent_fraction"] >= 0.2) & (ok["clean_equivalent_fraction"] <= 1)).all()
    assert rates.loc[rates["note"] != "ok", "clean_equivalent_fraction"].isna().all()
    nvr = noise_vs_reduction(small)
    assert set(nvr["fraction"]) == {0.2, 0.4, 0.6, 0.8}  # the x with noise x and train fraction 1 - x


@pytest.mark.parametrize("n_classes", [2, 3, 12])
def test_any_number_of_classes(n_classes, make):
    names = tuple(f"c{k}" for k in range(n_classes))
    df = make(classes=names, collapse_class=None, flat_classes=(), confusion_pair=None)
    assert len(sensitivity_ranking(df, n_boot=100)) == n_classes
    assert len(breakpoints(df, n_boot=100)) == n_classes
    assert len(directional_confusions(df)) == n_classes * (n_classes - 1)


def test_only_noise_grid_says_size_cannot_be_computed(make):
    df = make(train_fractions=(1.0,))
    assert len(sensitivity_ranking(df, factor="noise", n_boot=100)) == K
    with pytest.raises(ValueError, match=r"factor='size' needs at least 2 train fractions"):
        sensitivity_ranking(df, factor="size")
    with pytest.raises(ValueError, match="noise_vs_reduction needs"):
        noise_vs_reduction(df)


def test_only_size_grid_says_noise_cannot_be_computed(make):
    df = make(noise_fractions=(0.0,))
    with pytest.raises(ValueError, match=r"factor='noise' needs at least 2 noise fractions"):
        breakpoints(df, factor="noise")
    with pytest.raises(ValueError, match="needs cells with noise_fraction > 0"):
        exchange_rate(df)


def test_too_few_levels_for_a_breakpoint(make):
    with pytest.raises(ValueError, match=r"need at least 5 size levels, the grid has 3 \(\[0.2, 0.6, 1\]\)"):
        breakpoints(make(train_fractions=(1.0, 0.6, 0.2)), factor="size")
    # Four levels are refused too: the four-parameter hinge would pass through every point (RSS 0).
    with pytest.raises(ValueError, match=r"need at least 5 noise levels, the grid has 4"):
        breakpoints(make(noise_fractions=(0.0, 0.2, 0.4, 0.6)), factor="noise")


def test_one_seed_gives_estimates_without_intervals(make):
    df = make(n_seeds=1)
    table = sensitivity_ranking(df, n_boot=100)
    assert table["sensitivity"].notna().all() and table["ci_low"].isna().all()
    assert breakpoints(df, n_boot=100)["p_value"].isna().all()


def test_missing_baseline_is_named(make):
    df = make(noise_fractions=(0.2, 0.4))
    with pytest.raises(ValueError, match="no baseline cell .* noise_fraction 0"):
        relative_confusion(df)


def test_one_model_lacking_a_baseline_is_skipped_with_a_warning(make):
    a = make(models=("a",))
    b = make(models=("b",), noise_fractions=(0.2, 0.4))
    with pytest.warns(UserWarning, match="skipped for b: no baseline"):
        table = sensitivity_ranking(pd.concat([a, b], ignore_index=True), n_boot=100)
    assert set(table["model"]) == {"a"}
    with pytest.raises(ValueError, match="at least 2 models"):
        model_comparison(pd.concat([a, b], ignore_index=True))


def test_several_experiments_are_refused(small):
    other = small.assign(experiment="other")
    with pytest.raises(ValueError, match="2 values of experiment"):
        sensitivity_ranking(pd.concat([small, other], ignore_index=True))


def test_bad_options_and_types(small):
    with pytest.raises(ValueError, match="factor must be one of"):
        sensitivity_ranking(small, factor="depth")
    with pytest.raises(ValueError, match=r"n_boot must be an integer in \[100, 100,000\], got 5"):
        sensitivity_ranking(small, n_boot=5)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
        mean_confusion(small, confidence=95)
    with pytest.raises(TypeError, match="got list"):
        mean_confusion([1, 2])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['count'\]"):
        mean_confusion(small.drop(columns="count"))
    with pytest.raises(ValueError, match="unknown class"):
        breakpoints(small, cells=[("bee", "wasp")])
    with pytest.raises(ValueError, match="fraction 0.3 is not on both axes; available: \\[0.2, 0.4, 0.6, 0.8\\]"):
        noise_vs_reduction(small, fraction=0.3)
    with pytest.raises(ValueError, match="no trials at noise_fraction 0.3"):
        directional_confusions(small, noise_fraction=0.3)


def test_loaded_and_plain_tables_agree(small_loaded, small):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = sensitivity_ranking(small_loaded, n_boot=200)
        b = sensitivity_ranking(small, n_boot=200)
    pd.testing.assert_frame_equal(a, b)


def test_noise_vs_reduction_matches_a_reduction_rounded_to_whole_examples(make):
    df = make(noise_fractions=(0.0, 0.4), train_fractions=(1.0, 0.6))
    n_split = df.loc[df["train_fraction"] == 1.0, "train_size"].iloc[0]
    # The engine rounds 0.6 of the split to whole examples: the realized fraction is a hair off 0.6.
    reduced = df["train_fraction"] == 0.6
    near = df.assign(train_fraction=df["train_fraction"].where(~reduced, 0.6 - 0.5 / n_split))
    assert set(noise_vs_reduction(near)["fraction"]) == {0.4}
    far = df.assign(train_fraction=df["train_fraction"].where(~reduced, 0.6 - 3 / n_split))
    with pytest.raises(ValueError, match="needs, for some x, noise x at full size"):
        noise_vs_reduction(far)
