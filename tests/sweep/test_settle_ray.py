"""`sweep run --until-settled` on digits with Ray: a loose target stops after the first round, an
impossible one at the budget, and a round cut short resumes without redoing a finished trial."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pandas as pd
import pytest
from sweeptest import sweep_main

pytestmark = pytest.mark.ray

# 2 noise levels x 1 size x 5 seeds = 10 one-epoch digits trials; noise is the one factor varied.
SETTLE_SPEC = """
name = "settle"
dataset = "digits"
models = ["blog_cnn"]
noise_mode = "shuffle"
noise_fractions = [0.0, 0.5]
train_sizes = [300]
seeds = 5
retries = 0

[training]
epochs = 1

[resources]
cpus = 1
device = "cpu"
"""


def mtimes(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.parquet")}


def seeds_recorded(out) -> list[int]:
    return json.loads((out / "experiment.json").read_text())["spec"]["seeds"]


@pytest.fixture(scope="module")
def loose_run(ray_session, tmp_path_factory):
    """A target every 5-seed grid meets (half-width 0.99 of a recall), with room in the budget for more."""
    folder = tmp_path_factory.mktemp("settle")
    spec = folder / "settle.toml"
    spec.write_text(SETTLE_SPEC)
    err = io.StringIO()  # the run's log lines (capfd is per test; this fixture is per module)
    with contextlib.redirect_stderr(err):
        code = sweep_main(["run", spec, "--out", folder / "out", "--until-settled", "sensitivity:0.99",
                           "--max-seeds", "8"])
    return {"spec": spec, "out": folder / "out", "code": code, "err": err.getvalue()}


def test_loose_target_stops_after_the_first_round_as_met(loose_run):
    err = loose_run["err"]
    assert loose_run["code"] == 0
    assert "round 1: 5 seeds: worst half-width" in err and "round 2" not in err
    assert "settled (sensitivity:0.99; stop: met): every class's sensitivity is known" in err
    assert len(pd.read_parquet(loose_run["out"] / "trials")) == 10
    assert seeds_recorded(loose_run["out"]) == [0, 1, 2, 3, 4]


def test_impossible_target_stops_at_the_budget_with_the_whole_grid_extended(loose_run, tmp_path, capfd):
    out = tmp_path / "out"
    shutil.copytree(loose_run["out"], out)
    before = mtimes(out)
    code = sweep_main(["run", loose_run["spec"], "--out", out, "--until-settled", "sensitivity:0.0001",
                       "--max-seeds", "6"])
    err = capfd.readouterr().err
    assert code == 3
    assert "round 1: 5 seeds:" in err and "round 2: 6 seeds:" in err and "round 3" not in err
    assert "not settled (sensitivity:0.0001; stop: budget): the budget of 6 seeds is spent" in err
    trials = pd.read_parquet(out / "trials")
    assert sorted(trials.seed.value_counts().to_dict().items()) == [(s, 2) for s in range(6)]  # every cell
    after = mtimes(out)
    assert {k: after[k] for k in before} == before and len(after) == 12  # round 2 ran only the new seed
    assert seeds_recorded(out) == list(range(6))  # `sweep status OUT` shows the final count


def test_round_cut_short_stops_incomplete_and_resumes_without_redoing_trials(loose_run, tmp_path, capfd,
                                                                            monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(loose_run["out"], out)
    argv = ["run", loose_run["spec"], "--out", out, "--until-settled", "sensitivity:0.0001", "--max-seeds", "8"]
    monkeypatch.setenv("SWEEP_FAIL_TRIALS", "*/noise_fraction=0.5/*/seed=5")  # one trial of round 2 fails
    assert sweep_main(argv) == 1
    err = capfd.readouterr().err
    assert "round 1: 5 seeds:" in err  # 5 -> at least 1.5x: round 2 asks for 8
    assert "stopped (sensitivity:0.0001; stop: incomplete): 1 trial(s) failed in round 2 (8 seeds)" in err
    before = mtimes(out)
    assert len(before) == 15
    monkeypatch.delenv("SWEEP_FAIL_TRIALS")
    assert sweep_main(argv) == 3
    err = capfd.readouterr().err
    # The rerun finishes the round OUT was in (8 seeds: no extra look at 5), running only the failed trial.
    assert "round 1: 8 seeds:" in err and "16 trials, 15 already done, 1 to run" in err and "round 2" not in err
    after = mtimes(out)
    assert len(after) == 16 and {k: after[k] for k in before} == before
