"""OUT on an object store: the real `sweep run`, `sweep status` and `sweep report` against a local
S3 server (moto's, on 127.0.0.1; no network, no credentials of anyone's).

pyarrow's S3 client talks to it over HTTP exactly as to AWS, through the URI's own options
(``endpoint_override``, ``scheme``), so this exercises the object-store code paths: no lock
(a warning), whole-object writes then server-side moves, listing-based resume, and reading the
results back for the analysis.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from sweeptest import sweep_command

pytestmark = pytest.mark.ray

# 2 noise levels x 1 size x 2 seeds = 4 digits trials of one epoch.
SPEC = """
name = "s3-smoke"
dataset = "digits"
models = ["blog_cnn"]
noise_fractions = [0.0, 0.5]
train_sizes = [1.0]
seeds = 2

[training]
epochs = 1

[resources]
cpus = 1
device = "cpu"
"""


@pytest.fixture(scope="module")
def s3():
    """A local S3 server with an empty bucket; yields (URI of OUT, environment with test keys)."""
    server_module = pytest.importorskip("moto.server")
    import pyarrow.fs as pafs

    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    options = f"endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    fs = pafs.S3FileSystem(access_key="testing", secret_key="testing", endpoint_override=f"{host}:{port}",
                           scheme="http", region="us-east-1", allow_bucket_creation=True)
    fs.create_dir("results")
    yield {"uri": f"s3://results/sweeps/s3-smoke?{options}", "env": env, "fs": fs}
    server.stop()


def run(argv, env, timeout=300):
    return subprocess.run(sweep_command() + [str(a) for a in argv], env=env, capture_output=True, text=True,
                          timeout=timeout)


def objects(fs, prefix="results/sweeps/s3-smoke"):
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
    return sorted(i.path.removeprefix(prefix + "/") for i in infos if i.type == pafs.FileType.File)


def test_sweep_run_status_resume_and_report_on_s3(s3, tmp_path, monkeypatch):
    from analysis.load import load_results

    spec = tmp_path / "s3.toml"
    spec.write_text(SPEC)
    done = run(["run", spec, "--out", s3["uri"]], s3["env"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4/4 trials done (4 now, 0 before)" in done.stderr
    names = objects(s3["fs"])
    assert sum(n.startswith("trials/") for n in names) == 4
    assert sum(n.startswith("confusion/") for n in names) == 4
    assert "experiment.json" in names
    # Nothing half-written or hidden is left: no temp objects, no lock, no failure records.
    assert not [n for n in names if n.rsplit("/", 1)[-1].startswith((".", "_")) or n.startswith("failed/")]

    status = run(["status", s3["uri"]], s3["env"])
    assert status.returncode == 0, status.stderr
    assert "4 trials in the grid: 4 done, 0 missing, 0 failed" in status.stdout, status.stdout

    again = run(["run", spec, "--out", s3["uri"]], s3["env"])
    assert again.returncode == 0 and "4 already done, 0 to run" in again.stderr, again.stderr[-2000:]
    assert objects(s3["fs"]) == names

    # --log tensorboard on an object store: the event files are copied there after the fit.
    extended = run(["run", spec, "--out", s3["uri"], "--seeds", "3", "--log", "tensorboard"], s3["env"])
    assert extended.returncode == 0 and "6 trials, 4 already done, 2 to run" in extended.stderr, extended.stderr[-2000:]
    events = [n for n in objects(s3["fs"]) if n.startswith("tensorboard/")]
    assert [n.split("/")[1] for n in events] == ["blog_cnn_shuffle-0.0_n1.0_seed2", "blog_cnn_shuffle-0.5_n1.0_seed2"]
    assert all(n.split("/")[2].startswith("events.out.tfevents.") for n in events)

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, s3["env"][key])  # for the analysis, read in this process
    rows = load_results(s3["uri"])
    assert rows.trial_id.nunique() == 6 and len(rows) == 6 * 10 * 10
    assert sorted(rows.groupby("trial_id").seed.first().value_counts().to_dict().items()) == [(0, 2), (1, 2), (2, 2)]

    report = run(["report", s3["uri"], "--to", tmp_path / "report", "--n-boot", "100"], s3["env"])
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "report" / "index.html").is_file()
