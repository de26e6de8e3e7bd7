"""`sweep trial`: JSON output, readable summary, and one-line errors with exit code 2."""

import json
import re
import subprocess
import sys

import pytest

from sweep.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweep.cli", *args], capture_output=True, text=True, timeout=300)


def test_json_prints_exactly_one_object(capsys):
    assert main(["trial", "--epochs", "1", "--threads", "2", "--noise", "0.1", "--json"]) == 0
    out = capsys.readouterr().out
    payload = json.loads(out)  # fails if anything else was printed on stdout
    assert payload["classes"] == [str(i) for i in range(10)]
    assert sum(map(sum, payload["confusion"])) == 451
    assert payload["realized_noise"] > 0 and payload["train_size"] == 1346


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
