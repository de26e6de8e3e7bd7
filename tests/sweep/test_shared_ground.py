"""A results folder is shared ground: other hands leave files in it, damage files, delete its
record, or give paths the OS refuses. Each case either heals or is refused in one line, and no
finished result is lost. None of these start Ray: every OUT here already holds its whole grid."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from sweeptest import make_result, sweep_main

from sweep.distributed.experiment_record import record_experiment
from sweep.distributed.spec import spec_from_dict
from sweep.distributed.scan import scan_done
from sweep.distributed.store import open_output, write_trial

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
SPEC = {"name": "ground", "dataset": "digits", "noise_fractions": [0.0, 0.5], "train_sizes": [300], "seeds": 2,
        "training": {"epochs": 1}, "resources": {"cpus": 1, "device": "cpu"}}


def finished_out(folder: Path, *, record: bool = True) -> tuple[Path, Path]:
    """(OUT holding every trial of SPEC, made up but valid; the spec file)."""
    spec = spec_from_dict(SPEC)
    out = open_output(str(folder / "out"))
    if record:
        record_experiment(out, spec)
    for i, config in enumerate(spec.trials()):
        write_trial(out, make_result(config, seed=i), spec.name, started_at=NOW)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return folder / "out", path


def test_stray_files_are_named_by_status_and_moved_aside_by_run(tmp_path, capfd):
    out, spec = finished_out(tmp_path)
    (out / "confusion" / "notes.txt").write_text("my notes")
    (out / "trials" / ".swp").write_text("hidden: pyarrow skips it, so it stays")
    (out / "probs").mkdir()
    (out / "probs" / "copy of results.parquet").write_bytes((out / "trials").joinpath(
        next(p.name for p in (out / "trials").glob("*.parquet"))).read_bytes())
    with pytest.raises(Exception):
        pd.read_parquet(out / "confusion")  # what every reader meets before
    assert sweep_main(["status", out]) == 0
    text = capfd.readouterr().out
    assert "files that no sweep writes" in text and "notes.txt" in text and "copy of results.parquet" in text
    assert sweep_main(["run", spec, "--out", out]) == 0
    err = capfd.readouterr().err
    assert "notes.txt is not a result file" in err and "nothing to do" in err
    assert not (out / "confusion" / "notes.txt").exists() and (out / "trials" / ".swp").exists()
    assert list((out / "_corrupt").rglob("notes.txt"))  # moved, not deleted
    assert len(pd.read_parquet(out / "confusion")) == 4 * 9  # every reader works again, no trial lost
    assert len(pd.read_parquet(out / "trials")) == 4


def test_a_file_with_damaged_data_pages_but_an_intact_footer_is_not_done(tmp_path):
    out, _ = finished_out(tmp_path)
    path = sorted((out / "confusion").glob("*.parquet"))[0]
    data = bytearray(path.read_bytes())
    footer_len = int.from_bytes(data[-8:-4], "little")
    pages_end = len(data) - 8 - footer_len
    for i in range(4, pages_end):  # every byte of the data pages, the footer untouched
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    pq.ParquetFile(path).metadata  # the footer still opens: a footer check calls this file healthy
    scan = scan_done(open_output(str(out)))
    assert str(path) in scan.corrupt
    assert path.stem not in scan.done


def test_a_deleted_experiment_record_is_rebuilt_from_the_spec_with_adopt(tmp_path, capfd):
    out, spec = finished_out(tmp_path, record=False)
    assert sweep_main(["run", spec, "--out", out]) == 2
    assert "no experiment.json; use an empty or new --out, or pass --adopt" in capfd.readouterr().err
    other = dict(SPEC, training={"epochs": 2})
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    assert sweep_main(["run", tmp_path / "other.yaml", "--out", out, "--adopt"]) == 2
    assert "belongs to another experiment (epochs: 1 there, 2 here)" in capfd.readouterr().err
    assert not (out / "experiment.json").exists()
    assert sweep_main(["run", spec, "--out", out, "--adopt"]) == 0
    assert "nothing to do" in capfd.readouterr().err
    record = json.loads((out / "experiment.json").read_text())
    assert record["identity"] == spec_from_dict(SPEC).identity()
    assert sweep_main(["status", out]) == 0  # the folder is whole again


def test_an_out_path_longer_than_the_os_allows_leaves_no_folder(tmp_path, capfd):
    _, spec = finished_out(tmp_path)
    long = tmp_path / "new" / "deeper" / ("x" * 300) / "out"
    assert sweep_main(["run", spec, "--out", long]) == 2
    assert "File name too long" in capfd.readouterr().err
    assert not (tmp_path / "new").exists()
