"""Several results folders side by side: combined, checked, compared across folders, reported as one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis import (SyntheticSpec, findings, load_results, model_comparison, sensitivity_ranking,
                      write_synthetic_results)
from analysis.cli import main
from analysis.several import SORT

# The small four-class grid, one model per folder; each folder plants another most noise-fragile class.
GRID = dict(classes=("ant", "bee", "cat", "dog"), collapse_class="bee", noise_hurts_class=None, data_hungry_class=None,
            flat_classes=("ant",), confusion_pair=("cat", "dog"), noise_fractions=(0.0, 0.2, 0.4, 0.6, 0.8), train_fractions=(1.0, 0.6, 0.2),
            n_seeds=6, test_per_class=200)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A: model "cnn" whose bee collapses under noise; B: model "mlp" whose dog does (same dataset and grid)."""
    root = tmp_path_factory.mktemp("several")
    a = write_synthetic_results(root / "a", SyntheticSpec(**GRID, models=("cnn",),
                                                          experiment="study-a"))
    b = write_synthetic_results(root / "b", SyntheticSpec(**{**GRID, "collapse_class": "dog"}, models=("mlp",),
                                                          experiment="study-b", random_state=1))
    return a, b


@pytest.fixture(scope="module")
def both(folders):
    return load_results(list(folders))


def test_two_folders_load_as_one_table_with_models_labelled_by_experiment(folders, both):
    a, b = (load_results(f) for f in folders)
    assert len(both) == len(a) + len(b)
    assert list(both["model"].cat.categories) == ["study-a/cnn", "study-b/mlp"]
    assert list(both["true_class"].cat.categories) == ["ant", "bee", "cat", "dog"]
    assert set(both["experiment"]) == {"study-a", "study-b"}
    part = both[both["experiment"] == "study-b"].reset_index(drop=True)
    assert part["count"].tolist() == b["count"].tolist()  # the same rows, in the same order within a folder
    assert both["trial_id"].nunique() == a["trial_id"].nunique() + b["trial_id"].nunique()
    resorted = both.sort_values(SORT, ascending=[True, True, True, True, False, True, True, True])
    pd.testing.assert_frame_equal(both, resorted.reset_index(drop=True))  # in load_results' order


def test_one_folder_in_a_list_is_the_single_folder_load(folders):
    pd.testing.assert_frame_equal(load_results([folders[0]]), load_results(folders[0]))


def test_model_comparison_across_folders_finds_the_planted_difference(both):
    row = model_comparison(both, factor="noise", n_boot=300).iloc[0]
    assert (row["model_a"], row["model_b"], row["note"]) == ("study-a/cnn", "study-b/mlp", "ok")
    assert (row["top_class_a"], row["top_class_b"], row["same_top"]) == ("bee", "dog", False)
    assert row["n_seeds"] == 6 and row["ci_low"] <= row["kendall_tau"] <= row["ci_high"]
    assert row["ci_high"] < 1  # the interval rules out the same ranking: the planted orders differ
    # Across folders the comparison is the one a single sweep of both models would make.
    one = both.assign(experiment="one-sweep")
    pd.testing.assert_frame_equal(model_comparison(one, factor="noise", n_boot=300),
                                  model_comparison(both, factor="noise", n_boot=300))


def test_findings_compare_the_folders_models(both):
    rows = findings(both, n_boot=300)
    models = rows[rows["kind"] == "models"]
    noise = models[models["subject"] == "noise: study-a/cnn vs study-b/mlp"].iloc[0]
    assert noise["missing"] == "" and np.isfinite(noise["ci_low"])
    assert "study-a/cnn ranks bee most sensitive, study-b/mlp dog" in noise["sentence"]
    assert {"study-a/cnn", "study-b/mlp"} <= set(rows["model"])


def test_a_model_per_dataset_is_not_compared(tmp_path):
    """The same model on two datasets: labelled apart, each analysed, never paired across datasets."""
    a = write_synthetic_results(tmp_path / "a", SyntheticSpec(**GRID, experiment="on-x",
                                                              dataset="x"))
    b = write_synthetic_results(tmp_path / "b", SyntheticSpec(**{**GRID, "collapse_class": "dog"}, experiment="on-y",
                                                              dataset="y"))
    df = load_results([a, b])
    ranking = sensitivity_ranking(df, n_boot=200)
    assert set(ranking["model"]) == {"on-x/blog_cnn", "on-y/blog_cnn"}
    row = model_comparison(df, n_boot=200).iloc[0]
    assert row["note"].startswith("not compared: on-x/blog_cnn is on dataset x, on-y/blog_cnn on y")
    assert np.isnan(row["kendall_tau"]) and np.isnan(row["ci_low"]) and not row["same_top"]
    said = findings(df, n_boot=200)
    said = said[said["kind"] == "models"]
    assert len(said) == 2 and not said["settled"].any()
    assert said["missing"].str.contains("across datasets the training and test data differ").all()


def test_different_levels_are_not_compared(tmp_path):
    a = write_synthetic_results(tmp_path / "a", SyntheticSpec(**GRID, experiment="wide"))
    b = write_synthetic_results(tmp_path / "b", SyntheticSpec(**{**GRID, "noise_fractions": (0.0, 0.2, 0.4)},
                                                              experiment="narrow"))
    row = model_comparison(load_results([a, b]), n_boot=200).iloc[0]
    assert "narrow/blog_cnn has noise fractions [0, 0.2, 0.4], wide/blog_cnn [0, 0.2, 0.4, 0.6, 0.8]" in row["note"]


