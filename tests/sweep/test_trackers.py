"""`sweep run --log`: trackers through Ray Tune's logger callbacks, read back from what they wrote.

TensorBoard's event files are read here without TensorBoard: TFRecord framing (length, masked
CRC-32C of the length, the bytes, masked CRC-32C of the bytes) around tensorboardX's ``Event``
protobufs, so a test fails on a file TensorBoard could not read. MLflow's test runs only where
mlflow is installed (it is an optional extra, not part of the test extra).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pandas as pd
import pytest
from sweeptest import sweep_main

from sweep.distributed import trackers as trackers_module
from sweep.distributed.store import Output
from sweep.distributed.trackers import TRACKERS, Trackers, resolve_trackers, run_name

SPEC = """
name = "tracked"
dataset = "digits"
models = ["blog_cnn"]
noise_fractions = [0.0, 0.5]
train_sizes = [300]
seeds = 1

[training]
epochs = 1

[resources]
cpus = 1
device = "cpu"
"""


def read_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of one TensorBoard event file, every record's CRCs checked."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    data, at, scalars = path.read_bytes(), 0, {}
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        assert header_crc == masked_crc32c(header) and body_crc == masked_crc32c(body), f"bad record in {path}"
        at += 16 + length
        event = Event.FromString(body)
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def event_files(out: Path) -> dict[str, list[Path]]:
    """run folder name -> its event files, under OUT/tensorboard."""
    return {d.name: sorted(d.glob("events.out.tfevents.*")) for d in sorted((out / "tensorboard").iterdir())}


# ---- no Ray -----------------------------------------------------------------------------------
def test_log_values_are_names_or_comma_lists_each_kept_once_in_order():
    assert resolve_trackers(None) == resolve_trackers(()) == ()
    assert resolve_trackers("tensorboard") == ("tensorboard",)
    assert resolve_trackers(["tensorboard", " tensorboard "]) == ("tensorboard",)
    with pytest.raises(ValueError, match=r"^--log 'comet' is not a tracker; allowed: tensorboard, mlflow, wandb"):
        resolve_trackers("tensorboard,comet")
    with pytest.raises(ValueError, match=r"^--log '' is not a tracker"):
        resolve_trackers(["tensorboard,"])
    with pytest.raises(TypeError, match=r"--log takes tracker names \(strings\), got 3"):
        resolve_trackers([3])


def test_a_tracker_whose_package_is_missing_names_the_extra_that_installs_it(monkeypatch):
    monkeypatch.setitem(TRACKERS, "mlflow", TRACKERS["mlflow"].__class__(
        "no_such_package_for_sweep_tests", "mlflow", TRACKERS["mlflow"].make, TRACKERS["mlflow"].what))
    with pytest.raises(ValueError, match=r"^--log mlflow needs the no_such_package_for_sweep_tests package, which "
                                         r"is not installed: pip install 'class-fragility-sweep\[mlflow\]'$"):
        resolve_trackers("tensorboard,mlflow")


def test_run_names_are_the_grid_point_and_tell_counts_from_fractions():
    base = {"base": {"noise_mode": "shuffle", "epochs": 1}}
    assert run_name({**base, "model": "blog_cnn", "noise_fraction": 0.5, "train_size": 300, "seed": 0}) == \
        "blog_cnn_shuffle-0.5_n300_seed0"
    point = {"model": "mlp", "noise_fraction": 0, "train_size": 1.0, "seed": 12}
    assert run_name({**base, "point": point}) == "mlp_shuffle-0.0_n1.0_seed12"
    assert run_name({**base, "point": {**point, "train_size": 1}}) == "mlp_shuffle-0.0_n1_seed12"


def test_tensorboard_files_reach_a_non_local_out_replacing_an_earlier_attempts():
    import pyarrow.fs as pafs

    fs = pafs._MockFileSystem()  # in memory: an object store's code path, offline
    out = Output(uri="mock://bucket/out", fs=fs, root="bucket/out")
    fs.create_dir("bucket/out/tensorboard/a", recursive=True)
    with fs.open_output_stream("bucket/out/tensorboard/a/events.out.tfevents.1.old") as fh:
        fh.write(b"old attempt")
    tracking = Trackers(["tensorboard"], out=out, experiment="x", run="x-1")
    for name, content in (("a", b"new attempt"), ("b", b"first attempt")):
        folder = Path(tracking._staging) / "tensorboard" / name
        folder.mkdir(parents=True)
        (folder / "events.out.tfevents.2.new").write_bytes(content)
    tracking.after_fit()
    files = {i.path: i for i in fs.get_file_info(pafs.FileSelector("bucket/out/tensorboard", recursive=True))
             if i.type == pafs.FileType.File}
    assert sorted(files) == ["bucket/out/tensorboard/a/events.out.tfevents.2.new",
                             "bucket/out/tensorboard/b/events.out.tfevents.2.new"]
    with fs.open_input_stream("bucket/out/tensorboard/a/events.out.tfevents.2.new") as fh:
        assert fh.read() == b"new attempt"
    assert not (Path(tracking._staging) / "tensorboard").exists()  # the next fit starts from an empty staging
    tracking.close()
    assert not Path(tracking._staging).exists()


def test_a_local_out_needs_no_staging_folder(tmp_path):
    out = Output(uri=str(tmp_path), fs=__import__("pyarrow.fs").fs.LocalFileSystem(), root=str(tmp_path))
    tracking = Trackers(["tensorboard"], out=out, experiment="x", run="x-1")
    assert tracking._staging == ""
    tracking.after_fit()  # nothing to copy: the callbacks wrote into OUT itself
    tracking.close()


# ---- Ray --------------------------------------------------------------------------------------
@pytest.mark.ray
def test_every_report_of_a_trial_is_a_step_in_its_own_folder_and_a_rerun_replaces_it(ray_session, tmp_path):
    """A trainable that reports three epochs, through the sweep's own callbacks and trial names."""
    from ray import tune

    from sweep.distributed.trackers import trial_name

    def three_epochs(config):
        for epoch in range(1, 4):
            tune.report({"epoch": epoch, "train_loss": 1.0 / epoch, "note": "text is not a scalar"})

    out = Output(uri=str(tmp_path / "out"), fs=__import__("pyarrow.fs").fs.LocalFileSystem(),
                 root=str(tmp_path / "out"))
    stale = tmp_path / "out" / "tensorboard" / "mlp_shuffle-0.2_n0.5_seed1"
    stale.mkdir(parents=True)
    (stale / "events.out.tfevents.0.earlier-attempt").write_bytes(b"")
    tracking = Trackers(["tensorboard"], out=out, experiment="x", run="x-1")
    points = [{"model": "mlp", "noise_fraction": 0.2, "train_size": size, "seed": 1} for size in (0.5, 300)]
    tuner = tune.Tuner(three_epochs, param_space={"base": {"noise_mode": "shuffle"}, "point": tune.grid_search(points)},
                       tune_config=tune.TuneConfig(trial_name_creator=trial_name),
                       run_config=tune.RunConfig(storage_path=str(tmp_path / "scratch"), verbose=0,
                                                 callbacks=tracking.callbacks()))
    assert not any(r.error for r in tuner.fit())
    tracking.after_fit()
    files = event_files(tmp_path / "out")
    assert sorted(files) == ["mlp_shuffle-0.2_n0.5_seed1", "mlp_shuffle-0.2_n300_seed1"]
    for name, paths in files.items():
        assert len(paths) == 1, f"{name}: {paths}"  # the earlier attempt's file is gone
        scalars = read_scalars(paths[0])
        assert scalars["ray/tune/epoch"] == [(1, 1.0), (2, 2.0), (3, 3.0)]
        assert [s for s, _ in scalars["ray/tune/train_loss"]] == [1, 2, 3]
        assert [v for _, v in scalars["ray/tune/train_loss"]] == pytest.approx([1.0, 0.5, 1 / 3])
        assert not any("note" in tag for tag in scalars)


