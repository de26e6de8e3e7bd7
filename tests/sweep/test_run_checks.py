"""`sweep run` refuses, before anything in OUT changes, what would otherwise cost results or compute:
two spellings of one train size, a Ray address that does not answer, a CUDA spec without GPUs; a
stale lock is taken over by one driver only; capped CPUs reach the trials."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone

import pytest
from sweeptest import make_result, sweep_main

from sweep.distributed import ray_connect, tune_layer
from sweep.distributed.store import open_output, write_trial
from sweep.distributed.experiment_record import check_sizes_against_out, record_experiment
from sweep.distributed.spec import load_spec

DIGITS_TRAIN = 1346  # examples in digits' train split: 0.4 of it is 538

SPEC = """
name = "dup"
dataset = "digits"
noise_fractions = [0.0]
train_sizes = {sizes}
seeds = 1
retries = 0
[training]
epochs = 1
[resources]
cpus = {cpus}
device = "{device}"
"""


def snapshot(folder):
    """Every file and folder under ``folder``, with the files' bytes."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def error_line(capfd) -> str:
    err = capfd.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def spec_file(tmp_path, sizes="[0.4]", cpus=1, device="cpu"):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(sizes=sizes, cpus=cpus, device=device))
    return path


def finished_out(tmp_path, spec_path, *, corrupt: bool = True):
    """OUT with the spec's first trial finished (no training), a corrupt trial file and an
    uncommitted confusion file: what a run that goes ahead quarantines and removes."""
    spec = load_spec(spec_path)
    out = open_output(str(tmp_path / "out"))
    record_experiment(out, spec)
    config = spec.trials()[0]
    count = DIGITS_TRAIN if config.train_size == 1.0 else round(config.train_size * DIGITS_TRAIN) \
        if isinstance(config.train_size, float) else config.train_size
    result = dataclasses.replace(make_result(config), train_size=count, train_fraction=count / DIGITS_TRAIN)
    write_trial(out, result, spec.name, started_at=datetime.now(timezone.utc))
    if corrupt:
        (tmp_path / "out" / "trials" / "0123456789abcdef.parquet").write_bytes(b"PAR1 truncated")
        (tmp_path / "out" / "confusion" / "fedcba9876543210.parquet").write_bytes(
            (tmp_path / "out" / "confusion" / f"{config.trial_id}.parquet").read_bytes())
    return tmp_path / "out"


# ---- 1. one train size, two spellings --------------------------------------------------------
def test_a_fraction_and_a_count_of_the_same_size_are_refused_before_anything_runs(tmp_path, capfd):
    # Before: two trial ids, both ran, and `sweep report` refused the folder ("present twice").
    spec_path = spec_file(tmp_path, sizes="[0.4, 538]")
    assert sweep_main(["run", spec_path, "--out", tmp_path / "out"]) == 2
    assert error_line(capfd) == ("sweep run: error: train_sizes of digits: 0.4 and 538 both select 538 of the "
                                 "1346 train examples; keep one of them")
    assert not (tmp_path / "out").exists()


def test_a_size_spelled_unlike_the_one_out_holds_is_refused_with_out_untouched(tmp_path, capfd):
    out = finished_out(tmp_path, spec_file(tmp_path, sizes="[0.4]"))
    before = snapshot(out)
    extended = spec_file(tmp_path, sizes="[538, 1.0]")  # 538 is 0.4 again; 1.0 is new
    assert sweep_main(["run", extended, "--out", out]) == 2
    line = error_line(capfd)
    assert line.startswith("sweep run: error: train_sizes: 538 selects the same 538 of 1346 train examples as 0.4, "
                           f"whose trials {out} already holds; write 0.4"), line
    assert snapshot(out) == before


def test_on_a_cluster_the_split_size_comes_from_outs_rows(tmp_path):
    # The driver of a cluster run does not read the dataset: train_size / train_fraction of a row says it.
    out_path = finished_out(tmp_path, spec_file(tmp_path, sizes="[538]"), corrupt=False)
    out = open_output(str(out_path))
    from sweep.distributed.scan import scan_done

    done = scan_done(out).done
    with pytest.raises(ValueError, match=r"0\.4 selects the same 538 of 1346 train examples as 538"):
        check_sizes_against_out(out, load_spec(spec_file(tmp_path, sizes="[0.4]")), done, num_train=None)
    check_sizes_against_out(out, load_spec(spec_file(tmp_path, sizes="[0.5, 538]")), done, num_train=None)


