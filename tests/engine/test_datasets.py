"""Dataset loaders: digits split, Parquet, image folders, the CIFAR-10 pickle seam, caching, bad input."""

from __future__ import annotations

import json
import os
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sweep.engine import datasets
from sweep.engine.datasets import DatasetNotFoundError, ImageDataset, cache_stats, clear_memory_cache, load_dataset

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(autouse=True)
def _fresh_memory():
    """Each test starts without datasets memoized by an earlier one."""
    clear_memory_cache()
    yield
    clear_memory_cache()


def _delta(before: dict[str, int]) -> dict[str, int]:
    after = cache_stats()
    return {key: after[key] - before[key] for key in after}


# --- digits --------------------------------------------------------------------------------------

def test_digits_shapes_dtypes_and_classes():
    ds = load_dataset("digits")
    assert ds.name == "digits"
    assert ds.classes == tuple("0123456789") and ds.num_classes == 10
    assert ds.image_shape == (1, 8, 8)
    assert (ds.num_train, ds.num_test) == (1346, 451)  # 1,797 images, 25 % of each class to test
    assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int64
    assert ds.train_images.flags.c_contiguous and ds.test_images.flags.c_contiguous
    assert ds.train_images.max() == 255 and ds.train_images.min() == 0
    assert ds.augment is False
    assert re.fullmatch(r"[0-9a-f]{16}", ds.source_id)


def test_digits_split_is_stratified_with_exact_counts():
    labels = load_digits().target
    train, test = datasets.digits_split(labels)
    per_class = np.bincount(labels, minlength=10)
    expected_test = np.floor(per_class * 0.25 + 0.5).astype(int)  # 25 %, halves rounded up
    assert np.bincount(labels[test], minlength=10).tolist() == expected_test.tolist()
    assert expected_test.tolist() == [45, 46, 44, 46, 45, 46, 45, 45, 44, 45]
    assert np.bincount(labels[train], minlength=10).tolist() == (per_class - expected_test).tolist()
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))


def test_digits_split_is_deterministic_and_random_within_class():
    labels = load_digits().target
    train1, test1 = datasets.digits_split(labels)
    train2, test2 = datasets.digits_split(labels)
    assert np.array_equal(train1, train2) and np.array_equal(test1, test2)
    first_quarter = np.concatenate([np.flatnonzero(labels == c)[: len(test1[labels[test1] == c])] for c in range(10)])
    assert not np.array_equal(np.sort(first_quarter), test1)  # a permutation, not the first images of each class


def test_digits_pixels_are_sklearn_images_scaled_to_0_255():
    bunch = load_digits()
    train, test = datasets.digits_split(bunch.target)
    ds = load_dataset("digits")
    scaled = np.rint(bunch.images * 255 / 16).astype(np.uint8)
    assert np.array_equal(ds.test_images[:, 0], scaled[test])
    assert np.array_equal(ds.train_labels, bunch.target[train])


