"""Misclassified test images: the probs loader, the ranking of images, the images' indices, the report panel."""

from __future__ import annotations

import subprocess
import sys

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import SyntheticSpec, load_probs, misclassified_examples, write_report, write_synthetic_results
from analysis.images import ImagesUnavailable, read_test_images
from sweep.contract import PROBS_SCHEMA

DIGITS = tuple(str(d) for d in range(10))


def digits_test_labels() -> np.ndarray:
    from sweep.engine.datasets import load_dataset

    return np.asarray(load_dataset("digits").test_labels)


def write_probs(out, labels: np.ndarray, classes, planted: dict[int, tuple[int, float, int]], seed_rng: int = 0):
    """One OUT/probs file per trial of OUT: correct and confident, except ``planted[example] =
    (wrong class, its probability, in how many seeds)`` at noise 0 (the baseline)."""
    trials = pd.read_parquet(out / "trials")
    (out / "probs").mkdir(exist_ok=True)
    K, N = len(classes), len(labels)
    rng = np.random.default_rng(seed_rng)
    for _, t in trials.iterrows():
        probs = np.full((N, K), 0.02 / (K - 1), dtype=np.float64)
        probs[np.arange(N), labels] = 0.98
        if t["noise_fraction"] == 0:
            for example, (wrong, p, seeds) in planted.items():
                if t["seed"] < seeds:
                    probs[example] = (1 - p) / (K - 1)
                    probs[example, wrong] = p
        probs = probs * rng.uniform(0.99, 1.01, probs.shape)
        probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
        cols = {f.name: [t[f.name]] * N for f in PROBS_SCHEMA if f.name in trials.columns}
        cols.update(example=np.arange(N), true_class=[classes[i] for i in labels],
                    pred_class=[classes[i] for i in probs.argmax(axis=1)],
                    probs=pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), K).cast(pa.list_(pa.float32())))
        pq.write_table(pa.Table.from_pydict(cols, schema=PROBS_SCHEMA), out / "probs" / f"{t['trial_id']}.parquet")


@pytest.fixture(scope="module")
def digits_out(tmp_path_factory):
    """A 5-seed digits results folder whose baseline takes test image 10 (a 3?) for another class in
    every seed, and image 20 in 2 of 5."""
    labels = digits_test_labels()
    out = write_synthetic_results(tmp_path_factory.mktemp("digits") / "out", SyntheticSpec(
        classes=DIGITS, dataset="digits", collapse_class=None, noise_hurts_class=None, data_hungry_class=None,
        flat_classes=(), confusion_pair=None, noise_fractions=(0.0, 0.3), train_fractions=(1.0, 0.5), n_seeds=5,
        test_per_class=45))
    a, b = int(labels[10]), int(labels[20])
    planted = {10: ((a + 1) % 10, 0.9, 5), 20: ((a + 1) % 10 if b == a else (b + 1) % 10, 0.7, 2)}
    write_probs(out, labels, DIGITS, planted)
    return out, labels, planted


def test_load_probs_is_long_tidy_and_in_class_order(digits_out):
    out, labels, _ = digits_out
    probs = load_probs(out, noise_fraction=0.0, train_fraction=1.0)
    assert list(probs["class_name"].cat.categories) == list(DIGITS)
    assert len(probs) == 5 * len(labels) * 10 and probs["seed"].nunique() == 5
    per_row = probs.groupby(["trial_id", "example"], observed=True)["prob"].sum()
    np.testing.assert_allclose(per_row, 1.0, atol=1e-5)
    assert probs.index.equals(pd.RangeIndex(len(probs)))


def test_an_image_confused_in_every_seed_comes_first(digits_out):
    out, labels, planted = digits_out
    table = misclassified_examples(load_probs(out), top_pairs=3, per_pair=4)
    first = table.iloc[0]
    wrong, p, seeds = planted[10]
    assert (first["example"], first["true_class"], first["pred_class"]) == (10, DIGITS[labels[10]], DIGITS[wrong])
    assert first["mean_prob"] == pytest.approx(p, abs=0.02) and first["seeds_wrong"] == 5 == first["n_seeds"]
    second = table[table["example"] == 20].iloc[0]
    assert second["seeds_wrong"] == 2 and second["mean_prob"] == pytest.approx((2 * 0.7 + 3 * 0.02 / 9) / 5, abs=0.01)
    assert (table["noise_fraction"] == 0).all() and (table["train_fraction"] == 1).all()
    assert table["pair_rank"].is_monotonic_increasing


def test_the_images_are_the_engines_test_images(digits_out):
    from sweep.engine.datasets import load_dataset

    _, labels, _ = digits_out
    chosen = np.array([0, 10, 20, 450])
    images = read_test_images("digits", chosen, true_classes=[DIGITS[labels[i]] for i in chosen])
    np.testing.assert_array_equal(images, load_dataset("digits").test_images[chosen])
    with pytest.raises(ImagesUnavailable, match="not the one the sweep scored"):
        read_test_images("digits", [10], true_classes=[DIGITS[(labels[10] + 1) % 10]])
    with pytest.raises(ImagesUnavailable, match="never unpickles"):
        read_test_images("cifar10", [0])