# ---- 3. a Ray address that does not answer ---------------------------------------------------
@pytest.fixture
def silent_service():
    """host:port of a TCP service that accepts connections and never answers (not a Ray GCS)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize("how", ["address", "auto"])
def test_an_address_that_does_not_answer_is_one_line_within_the_bound_with_out_untouched(
        how, silent_service, tmp_path, capfd, monkeypatch):
    # Before: the TCP check passed, the corrupt file was quarantined and the uncommitted one deleted,
    # then ray.init retried for minutes. `auto` reads RAY_ADDRESS, as Ray does.
    out = finished_out(tmp_path, spec_file(tmp_path))
    before = snapshot(out)
    monkeypatch.setattr(ray_connect, "RAY_CONNECT_TIMEOUT_S", 8.0)
    if how == "auto":
        monkeypatch.setenv("RAY_ADDRESS", silent_service)
    started = time.monotonic()
    code = sweep_main(["run", tmp_path / "spec.toml", "--out", out,
                       "--address", silent_service if how == "address" else "auto"])
    took = time.monotonic() - started
    assert code == 2
    target = silent_service if how == "address" else "auto"
    assert error_line(capfd) == (f"sweep run: error: no Ray cluster answered at {target!r} within 8 s; check "
                                 "--address / RAY_ADDRESS (a Ray head's GCS port, 6379 by default) and that the "
                                 "cluster is up")
    assert took < 48  # the 8 s deadline plus start-up, with room for a machine 3x slower; before: minutes
    assert snapshot(out) == before


def test_a_probe_that_fails_says_why_in_one_line(monkeypatch):
    # `auto` where no cluster can be found fails fast in Ray itself; stand in for it with a probe
    # that fails as the real one reports it (Ray's own log lines go to stderr).
    monkeypatch.setattr(ray_connect, "_PROBE", "import sys\nprint('[W rpc_client.h] retrying', file=sys.stderr)\n"
                                             "print('ConnectionError: Could not find any running Ray instance.')\n"
                                             "sys.exit(1)\n")
    with pytest.raises(ValueError) as info:
        ray_connect.probe_ray("auto", timeout_s=30)
    assert str(info.value) == ("cannot connect to Ray at 'auto' (ConnectionError: Could not find any running Ray "
                               "instance.); check --address / RAY_ADDRESS and that the cluster is up")


def test_address_local_is_a_local_run_with_the_dataset_checked(tmp_path, capfd):
    # Before: "local" counted as a cluster address, so the dataset check was skipped.
    spec_path = spec_file(tmp_path, sizes="[5000]")
    assert sweep_main(["run", spec_path, "--out", tmp_path / "out", "--address", "local"]) == 2
    assert "train_sizes of digits: train_size 5000 is above the train split of 1346" in error_line(capfd)


# ---- 5. device "cuda" on a machine without GPUs; capped CPUs --------------------------------
@pytest.mark.ray
def test_a_cuda_spec_on_a_ray_without_gpus_is_refused_with_out_untouched(ray_session, tmp_path, capfd):
    if ray_session.cluster_resources().get("GPU", 0):
        pytest.skip("this machine has GPUs")
    spec_path = spec_file(tmp_path, sizes="[0.2, 0.4]")
    out = finished_out(tmp_path, spec_path)
    spec_path = spec_file(tmp_path, sizes="[0.2, 0.4]", device="cuda")  # same trials, another device
    before = snapshot(out)
    # Before: "trials run on CPU", then every trial failed on the missing CUDA (exit 1).
    assert sweep_main(["run", spec_path, "--out", out]) == 2
    assert error_line(capfd) == ("sweep run: error: resources.device is 'cuda' but this machine's Ray has no "
                                 "GPUs; allowed here: device 'auto' or 'cpu' (or run it with --address on a "
                                 "cluster with GPUs)")
    assert snapshot(out) == before


@pytest.mark.ray
def test_cpus_capped_to_the_machine_reach_the_trials_threads(ray_session, tmp_path, monkeypatch, capfd):
    from sweep.distributed import driver

    handed = []

    def fake_run_tune(spec, out, todo, *, skipped, verbose=False, progress=True, trackers=()):
        handed.append(tune_layer.param_space(spec, todo, out=out)["base"]["num_threads"])  # what trials get
        return tune_layer.SweepOutcome(total=spec.num_trials, skipped=skipped, ran=len(todo),
                                        succeeded=len(todo))

    monkeypatch.setattr(driver, "run_tune", fake_run_tune)
    cpus = int(ray_session.cluster_resources()["CPU"])
    spec_path = spec_file(tmp_path, cpus=cpus + 2)
    assert sweep_main(["run", spec_path, "--out", tmp_path / "out"]) == 0
    assert f"{cpus + 2} CPUs per trial capped at the {cpus} available" in capfd.readouterr().err
    # Before: the trials were built before the cap and kept num_threads = cpus + 2.
    assert handed == [cpus]
    stored = json.loads((tmp_path / "out" / "experiment.json").read_text())["spec"]
    assert stored["resources"]["cpus"] == cpus + 2  # OUT records what was asked for


# ---- 8. two drivers taking over one stale lock -----------------------------------------------
DRIVER = textwrap.dedent("""
    import json, os, pathlib, sys, time
    from sweep.distributed.store import open_output
    from sweep.distributed.lock import OutputLock, OutputLockedError

    class SlowLock(OutputLock):  # decides "stale", says so, then is descheduled before acting on it
        def _stale(self, owner):
            stale = super()._stale(owner)
            if len(sys.argv) > 2:
                pathlib.Path(sys.argv[2]).touch()
                time.sleep(1.0)
            return stale

    try:
        lock = SlowLock(open_output(sys.argv[1])).acquire()
        print(json.dumps({"pid": os.getpid(), "held": lock.held}), flush=True)
        time.sleep(3)  # hold it while the other driver tries
    except OutputLockedError as exc:
        print(json.dumps({"pid": os.getpid(), "held": False, "error": str(exc)}), flush=True)
