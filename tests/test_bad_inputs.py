"""The bad-input battery: every way a user can hand the `sweep` command line something wrong.

One table, one test. Each row is (id, argv, setup, expected message). The test builds the row's
files in a fresh folder, snapshots that folder (every file's bytes, every folder), runs the real
command line in a subprocess from inside it, and asserts: exit code 2, exactly one line on stderr
that names the problem, no traceback, and the folder exactly as it was — nothing written, and an
existing OUT byte-identical. None of these start Ray or train anything.

Rows cover the four commands (`sweep trial`, `sweep run`, `sweep status`, `sweep report`), spec
files, datasets (tiny image folders and Parquet made here) and results folders.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweep.distributed.store import open_output, write_trial
from sweep.distributed.experiment_record import record_experiment
from sweep.distributed.spec import load_preset

# ---- building blocks for the setups -----------------------------------------------------------

GOOD_SPEC = """
name = "study"
dataset = "digits"
models = ["blog_cnn"]
noise_fractions = [0.0, 0.2]
train_sizes = [1.0]
seeds = 2
"""


def spec(text: str, name: str = "spec.toml") -> Callable[[Path], None]:
    return lambda work: (work / name).write_text(text)


def good_spec_with(**changes: str) -> Callable[[Path], None]:
    """GOOD_SPEC with lines replaced (key -> new 'key = value' line, or '' to drop the key)."""
    lines = GOOD_SPEC.strip().splitlines()
    for key, line in changes.items():
        lines = [line if ln.split(" = ")[0] == key else ln for ln in lines]
        if not any(ln.split(" = ")[0] == key for ln in lines) and line:
            lines.append(line)
    return spec("\n".join(ln for ln in lines if ln) + "\n")


def png(size: tuple[int, int] = (8, 8), value: int = 128) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, value).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folder(train: dict[str, list[bytes]], test: dict[str, list[bytes]]) -> Callable[[Path], None]:
    """work/data/{train,test}/<class>/<i>.png from the given encoded images (an empty list: an empty folder)."""
    def make(work: Path) -> None:
        for split, classes in (("train", train), ("test", test)):
            for name, images in classes.items():
                folder = work / "data" / split / name
                folder.mkdir(parents=True)
                for i, data in enumerate(images):
                    (folder / f"{i}.png").write_bytes(data)
    return make


def parquet_dataset(train_columns: tuple[str, ...] = ("image", "label")) -> Callable[[Path], None]:
    def make(work: Path) -> None:
        (work / "data").mkdir()
        for split, columns in (("train", train_columns), ("test", ("image", "label"))):
            table = {"image": [png(value=v) for v in (0, 255)], "label": ["a", "b"]}
            pq.write_table(pa.table({c: table[c] for c in columns}), work / "data" / f"{split}.parquet")
    return make


def fake_result(config) -> SimpleNamespace:
    """What write_trial reads from a TrialResult, made up (no training)."""
    confusion = np.array([[5, 1, 0], [0, 6, 1], [1, 0, 4]], dtype=np.int64)
    return SimpleNamespace(
        config=config, classes=("a", "b", "c"), confusion=confusion, accuracy=15 / 18, realized_noise=0.0,
        train_size=100, train_fraction=0.5, test_size=18, epochs=1, train_seconds=0.1, seconds=0.2,
        final_train_loss=1.0, device="cpu (1 threads)", probs=None, test_labels=np.repeat(np.arange(3), 6),
        versions={"torch": "x", "torchvision": "y", "numpy": "z", "python": "3", "sweep": "0"})


def quick_out(work: Path) -> None:
    """work/out: a results folder of the quick preset holding one finished trial."""
    out = open_output(str(work / "out"))
    preset = load_preset("quick")
    record_experiment(out, preset)
    write_trial(out, fake_result(preset.trials()[0]), preset.name, started_at=datetime.now(timezone.utc))


def locked_out(work: Path) -> None:
    """quick_out, owned by a live driver (this test process) on this host."""
    quick_out(work)
    (work / "out" / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                    "started_at": "2025-01-01T00:00:00+00:00"}))


def other_parquet(work: Path) -> None:
    """work/out/{trials,confusion}: Parquet files that `sweep run` did not write."""
    for folder in ("trials", "confusion"):
        (work / "out" / folder).mkdir(parents=True)
        pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), work / "out" / folder / "other.parquet")


def synthetic_results(change: Callable | None = None) -> Callable[[Path], None]:
    """work/out: a small valid results folder (analysis.synthetic), with ``change`` applied to one confusion file."""
    def make(work: Path) -> None:
        from analysis import SyntheticSpec, write_synthetic_results

        out = write_synthetic_results(work / "out", SyntheticSpec(
            classes=("ant", "bee", "cat"), collapse_class="bee", noise_hurts_class=None, data_hungry_class=None,
            flat_classes=("ant",), confusion_pair=None, noise_fractions=(0.0, 0.4), train_fractions=(1.0, 0.5),
            n_seeds=2, test_per_class=20))
        if change is not None:
            path = sorted((out / "confusion").glob("*.parquet"))[0]
            pq.write_table(pa.Table.from_pandas(change(pq.read_table(path).to_pandas()), preserve_index=False), path)
    return make


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(work: Path) -> None:
        for setup in setups:
            setup(work)
    return make


# ---- the table ----------------------------------------------------------------------------------

def two_results(classes: tuple[str, ...] = ("ant", "bee", "cat"), copy: bool = False) -> Callable[[Path], None]:
    """work/out and work/out2: two small results folders (work/out2 of another experiment over ``classes``,
    or a copy of work/out)."""
    def make(work: Path) -> None:
        import shutil

        from analysis import SyntheticSpec, write_synthetic_results

        synthetic_results()(work)
        if copy:
            shutil.copytree(work / "out", work / "out2")
            return
        write_synthetic_results(work / "out2", SyntheticSpec(
            classes=classes, collapse_class="bee", noise_hurts_class=None, data_hungry_class=None, flat_classes=("ant",),
            confusion_pair=None, noise_fractions=(0.0, 0.4), train_fractions=(1.0, 0.5), n_seeds=2, test_per_class=20,
            experiment="other", models=("fast_cnn",)))
    return make


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # after `sweep`; "{w}" is the work folder
    match: str  # regex that the one stderr line must contain
    setup: Callable[[Path], None] | None = None
    env: tuple[tuple[str, str], ...] = ()  # extra environment variables


RUN_OUT = ("--out", "{w}/out")
CASES = [
    # -- sweep run: the command line
    Case("run-missing-spec", ("run", "nope.toml", *RUN_OUT), r"spec file not found: nope\.toml"),
    Case("run-spec-and-preset", ("run", "x.toml", "--preset", "quick", *RUN_OUT),
         r"give a SPEC file or --preset, not both"),
    Case("run-unknown-preset", ("run", "--preset", "huge", *RUN_OUT), r"argument --preset: invalid choice: 'huge'"),
    Case("run-seeds-zero", ("run", "--seeds", "0", *RUN_OUT), r"--seeds: must be an integer >= 1, got '0'"),
    Case("run-seeds-not-a-number", ("run", "--seeds", "five", *RUN_OUT), r"--seeds: must be an integer >= 1, got 'five'"),
    Case("run-seeds-too-many", ("run", "--seeds", "10000000", *RUN_OUT),
         r"--seeds: must be an integer in \[1, 100000\], got '10000000'"),
    Case("run-negative-retries", ("run", "--retries", "-1", *RUN_OUT), r"--retries: must be an integer >= 0"),
    Case("run-negative-eval-every", ("run", "--eval-every", "-1", *RUN_OUT), r"--eval-every: must be an integer >= 0"),
    Case("run-huge-eval-every", ("run", "--eval-every", "1000000", *RUN_OUT),
         r"eval_every must be an integer in \[0, 100,000\] \(epochs; 0 = off\), got 1000000"),
    Case("run-huge-grid", ("run", "--preset", "blog-x20", "--seeds", "200", *RUN_OUT),
         r"this grid has 12,000 trials \(more than 2,000\); check the spec's axes, then pass --yes"),
    Case("run-bad-address", ("run", "--address", "nonsense", *RUN_OUT), r"Ray address must look like host:port"),
    Case("run-unreachable-address", ("run", "--address", "127.0.0.1:1", *RUN_OUT),
         r"cannot reach the Ray cluster at '127\.0\.0\.1:1'"),
    Case("run-unknown-dataset", ("run", "--dataset", "mnist", *RUN_OUT), r"unknown dataset 'mnist'; allowed: digits"),
    Case("run-missing-dataset-dir", ("run", "--dataset", "parquet:{w}/nowhere", *RUN_OUT),
         r"dataset directory .*/nowhere .* does not exist"),
    Case("run-empty-out", ("run", "--out", ""), r"output location must be a non-empty path"),
    Case("run-out-is-a-file", ("run", *RUN_OUT), r"output location .*/out is a file, not a folder",
         lambda w: (w / "out").write_text("not a folder")),
    Case("run-out-under-a-file", ("run", "--out", "{w}/file/out"),
         r"cannot create the output folder .*/file/out: Not a directory", lambda w: (w / "file").write_text("x")),
    Case("run-log-unknown-tracker", ("run", "--log", "tensorboard,comet", *RUN_OUT),
         r"--log 'comet' is not a tracker; allowed: tensorboard, mlflow, wandb", quick_out),
    Case("run-log-empty-name", ("run", "--log", "tensorboard", "--log", "", *RUN_OUT),
         r"--log '' is not a tracker; allowed: tensorboard, mlflow, wandb"),
    # The optional extras are absent where the test extra alone is installed (CI).
    *[Case(f"run-log-{name}-not-installed", ("run", "--log", name, *RUN_OUT),
           rf"--log {name} needs the {name} package, which is not installed: "
           rf"pip install 'class-fragility-sweep\[{name}\]'", quick_out)
      for name in ("mlflow", "wandb") if importlib.util.find_spec(name) is None],
    # -- sweep run --until-settled
    Case("run-settle-unknown-target", ("run", "--until-settled", "precision:0.1", "--max-seeds", "5", *RUN_OUT),
         r"argument --until-settled: target must be sensitivity:HALF_WIDTH\[:FACTOR\] or ranking:MARGIN\[:FACTOR\]"),
    Case("run-settle-target-out-of-range", ("run", "--until-settled", "sensitivity:2", "--max-seeds", "5", *RUN_OUT),
         r"HALF_WIDTH of target 'sensitivity' must be a number in \(0, 1\) \(recall units\), got '2'"),
    Case("run-settle-unknown-factor", ("run", "--until-settled", "ranking:0.01:epochs", "--max-seeds", "5", *RUN_OUT),
         r"FACTOR of a target must be noise or size, got 'epochs'"),
    Case("run-settle-without-budget", ("run", "--until-settled", "sensitivity:0.05", *RUN_OUT),
         r"--until-settled sensitivity:0\.05 needs --max-seeds N"),
    Case("run-budget-without-target", ("run", "--max-seeds", "5", *RUN_OUT),
         r"--max-seeds is the budget of --until-settled; give --until-settled TARGET too"),
    Case("run-settle-budget-below-seeds", ("run", "--until-settled", "sensitivity:0.05", "--max-seeds", "2", *RUN_OUT),
         r"--max-seeds 2 is below the 3 seeds the run starts from; allowed: 3 or more"),
    Case("run-settle-seeds-not-from-zero", ("run", "spec.toml", "--until-settled", "sensitivity:0.05", "--max-seeds", "9",
                                            *RUN_OUT),
         r"--until-settled adds seeds 0\.\.N-1 to the whole grid, but the spec's seeds are \[3, 5\]",
         good_spec_with(seeds="seeds = [3, 5]")),
    Case("run-settle-factor-not-in-grid", ("run", "spec.toml", "--until-settled", "sensitivity:0.05:size",
                                           "--max-seeds", "9", *RUN_OUT),
         r"--until-settled sensitivity:0\.05:size measures sensitivity along size, which needs .* train_sizes \[1\.0\]",
         spec(GOOD_SPEC)),
    # -- sweep run: what OUT already holds
    Case("run-out-of-another-experiment", ("run", "--preset", "fast", *RUN_OUT),
         r"out holds results of a different experiment \(dataset: 'digits' there, 'cifar10' here", quick_out),
    Case("run-out-of-other-parquet", ("run", *RUN_OUT), r"holds a trials/ folder but no experiment\.json",
         other_parquet),
    Case("run-out-in-use", ("run", *RUN_OUT), r"out is in use by another sweep driver \(pid \d+ on ", locked_out),
    Case("run-corrupt-experiment-record", ("run", *RUN_OUT), r"experiment\.json is not a valid experiment record",
         lambda w: ((w / "out").mkdir(), (w / "out" / "experiment.json").write_text("{not json"))),
    # -- spec files
    Case("spec-negative-eval-every", ("run", "spec.toml", *RUN_OUT),
         r"eval_every must be an integer in \[0, 100,000\] \(epochs; 0 = off\), got -1", good_spec_with(eval_every="eval_every = -1")),
    Case("spec-eval-every-not-an-integer", ("run", "spec.toml", *RUN_OUT),
         r"eval_every must be an integer in \[0, 100,000\] \(epochs; 0 = off\), got 'often'",
         good_spec_with(eval_every='eval_every = "often"')),
    Case("spec-invalid-toml", ("run", "spec.toml", *RUN_OUT), r"spec\.toml: not valid TOML", spec("name = [\n")),
    Case("spec-invalid-yaml", ("run", "spec.yaml", *RUN_OUT), r"spec\.yaml: not valid YAML",
         spec("name: [study\nmodels: {", "spec.yaml")),
    Case("spec-yaml-python-tag", ("run", "spec.yaml", *RUN_OUT), r"spec\.yaml: not valid YAML: could not determine "
         r"a constructor for the tag 'tag:yaml\.org,2002:python/object/apply:os\.system'",
         spec("name: !!python/object/apply:os.system ['touch PWNED']\n", "spec.yaml")),
    Case("spec-yaml-not-a-table", ("run", "spec.yml", *RUN_OUT), r"must be a table of keys, got list",
         spec("- name\n- digits\n", "spec.yml")),
    Case("spec-wrong-extension", ("run", "spec.json", *RUN_OUT), r"spec file must end in \.toml, \.yaml or \.yml",
         spec("{}", "spec.json")),
    Case("spec-missing-name", ("run", "spec.toml", *RUN_OUT), r"missing required key 'name'", good_spec_with(name="")),
    Case("spec-bad-name", ("run", "spec.toml", *RUN_OUT), r"name must be 1-64 characters .* got 'my study'",
         good_spec_with(name='name = "my study"')),
    Case("spec-unknown-key", ("run", "spec.toml", *RUN_OUT), r"unknown key\(s\) 'noise_fraction'; allowed: name",
         good_spec_with(noise_fraction="noise_fraction = [0.1]")),
    Case("spec-unknown-table-key", ("run", "spec.toml", *RUN_OUT), r"unknown key\(s\) training\.epoch; allowed: epochs",
         good_spec_with(training="[training]\nepoch = 3")),
    Case("spec-axis-not-a-list", ("run", "spec.toml", *RUN_OUT), r"noise_fractions must be a list, got '0\.2'",
         good_spec_with(noise_fractions='noise_fractions = "0.2"')),
    Case("spec-noise-out-of-range", ("run", "spec.toml", *RUN_OUT),
         r"noise_fractions: each value must be in \[0, 1\], got 1\.5", good_spec_with(noise_fractions="noise_fractions = [0.0, 1.5]")),
    Case("spec-unknown-model", ("run", "spec.toml", *RUN_OUT), r"models: unknown model 'vgg16'; allowed: blog_cnn",
         good_spec_with(models='models = ["vgg16"]')),
    Case("spec-empty-axis", ("run", "spec.toml", *RUN_OUT), r"seeds must not be empty", good_spec_with(seeds="seeds = []")),
    Case("spec-duplicate-axis-value", ("run", "spec.toml", *RUN_OUT), r"noise_fractions has a duplicate value 0\.2",
         good_spec_with(noise_fractions="noise_fractions = [0.2, 0.2]")),
    Case("spec-wrong-type-in-table", ("run", "spec.toml", *RUN_OUT), r"resources\.gpus must be 0, a fraction .* got 1\.5",
         good_spec_with(resources="[resources]\ngpus = 1.5")),
    Case("spec-negative-retries", ("run", "spec.toml", *RUN_OUT), r"retries must be an integer in \[0, 100\], got -1",
         good_spec_with(retries="retries = -1")),
    Case("spec-huge-grid-by-accident", ("run", "spec.toml", *RUN_OUT),
         r"this grid has 6,000 trials \(more than 2,000\).*pass --yes", good_spec_with(seeds="seeds = 3000")),
    Case("spec-train-size-above-the-split", ("run", "spec.toml", *RUN_OUT),
         r"train_sizes of digits: train_size 5000 is above the train split of 1346 examples",
         good_spec_with(train_sizes="train_sizes = [5000]")),
    Case("spec-noise-pairs-unknown-class", ("run", "spec.toml", *RUN_OUT),
         r"noise_pairs for digits \(10 classes\): noise pair 'cat'->'dog' names unknown class 'cat'",
         good_spec_with(noise_mode='noise_mode = "pairs"', noise_pairs='noise_pairs = [["cat", "dog"]]')),
    Case("spec-name-only-dots", ("run", "spec.toml", *RUN_OUT), r"name.*'\.\.'",
         good_spec_with(name='name = ".."')),
    Case("spec-seed-above-int64", ("run", "spec.toml", *RUN_OUT), r"9223372036854775808",
         good_spec_with(seeds="seeds = [9223372036854775808]")),
    Case("spec-same-size-twice", ("run", "spec.toml", *RUN_OUT), r"0\.4 and 538 both select 538",
         good_spec_with(train_sizes="train_sizes = [0.4, 538]")),
    Case("spec-noise-pairs-empty", ("run", "spec.toml", *RUN_OUT),
         r"noise_pairs must name at least one source:target pair, got \[\]",
         good_spec_with(noise_mode='noise_mode = "pairs"', noise_pairs="noise_pairs = []")),
    Case("spec-noise-matrix-missing", ("run", "spec.toml", *RUN_OUT),
         r"noise_mode 'matrix' needs noise_matrix \(a K x K row-stochastic matrix\)",
         good_spec_with(noise_mode='noise_mode = "matrix"')),
    Case("spec-noise-matrix-not-square", ("run", "spec.toml", *RUN_OUT),
         r"noise_matrix must be a square list of rows of numbers \(K x K\), got \[\[1\.0, 0\.0\], \[1\.0\]\]",
         good_spec_with(noise_mode='noise_mode = "matrix"', noise_matrix="noise_matrix = [[1.0, 0.0], [1.0]]")),
    Case("spec-noise-matrix-wrong-size-for-the-dataset", ("run", "spec.toml", *RUN_OUT),
         r"noise_matrix for digits \(10 classes\): noise matrix must be 10 x 10 \(K x K\), got shape \(2, 2\)",
         good_spec_with(noise_mode='noise_mode = "matrix"', noise_matrix="noise_matrix = [[0.5, 0.5], [0.5, 0.5]]")),
    # -- spec files are untrusted input: size, nesting, aliases, keys, encodings, anchors, Ray's units
    Case("spec-toml-nested-thousands-deep", ("run", "spec.toml", *RUN_OUT), r"nested more than 8 levels deep",
         spec("name = " + "[" * 3000 + "]" * 3000 + "\n")),
    Case("spec-yaml-nested-thousands-deep", ("run", "spec.yaml", *RUN_OUT), r"nested more than 8 levels deep",
         spec("name: " + "[" * 3000 + "]" * 3000 + "\n", "spec.yaml")),
    Case("spec-yaml-alias-bomb", ("run", "spec.yaml", *RUN_OUT), r"aliases \(\*name\) are not allowed in a spec",
         spec("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
             f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
             f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
             + "name: *i\n", "spec.yaml")),
    Case("spec-yaml-key-not-a-string", ("run", "spec.yaml", *RUN_OUT), r"keys must be strings, got the key 1",
         spec("name: study\n1: x\n", "spec.yaml")),
    Case("spec-with-a-byte-order-mark", ("run", "spec.toml", *RUN_OUT), r"spec\.toml: starts with a byte-order mark",
         lambda w: (w / "spec.toml").write_bytes(b"\xef\xbb\xbf" + GOOD_SPEC.encode())),
    Case("spec-not-utf8", ("run", "spec.toml", *RUN_OUT), r"spec\.toml: not UTF-8 \(byte 0xe9 at offset 11\)",
         lambda w: (w / "spec.toml").write_bytes(b'name = "caf\xe9"\n')),
    Case("spec-larger-than-a-spec", ("run", "spec.toml", *RUN_OUT), r"2,097,152 bytes; a spec file is at most",
         lambda w: (w / "spec.toml").write_bytes(GOOD_SPEC.encode() + b"#" * (2 * 2**20 - len(GOOD_SPEC)))),
    Case("spec-name-ending-in-a-newline", ("run", "spec.toml", *RUN_OUT), r"name must be 1-64 characters .* got 'study\\n'",
         good_spec_with(name='name = "study\\n"')),
    Case("spec-cpus-finer-than-ray", ("run", "spec.toml", *RUN_OUT), r"resources\.cpus must be a multiple of 0\.0001",
         spec(GOOD_SPEC + "[resources]\ncpus = 0.00001\n")),
    Case("spec-epochs-beyond-any-use", ("run", "spec.toml", *RUN_OUT), r"epochs must be at most 100,000, got 10000000000",
         spec(GOOD_SPEC + "[training]\nepochs = 10000000000\n")),
    Case("spec-huge-value-quoted-short", ("run", "spec.toml", *RUN_OUT), r"noise_fractions: each value .* got '.{0,80}'$",
         good_spec_with(noise_fractions='noise_fractions = ["' + "x" * 100_000 + '"]')),
    Case("run-empty-address", ("run", "spec.toml", *RUN_OUT, "--address", ""), r"--address must be host:port",
         spec(GOOD_SPEC)),
    Case("run-out-inside-another-sweeps-confusion", ("run", "--out", "{w}/out/confusion"),
         r"inside the confusion/ folder of the results folder .*/out", quick_out),
    Case("report-into-a-results-data-folder", ("report", "{w}/out", "--to", "{w}/out/confusion"),
         r"inside the confusion/ folder of the results folder", synthetic_results()),
    Case("report-empty-folder-name", ("report", ""), r"the results folder must be a non-empty path or URI, got ''"),
    Case("trial-empty-data-dir", ("trial", "--data-dir", ""), r"data_dir must name a folder \(leave it out for the default\), got ''"),
    Case("report-n-boot-beyond-memory", ("report", "{w}/out", "--n-boot", "1000000000000"),
         r"n_boot must be an integer in \[100, 100,000\], got 1000000000000", synthetic_results()),
    Case("spec-noise-matrix-rows-not-summing-to-one", ("run", "spec.toml", *RUN_OUT),
         r"noise matrix rows must sum to 1 \(row-stochastic\); row 0 sums to 0\.5",
         good_spec_with(noise_mode='noise_mode = "matrix"',
                        noise_matrix="noise_matrix = [" + ", ".join(
                            "[" + ", ".join("0.5" if (i == j and i == 0) else ("1.0" if i == j else "0.0")
                                            for j in range(10)) + "]" for i in range(10)) + "]")),
    Case("env-keep-freed-memory-run", ("run", *RUN_OUT),
         r"SWEEP_KEEP_FREED_MEMORY must be 0 \(off\) or 1 \(on, the default\), got 'no'",
         env=(("SWEEP_KEEP_FREED_MEMORY", "no"),)),
    Case("env-keep-freed-memory-trial", ("trial",), r"SWEEP_KEEP_FREED_MEMORY must be 0 .* got 'yes'",
         env=(("SWEEP_KEEP_FREED_MEMORY", "yes"),)),
    # -- datasets (sweep run checks the dataset before anything starts; sweep trial before training)
    Case("data-mixed-image-sizes", ("run", "--dataset", "imagefolder:{w}/data", *RUN_OUT), r"images of mixed sizes",
         image_folder({"a": [png((8, 8))], "b": [png((9, 9))]}, {"a": [png()], "b": [png()]})),
    Case("data-single-class", ("run", "--dataset", "imagefolder:{w}/data", *RUN_OUT),
         r"has 1 class\(es\) \['a'\]; need at least 2", image_folder({"a": [png(), png()]}, {"a": [png()]})),
    Case("data-undecodable-image", ("trial", "--dataset", "imagefolder:{w}/data"), r"cannot decode the image in .*0\.png",
         image_folder({"a": [b"not a png"], "b": [png()]}, {"a": [png()], "b": [png()]})),
    Case("data-empty-class-folder", ("run", "--dataset", "imagefolder:{w}/data", *RUN_OUT),
         r"class folder .*/train/b has no images", image_folder({"a": [png()], "b": []}, {"a": [png()], "b": [png()]})),
    Case("data-train-test-class-mismatch", ("trial", "--dataset", "imagefolder:{w}/data"),
         r"train and test classes of .* differ: only in train: \['b'\], only in test: \['c'\]",
         image_folder({"a": [png()], "b": [png()]}, {"a": [png()], "c": [png()]})),
    Case("data-parquet-missing-column", ("run", "--dataset", "parquet:{w}/data", *RUN_OUT),
         r"train\.parquet lacks column\(s\) 'label'", parquet_dataset(train_columns=("image",))),
    # -- sweep trial
    Case("trial-noise-out-of-range", ("trial", "--noise", "1.5"), r"noise_fraction must be in \[0, 1\], got 1\.5"),
    Case("trial-eval-every-not-a-number", ("trial", "--eval-every", "two"), r"--eval-every: must be an integer >= 0, got 'two'"),
    Case("trial-unknown-model", ("trial", "--model", "vgg16"), r"argument --model: invalid choice: 'vgg16'"),
    Case("trial-bad-train-size", ("trial", "--train-size", "lots"), r"train size must be a count .* got 'lots'"),
    Case("trial-train-size-above-the-split", ("trial", "--train-size", "99999"),
         r"train_size 99999 is above the train split of 1346 examples"),
    Case("trial-bad-noise-pairs", ("trial", "--noise-mode", "pairs", "--noise-pairs", "cat-dog"),
         r"noise pairs must look like 'cat:dog,truck:automobile', got 'cat-dog'"),
    Case("trial-missing-noise-matrix", ("trial", "--noise-mode", "matrix", "--noise-matrix", "m.json"),
         r"noise matrix file 'm\.json' does not exist"),
    Case("trial-noise-matrix-json-object", ("trial", "--noise-mode", "matrix", "--noise", "0.1", "--noise-matrix", "m.json"),
         r"noise matrix file 'm\.json' is not a numeric matrix \(.*\); it must hold a K x K row-stochastic matrix",
         lambda w: (w / "m.json").write_text('{"a": 1}')),
    Case("trial-noise-matrix-3d-npy", ("trial", "--noise-mode", "matrix", "--noise", "0.1", "--noise-matrix", "m.npy"),
         r"noise matrix file 'm\.npy' holds a 3-D array of shape \(2, 2, 2\); it must hold a K x K row-stochastic",
         lambda w: np.save(w / "m.npy", np.full((2, 2, 2), 0.5))),
    Case("trial-noise-matrix-empty-csv", ("trial", "--noise-mode", "matrix", "--noise", "0.1", "--noise-matrix", "m.csv"),
         r"noise matrix file 'm\.csv' holds no numbers; it must hold a K x K row-stochastic matrix \(2-D numbers",
         lambda w: (w / "m.csv").write_text("")),
    Case("trial-infinite-lr", ("trial", "--lr", "inf"), r"lr must be a finite number > 0, got inf"),
    Case("trial-batchnorm-one-example", ("trial", "--model", "fast_cnn", "--train-size", "1"),
         r"fast_cnn has BatchNorm layers and needs at least 2 examples per batch; got train_size 1 \(allowed: >= 2"),
    # -- results folders: sweep status and sweep report
    Case("status-empty-folder", ("status", "{w}/out"), r"holds no sweep \(no experiment\.json\); give a SPEC",
         lambda w: (w / "out").mkdir()),
    Case("status-folder-of-other-parquet", ("status", "{w}/out"), r"holds no sweep \(no experiment\.json\)",
         other_parquet),
    Case("status-corrupt-experiment-record", ("status", "{w}/out"), r"is not a valid experiment record",
         lambda w: ((w / "out").mkdir(), (w / "out" / "experiment.json").write_text('{"spec": 1}'))),
    Case("report-missing-folder", ("report", "{w}/nowhere"), r"results folder not found"),
    Case("report-empty-folder", ("report", "{w}/out"), r"no confusion/ dataset", lambda w: (w / "out").mkdir()),
    Case("report-folder-of-other-parquet", ("report", "{w}/out"), r"missing column\(s\) \['experiment', 'trial_id'",
         other_parquet),
    Case("report-nan-values", ("report", "{w}/out"), r"NaN value.*'realized_noise'",
         synthetic_results(lambda t: t.assign(realized_noise=np.nan))),
    Case("report-negative-counts", ("report", "{w}/out"), r"negative count -3",
         synthetic_results(lambda t: t.assign(count=np.where(t.index == 1, -3, t["count"])))),
    Case("report-mixed-experiments", ("report", "{w}/out"), r"holds 2 values of experiment \['another-study', 'synthetic'\]",
         synthetic_results(lambda t: t.assign(experiment="another-study"))),
    Case("report-several-folders-without-to", ("report", "{w}/out", "{w}/out2"),
         r"2 results folders make one report, which has no OUT/report to go in: pass to=DIR \(--to DIR\)", two_results()),
    Case("report-several-folders-other-classes", ("report", "{w}/out", "{w}/out2", "--to", "{w}/rep"),
         r"out and .*out2 do not share their classes \(only in .*out: \['cat'\], only in .*out2: \['cow'\]",
         two_results(classes=("ant", "bee", "cow"))),
    Case("report-same-folder-twice", ("report", "{w}/out", "{w}/out/", "--to", "{w}/rep"),
         r"the results folder .*out/ is given twice", synthetic_results()),
    Case("report-folder-and-its-copy", ("report", "{w}/out", "{w}/out2", "--to", "{w}/rep"),
         r"out and .*out2 hold the same trials of experiment 'synthetic' .* the same folder twice, or a copy of it",
         two_results(copy=True)),
    # -- sweep compact
    Case("compact-missing-folder", ("compact", "{w}/nowhere"), r"results folder not found: .*/nowhere"),
    Case("compact-not-a-results-folder", ("compact", "{w}/out"), r"out is not a results folder: no trials/ and confusion/",
         lambda w: (w / "out").mkdir()),
    Case("compact-out-in-use", ("compact", "{w}/out"), r"out is in use by another sweep driver \(pid \d+ on ", locked_out),
    Case("compact-object-store", ("compact", "s3://bucket/out"), r"sweep compact needs a local or NFS output folder"),
    Case("run-no-compact-with-a-value", ("run", "--no-compact=yes", *RUN_OUT),
         r"argument --no-compact: ignored explicit argument 'yes'"),
    # -- the command itself
    Case("unknown-command", ("sweeep",), r"argument COMMAND: invalid choice: 'sweeep'"),
]


def snapshot(folder: Path) -> dict[Path, bytes | None]:
    """Every file (with its bytes) and every folder under ``folder``."""
    return {p.relative_to(folder): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One dataset cache for the battery, outside the folders it snapshots (a cache is not a result)."""
    return tmp_path_factory.mktemp("dataset-cache")


def test_battery_has_enough_distinct_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 25
    assert {c.argv[0] for c in CASES} >= {"trial", "run", "status", "report"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: Case, tmp_path: Path, cache_dir: Path):
    work = tmp_path / "work"
    work.mkdir()
    if case.setup is not None:
        case.setup(work)
    argv = [a.format(w=work) for a in case.argv]
    env = {**os.environ, "SWEEP_CACHE_DIR": str(cache_dir), "SWEEP_OFFLINE": "1", **dict(case.env)}
    env.pop("RAY_ADDRESS", None)
    env.pop("SWEEP_DEBUG", None)
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "sweep.cli", *argv], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[:2000]
    assert len(lines[0]) < 1000, lines[0][:2000]  # values are quoted short, never in full
    assert re.match(r"^sweep( \w+)?: error: ", lines[0]), lines[0]
    assert re.search(case.match, lines[0]), lines[0]
    assert snapshot(tmp_path) == before  # nothing written; an existing OUT byte-identical
    assert not (work / "PWNED").exists()