def test_every_dataset_kind_is_readable_or_listed_as_not_readable():
    """A new LOADERS entry must get a reader here (its images in the report) or a reason why not."""
    from analysis.images import READERS, UNREADABLE
    from sweep.engine.datasets import LOADERS

    assert not set(READERS) & set(UNREADABLE)
    assert set(READERS) | set(UNREADABLE) == set(LOADERS)
    assert {kind: form for kind, (form, _) in READERS.items()} == {kind: LOADERS[kind].form for kind in READERS}
    for spec in ("digits:x", "parquet", "parquet:", "imagefolder", "mnist"):
        with pytest.raises(ImagesUnavailable, match=rf"^cannot read images of dataset '{spec}'; the panel reads "
                                                    "digits, parquet:DIR, imagefolder:DIR$"):
            read_test_images(spec, [0])


@pytest.mark.parametrize("kind", ["parquet", "imagefolder"])
def test_parquet_and_imagefolder_indices_agree_with_the_engine(kind, tmp_path):
    from PIL import Image

    def encode_image(pixels):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    from sweep.engine.datasets import load_dataset

    rng = np.random.default_rng(3)
    names = ["zebra", "ant", "moth"]  # not in sorted order: the engine sorts class names
    splits = {}
    for split, n in (("train", 4), ("test", 3)):
        splits[split] = [(names[i % 3], rng.integers(0, 255, (5, 6, 3), dtype=np.uint8)) for i in range(3 * n)]
    if kind == "parquet":
        for split, rows in splits.items():
            pq.write_table(pa.table({"image": [encode_image(px) for _, px in rows], "label": [c for c, _ in rows]}),
                           tmp_path / f"{split}.parquet")
    else:
        for split, rows in splits.items():
            for i, (c, px) in enumerate(rows):
                (tmp_path / split / c).mkdir(parents=True, exist_ok=True)
                (tmp_path / split / c / f"img{(7 * i) % 13:02d}.png").write_bytes(encode_image(px))
    spec = f"{kind}:{tmp_path}"
    engine = load_dataset(spec, cache_dir=tmp_path / "cache")
    chosen = np.arange(engine.num_test)[::-1]
    images = read_test_images(spec, chosen, true_classes=[engine.classes[engine.test_labels[i]] for i in chosen])
    np.testing.assert_array_equal(images, engine.test_images[chosen])


def test_report_shows_the_panel_or_says_why(digits_out, small_dir, tmp_path):
    out, _, _ = digits_out
    page = write_report(out, to=tmp_path / "rep", n_boot=200, progress=None).read_text()
    panel = page[page.index("<h2 id='misclassified-test-images'>"):]
    assert "misclassified_blog_cnn.png" in panel and "data:image/png;base64," in panel
    assert "Note: the images are not shown" not in panel
    assert (tmp_path / "rep" / "misclassified.csv").exists()
    # No probabilities: one note that says how to get them.
    page = write_report(small_dir, to=tmp_path / "rep2", n_boot=200, progress=None).read_text()
    panel = page[page.index("<h2 id='misclassified-test-images'>"):]
    panel = panel[:panel.index("<h2", 4)]  # up to the next section (learning curves)
    assert panel.count("Note: ") == 1 and "--keep-probs" in panel


def test_a_machine_without_the_dataset_gets_one_note(tmp_path):
    labels = np.array([0, 1, 0, 1] * 10)
    out = write_synthetic_results(tmp_path / "out", SyntheticSpec(
        classes=("a", "b"), dataset=f"imagefolder:{tmp_path / 'gone'}", collapse_class=None, noise_hurts_class=None,
        data_hungry_class=None, flat_classes=(), confusion_pair=None, noise_fractions=(0.0, 0.3),
        train_fractions=(1.0, 0.5), n_seeds=3, test_per_class=20))
    write_probs(out, labels, ("a", "b"), {0: (1, 0.8, 3)})
    page = write_report(out, to=tmp_path / "rep", n_boot=200, progress=None).read_text()
    panel = page[page.index("<h2 id='misclassified-test-images'>"):]
    assert panel.count("Note: the images are not shown") == 1 and "is not on this machine" in panel
    assert "misclassified.csv" in panel


def test_bad_probs_are_one_line_errors(digits_out, tmp_path):
    out, _, _ = digits_out
    with pytest.raises(ValueError, match="has no probs/ folder"):
        load_probs(tmp_path)
    with pytest.raises(ValueError, match="top_pairs must be a positive integer, got 0"):
        misclassified_examples(load_probs(out, noise_fraction=0.0, train_fraction=1.0), top_pairs=0)
    bad = tmp_path / "bad"
    (bad / "probs").mkdir(parents=True)
    (bad / "confusion").mkdir()
    pq.write_table(pq.read_table(next((out / "confusion").iterdir())), bad / "confusion" / "x.parquet")
    table = pq.read_table(next((out / "probs").iterdir()))
    trial = table.column("trial_id")[0].as_py()
    (bad / "confusion" / "x.parquet").rename(bad / "confusion" / f"{trial}.parquet")
    probs = np.asarray(table.column("probs").to_pylist(), dtype=np.float32)
    probs[3] *= 0.5
    table = table.set_column(table.schema.get_field_index("probs"), "probs",
                             pa.array(probs.tolist(), type=pa.list_(pa.float32())))
    pq.write_table(table, bad / "probs" / f"{trial}.parquet")
    with pytest.raises(ValueError, match=r"example 3 sum to 0\.5000 .*a softmax sums to 1"):
        load_probs(bad)


def test_reading_images_imports_neither_torch_nor_ray():
    code = ("import sys, analysis.images as im; im.read_test_images('digits', [0, 1]); "
            "bad = [m for m in ('torch', 'ray') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
