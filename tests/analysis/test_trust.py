"""Numbers a reviewer can sign: intervals inside what is possible, no p = 0 from a degenerate test,
the replication verdict first, an accuracy table, and the training budget said."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import accuracy_table, directional_confusions, findings, mean_confusion, reproducibility
from analysis.budget import training_budget
from analysis.intervals import binomial_var, contrast_interval, rate_interval
from analysis.replication import agreement, verdict_sentence
from analysis.synthetic import SyntheticSpec, write_synthetic_results


def test_a_recall_interval_stays_inside_0_1_and_never_has_zero_width():
    for rates in (np.full(5, 1.0), np.full(5, 0.0), np.array([1.0, 1.0, 44 / 45, 1.0, 43 / 45]),
                  np.full(5, 44 / 45)):
        r = rate_interval(rates, 45)
        assert 0 <= r["ci_low"] < r["ci_high"] <= 1, rates
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
    one = rate_interval(np.array([0.5]), 45)  # one seed says nothing about the seed spread
    assert np.isnan(one["ci_low"]) and np.isnan(one["se"])


def test_the_test_set_term_does_not_shrink_with_seeds():
    rng = np.random.default_rng(0)
    wide = rate_interval(rng.normal(0.5, 0.01, 1000), 45)
    assert wide["se"] >= np.sqrt(binomial_var(0.5, 45)) * 0.99  # the 45 test images bound it, not 1,000 seeds


def test_a_degenerate_contrast_is_not_testable_and_one_image_is_not_evidence():
    flat = contrast_interval(np.zeros(5), floor_var=0.0)
    assert np.isnan(flat["p"]) and not flat["testable"]
    # The same single test image (of 45) confused in every seed: the floor and the test term keep it modest.
    var = binomial_var(1 / 45, 45) + binomial_var(0.0, 45)
    one = contrast_interval(np.full(20, 1 / 45), floor_var=var, test_var=var)
    assert one["testable"] and one["p"] > 0.05 and one["ci_low"] < 0


def test_directional_pairs_have_no_p_of_zero(make):
    table = directional_confusions(make())
    assert (table["p_value"].dropna() > 0).all() and (table["p_holm"].dropna() > 0).all()
    assert table["se"].dropna().gt(0).all()


def test_rate_intervals_of_every_table_stay_inside_0_1(make):
    mean = mean_confusion(make(n_seeds=5, flat_recall=0.999))
    lows, highs = mean["rate_ci_low"].dropna(), mean["rate_ci_high"].dropna()
    assert lows.ge(0).all() and highs.le(1).all() and (highs > lows).all()


def test_agreement_tells_planted_differences_from_none():
    rng = np.random.default_rng(3)
    noise_only = agreement(rng.normal(0, 0.03, (5, 10)))
    assert not noise_only["reproducible"] and noise_only["ci_low"] < 0 < noise_only["ci_high"]
    planted = agreement(rng.normal(0, 0.01, (5, 10)) + np.linspace(0, 0.1, 10))
    assert planted["reproducible"] and planted["ci_low"] > 0 and planted["agreement"] > 0.8
    # One verdict from one test: reproducible exactly when the interval clears 0.
    for seed in range(20):
        row = agreement(np.random.default_rng(seed).normal(0, 0.03, (6, 8)) + np.linspace(0, 0.02, 8))
        assert row["reproducible"] == (row["ci_low"] > 0) == (row["p_value"] < 0.05)


def test_the_verdict_says_plainly_when_no_ranking_can_be_read():
    row = {"model": "m", "factor": "noise", "n_seeds": 5, **agreement(np.random.default_rng(3).normal(0, 0.03, (5, 10))),
           "rank_tau_halves": 0.0}
    text = verdict_sentence(pd.Series(row))
    assert "at 5 seeds the classes differ less than seeds do" in text and "no ranking can be read" in text


def test_findings_open_with_the_replication_verdict(make):
    rows = findings(make(n_seeds=5), n_boot=200)
    first = rows[rows["model"] == rows["model"].iloc[0]].iloc[0]
    assert first["kind"] == "replication"
    rep = reproducibility(make(n_seeds=5))
    assert set(rep["factor"]) == {"noise", "size"}
    assert rep.loc[rep["factor"] == "noise", "reproducible"].all()  # the small grid plants a class that collapses


def test_accuracy_table_per_cell(make):
    table = accuracy_table(make(n_seeds=3))
    assert table["accuracy"].between(0, 1).all() and (table["ci_low"] < table["accuracy"]).all()
    assert (table["ci_high"] > table["accuracy"]).all() and table["ci_high"].le(1).all()
    assert table["n_seeds"].eq(3).all() and len(table) == table[["noise_fraction", "train_fraction"]].drop_duplicates().shape[0]


def test_training_budget_is_read_from_the_trials(tmp_path):
    out = write_synthetic_results(tmp_path / "out", SyntheticSpec(n_seeds=1, noise_fractions=(0.0, 0.2),
                                                                   train_fractions=(1.0,)))
    assert training_budget(out).endswith("epochs") or training_budget(out) == "unknown"
    files = sorted((out / "trials").glob("*.parquet"))
    if not files:
        pytest.skip("the synthetic folder has no per-trial files")
    for k, path in enumerate(files):
        table = pq.read_table(path)
        table = table.drop([c for c in ("epochs", "steps_requested") if c in table.column_names])
        table = table.append_column("epochs", pa.array([3] * len(table), pa.int64()))
        if k == 0:
            table = table.append_column("steps_requested", pa.array([200] * len(table), pa.int64()))
        pq.write_table(table, path)
    said = training_budget(out)
    assert said == ("200 steps" if len(files) == 1 else "mixed: 200 steps, 3 epochs")
    assert training_budget(tmp_path / "nowhere") == "unknown"