@pytest.mark.ray
def test_sweep_run_log_tensorboard_writes_each_trials_metrics_beside_the_results(ray_session, write_spec, capfd):
    """Without --log nothing of a tracker is written; with it, each trial of the run gets its folder,
    holding what it reported, and the results folder still reads as before."""
    from analysis import load_results

    spec = write_spec(SPEC)
    out = spec.parent / "out"
    assert sweep_main(["run", spec, "--out", out]) == 0
    assert not (out / "tensorboard").exists() and not (out / "mlflow.db").exists()

    assert sweep_main(["run", spec, "--out", out, "--seeds", "2", "--log", "tensorboard"]) == 0
    err = capfd.readouterr().err
    assert "logging every trial to tensorboard: event files in OUT/tensorboard/<grid point>/" in err
    trials = pd.read_parquet(out / "trials")
    assert len(trials) == 4 and len(pd.read_parquet(out / "confusion")) == 4 * 100
    assert len(load_results(out)) == 4 * 100
    files = event_files(out)
    # Only the trials this run trained (seed 1), named by their grid points.
    assert sorted(files) == ["blog_cnn_shuffle-0.0_n300_seed1", "blog_cnn_shuffle-0.5_n300_seed1"]
    for (name, paths), noise in zip(sorted(files.items()), (0.0, 0.5)):
        assert len(paths) == 1
        scalars = read_scalars(paths[0])
        row = trials[(trials.seed == 1) & (trials.noise_fraction == noise)].iloc[0]
        assert scalars["ray/tune/accuracy"][-1][1] == pytest.approx(row.accuracy, abs=1e-6)
        assert scalars["ray/tune/trial_seconds"][-1][1] > 0
    assert sweep_main(["status", out]) == 0
    status = capfd.readouterr().out
    assert "4 done, 0 missing, 0 failed" in status and "no sweep writes" not in status


