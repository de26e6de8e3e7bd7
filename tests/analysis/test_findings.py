"""Findings in words: each planted effect becomes the right sentence; a grid with no effect settles nothing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import SyntheticSpec, load_results, synthetic_results
from analysis.findings import COLUMNS, KINDS, _change, findings, seeds_needed

# Every class alike: no slope, no size effect, no collapse, no directed confusion.
NULL = dict(noise_slopes=(0.0, 0.0), size_scales=(0.0, 0.0), collapse_class=None, noise_hurts_class=None,
            data_hungry_class=None, flat_classes=(), confusion_pair=None)


@pytest.fixture(scope="module")
def planted_findings(planted):
    return findings(planted, n_boot=300)


def _one(frame, kind, subject_start):
    rows = frame[(frame["kind"] == kind) & frame["subject"].str.startswith(subject_start)]
    assert len(rows) == 1, (kind, subject_start, list(frame[frame["kind"] == kind]["subject"]))
    return rows.iloc[0]


def test_columns_sort_order_and_sentences(planted_findings):
    frame = planted_findings
    assert list(frame.columns) == COLUMNS
    order = frame["kind"].map(KINDS.index)
    assert order.is_monotonic_increasing and frame.index.equals(frame.index.sort_values())
    assert frame["sentence"].str.endswith(".").all()
    settled = frame[frame["settled"]]
    assert settled["sentence"].str.contains("settled at 8 seeds").all()
    assert (settled["p_value"] < 0.05 / len(KINDS)).all()
    assert frame[~frame["settled"]]["sentence"].str.contains("not settled|not answered").all()


def test_planted_fragile_classes_become_settled_sentences(planted_findings):
    f = planted_findings
    most = _one(f, "noise_sensitivity", "most:")
    assert most["subject"] == "most: bird" and most["settled"]
    assert "bird is the most sensitive to label noise" in most["sentence"] and "rank 95% CI 1 to 1" in most["sentence"]
    assert _one(f, "size_sensitivity", "most:")["subject"] == "most: frog"
    assert _one(f, "noise_sensitivity", "least:")["subject"].split(": ")[1] in {"automobile", "truck"}


def test_planted_bend_is_found_where_it_was_planted(planted_findings):
    bends = planted_findings[(planted_findings["kind"] == "noise_bend") & planted_findings["settled"]]
    assert list(bends["subject"]) == ["bird"]
    bird = bends.iloc[0]
    assert bird["estimate"] == pytest.approx(0.3, abs=0.1) and bird["ci_low"] <= 0.3 <= bird["ci_high"]
    assert "bird's recall bends against label noise at noise 0.3" in bird["sentence"]
    assert "over 10 classes" in bird["sentence"]


def test_planted_directed_confusion_and_its_weaker_reverse(planted_findings):
    first = planted_findings[planted_findings["kind"] == "confusion"].iloc[0]
    assert first["subject"] == "at baseline: deer -> horse" and first["settled"] and first["estimate"] > 0.05
    assert "deer is taken for horse" in first["sentence"] and "the reverse (horse taken for deer" in first["sentence"]
    assert "is weaker by" in first["sentence"]


def test_planted_noise_against_reduction(planted_findings):
    f = planted_findings[planted_findings["kind"] == "noise_vs_reduction"]
    cat = _one(f, "noise_vs_reduction", "cat at")
    frog = _one(f, "noise_vs_reduction", "frog at")
    assert cat["settled"] and cat["estimate"] > 0 and "corrupted labels cost" in cat["sentence"]
    assert "more recall than" in cat["sentence"]
    assert frog["settled"] and frog["estimate"] < 0 and "less recall than" in frog["sentence"]
    flat = f[f["subject"].str.startswith(("automobile", "truck"))]
    assert not flat["settled"].any()


def test_one_model_says_what_is_missing(planted_findings):
    row = planted_findings[planted_findings["kind"] == "models"].iloc[0]
    assert not row["settled"] and "only one model (blog_cnn)" in row["missing"]
    assert row["sentence"].endswith("a second would tell.")


def test_two_models_agree_on_the_fragile_classes():
    confusion, _ = synthetic_results(SyntheticSpec(models=("a", "b"), n_seeds=6))
    rows = findings(confusion, n_boot=300)
    models = rows[rows["kind"] == "models"]
    noise = models[models["subject"] == "noise: a vs b"].iloc[0]
    assert noise["model"] == "all" and noise["settled"] and "both rank bird most sensitive" in noise["sentence"]


@pytest.mark.parametrize("seeds", [3, 5])
def test_a_grid_with_no_effect_settles_nothing(seeds):
    confusion, _ = synthetic_results(SyntheticSpec(n_seeds=seeds, random_state=11, **NULL))
    rows = findings(confusion, n_boot=300)
    assert not rows["settled"].any(), list(rows[rows["settled"]]["sentence"])
    unanswered = rows[(rows["missing"] == "") & ~rows["settled"]]
    # Every unsettled, answerable finding with an estimable spread says how many seeds it would take.
    assert unanswered["seeds_needed"].dropna().gt(seeds).all()
    assert unanswered["sentence"].str.contains(f"not settled at {seeds} seeds").all()


@pytest.mark.slow
def test_null_grids_rarely_claim_anything():
    """The nine kinds share alpha = 0.05, so at most ~5 % of null grids may claim anything.

    20 grids: 4 or more with a claim has probability 0.016 if the level holds.
    """
    claims = 0
    for r in range(20):
        confusion, _ = synthetic_results(SyntheticSpec(n_seeds=3 + r % 3, random_state=300 + r, **NULL))
        claims += bool(findings(confusion, n_boot=200)["settled"].any())
    assert claims <= 3


def test_a_small_grid_names_what_it_lacks(make):
    quickish = make(n_seeds=3, train_fractions=(1.0, 0.4), noise_fractions=(0.0, 0.15, 0.3, 0.45, 0.6))
    rows = findings(quickish, n_boot=200)
    size_bend = rows[rows["kind"] == "size_bend"].iloc[0]
    assert "breakpoints need at least 5 size levels, the grid has 2" in size_bend["missing"]
    assert size_bend["sentence"].startswith("blog_cnn: where recall bends against less training data: not answered")
    most = _one(rows, "noise_sensitivity", "most:")
    assert "a rank interval needs 5 seeds" in most["sentence"]
    assert _one(rows, "noise_vs_reduction", "bee at")["subject"] == "bee at 0.6"


def test_seeds_needed_is_the_paired_z_formula():
    z = stats.norm.ppf(1 - 0.01 / 2) + stats.norm.ppf(0.8)
    assert seeds_needed(0.02, 0.05, level=0.01) == np.ceil((z * 0.05 / 0.02) ** 2)
    assert seeds_needed(1.0, 0.01, level=0.05) == 2  # never below 2
    assert np.isnan(seeds_needed(0.0, 0.0, level=0.05))


@pytest.mark.parametrize("option, value, message", [
    ("alpha", 1.5, r"alpha must be in \(0, 1\), got 1.5"),
    ("top_confusions", 0, "top_confusions must be a positive integer, got 0"),
    ("n_boot", 10, r"n_boot must be an integer in \[100, 100,000\], got 10"),
])
def test_bad_options_name_the_value(small, option, value, message):
    with pytest.raises(ValueError, match=message):
        findings(small, **{option: value})


def test_per_class_families_collapse_into_one_headline_each(planted_findings):
    f = planted_findings
    for kind in ("noise_vs_reduction", "exchange_rate"):
        part = f[f["kind"] == kind]
        heads = part[part["headline"]]
        assert len(heads) == 1 and heads.iloc[0]["subject"].startswith("summary at"), list(heads["subject"])
        assert (~part["headline"]).sum() == 10  # the per-class rows stay, for findings.json / CSV and the report
    summary = f[(f["kind"] == "noise_vs_reduction") & f["headline"]].iloc[0]
    assert summary["settled"]
    worse, better = summary["sentence"].split("the lost examples cost more for ")
    assert "the wrong labels cost more recall than the lost examples for" in worse and "cat (" in worse
    assert "frog (" in better and "frog" not in worse
    # Headlines come before the rows they stand for, within each kind.
    for kind, part in f.groupby("kind", sort=False):
        assert part["headline"].is_monotonic_decreasing, kind


def test_a_family_with_nothing_settled_says_none_stand_out(make):
    rows = findings(make(n_seeds=3, **NULL), n_boot=200)
    summary = rows[(rows["kind"] == "noise_vs_reduction") & rows["headline"]].iloc[0]
    assert "none of the 4 classes differs measurably" in summary["sentence"] and not summary["settled"]


def test_the_printed_list_is_the_headlines(small_dir, tmp_path, capsys):
    from analysis.cli import print_findings

    table = findings(load_results(small_dir), n_boot=200)
    path = tmp_path / "findings.json"
    table.to_json(path, orient="records")
    print_findings(path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"report: {int(table['headline'].sum())} headline findings of {len(table)}")
    assert len(lines) == 1 + int(table["headline"].sum()) < len(table)


def test_a_negative_loss_reads_as_a_gain():
    assert _change(-0.012) == "gains 0.012 recall" and _change(-0.012, "losing") == "gaining 0.012 recall"
    assert _change(0.035) == "loses 0.035 recall" and _change(-0.0001) == "loses 0.000 recall"
    rows = findings(synthetic_results(SyntheticSpec(n_seeds=4, random_state=11, **NULL))[0], n_boot=200)
    assert not rows["sentence"].str.contains(r"\b(?:los\w*|lost|cost) -\d").any()
    assert rows["sentence"].str.contains(r"\bgain\w* 0\.\d+ recall").any()


def test_each_unordered_pair_is_reported_once_in_its_stronger_direction(small):
    rows = findings(small, top_confusions=6, n_boot=200)  # 4 classes: 6 unordered pairs, 12 directions
    confusions = rows[rows["kind"] == "confusion"]
    for where, part in confusions.groupby(confusions["subject"].str.split(": ").str[0]):
        pairs = [frozenset(s.split(": ")[1].split(" -> ")) for s in part["subject"]]
        assert len(pairs) == len(set(pairs)) == 6, where
    assert not confusions["sentence"].str.contains("stronger").any()
    assert (confusions["estimate"] >= 0).all()
    assert confusions.groupby(confusions["subject"].str.split(": ").str[0])["headline"].sum().eq(1).all()


def test_a_settled_loss_is_said_apart_from_its_unsettled_rank(make):
    # Every class loses the same clearly to less data: each loss is settled, no rank can be.
    rows = findings(make(n_seeds=8, size_scales=(0.15, 0.15), collapse_class=None, flat_classes=(),
                         confusion_pair=None), n_boot=200)
    size = rows[rows["kind"] == "size_sensitivity"]
    losses = size[size["subject"].str.startswith("loss: ")]
    assert len(losses) == 4 and losses["settled"].all() and not losses["headline"].any()
    most = _one(rows, "size_sensitivity", "most:")
    # One verdict per finding: the rank's sentence judges the rank alone, never the loss beside it.
    assert not most["settled"] and "settled" not in most["sentence"].split(": its rank is")[0]
    assert most["sentence"].count("settled") == 1 and "its rank is not settled at 8 seeds" in most["sentence"]
    summary = _one(rows, "size_sensitivity", "losses")
    assert summary["settled"] and summary["sentence"].startswith("blog_cnn: with less training data, ")
    assert all(f"{c} (0.0" in summary["sentence"] for c in ("ant", "bee", "cat", "dog"))
    assert "lose recall on average over train fraction 0.2 to 1" in summary["sentence"]