""")


def test_two_drivers_finding_one_stale_lock_do_not_both_take_it(tmp_path):
    # Before: both took it (the slow one removed the fresh lock the other had just made).
    out, decided = tmp_path / "out", tmp_path / "slow-decided"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                           "started_at": "then"}))
    slow = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(decided)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not decided.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert decided.exists()
    # The slow driver has found the lock stale and sleeps; the quick one arrives now.
    quick = subprocess.Popen([sys.executable, "-c", DRIVER, str(out)], stdout=subprocess.PIPE, text=True)
    results = [json.loads(p.communicate(timeout=60)[0]) for p in (slow, quick)]
    held = [r for r in results if r["held"]]
    assert len(held) == 1, results
    refused = next(r for r in results if not r["held"])
    assert "is in use by another sweep driver" in refused["error"]
    assert json.loads((out / ".lock").read_text())["pid"] == held[0]["pid"]  # the holder's, untouched


@pytest.mark.parametrize("cpus, gpus, resources, slots", [
    (0.2, 0.0, {"CPU": 2.0}, 10),  # 2 // 0.2 is 9.0 in floating point
    (0.1, 0.0, {"CPU": 2.0}, 20),
    (0.3, 0.0, {"CPU": 2.0}, 6),
    (1.0, 0.25, {"CPU": 16.0, "GPU": 1.0}, 4),
    (2.0, 0.0, {"CPU": 3.0}, 1),
])
def test_concurrent_slots_counts_fractional_shares_exactly(cpus, gpus, resources, slots):
    from sweep.distributed.spec import load_preset
    from sweep.distributed.tune_layer import concurrent_slots

    assert concurrent_slots(dataclasses.replace(load_preset("quick"), cpus=cpus, gpus=gpus), resources) == slots