def test_one_experiment_split_over_two_folders_is_the_whole_experiment(tmp_path):
    whole = write_synthetic_results(tmp_path / "whole", SyntheticSpec(**GRID, models=("a", "b")))
    halves = [tmp_path / "h1", tmp_path / "h2"]
    for i, (conf, trial) in enumerate(zip(sorted((whole / "confusion").iterdir()), sorted((whole / "trials").iterdir()))):
        for sub, path in (("confusion", conf), ("trials", trial)):
            (halves[i % 2] / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, halves[i % 2] / sub / path.name)
    pd.testing.assert_frame_equal(load_results(halves), load_results(whole))


def test_refusals_are_one_line_and_name_both_folders(folders, tmp_path):
    a, b = folders
    with pytest.raises(ValueError, match=r"is given twice"):
        load_results([a, a])
    shutil.copytree(a, tmp_path / "copy")
    with pytest.raises(ValueError, match=rf"{a} and .*copy hold the same trials of experiment 'study-a'"):
        load_results([a, tmp_path / "copy"])
    other = write_synthetic_results(tmp_path / "other", SyntheticSpec(**{**GRID, "classes": ("ant", "bee", "cat", "eel"),
                                                                         "confusion_pair": ("cat", "eel")}))
    with pytest.raises(ValueError, match=r"do not share their classes \(only in .*a: \['dog'\], only in .*other: "
                                         r"\['eel'\]"):
        load_results([a, other])
    swapped = write_synthetic_results(tmp_path / "swapped", SyntheticSpec(**{**GRID, "classes": ("bee", "ant", "cat", "dog")}))
    with pytest.raises(ValueError, match="the same classes in another order"):
        load_results([a, swapped])
    smaller = write_synthetic_results(tmp_path / "smaller", SyntheticSpec(**{**GRID, "test_per_class": 100}, experiment="s"))
    with pytest.raises(ValueError, match=r"dataset 'synthetic' was scored on different test sets"):
        load_results([a, smaller])
    for bad, error, message in (([], ValueError, "no results folder given"), ([a, 3], TypeError, "got int 3"),
                                ({a}, TypeError, "got set")):
        with pytest.raises(error, match=message):
            load_results(bad)


def test_same_experiment_and_grid_point_under_two_trial_ids_is_refused(tmp_path):
    a = write_synthetic_results(tmp_path / "a", SyntheticSpec(**GRID))
    b = tmp_path / "b"
    for sub in ("confusion", "trials"):  # the same grid point, another trial id (another recipe, say)
        (b / sub).mkdir(parents=True)
        path = sorted((a / sub).iterdir())[0]
        frame = pd.read_parquet(path).assign(trial_id="f" * 16)
        frame.to_parquet(b / sub / f"{'f' * 16}.parquet", index=False)
    with pytest.raises(ValueError, match=r"has a trial in both .*a and .*b under different trial ids"):
        load_results([a, b])


def test_several_experiments_in_a_hand_built_table_need_labelled_models(folders):
    a, b = (load_results(f) for f in folders)
    mixed = pd.concat([a, b.assign(model="cnn")], ignore_index=True)
    with pytest.raises(ValueError, match=r"2 values of experiment .* model 'cnn' is in 2 of them"):
        sensitivity_ranking(mixed)


def test_report_over_two_folders(folders, tmp_path, capsys):
    a, b = folders
    out = tmp_path / "ab"
    assert main(["report", str(a), str(b), "--to", str(out), "--n-boot", "200", "--quiet"]) == 0
    page = (out / "index.html").read_text()
    assert f"2 results folders in one report: {a}: experiment study-a (dataset synthetic" in page
    assert "<title>Class fragility report: study-a, study-b</title>" in page
    assert "Does the ranking depend on the model?" in page and "Not shown: model comparison" not in page
    assert (out / "confusion_study-a_cnn_baseline.png").exists() and (out / "ranking_noise_study-b_mlp.png").exists()
    rows = json.loads((out / "findings.json").read_text())
    assert any(r["kind"] == "models" and r["subject"] == "noise: study-a/cnn vs study-b/mlp" for r in rows)
    assert page.count("Results folder ") == 4  # the misclassified-images and learning-curve parts, per folder
    assert capsys.readouterr().out.splitlines()[-1] == f"report: open {out / 'index.html'}"


def test_report_of_several_folders_needs_to(folders, capsys):
    assert main(["report", *map(str, folders)]) == 2
    assert "2 results folders make one report" in capsys.readouterr().err
    assert not (folders[0] / "report").exists()


def _with_config(folder, **config):
    """Give every trials/ row of ``folder`` a config_json column, as `sweep run` writes it."""
    for path in (folder / "trials").iterdir():
        pd.read_parquet(path).assign(config_json=json.dumps(config)).to_parquet(path, index=False)
    return folder


def test_folders_that_trained_on_different_data_warn(tmp_path, folders):
    a = folders[0]
    resized = write_synthetic_results(tmp_path / "resized", SyntheticSpec(**GRID, full_train_size=40_000,
                                                                          experiment="resized"))
    with pytest.warns(UserWarning, match=r"trained on different data at the same seed: synthetic, noise symmetric 0, "
                                         r"train fraction 1, seed 0 has train_size 50000 .* 40000"):
        load_results([a, resized])
    x = _with_config(write_synthetic_results(tmp_path / "x", SyntheticSpec(**GRID, experiment="x")),
                     subset_mode="random", noise_pairs=None, noise_matrix=None)
    y = _with_config(write_synthetic_results(tmp_path / "y", SyntheticSpec(**GRID, experiment="y")),
                     subset_mode="stratified", noise_pairs=None, noise_matrix=None)
    with pytest.warns(UserWarning, match=r"both hold synthetic with noise mode symmetric but draw their training data "
                                         r"differently \(subset_mode, noise_pairs, noise_matrix"):
        load_results([x, y])
