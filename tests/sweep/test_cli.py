"""`sweep run` / `sweep status` on bad input: one line, exit 2, nothing started, nothing in OUT touched.

None of these start Ray: every check happens before it.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import datetime, timezone

import pytest
from sweeptest import make_result, sweep_main

from sweep.distributed.store import open_output, write_failed, write_trial
from sweep.distributed.experiment_record import record_experiment
from sweep.distributed.lock import OutputLock
from sweep.distributed.spec import load_preset, load_spec


def snapshot(folder):
    """Every file under folder with its bytes: to prove nothing was touched."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capfd) -> str:
    err = capfd.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def quick_out(tmp_path):
    """An OUT holding one finished quick-preset trial (written without training)."""
    out = open_output(str(tmp_path / "out"))
    spec = load_preset("quick")
    record_experiment(out, spec)
    write_trial(out, make_result(spec.trials()[0]), "quick", started_at=datetime.now(timezone.utc))
    return tmp_path / "out"


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as info:
        sweep_main(["run", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--preset", "--out", "--dataset", "--seeds", "--retries", "--max-concurrent", "--address",
                   "--num-cpus", "--dashboard", "--verbose", "--yes"):
        assert option in text
    assert "default: results/<experiment>" in text and "default when neither is given: quick" in text
    assert "(default: None)" not in text


def test_run_dataset_help_lists_every_loader_form(capsys):
    from sweep.engine.datasets import SPEC_FORMS

    with pytest.raises(SystemExit):
        sweep_main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"replace the spec's dataset: {' | '.join(SPEC_FORMS)}; default" in text and len(SPEC_FORMS) == 4


@pytest.mark.parametrize("argv, match", [
    (["run", "nope.toml"], r"^sweep run: error: spec file not found: nope\.toml$"),
    (["run", "--preset", "quick", "x.toml"], r"give a SPEC file or --preset, not both"),
    (["run", "--preset", "blog-x20", "--seeds", "200"], r"this grid has 12,000 trials \(more than 2,000\).*--yes"),
    (["run", "--address", "127.0.0.1:1"], r"cannot reach the Ray cluster at '127\.0\.0\.1:1'"),
    (["run", "--address", "nonsense"], r"Ray address must look like host:port, ray://host:port or auto"),
    # 10 cells x 100,000 seeds: refused by arithmetic, before a million trials are built
    (["run", "--seeds", "100000"], r"this grid has 1,000,000 trials \(more than 2,000\)"),
    (["run", "--dataset", "parquet:/no/such/dir"], r"dataset directory /no/such/dir .* does not exist"),
    (["run", "--dataset", "mnist"], r"unknown dataset 'mnist'"),
    (["status", "{tmp}"], r"holds no sweep \(no experiment\.json\); give a SPEC"),
])
def test_bad_run_input_is_one_line_exit_2_nothing_written(argv, match, capfd, tmp_path):
    out = tmp_path / "out"
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0] == "run":
        argv += ["--out", str(out)]
    assert sweep_main(argv) == 2
    import re

    assert re.search(match, error_line(capfd))
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["run", "--seeds", "0"], "--seeds: must be an integer >= 1, got '0'"),
    # The cap of a spec's `seeds = N`; before, 10 million built every TrialConfig: a MemoryError traceback.
    (["run", "--seeds", "10000000"], "--seeds: must be an integer in [1, 100000], got '10000000'"),
    (["status", "out", "--seeds", "100001"], "--seeds: must be an integer in [1, 100000], got '100001'"),
])
def test_argument_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        sweep_main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_out_of_another_experiment_is_refused_untouched(quick_out, capfd):
    before = snapshot(quick_out)
    assert sweep_main(["run", "--preset", "fast", "--out", quick_out]) == 2
    assert "holds results of a different experiment" in error_line(capfd)
    assert snapshot(quick_out) == before


def test_second_driver_on_the_same_out_is_refused(quick_out, capfd):
    with OutputLock(open_output(str(quick_out))):
        before = snapshot(quick_out)
        assert sweep_main(["run", "--out", quick_out]) == 2
        line = error_line(capfd)
        assert snapshot(quick_out) == before  # the first driver's lock included
    assert f"is in use by another sweep driver (pid {os.getpid()} on {socket.gethostname()}" in line


def test_status_table_counts_done_missing_failed(quick_out, capsys):
    spec = load_preset("quick")
    failing = spec.trials()[1]
    write_failed(open_output(str(quick_out)), failing.trial_id, key={"seed": 1}, error="RuntimeError: boom",
                 attempt=2)
    assert sweep_main(["status", quick_out]) == 0
    text = capsys.readouterr().out
    assert "quick at " in text and "30 trials in the grid: 1 done, 28 missing, 1 failed" in text
    first_cell = next(line for line in text.splitlines() if line.startswith("blog_cnn  0.00   1.0"))
    assert first_cell.split()[-3:] == ["1/3", "1", "1"]
    assert f"{failing.trial_id}  seed=1: RuntimeError: boom (attempt 2)" in text
    assert sweep_main(["status", quick_out, "--seeds", "5"]) == 0
    assert "50 trials in the grid: 1 done, 48 missing, 1 failed" in capsys.readouterr().out


def test_status_against_another_grid_of_the_same_experiment(quick_out, write_spec, capsys):
    from sweeptest import REPO

    text = (REPO / "sweep" / "distributed" / "presets" / "quick.toml").read_text().replace(
        "train_sizes = [1.0, 0.4]", "train_sizes = [0.2]")
    spec_path = write_spec(text)
    assert sweep_main(["status", quick_out, spec_path]) == 0
    out = capsys.readouterr().out
    assert f"{load_spec(spec_path).num_trials} trials in the grid: 0 done" in out
    assert "1 finished trial(s) in OUT are outside this grid" in out


def test_status_against_another_experiments_spec_is_refused_as_run_would(quick_out, write_spec,
                                                                          smoke_spec_text, capfd):
    # Before: exit 0 and every trial "missing", while `sweep run` refuses the same pair.
    spec_path = write_spec(smoke_spec_text)
    assert sweep_main(["status", quick_out, spec_path]) == 2
    line = error_line(capfd)
    assert re.search(r"^sweep status: error: .*out holds results of a different experiment \(epochs: 8 there, "
                     r"1 here; name: 'quick' there, 'smoke' here\); leave out SPEC", line), line
    assert sweep_main(["status", quick_out, "--preset", "fast"]) == 2
    assert "holds results of a different experiment (dataset: 'digits' there, 'cifar10' here" in error_line(capfd)


def test_every_run_option_reaches_the_driver_from_the_command_line():
    """`sweep run`'s flags fill every RunOptions field (the progress line is always on), for both entry points."""
    import dataclasses

    from sweep.cli import build_parser
    from sweep.cli_sweep import run_options
    from sweep.distributed.driver import RunOptions

    plain = run_options(build_parser().parse_args(["run"]))
    assert plain == RunOptions()
    args = build_parser().parse_args(["run", "--address", "h:1", "--num-cpus", "3", "--dashboard", "--verbose",
                                      "--adopt", "--log", "mlflow", "--no-compact"])
    changed = {f.name for f in dataclasses.fields(RunOptions)
               if getattr(run_options(args), f.name) != getattr(RunOptions(), f.name)}
    assert changed == {f.name for f in dataclasses.fields(RunOptions)} - {"progress"}
    assert run_options(args).trackers == ("mlflow",) and run_options(args).num_cpus == 3
