"""Few seeds, a class without test examples, and bad arguments: honest intervals or a clear error."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from analysis import (SyntheticSpec, breakpoints, directional_confusions, exchange_rate, load_results,
                      model_comparison, noise_vs_reduction, sensitivity_ranking, synthetic_results, write_report)
from analysis.cli import main
from analysis.curves import _fit, _residual_makers, _sign_patterns, lack_of_fit_p
from analysis.grid import MIN_BOOT_SEEDS, expanded_percentile

CLASSES = 4  # SMALL's classes: ant, bee, cat, dog


@pytest.fixture
def small(small_spec):
    """small(**changes) -> the confusion table of SMALL with those changes."""
    return lambda **changes: synthetic_results(SyntheticSpec(**{**small_spec, **changes}))[0]


def test_sensitivity_interval_is_the_t_interval_over_seeds(small):
    table = sensitivity_ranking(small(n_seeds=3), n_boot=200)
    half = stats.t.ppf(0.975, 2) * table["se"]
    np.testing.assert_allclose(table["ci_low"], table["sensitivity"] - half)
    np.testing.assert_allclose(table["ci_high"], table["sensitivity"] + half)


def test_bootstrap_intervals_need_five_seeds(small):
    few, enough = small(n_seeds=MIN_BOOT_SEEDS - 1), small(n_seeds=MIN_BOOT_SEEDS)
    ranking = sensitivity_ranking(few, n_boot=200)
    assert ranking["rank_ci_low"].isna().all() and ranking["rank_ci_high"].isna().all()
    assert ranking["ci_low"].notna().all()  # t-intervals work from 2 seeds
    assert breakpoints(few, n_boot=200)[["ci_low", "ci_high"]].isna().all().all()
    assert exchange_rate(few, n_boot=200)[["ci_low", "ci_high"]].isna().all().all()
    ranking = sensitivity_ranking(enough, n_boot=200)
    assert ranking["rank_ci_low"].between(1, CLASSES).all()
    assert (ranking["rank_ci_low"] <= ranking["rank"]).all() and (ranking["rank"] <= ranking["rank_ci_high"]).all()
    assert breakpoints(enough, n_boot=200)["ci_low"].notna().all()


def test_model_comparison_interval_needs_five_seeds(small):
    two = dict(models=("a", "b"))
    assert model_comparison(small(n_seeds=4, **two), n_boot=200)[["ci_low", "ci_high"]].isna().all().all()
    row = model_comparison(small(n_seeds=6, **two), n_boot=200).iloc[0]
    assert row["n_seeds"] == 6 and -1 <= row["ci_low"] <= row["kendall_tau"] <= row["ci_high"] <= 1


def test_expanded_percentile_matches_the_t_interval_for_a_mean():
    rng = np.random.default_rng(0)
    seeds = rng.normal(size=6)
    boot = seeds[rng.integers(0, 6, size=(200_000, 6))].mean(axis=1)
    low, high = expanded_percentile(boot, 6, 0.95)
    half = stats.t.ppf(0.975, 5) * seeds.std(ddof=1) / np.sqrt(6)
    # The bootstrap distribution of a mean of 6 is not quite normal; within 10 % of the t half-width.
    assert abs((high - low) / 2 - half) < 0.1 * half
    assert np.isnan(expanded_percentile(boot, MIN_BOOT_SEEDS - 1, 0.95)[0])


def test_sign_patterns_enumerate_every_pattern_once_up_to_n_boot():
    patterns = _sign_patterns(5, 1000, np.random.default_rng(0))
    assert patterns.shape == (16, 5) and (patterns[0] == 1).all() and (patterns[:, 0] == 1).all()
    assert len({tuple(p) for p in patterns}) == 16
    drawn = _sign_patterns(12, 300, np.random.default_rng(0))
    assert drawn.shape == (300, 12) and (drawn[0] == 1).all()


@pytest.mark.parametrize("seeds", [2, 3, 4])
def test_sign_flip_p_value_never_below_its_exact_floor(small, seeds):
    """The exact sign-flip test cannot call a bend beyond what its 2^(S-1) sign patterns can show."""
    fits = breakpoints(small(n_seeds=seeds), n_boot=200)
    assert (fits["p_signflip"] >= 0.5 ** (seeds - 1) - 1e-12).all()
    bee = fits[fits["class_name"] == "bee"].iloc[0]  # the collapsing class reaches the floor, no lower
    assert bee["p_signflip"] == pytest.approx(0.5 ** (seeds - 1))


@pytest.mark.parametrize("seeds", [3, 4, 5])
def test_lack_of_fit_test_calls_a_sharp_bend_below_six_seeds(small, seeds):
    """The replicate-based test has no floor: the planted collapse is significant after Holm, the rest not."""
    fits = breakpoints(small(n_seeds=seeds), n_boot=200)
    bee = fits[fits["class_name"] == "bee"].iloc[0]
    assert bee["p_holm"] < 0.01 and fits.iloc[0]["class_name"] == "bee"
    assert (fits[fits["class_name"] != "bee"]["p_holm"] > 0.05).all()
    assert (fits["p_holm"] >= fits["p_value"]).all() and (fits["p_holm"] <= 1).all()


def test_break_test_holds_its_level_with_three_seeds():
    """Straight lines on the quick preset's grid shape: the old bootstrap called about 20 % bent.

    Sign-flip: never below its floor 0.25. Lack-of-fit: 100 straight curves, 5 expected below
    0.05; more than 12 has probability 0.002 if the level holds.
    """
    p, signflip = [], []
    for r in range(10):
        confusion, _ = synthetic_results(SyntheticSpec(collapse_class=None, n_seeds=3, test_per_class=45,
                                                       noise_fractions=(0.0, 0.15, 0.3, 0.45, 0.6),
                                                       train_fractions=(1.0, 0.4), random_state=7000 + r))
        fits = breakpoints(confusion, n_boot=200, random_state=r)
        p += list(fits["p_value"])
        signflip += list(fits["p_signflip"])
    assert min(signflip) >= 0.25
    assert len(p) == 100 and np.sum(np.asarray(p) < 0.05) <= 12


def test_lack_of_fit_p_value_is_uniform_for_gaussian_straight_lines():
    """On exactly Gaussian straight lines the p-value is uniform: 4,000 curves, 3 and 10 seeds."""
    x = np.array([0.0, 0.15, 0.3, 0.45, 0.6])
    c, line, hinge, _ = _fit(x, "noise")
    line_r, hinge_r = _residual_makers(line), _residual_makers(hinge)
    rng = np.random.default_rng(3)
    for seeds in (3, 10):
        y = rng.normal(size=(seeds, 2000, x.size)) * 0.05 + 0.8 - 0.3 * x  # (S, P, L), one line
        p = lack_of_fit_p(np.einsum("lm,spm->spl", line_r[0], y), line_r, hinge_r, 2000, rng)
        # 2,000 curves: the share below 0.05 has sd 0.005 if the level holds.
        assert 0.035 < np.mean(p < 0.05) < 0.065, (seeds, np.mean(p < 0.05))
        assert 0.45 < np.mean(p < 0.5) < 0.55


def absent_class_results(tmp_path, spec):
    """SMALL with no test example of "dog" (its true-class rows are all zero)."""
    confusion, trials = synthetic_results(SyntheticSpec(**{**spec, "models": ("a", "b")}))
    confusion.loc[confusion["true_class"] == "dog", "count"] = 0
    trials["test_size"] = 3 * spec["test_per_class"]
    for name, table in (("confusion", confusion), ("trials", trials)):
        (tmp_path / name).mkdir()
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp_path / name / "all.parquet")
    return tmp_path


def test_a_class_without_test_examples_is_left_out_with_a_warning(tmp_path, small_spec):
    df = load_results(absent_class_results(tmp_path, small_spec))
    with pytest.warns(UserWarning, match=r"\['dog'\] have no recall"):
        ranking = sensitivity_ranking(df, n_boot=200)
    assert "dog" not in set(ranking["class_name"].astype(str))
    assert ranking.groupby("model")["p_vs_next"].apply(lambda p: p.iloc[:-1].notna().all() and p.iloc[:-1].gt(0).all()).all()
    with pytest.warns(UserWarning, match="dog"):
        fits = breakpoints(df, n_boot=200)
    assert "dog" not in set(fits["class_name"].astype(str)) and fits["p_value"].notna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = model_comparison(df, n_boot=200).iloc[0]
    assert row["n_classes"] == 3 and np.isfinite(row["kendall_tau"])
    assert row["top_class_a"] == row["top_class_b"] == "bee"


def test_report_puts_left_out_classes_and_loader_warnings_on_the_page(tmp_path, small_spec):
    (tmp_path / "res").mkdir()
    out = absent_class_results(tmp_path / "res", small_spec)
    extra = pd.read_parquet(out / "confusion" / "all.parquet").head(16).assign(trial_id="f" * 16, seed=99)
    pq.write_table(pa.Table.from_pandas(extra, preserve_index=False), out / "confusion" / "unfinished.parquet")
    page = write_report(out, to=tmp_path / "rep", n_boot=200, progress=None).read_text()
    assert "Note: ranking against label noise: a: class(es) [&#x27;dog&#x27;] have no recall" in page
    assert "Note: loading: 1 trial(s) have confusion rows but no trials/ row" in page
    assert "Mean of empty slice" not in page and "Not shown" not in page


def test_bad_n_boot_is_refused_before_anything_is_written(small_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"n_boot must be an integer in \[100, 100,000\], got 50"):
        write_report(small_dir, to=tmp_path / "rep", n_boot=50, progress=None)
    assert not (tmp_path / "rep").exists()
    assert main(["report", str(small_dir), "--to", str(tmp_path / "rep"), "--n-boot", "-1"]) == 2
    assert capsys.readouterr().err == "analysis report: error: n_boot must be an integer in [100, 100,000], got -1\n"


def test_python_m_analysis_errors_are_one_line(small_dir, tmp_path, capsys):
    (tmp_path / "FILE").write_text("")
    assert main(["report", str(small_dir), "--to", str(tmp_path / "FILE")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not a folder" in err, err
    with pytest.raises(SystemExit) as exited:
        main(["report", str(small_dir), "--n-boot", "x"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "invalid int value: 'x'" in err, err


def test_exchange_rate_interval_is_nan_with_one_seed(small):
    rates = exchange_rate(small(n_seeds=1), n_boot=200)
    assert rates["ci_low"].isna().all() and rates["ci_high"].isna().all()


@pytest.mark.parametrize("call", [
    lambda df: noise_vs_reduction(df, fraction="0.6"),
    lambda df: directional_confusions(df, noise_fraction="0.6"),
    lambda df: directional_confusions(df, train_fraction=float("nan")),
])
def test_levels_must_be_numbers(small, call):
    with pytest.raises(TypeError, match="must be a finite number"):
        call(small(n_seeds=2))