@pytest.mark.ray
def test_sweep_run_log_mlflow_makes_a_run_per_trial_in_the_specs_experiment(ray_session, write_spec, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(SPEC)
    out = spec.parent / "out"
    assert sweep_main(["run", spec, "--out", out, "--log", "mlflow"]) == 0
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["blog_cnn_shuffle-0.0_n300_seed0",
                                                    "blog_cnn_shuffle-0.5_n300_seed0"]
    trials = pd.read_parquet(out / "trials").set_index("noise_fraction")
    for run in runs:
        noise = float(run.info.run_name.split("-")[1].split("_")[0])
        assert run.data.metrics["accuracy"] == pytest.approx(trials.accuracy[noise])
        assert run.data.params["base/noise_mode"] == "shuffle" and run.info.status == "FINISHED"
        assert run.data.tags["sweep_run"].startswith("tracked-")


@pytest.mark.ray
def test_sweep_run_log_wandb_offline_keeps_a_run_per_trial_in_out(ray_session, write_spec, monkeypatch):
    """WANDB_MODE=offline: W&B's run files land in OUT/wandb/, each named by its grid point, in the
    spec's project, holding what the trial reported (W&B's records keep strings as written)."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # read by the driver, after Ray's workers started
    monkeypatch.delenv("WANDB_DIR", raising=False)
    spec = write_spec(SPEC)
    out = spec.parent / "out"
    assert sweep_main(["run", spec, "--out", out, "--log", "wandb"]) == 0
    records = {path.read_bytes() for path in (out / "wandb").glob("offline-run-*/run-*.wandb")}
    assert len(records) == 2
    trials = pd.read_parquet(out / "trials")
    for noise in (0.0, 0.5):
        name = f"blog_cnn_shuffle-{noise}_n300_seed0".encode()
        (data,) = [r for r in records if name in r]
        assert b"tracked" in data and b"accuracy" in data
        assert repr(float(trials.accuracy[trials.noise_fraction == noise].iloc[0])).encode() in data


def test_trackers_module_is_light_to_import():
    """The command line lists the trackers in --help: naming them must not import Ray or torch."""
    import subprocess
    import sys

    code = "import sys, sweep.distributed.trackers; print('ray' in sys.modules, 'torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == \
        ["False", "False"]
    assert trackers_module.TRACKERS.keys() == {"tensorboard", "mlflow", "wandb"}
