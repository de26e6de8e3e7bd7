"""`sweep trial`: JSON output, readable summary, and one-line errors with exit code 2."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from sweep.cli import main
from sweep.engine.datasets import DEFAULT_CACHE_DIR


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


def test_json_prints_exactly_one_object(capsys):
    assert main(["trial", "--epochs", "1", "--threads", "2", "--noise", "0.1", "--json"]) == 0
    out = capsys.readouterr().out
    payload = json.loads(out)  # fails if anything else was printed on stdout
    assert payload["classes"] == [str(i) for i in range(10)]
    assert sum(map(sum, payload["confusion"])) == 451
    assert payload["realized_noise"] > 0 and payload["train_size"] == 1346
    assert "probs" not in payload  # only with --keep-probs


def test_summary_shows_accuracy_and_the_matrix(capsys):
    assert main(["trial", "--epochs", "1", "--threads", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix (rows = true class, columns = predicted class)" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--noise", "1.5"], r"noise_fraction must be in \[0, 1\], got 1.5"),
        (["--train-size", "0"], "train_size must be a count >= 1"),
        (["--train-size", "99999"], "train_size 99999 is above the train split of 1346 examples"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--model", "vgg"], "invalid choice: 'vgg'"),
        (["--noise-mode", "flip"], "invalid choice: 'flip'"),
        (["--seed", "-3"], "seed must be an integer >= 0, got -3"),
        (["--noise-mode", "pairs", "--noise", "0.2", "--noise-pairs", "cat:dog"], "unknown class 'cat'"),
        (["--noise-mode", "pairs", "--noise-pairs", "catdog"], "noise pairs must look like"),
        (["--noise-mode", "matrix", "--noise", "0.1", "--noise-matrix", "/nonexistent.csv"], "does not exist"),
        (["--dataset", "parquet:/nonexistent"], "/nonexistent"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(args, message):
    proc = run_cli("trial", "--epochs", "1", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(message, lines[0]), proc.stderr
    assert proc.stdout == ""


def test_matrix_file_that_is_not_k_by_k(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("0.9,0.1\n0.2,0.8\n")
    proc = run_cli("trial", "--epochs", "1", "--noise-mode", "matrix", "--noise", "0.1", "--noise-matrix", str(path))
    assert proc.returncode == 2
    assert "noise matrix must be 10 x 10 (K x K), got shape (2, 2)" in proc.stderr


def test_help_documents_every_option_with_its_range():
    proc = run_cli("trial", "--help")
    assert proc.returncode == 0
    for option in ("--dataset", "--model", "--noise ", "--noise-mode", "--train-size", "--seed", "--epochs",
                   "--batch-size", "--json", "--threads"):
        assert option in proc.stdout
    assert "[0, 1]" in proc.stdout and "(0, 1]" in proc.stdout


def _no_nan(constant: str):
    raise ValueError(f"not JSON: {constant}")


def test_json_is_strict_when_a_class_has_no_test_image(tmp_path, encode_image, write_parquet, capsys):
    rng = np.random.default_rng(0)
    images = [encode_image(p) for p in rng.integers(0, 256, size=(6, 8, 8), dtype=np.uint8)]
    write_parquet(tmp_path / "train.parquet", {"image": images, "label": ["a", "b", "c"] * 2})
    write_parquet(tmp_path / "test.parquet", {"image": images[:2], "label": ["a", "b"]})  # no "c"
    assert main(["trial", "--dataset", f"parquet:{tmp_path}", "--epochs", "1", "--threads", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out, parse_constant=_no_nan)
    assert payload["per_class_accuracy"]["c"] is None
    assert isinstance(payload["per_class_accuracy"]["a"], float)


def test_a_reader_that_leaves_early_is_not_an_error():
    """`sweep trial | head -1`, with the reader gone before the summary is written."""
    proc = subprocess.Popen([sys.executable, "-m", "sweep.cli", "trial", "--epochs", "1", "--train-size", "50",
                             "--threads", "2", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader leaves; training takes seconds, so nothing was written yet
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, stderr
    assert stderr == ""


def test_input_found_bad_by_the_trial_itself_is_still_one_line(tmp_path, encode_image, write_parquet):
    """No "training ..." progress line before the error: the device and the model's image checks come first."""
    proc = run_cli("trial", "--device", "cuda", "--epochs", "1", env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["sweep trial: error: device 'cuda' was requested but CUDA is not available "
                                        "here; use 'auto' or 'cpu'"]
    images = [encode_image(np.zeros((6, 6), np.uint8))] * 2
    for split in ("train", "test"):
        write_parquet(tmp_path / f"{split}.parquet", {"image": images, "label": ["a", "b"]})
    proc = run_cli("trial", "--dataset", f"parquet:{tmp_path}", "--epochs", "1")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["sweep trial: error: blog_cnn needs image sides divisible by 4 (two 2x2 "
                                        "max-pools), got 6x6"]


def test_help_shows_each_default_once_and_truly():
    proc = run_cli("trial", "--help", env={"COLUMNS": "500"})  # wide: one line per option
    assert proc.returncode == 0
    options: list[str] = []  # one entry per option: its invocation and help, joined
    for line in proc.stdout.split("options:")[1].splitlines():
        if line.strip().startswith("--"):
            options.append(line.strip())
        elif options and line.strip():
            options[-1] += " " + line.strip()
    assert len(options) == 25
    for line in options:
        assert line.count("default") <= 1 and "(default: None)" not in line, line
    assert "(default: torch's own, one per physical core" in next(o for o in options if o.startswith("--threads"))
    assert next(o for o in options if o.startswith("--model")).endswith("model to train (default: blog_cnn)")
    data_dir = next(o for o in options if o.startswith("--data-dir"))
    assert data_dir.endswith(f"(default: $SWEEP_DATA_DIR or {DEFAULT_CACHE_DIR}/torchvision)")


def test_keep_probs_adds_the_softmax_of_every_test_image_to_json(capsys):
    assert main(["trial", "--epochs", "1", "--threads", "2", "--keep-probs", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    probs = np.asarray(payload["probs"], dtype=np.float64)
    labels = np.asarray(payload["test_labels"])
    assert probs.shape == (451, 10) and labels.shape == (451,)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels, probs.argmax(axis=1)), 1)
    assert confusion.tolist() == payload["confusion"]  # the same predictions the matrix counts
    assert payload["config"]["keep_probs"] is True


def test_keep_probs_summary_lists_the_most_confident_mistakes(capsys):
    assert main(["trial", "--epochs", "1", "--threads", "2", "--quiet", "--keep-probs"]) == 0
    out = capsys.readouterr().out
    head, mistakes = out.split("most confident mistakes (")
    rows = [line for line in mistakes.splitlines()[1:] if line.strip()]
    assert 1 <= len(rows) <= 10  # one epoch leaves mistakes on 451 digits
    p = [float(line.rsplit("p = ", 1)[1]) for line in rows]
    assert p == sorted(p, reverse=True) and all(0.0 < v <= 1.0 for v in p)
    assert all(re.match(r"\s+example\s+\d+\s+true\s+\d\s+taken for\s+\d\s+p = ", line) for line in rows)



def test_a_noise_mode_with_a_scalar_parameter_shows_its_default_in_help(monkeypatch, capsys):
    """Each NoiseParam formats its own default: a mode whose parameter is a number must not break --help."""
    from sweep.engine.noise import NOISE_MODES, NoiseMode, NoiseParam

    scalar = NoiseParam(field="noise_scale", what="a scale", flag="--noise-scale", metavar="X", parse_arg=float,
                        normalize=float, resolve=lambda value, classes: value, default=0.5)
    monkeypatch.setitem(NOISE_MODES, "scaled", NoiseMode(NOISE_MODES["symmetric"].corrupt, "scaled", scalar))
    with pytest.raises(SystemExit) as info:
        main(["trial", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "a scale for --noise-mode scaled (default: 0.5)" in text
    assert "source -> target class flips for --noise-mode pairs (default: truck:automobile," in text
    assert "for --noise-mode matrix (required above noise 0)" in text
