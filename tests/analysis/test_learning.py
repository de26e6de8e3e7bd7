"""Learning curves (OUT/epochs): the loader's checks, the memorisation statistics on planted data,
and the report's section with and without curves."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import (SyntheticSpec, learned_first, load_epochs, memorisation_curves, memorisation_order,
                      write_report, write_synthetic_epochs, write_synthetic_results)
from analysis.learning import NoEpochsError, learned_first_sentences

GRID = dict(classes=("ant", "bee", "cat", "dog"), collapse_class="bee", noise_hurts_class=None, data_hungry_class=None,
            flat_classes=("ant",), confusion_pair=None, noise_fractions=(0.0, 0.3, 0.6), train_fractions=(1.0, 0.5),
            n_seeds=5, test_per_class=50)


@pytest.fixture(scope="module")
def curves_dir(tmp_path_factory):
    out = write_synthetic_results(tmp_path_factory.mktemp("curves") / "out", SyntheticSpec(**GRID))
    return write_synthetic_epochs(out, first_class="cat", epochs=6)


@pytest.fixture(scope="module")
def epochs(curves_dir):
    return load_epochs(curves_dir)


def test_load_epochs_returns_every_row_sorted_with_the_class_order(epochs):
    assert len(epochs) == 3 * 2 * 5 * 6 * 4  # noise x sizes x seeds x epochs x classes
    assert list(epochs["true_class"].cat.categories) == ["ant", "bee", "cat", "dog"]
    keys = ["model", "noise_fraction", "train_fraction", "seed", "epoch", "true_class"]
    order = epochs.sort_values(keys, ascending=[True, True, False, True, True, True], kind="stable")
    assert (order.index == epochs.index).all() and epochs.index.equals(pd.RangeIndex(len(epochs)))
    assert epochs["test_examples"].isna().all() and str(epochs["test_examples"].dtype) == "Int64"


def test_memorisation_curves_are_the_seed_mean_of_each_trials_share(epochs):
    curves = memorisation_curves(epochs)
    assert set(curves["noise_fraction"]) == {0.3, 0.6}  # noise 0 has nothing to memorise
    assert len(curves) == 2 * 2 * 6 and (curves["n_seeds"] == 5).all()
    row = curves[(curves.noise_fraction == 0.6) & (curves.train_fraction == 1.0) & (curves.epoch == 3)].iloc[0]
    part = epochs[(epochs.noise_fraction == 0.6) & (epochs.train_fraction == 1.0) & (epochs.epoch == 3)]
    per_seed = part.groupby("seed")[["memorised", "corrupted"]].sum()
    assert row["mean"] == pytest.approx((per_seed.memorised / per_seed.corrupted).mean())
    assert row.ci_low < row["mean"] < row.ci_high
    rising = curves[(curves.noise_fraction == 0.6) & (curves.train_fraction == 1.0)]["mean"].to_numpy()
    assert (np.diff(rising) > 0).all()  # planted: the share grows every epoch
    by_class = memorisation_curves(epochs, by_class=True)
    assert len(by_class) == 2 * 2 * 4 * 6 and list(by_class.columns[:7]) == [
        "experiment", "model", "noise_mode", "noise_fraction", "train_fraction", "true_class", "epoch"]


def test_the_planted_class_is_memorised_first_and_named(epochs):
    order = memorisation_order(epochs)
    top = order[order["rank"] == 1]
    assert (top["true_class"] == "cat").all() and len(top) == 4  # every noisy cell
    cat = top.iloc[0]
    assert cat.excess_ci_low > 0 and cat.p < 0.05 and cat.auc_ci_low < cat.auc < cat.auc_ci_high
    others = order[(order["true_class"] != "cat")]
    assert (others["excess"] < 0).all()
    first = learned_first(order)
    assert first["true_class"].tolist() == ["cat"] and bool(first["settled"].iloc[0])
    assert first["noise_fraction"].iloc[0] == 0.6 and first["train_fraction"].iloc[0] == 1.0
    sentence = learned_first_sentences(first)[0]
    assert sentence.startswith("blog_cnn at noise 0.6 (train fraction 1, 5 seeds) memorises the wrong labels of class cat")
    assert "within chance" not in learned_first_sentences(first, chance=cat.auc_ci_low / 2)[0]
    # A share whose interval reaches 1/K is no evidence of memorisation: the sentence says so.
    assert "But the share is within chance (1/K = " in learned_first_sentences(first, chance=cat.auc_ci_low)[0]


def test_without_a_planted_class_nothing_is_settled(tmp_path):
    out = write_synthetic_results(tmp_path / "out", SyntheticSpec(**{**GRID, "n_seeds": 3}))
    write_synthetic_epochs(out, first_class="ant")
    frame = load_epochs(out)
    frame.loc[:, "memorised"] = frame["corrupted"] // 2  # every class memorises half, every epoch
    first = learned_first(memorisation_order(frame))
    assert not first["settled"].any() and len(first) == 1
    assert "no class's wrong labels are memorised measurably sooner" in learned_first_sentences(first)[0]


def test_results_without_curves_are_refused_by_the_loader_and_noted_by_the_report(tmp_path):
    out = write_synthetic_results(tmp_path / "out", SyntheticSpec(**GRID))
    with pytest.raises(NoEpochsError, match="has no epochs/ folder"):
        load_epochs(out)
    page = write_report(out, to=tmp_path / "rep", n_boot=200, progress=None).read_text()
    assert "this results folder has no OUT/epochs" in page
    assert not list((tmp_path / "rep").glob("memorisation*"))


def test_the_report_shows_memorisation_per_noise_level_and_names_the_class(curves_dir, tmp_path):
    page = write_report(curves_dir, to=tmp_path / "rep", n_boot=200, progress=None).read_text()
    assert "Learning curves: memorisation" in page and "memorisation_blog_cnn.png" in page
    assert "memorises the wrong labels of class cat" in page
    assert (tmp_path / "rep" / "memorisation_blog_cnn.png").stat().st_size > 10_000
    assert len(pd.read_csv(tmp_path / "rep" / "memorisation_curves.csv")) == 24


def _broken(curves_dir, tmp_path, change):
    out = tmp_path / "out"
    shutil.copytree(curves_dir, out)
    path = sorted((out / "epochs").glob("*.parquet"))[0]
    table = pq.read_table(path).to_pandas()
    table[["test_examples", "test_correct"]] = table[["test_examples", "test_correct"]].astype("Int64")  # nulls stay int
    pq.write_table(pa.Table.from_pandas(change(table), preserve_index=False), path)
    return out


@pytest.mark.parametrize("change, message", [
    (lambda t: t.assign(memorised=t.corrupted + 1), "memorised \\+ corrupted_true exceeds corrupted"),
    (lambda t: t.assign(fitted=-1), "a count is negative"),
    (lambda t: pd.concat([t, t.head(1)]), "the row is present twice"),
    (lambda t: t.assign(loss_sum=np.nan), "missing or NaN value\\(s\\) in column 'loss_sum'"),
    (lambda t: t.assign(test_examples=5), "test_examples and test_correct must be null together"),
    (lambda t: t.drop(columns="memorised"), "missing column\\(s\\) \\['memorised'\\]"),
])
def test_the_loader_refuses_inconsistent_curves(curves_dir, tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        load_epochs(_broken(curves_dir, tmp_path, change))


def test_curves_of_uncommitted_trials_are_left_out_with_a_warning(curves_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(curves_dir, out)
    victim = sorted((out / "trials").glob("*.parquet"))[0]
    victim.unlink()
    with pytest.warns(UserWarning, match="1 trial\\(s\\) have learning curves but no trials/ row"):
        frame = load_epochs(out)
    assert victim.stem not in set(frame["trial_id"]) and len(frame) == 3 * 2 * 5 * 6 * 4 - 24


def test_options_are_checked(epochs):
    with pytest.raises(ValueError, match="confidence must be in \\(0, 1\\)"):
        memorisation_curves(epochs, confidence=1.5)
    with pytest.raises(TypeError, match="epochs must be the DataFrame from load_epochs"):
        memorisation_order([1, 2])
    with pytest.raises(ValueError, match="nothing is memorised"):
        memorisation_curves(epochs[epochs.noise_fraction == 0])