def test_arrays_are_read_only():
    ds = load_dataset("digits")
    with pytest.raises(ValueError, match="read-only"):
        ds.train_images[0, 0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        ds.test_labels[0] = 1


# --- caching -------------------------------------------------------------------------------------

def test_second_load_in_process_is_served_from_memory():
    first = load_dataset("digits")
    before = cache_stats()
    second = load_dataset("digits")
    assert _delta(before) == {"memory_hits": 1, "disk_hits": 0, "decodes": 0}
    assert second.train_images is first.train_images


def test_load_after_clearing_memory_is_served_from_disk(cache_dir: Path):
    first = load_dataset("digits")
    assert (cache_dir / "datasets" / f"digits-{first.source_id}.npz").is_file()
    clear_memory_cache()
    before = cache_stats()
    second = load_dataset("digits")
    assert _delta(before) == {"memory_hits": 0, "disk_hits": 1, "decodes": 0}
    assert second.classes == first.classes and second.augment is False
    assert np.array_equal(second.train_images, first.train_images)
    assert np.array_equal(second.test_labels, first.test_labels)
    assert not second.train_images.flags.writeable


def test_explicit_cache_dir_wins_over_environment(tmp_path: Path, cache_dir: Path):
    load_dataset("digits", cache_dir=tmp_path / "mine")
    assert len(list((tmp_path / "mine" / "datasets").glob("digits-*.npz"))) == 1
    assert not (cache_dir / "datasets").exists()


def test_changing_a_source_file_changes_the_key(tiny_parquet_dir: Path):
    first = load_dataset(f"parquet:{tiny_parquet_dir}")
    stat = (tiny_parquet_dir / "test.parquet").stat()
    os.utime(tiny_parquet_dir / "test.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    before = cache_stats()
    second = load_dataset(f"parquet:{tiny_parquet_dir}")
    assert second.source_id != first.source_id
    assert _delta(before)["decodes"] == 1


def test_same_source_named_differently_shares_arrays_but_keeps_its_name(tiny_parquet_dir: Path, monkeypatch):
    absolute = load_dataset(f"parquet:{tiny_parquet_dir}")
    monkeypatch.chdir(tiny_parquet_dir.parent)
    relative = load_dataset(f"parquet:{tiny_parquet_dir.name}")
    assert relative.name == f"parquet:{tiny_parquet_dir.name}" and absolute.name == f"parquet:{tiny_parquet_dir}"
    assert relative.source_id == absolute.source_id
    assert relative.train_images is absolute.train_images


def _flip_byte_mid_file(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize("damage", [
    lambda data: b"truncated",  # not a zip file at all
    lambda data: data[: len(data) // 2],  # cut in half: zipfile.BadZipFile
    lambda data: data[:-10],  # its end cut off
    _flip_byte_mid_file,  # one byte flipped: a bad CRC
], ids=["garbage", "first-half", "tail-cut", "flipped-byte"])
def test_unreadable_cache_file_is_replaced(cache_dir: Path, damage):
    first = load_dataset("digits")
    path = cache_dir / "datasets" / f"digits-{first.source_id}.npz"
    path.write_bytes(damage(path.read_bytes()))
    clear_memory_cache()
    before = cache_stats()
    with pytest.warns(UserWarning, match="ignoring unreadable dataset cache"):
        again = load_dataset("digits")
    assert _delta(before)["decodes"] == 1
    assert np.array_equal(again.train_images, first.train_images)
    assert path.stat().st_size > 1000  # rewritten


def test_temp_files_of_killed_writers_are_removed_and_fresh_ones_kept(cache_dir: Path):
    import os
    import time

    first = load_dataset("digits")
    path = cache_dir / "datasets" / f"digits-{first.source_id}.npz"
    abandoned, fresh = path.parent / f".{path.stem}-dead.tmp", path.parent / f".{path.stem}-busy.tmp"
    for tmp in (abandoned, fresh):
        tmp.write_bytes(b"half a cache")
    old = time.time() - 2 * 3600
    os.utime(abandoned, (old, old))
    path.unlink()  # the next load writes the cache again
    clear_memory_cache()
    load_dataset("digits")
    assert path.is_file() and not abandoned.exists() and fresh.exists()


# --- parquet:DIR ---------------------------------------------------------------------------------

def test_parquet_png_bytes_with_string_labels(tiny_parquet_dir: Path, tiny_pixels):
    ds = load_dataset(f"parquet:{tiny_parquet_dir}")
    assert ds.classes == ("ant", "cat", "dog")  # sorted names, not order of appearance
    assert ds.image_shape == (3, 5, 4)
    for split in ("train", "test"):
        pixels, names = tiny_pixels[split]
        assert np.array_equal(getattr(ds, f"{split}_images"), pixels.transpose(0, 3, 1, 2))  # PNG is lossless
        assert [ds.classes[i] for i in getattr(ds, f"{split}_labels")] == names
    assert ds.augment is True


def test_parquet_view_columns_load_like_plain_ones(tmp_path: Path, tiny_parquet_dir: Path, tiny_pixels):
    """Arrow's binary_view / string_view hold the same data as binary / string (newer writers use them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split in ("train", "test"):
        table = pq.read_table(tiny_parquet_dir / f"{split}.parquet")
        table = table.cast(pa.schema([pa.field("image", pa.binary_view()), pa.field("label", pa.string_view()),
                                      table.schema.field("index")]))
        pq.write_table(table, tmp_path / f"{split}.parquet")
    views, plain = load_dataset(f"parquet:{tmp_path}"), load_dataset(f"parquet:{tiny_parquet_dir}")
    assert views.classes == plain.classes
    assert np.array_equal(views.train_images, plain.train_images)
    assert np.array_equal(views.test_labels, plain.test_labels)


def test_parquet_hugging_face_struct_with_int_labels(tmp_path: Path, tiny_pixels, encode_image, write_parquet):
    for split, (pixels, names) in tiny_pixels.items():
        cells = [{"bytes": encode_image(p), "path": f"{i}.png"} for i, p in enumerate(pixels)]
        write_parquet(tmp_path / f"{split}.parquet",
                      {"image": cells, "label": [["ant", "cat", "dog"].index(n) for n in names]})
    ds = load_dataset(f"parquet:{tmp_path}")
    assert ds.classes == ("0", "1", "2")
    assert np.array_equal(ds.train_images, tiny_pixels["train"][0].transpose(0, 3, 1, 2))
    assert ds.test_labels.tolist() == [2, 0, 1]


def test_parquet_int_labels_take_hugging_face_classlabel_names(tmp_path: Path, encode_image, write_parquet):
    features = {"info": {"features": {"image": {"_type": "Image"},
                                      "label": {"_type": "ClassLabel", "names": ["no", "yes", "maybe"]}}}}
    image = encode_image(np.zeros((2, 2, 3), np.uint8))
    write_parquet(tmp_path / "train.parquet", {"image": [image] * 3, "label": [0, 1, 2]},
                  metadata={b"huggingface": json.dumps(features).encode()})
    write_parquet(tmp_path / "test.parquet", {"image": [image, image], "label": [0, 1]},
                  metadata={b"huggingface": json.dumps(features).encode()})
    assert load_dataset(f"parquet:{tmp_path}").classes == ("no", "yes", "maybe")


@pytest.mark.parametrize("train_labels, classlabel_names, message", [
    ([0, 1, 3, 3], None, r"without training examples: \[2\] \(K = 4 from labels 0\.\.3\)"),
    ([0, 5000], None, r"without training examples: \[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, \.\.\. \(4,999 in all\)\] "
                      r"\(K = 5001 from labels 0\.\.5000\)"),
    ([0, 1], ["no", "yes", "maybe"], r"without training examples: \[2 \('maybe'\)\] \(K = 3 from the file's "
                                     r"ClassLabel names\)"),
])
def test_int_labels_leaving_a_class_without_training_examples(tmp_path, encode_image, write_parquet, cache_dir,
                                                               train_labels, classlabel_names, message):
    metadata = None
    if classlabel_names is not None:
        features = {"info": {"features": {"label": {"_type": "ClassLabel", "names": classlabel_names}}}}
        metadata = {b"huggingface": json.dumps(features).encode()}
    image = encode_image(np.zeros((2, 2, 3), np.uint8))
    write_parquet(tmp_path / "train.parquet", {"image": [image] * len(train_labels), "label": train_labels},
                  metadata=metadata)
    write_parquet(tmp_path / "test.parquet", {"image": [image, image], "label": [0, 1]}, metadata=metadata)
    with pytest.raises(ValueError, match=r"integer labels in .*train\.parquet leave class\(es\) " + message
                                         + r"; allowed: integer labels 0\.\.K-1 with every class present in the "
                                           r"train split, or string class names"):
        load_dataset(f"parquet:{tmp_path}")
    assert not (cache_dir / "datasets").exists()


def _encode_pillow(pixels: np.ndarray, format: str, mode: str | None = None) -> bytes:
    """Encode ``pixels`` with Pillow in ``format``; ``mode`` forces a raw mode such as "I;16B"."""
    import io

    from PIL import Image

    image = Image.fromarray(pixels) if mode is None else Image.frombytes(mode, pixels.shape[::-1], pixels.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


# 16-bit values around every rounding edge of v / 257, and both ends of the range.
SIXTEEN_BIT = np.array([[0, 128, 129, 257], [32896, 65407, 65408, 65535]], dtype=np.uint16)


@pytest.mark.parametrize("format, mode", [("PNG", None), ("TIFF", None), ("TIFF", "I;16B")])
def test_16_bit_grayscale_is_scaled_to_8_bits_not_clipped(tmp_path, write_parquet, format, mode):
    pixels = SIXTEEN_BIT.astype(">u2") if mode == "I;16B" else SIXTEEN_BIT
    image = _encode_pillow(pixels, format, mode)
    _two_split_parquet(tmp_path, write_parquet, [image, image], ["a", "b"])
    ds = load_dataset(f"parquet:{tmp_path}")
    expected = np.rint(SIXTEEN_BIT / 257).astype(np.uint8)
    assert expected.tolist() == [[0, 0, 1, 1], [128, 255, 255, 255]]
    assert ds.image_shape == (1, 2, 4)
    assert np.array_equal(ds.train_images[0, 0], expected)


def test_16_bit_png_that_pillow_opens_as_mode_i_is_scaled_too(tmp_path, write_parquet, monkeypatch):
    """Older Pillow opens a 16-bit grayscale PNG as mode I (32-bit); a PNG still holds at most 16 bits."""
    from PIL import Image, PngImagePlugin

    image = _encode_pillow(SIXTEEN_BIT, "PNG")
    real_open = Image.open

    def open_as_mode_i(fp, *args, **kwargs):
        opened = real_open(fp, *args, **kwargs)
        assert isinstance(opened, PngImagePlugin.PngImageFile)
        converted = Image.fromarray(np.asarray(opened).astype(np.int32))  # mode I
        converted.format = "PNG"
        return converted

    monkeypatch.setattr(Image, "open", open_as_mode_i)
    _two_split_parquet(tmp_path, write_parquet, [image, image], ["a", "b"])
    ds = load_dataset(f"parquet:{tmp_path}")
    assert np.array_equal(ds.train_images[0, 0], np.rint(SIXTEEN_BIT / 257).astype(np.uint8))


@pytest.mark.parametrize("pixels, mode, kind", [
    (np.array([[0, 70000], [5, 9]], dtype=np.int32), "I", "32-bit integer"),
    (np.array([[0.0, 0.5], [1.0, 2.5]], dtype=np.float32), "F", "32-bit float"),
])
def test_32_bit_integer_and_float_images_are_rejected(tmp_path, write_parquet, cache_dir, pixels, mode, kind):
    good = _encode_pillow(np.zeros((2, 2), np.uint8), "PNG")
    _two_split_parquet(tmp_path, write_parquet, [good, _encode_pillow(pixels, "TIFF")], ["a", "b"])
    with pytest.raises(ValueError, match=re.escape(
            f"{tmp_path / 'train.parquet'} row 1 is a mode '{mode}' image ({kind} pixels), whose value range is not "
            "fixed; allowed: 8-bit grayscale or colour images, or 16-bit grayscale (mode I;16, scaled to 8 bits)")):
        load_dataset(f"parquet:{tmp_path}")
    assert not (cache_dir / "datasets").exists()


def test_parquet_dictionary_labels_and_grayscale_images(tmp_path: Path, encode_image, write_parquet):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(4, 6, 6), dtype=np.uint8)
    for split in ("train", "test"):
        write_parquet(tmp_path / f"{split}.parquet", {"image": [encode_image(g) for g in gray],
                                                      "label": ["b", "a", "b", "a"]}, dictionary=True)
    ds = load_dataset(f"parquet:{tmp_path}")
    assert ds.image_shape == (1, 6, 6)  # all grayscale -> one channel
    assert np.array_equal(ds.test_images[:, 0], gray)
    assert ds.classes == ("a", "b") and ds.train_labels.tolist() == [1, 0, 1, 0]


def test_parquet_mixed_gray_and_colour_become_rgb(tmp_path: Path, encode_image, write_parquet):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(6, 6), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    write_parquet(tmp_path / "train.parquet", {"image": [encode_image(gray), encode_image(colour)], "label": ["a", "b"]})
    write_parquet(tmp_path / "test.parquet", {"image": [encode_image(gray)], "label": ["a"]})  # gray only
    ds = load_dataset(f"parquet:{tmp_path}")
    assert ds.image_shape == (3, 6, 6)
    assert np.array_equal(ds.train_images[0], np.stack([gray] * 3))
    assert np.array_equal(ds.train_images[1], colour.transpose(2, 0, 1))
    assert np.array_equal(ds.test_images[0], np.stack([gray] * 3))


def test_parquet_jpeg_bytes(tmp_path: Path, encode_image, write_parquet):
    smooth = np.linspace(0, 255, 16 * 16 * 3).reshape(16, 16, 3).astype(np.uint8)
    for split in ("train", "test"):
        write_parquet(tmp_path / f"{split}.parquet", {"image": [encode_image(smooth, "JPEG")] * 2, "label": ["x", "y"]})
    ds = load_dataset(f"parquet:{tmp_path}")
    assert np.abs(ds.train_images[0].astype(int) - smooth.transpose(2, 0, 1)).mean() < 4  # lossy, but close


# --- the real CIFAR-10 (shared Parquet) ----------------------------------------------------------

@pytest.mark.slow
def test_real_cifar10_parquet(cifar10_parquet_dataset: ImageDataset):
    ds = cifar10_parquet_dataset
    assert ds.classes == CIFAR10_CLASSES
    assert ds.train_images.shape == (50000, 3, 32, 32) and ds.test_images.shape == (10000, 3, 32, 32)
    assert np.bincount(ds.train_labels).tolist() == [5000] * 10
    assert np.bincount(ds.test_labels).tolist() == [1000] * 10
    # CIFAR-10's well-known per-channel training means (0.4914, 0.4822, 0.4465): catches a channel
    # or layout mix-up; JPEG re-encoding moves them by far less than the tolerance.
    means = ds.train_images.mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=0.005)
    assert ds.augment is True and not ds.train_images.flags.writeable


@pytest.mark.slow
def test_real_cifar10_second_load_comes_from_disk(cifar10_parquet_dataset, cifar10_parquet_dir,
                                                  cifar10_parquet_cache_dir):
    clear_memory_cache()
    before = cache_stats()
    again = load_dataset(f"parquet:{cifar10_parquet_dir}", cache_dir=cifar10_parquet_cache_dir)
    assert _delta(before) == {"memory_hits": 0, "disk_hits": 1, "decodes": 0}
    assert again.source_id == cifar10_parquet_dataset.source_id
    assert np.array_equal(again.test_images, cifar10_parquet_dataset.test_images)
    assert np.array_equal(again.train_labels, cifar10_parquet_dataset.train_labels)


# --- imagefolder:DIR -----------------------------------------------------------------------------

def test_imagefolder(tiny_image_folder: Path, tiny_pixels):
    ds = load_dataset(f"imagefolder:{tiny_image_folder}")
    assert ds.classes == ("ant", "cat", "dog")
    # Within a class, files in name order: NNN.png numbers images in the fixture's order.
    for split in ("train", "test"):
        pixels, names = tiny_pixels[split]
        order = sorted(range(len(names)), key=lambda i: (names[i], i))
        assert [ds.classes[i] for i in getattr(ds, f"{split}_labels")] == [names[i] for i in order]
        assert np.array_equal(getattr(ds, f"{split}_images"), pixels[order].transpose(0, 3, 1, 2))


# --- cifar10 (torchvision's pickle format) -------------------------------------------------------

def test_cifar10_reads_the_pickle_format(cifar_pickle_dir, monkeypatch):
    data_dir, expected = cifar_pickle_dir
    # The generated files cannot match torchvision's MD5s, so this one test replaces the integrity
    # check; everything after it (the reading seam, caching) is the real code path.
    monkeypatch.setattr(datasets, "_cifar10_integrity_ok", lambda root: True)
    ds = load_dataset("cifar10", data_dir=str(data_dir))
    assert ds.classes == CIFAR10_CLASSES
    assert ds.train_images.shape == (15, 3, 32, 32) and ds.test_images.shape == (3, 3, 32, 32)
    assert np.array_equal(ds.train_images.reshape(15, 3072), expected["train_data"])
    assert np.array_equal(ds.train_images[0, 1], expected["train_data"][0, 1024:2048].reshape(32, 32))  # green
    assert ds.train_labels.tolist() == expected["train_labels"].tolist()
    assert ds.test_labels.tolist() == expected["test_labels"].tolist()
    assert ds.augment is True


def test_cifar10_files_failing_torchvisions_check_are_not_read(cifar_pickle_dir, monkeypatch):
    data_dir, _ = cifar_pickle_dir
    monkeypatch.setattr(datasets, "_read_cifar_batches", lambda folder: pytest.fail("unpickled unchecked files"))
    with pytest.raises(ValueError, match=r"cifar-10-batches-py fail torchvision's MD5 check"):
        load_dataset("cifar10", data_dir=str(data_dir))


def test_cifar10_offline_and_absent_names_dir_size_and_remedies(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", data_dir=str(tmp_path))
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert "\n" not in message
    for part in (str(tmp_path), "SWEEP_OFFLINE=1", "cifar-10-python.tar.gz", "163 MiB", "cifar-10-batches-py",
                 "parquet:DIR"):
        assert part in message
    assert list(tmp_path.iterdir()) == []


def test_cifar10_failed_download_is_one_clear_error(tmp_path: Path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setenv("SWEEP_OFFLINE", "0")
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", no_network)
    with pytest.raises(DatasetNotFoundError, match=r"the download failed \(URLError.*163 MiB"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_cifar10_corrupt_archive_is_named(tmp_path: Path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"partial download")
    with pytest.raises(ValueError, match=r"cifar-10-python.tar.gz fails torchvision's MD5 check"):
        load_dataset("cifar10", data_dir=str(tmp_path))


# --- bad input -----------------------------------------------------------------------------------

def test_unknown_dataset():
    with pytest.raises(ValueError, match=r"^unknown dataset 'foo'; allowed: digits, cifar10, parquet:DIR, "
                                         r"imagefolder:DIR$"):
        load_dataset("foo")


@pytest.mark.parametrize("spec", [None, 3, Path("digits")])
def test_dataset_spec_must_be_a_string(spec):
    with pytest.raises(TypeError, match="dataset must be a string"):
        load_dataset(spec)


def test_cache_dir_must_be_a_path():
    with pytest.raises(TypeError, match="cache_dir must be a path string or None, got 5"):
        load_dataset("digits", cache_dir=5)


@pytest.mark.parametrize("spec", ["parquet:", "imagefolder:"])
def test_spec_without_directory(spec):
    with pytest.raises(ValueError, match=f"dataset '{spec}' names no directory"):
        load_dataset(spec)


@pytest.mark.parametrize("kind", ["parquet", "imagefolder"])
def test_missing_directory(tmp_path: Path, kind):
    with pytest.raises(DatasetNotFoundError, match=f"dataset directory {re.escape(str(tmp_path / 'nope'))} "):
        load_dataset(f"{kind}:{tmp_path / 'nope'}")


@pytest.mark.parametrize("missing", ["train.parquet", "test.parquet"])
def test_missing_parquet_file(tiny_parquet_dir: Path, missing):
    (tiny_parquet_dir / missing).unlink()
    with pytest.raises(DatasetNotFoundError, match=f"{re.escape(str(tiny_parquet_dir / missing))} not found"):
        load_dataset(f"parquet:{tiny_parquet_dir}")


@pytest.mark.parametrize("column", ["image", "label"])
def test_parquet_missing_column_names_file_and_its_columns(tmp_path, encode_image, write_parquet, column, cache_dir):
    columns = {"image": [encode_image(np.zeros((2, 2, 3), np.uint8))] * 2, "label": ["a", "b"], "extra": [1, 2]}
    write_parquet(tmp_path / "train.parquet", columns)
    write_parquet(tmp_path / "test.parquet", {k: v for k, v in columns.items() if k != column})
    others = [k for k in columns if k != column]
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'test.parquet'} lacks column(s) '{column}'; "
                                                   f"it has {others}")):
        load_dataset(f"parquet:{tmp_path}")
    assert not (cache_dir / "datasets").exists()  # nothing cached from a failed load


def _two_split_parquet(folder: Path, write_parquet, train_images: list, train_labels: list,
                       test_images: list | None = None, test_labels: list | None = None) -> Path:
    write_parquet(folder / "train.parquet", {"image": train_images, "label": train_labels})
    write_parquet(folder / "test.parquet", {"image": test_images if test_images is not None else train_images,
                                            "label": test_labels if test_labels is not None else train_labels})
    return folder


def test_undecodable_image_names_file_and_row(tmp_path, encode_image, write_parquet, cache_dir):
    good = encode_image(np.zeros((2, 2, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [good, good, b"\x89PNG garbage"], ["a", "b", "a"])
    with pytest.raises(ValueError, match=re.escape(f"cannot decode the image in {tmp_path / 'train.parquet'} row 2")):
        load_dataset(f"parquet:{tmp_path}")
    assert not (cache_dir / "datasets").exists()


def test_null_image_names_row(tmp_path, encode_image, write_parquet):
    good = encode_image(np.zeros((2, 2, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [good, good], ["a", "b"], [good, None], ["a", "b"])
    with pytest.raises(ValueError, match=r"test.parquet row 1 has no image \(null\)"):
        load_dataset(f"parquet:{tmp_path}")


def test_image_column_of_wrong_type(tmp_path, write_parquet):
    _two_split_parquet(tmp_path, write_parquet, [1, 2], ["a", "b"])
    with pytest.raises(ValueError, match=r"column 'image' of .*train.parquet has type int64; allowed: binary"):
        load_dataset(f"parquet:{tmp_path}")


def test_mixed_sizes_within_a_split_name_both_sizes_and_rows(tmp_path, encode_image, write_parquet):
    small, large = encode_image(np.zeros((4, 4, 3), np.uint8)), encode_image(np.zeros((4, 5, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [small, small, large], ["a", "b", "a"])
    with pytest.raises(ValueError, match=r"mixed sizes: .*train.parquet row 0 is 4x4 \(width x height\) but "
                                         r".*train.parquet row 2 is 5x4"):
        load_dataset(f"parquet:{tmp_path}")


def test_mixed_sizes_between_splits(tmp_path, encode_image, write_parquet):
    small, large = encode_image(np.zeros((4, 4, 3), np.uint8)), encode_image(np.zeros((8, 8, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [small, small], ["a", "b"], [large], ["a"])
    with pytest.raises(ValueError, match=r"train.parquet row 0 is 4x4 .* but .*test.parquet row 0 is 8x8"):
        load_dataset(f"parquet:{tmp_path}")


def test_single_class_is_rejected(tmp_path, encode_image, write_parquet):
    image = encode_image(np.zeros((2, 2, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [image, image], ["cat", "cat"])
    with pytest.raises(ValueError, match=r"has 1 class\(es\) \['cat'\]; need at least 2"):
        load_dataset(f"parquet:{tmp_path}")


@pytest.mark.parametrize("train_labels, test_labels, absent", [
    (["cat", "dog"], ["cat", "horse"], "['horse']"),
    ([0, 1], [1, 2], "[2]"),
])
def test_test_labels_naming_a_class_absent_from_train(tmp_path, encode_image, write_parquet,
                                                      train_labels, test_labels, absent):
    image = encode_image(np.zeros((2, 2, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [image, image], train_labels, [image, image], test_labels)
    with pytest.raises(ValueError, match=r"test.parquet name class\(es\) absent from .*train.parquet: "
                                         + re.escape(absent)):
        load_dataset(f"parquet:{tmp_path}")


def test_labels_must_be_names_in_both_splits_or_ints_in_both(tmp_path, encode_image, write_parquet):
    image = encode_image(np.zeros((2, 2, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [image, image], ["a", "b"], [image, image], [0, 1])
    with pytest.raises(ValueError, match="'label' holds class names in .* but integers in"):
        load_dataset(f"parquet:{tmp_path}")


def test_negative_int_label(tmp_path, encode_image, write_parquet):
    image = encode_image(np.zeros((2, 2, 3), np.uint8))
    _two_split_parquet(tmp_path, write_parquet, [image, image], [0, -1])
    with pytest.raises(ValueError, match=r"label -1 in .*train.parquet row 1 is negative"):
        load_dataset(f"parquet:{tmp_path}")


def test_empty_parquet_split(tmp_path, encode_image, write_parquet):
    import pyarrow as pa

    image = encode_image(np.zeros((2, 2, 3), np.uint8))
    write_parquet(tmp_path / "train.parquet", {"image": [image, image], "label": ["a", "b"]})
    write_parquet(tmp_path / "test.parquet", {"image": pa.array([], pa.binary()), "label": pa.array([], pa.string())})
    with pytest.raises(ValueError, match=r"test.parquet has no rows"):
        load_dataset(f"parquet:{tmp_path}")


def test_imagefolder_train_and_test_classes_differ(tiny_image_folder: Path):
    (tiny_image_folder / "test" / "dog").rename(tiny_image_folder / "test" / "emu")
    with pytest.raises(ValueError, match=re.escape("only in train: ['dog'], only in test: ['emu']")):
        load_dataset(f"imagefolder:{tiny_image_folder}")


def test_imagefolder_empty_class(tiny_image_folder: Path, cache_dir):
    (tiny_image_folder / "train" / "zebra").mkdir()
    (tiny_image_folder / "train" / "zebra" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=re.escape(f"class folder {tiny_image_folder / 'train' / 'zebra'} has no images")):
        load_dataset(f"imagefolder:{tiny_image_folder}")
    assert not (cache_dir / "datasets").exists()


def test_imagefolder_missing_split(tiny_image_folder: Path):
    (tiny_image_folder / "test").rename(tiny_image_folder / "val")
    with pytest.raises(ValueError, match=re.escape(f"image folder split {tiny_image_folder / 'test'} is not a directory")):
        load_dataset(f"imagefolder:{tiny_image_folder}")


def test_imagefolder_single_class(tmp_path: Path, encode_image):
    for split in ("train", "test"):
        (tmp_path / split / "only").mkdir(parents=True)
        (tmp_path / split / "only" / "a.png").write_bytes(encode_image(np.zeros((2, 2), np.uint8)))
    with pytest.raises(ValueError, match=r"has 1 class\(es\) \['only'\]; need at least 2"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_imagefolder_undecodable_file_is_named(tiny_image_folder: Path):
    broken = tiny_image_folder / "test" / "ant" / "zzz.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match=re.escape(f"cannot decode the image in {broken}")):
        load_dataset(f"imagefolder:{tiny_image_folder}")


def test_image_dataset_checks_its_arrays():
    images = np.zeros((2, 1, 4, 4), np.uint8)
    with pytest.raises(TypeError, match=r"train_labels of 'x' must be an int64 array of shape \(2,\), got int32"):
        ImageDataset("x", ("a", "b"), images, np.array([0, 1], np.int32), images, np.array([0, 1]), "0" * 16, False)
    with pytest.raises(ValueError, match=r"test_labels of 'x' must be in \[0, 2\), got values 0..2"):
        ImageDataset("x", ("a", "b"), images, np.array([0, 1]), images, np.array([0, 2]), "0" * 16, False)
