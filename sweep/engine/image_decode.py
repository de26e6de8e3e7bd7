"""Encoded images (a Parquet column or files in class folders) -> uint8 arrays, decoded with Pillow.

Used by :mod:`sweep.engine.datasets` for ``parquet:DIR`` and ``imagefolder:DIR``: reads the sources,
turns labels into class indices and returns the fields of an ``ImageDataset`` (caching and
validation of the result stay in :mod:`sweep.engine.datasets`). Every image is decoded
to 8-bit grayscale (Pillow modes 1, L, LA and the 16-bit I;16 family) or to RGB (everything else;
alpha is dropped). 16-bit grayscale values v become round(v / 257), so 0 -> 0 and 65535 -> 255,
and an 8-bit value x stored in 16 bits (v = 257 * x) comes back exactly as x. Modes I (32-bit
integer) and F (32-bit float) have no fixed value range to map onto 0..255 and are rejected; the
one exception is a 16-bit grayscale PNG that an older Pillow opens as mode I (a PNG holds at most
16 bits), which is treated as 16-bit. A split is one channel only when every image in it is
grayscale; otherwise grayscale images are repeated into three channels, so a split always has one
consistent (C, H, W).

Decoding is a plain serial loop on purpose: the per-image Python work holds the GIL, so threads did
not help (BENCHMARKS.md, "Decoding"), and it happens once per source: :mod:`sweep.engine.datasets`
caches the decoded arrays on disk.

Bad input raises ValueError with the file and row (or file path) of the offending image.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Pillow modes decoded to one 8-bit channel; everything else becomes RGB (except RANGELESS_MODES).
GRAY_MODES = frozenset({"1", "L", "LA", "La"})
# 16-bit grayscale: one channel, scaled to 8 bits as round(v / 257) (Pillow's convert("L") clips at 255).
GRAY16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
# No fixed value range, so no honest mapping to 0..255: rejected (mode I from a PNG is 16-bit, see above).
RANGELESS_MODES = {"I": "32-bit integer", "F": "32-bit float"}
# Files an image folder may hold (torchvision's ImageFolder list); other files are ignored.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def decode_images(sources: Sequence[bytes | Path | None], where: Callable[[int], str]) -> np.ndarray:
    """Decode encoded images into one uint8 array of shape (N, C, H, W), C in {1, 3}.

    ``sources[i]`` is the encoded bytes or a file path; ``where(i)`` names item i in errors
    (e.g. ``"train.parquet row 17"``). Every image must have the size of the first one.
    """
    from PIL import Image  # imported here so a cached load never pays for it

    assert len(sources) > 0, "callers reject empty splits with a message naming the file"
    first = _decode_one(Image, sources[0], where(0))
    height, width = first.shape[:2]
    pixels = np.empty((len(sources), height, width, 3), dtype=np.uint8)
    is_gray = np.zeros(len(sources), dtype=bool)
    for i, source in enumerate(sources):
        image = first if i == 0 else _decode_one(Image, source, where(i))
        if image.shape[:2] != (height, width):
            raise ValueError(
                f"images of mixed sizes: {where(0)} is {width}x{height} (width x height) but "
                f"{where(i)} is {image.shape[1]}x{image.shape[0]}; all images must have one size"
            )
        if image.ndim == 2:
            pixels[i, :, :, 0] = image
            is_gray[i] = True
        else:
            pixels[i] = image
    if is_gray.all():
        return np.ascontiguousarray(pixels[:, None, :, :, 0])
    pixels[is_gray, :, :, 1:] = pixels[is_gray, :, :, :1]
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


def _decode_one(image_module, source: bytes | Path | None, where: str) -> np.ndarray:
    """(H, W) for grayscale images, (H, W, 3) otherwise."""
    if source is None:
        raise ValueError(f"{where} has no image (null); every row needs encoded PNG/JPEG bytes")
    mode = None
    try:
        opened = image_module.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        with opened as image:
            mode = image.mode
            if mode in GRAY16_MODES or (mode == "I" and image.format == "PNG"):
                return _sixteen_to_eight_bits(np.asarray(image))
            if mode not in RANGELESS_MODES:
                return np.asarray(image.convert("L" if mode in GRAY_MODES else "RGB"))
    except (OSError, SyntaxError, ValueError, image_module.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode the image in {where}: {exc}") from None
    raise ValueError(
        f"{where} is a mode {mode!r} image ({RANGELESS_MODES[mode]} pixels), whose value range is not fixed; "
        "allowed: 8-bit grayscale or colour images, or 16-bit grayscale (mode I;16, scaled to 8 bits)"
    )


def _sixteen_to_eight_bits(values: np.ndarray) -> np.ndarray:
    """16-bit grayscale (H, W) -> uint8 as round(v / 257), which maps 0..65535 onto 0..255."""
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(f"16-bit grayscale values {values.min()}..{values.max()} are outside 0..65535")
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def match_channels(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give both splits 3 channels when either has colour; they must already share H, W."""
    if train.shape[1] == test.shape[1]:
        return train, test
    return (train if train.shape[1] == 3 else np.repeat(train, 3, axis=1),
            test if test.shape[1] == 3 else np.repeat(test, 3, axis=1))


# --- Parquet ---------------------------------------------------------------------------------

def read_parquet_split(path: Path) -> tuple[list[bytes | None], list[str] | np.ndarray, list[str] | None]:
    """Read ``path``'s ``image`` and ``label`` columns.

    Returns (encoded images, labels, class names from Hugging Face ClassLabel metadata or None).
    Labels are a list of class-name strings, or an int64 array when the column holds integers.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"cannot read Parquet file {path}: {exc}") from None
    missing = [name for name in ("image", "label") if name not in schema.names]
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {', '.join(map(repr, missing))}; it has {schema.names}; "
            "need 'image' (encoded PNG/JPEG bytes) and 'label' (class name or int)"
        )
    try:
        table = pq.read_table(path, columns=["image", "label"])
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"cannot read Parquet file {path}: {exc}") from None
    return (_image_column(table.column("image"), path), _label_column(table.column("label"), path),
            _classlabel_names(schema))


def _image_column(column, path: Path) -> list[bytes | None]:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return column.to_pylist()
    if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
        # Hugging Face's Image feature: struct<bytes: binary, path: string>.
        return [None if cell is None else cell["bytes"] for cell in column.to_pylist()]
    raise ValueError(
        f"column 'image' of {path} has type {kind}; allowed: binary (encoded PNG/JPEG bytes) "
        "or a struct with a 'bytes' field"
    )


def _label_column(column, path: Path) -> list[str] | np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    if column.null_count:
        row = int(pc.index(pc.is_null(column), True).as_py())
        raise ValueError(f"label in {path} row {row} is null; every row needs a class name or int")
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return column.to_pylist()
    if pa.types.is_integer(kind):
        return column.to_numpy().astype(np.int64)
    raise ValueError(f"column 'label' of {path} has type {kind}; allowed: string (class name) or integer")


def _classlabel_names(schema) -> list[str] | None:
    """Class names that Hugging Face ``datasets`` stores for a ClassLabel ``label`` column, if any."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw is None:
        return None
    try:
        names = json.loads(raw)["info"]["features"]["label"]["names"]
    except (ValueError, KeyError, TypeError):
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


# --- Parquet files -> dataset fields ----------------------------------------------------------

def decode_parquet(train_path: Path, test_path: Path) -> dict[str, Any]:
    train_bytes, train_raw, names = read_parquet_split(train_path)
    test_bytes, test_raw, _ = read_parquet_split(test_path)
    for path, column in ((train_path, train_bytes), (test_path, test_bytes)):
        if not column:
            raise ValueError(f"{path} has no rows; each split needs at least one image")
    classes, train_labels, test_labels = _encode_labels(train_raw, test_raw, names, train_path, test_path)
    train = decode_images(train_bytes, lambda i: f"{train_path} row {i}")
    test = decode_images(test_bytes, lambda i: f"{test_path} row {i}")
    _check_same_size(train, test, f"{train_path} row 0", f"{test_path} row 0")
    train, test = match_channels(train, test)
    return dict(classes=classes, augment=True, train_images=train, train_labels=train_labels,
                test_images=test, test_labels=test_labels)


def _encode_labels(train: list[str] | np.ndarray, test: list[str] | np.ndarray, names: list[str] | None,
                   train_path: Path, test_path: Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Class names -> sorted classes; ints 0..K-1 -> "0".."K-1" (or Hugging Face ClassLabel names).

    Every class must have a training example: integer labels that skip a class (train labels
    {0, 1, 3}, or ClassLabel names for classes the file lacks) are an error, not an empty class.
    """
    if isinstance(train, list) != isinstance(test, list):
        kinds = ["class names" if isinstance(x, list) else "integers" for x in (train, test)]
        raise ValueError(f"'label' holds {kinds[0]} in {train_path} but {kinds[1]} in {test_path}; "
                         "both must hold class names or both integers")
    if isinstance(train, list):
        classes, train_idx = np.unique(np.asarray(train, dtype=str), return_inverse=True)
        names_sorted = [str(c) for c in classes]
        test_names = np.asarray(test, dtype=str)
        absent = sorted(set(test) - set(names_sorted))
        if absent:
            raise ValueError(f"labels in {test_path} name class(es) absent from {train_path}: {absent}; "
                             f"train classes: {names_sorted}")
        return tuple(names_sorted), train_idx.astype(np.int64), np.searchsorted(classes, test_names).astype(np.int64)
    for path, labels in ((train_path, train), (test_path, test)):
        if len(labels) and labels.min() < 0:
            row = int(np.argmax(labels < 0))
            raise ValueError(f"label {labels[row]} in {path} row {row} is negative; integer labels must be 0..K-1")
    k = int(train.max()) + 1 if len(train) else 0
    if names is not None and len(names) >= k:
        k = len(names)
    if len(test) and test.max() >= k:
        absent = sorted(int(v) for v in np.unique(test[test >= k]))
        raise ValueError(f"labels in {test_path} name class(es) absent from {train_path}: {absent}; "
                         f"train labels are 0..{k - 1}")
    from_names = names is not None and len(names) == k
    present = np.unique(train)
    if len(present) < k:  # sorted, distinct, all in 0..k-1: some class has no training example
        empty = _first_absent(present, k, 10)
        shown = ", ".join(f"{i} ({names[i]!r})" if from_names else str(i) for i in empty)
        more = f", ... ({k - len(present):,} in all)" if k - len(present) > len(empty) else ""
        source = "the file's ClassLabel names" if from_names else f"labels 0..{k - 1}"
        raise ValueError(
            f"integer labels in {train_path} leave class(es) without training examples: [{shown}{more}] "
            f"(K = {k} from {source}); allowed: integer labels 0..K-1 with every class present in the "
            "train split, or string class names"
        )
    classes = tuple(names) if from_names else tuple(str(i) for i in range(k))
    return classes, train, test


def _first_absent(present: np.ndarray, k: int, count: int) -> list[int]:
    """The first ``count`` of 0..k-1 missing from ``present`` (sorted, distinct, in 0..k-1)."""
    absent, expected = [], 0
    for value in present.tolist() + [k]:
        while expected < value and len(absent) < count:
            absent.append(expected)
            expected += 1
        if len(absent) == count:
            break
        expected = value + 1
    return absent


def _check_same_size(train: np.ndarray, test: np.ndarray, train_where: str, test_where: str) -> None:
    if train.shape[2:] != test.shape[2:]:
        raise ValueError(f"images of mixed sizes: {train_where} is {train.shape[3]}x{train.shape[2]} (width x height) "
                         f"but {test_where} is {test.shape[3]}x{test.shape[2]}; all images must have one size")


# --- Image folders ---------------------------------------------------------------------------

def scan_image_folder(split_dir: Path) -> dict[str, list[os.DirEntry]]:
    """Class name -> that class's image files (sorted by name), for ``split_dir/<class>/*``.

    Hidden entries (a leading dot) and files without an image extension are ignored; a class
    folder with no image in it is an error.
    """
    if not split_dir.is_dir():
        raise ValueError(f"image folder split {split_dir} is not a directory; need DIR/train/<class>/* "
                         "and DIR/test/<class>/*")
    classes: dict[str, list[os.DirEntry]] = {}
    class_dirs = sorted((e for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")),
                        key=lambda e: e.name)
    for class_dir in class_dirs:
        files = sorted((e for e in os.scandir(class_dir.path)
                        if e.is_file() and not e.name.startswith(".")
                        and e.name.lower().endswith(IMAGE_EXTENSIONS)), key=lambda e: e.name)
        if not files:
            raise ValueError(f"class folder {class_dir.path} has no images; allowed extensions: "
                             f"{', '.join(IMAGE_EXTENSIONS)}")
        classes[class_dir.name] = files
    if not classes:
        raise ValueError(f"image folder split {split_dir} has no class folders; need {split_dir}/<class>/*")
    return classes


def decode_imagefolder(train: dict[str, list[os.DirEntry]], test: dict[str, list[os.DirEntry]]) -> dict[str, Any]:
    classes = tuple(sorted(train))  # integer label i = the i-th class folder name in sorted order
    train_files = [Path(f.path) for c in classes for f in train[c]]
    test_files = [Path(f.path) for c in classes for f in test[c]]
    train_images = decode_images(train_files, lambda i: str(train_files[i]))
    test_images = decode_images(test_files, lambda i: str(test_files[i]))
    _check_same_size(train_images, test_images, str(train_files[0]), str(test_files[0]))
    train_images, test_images = match_channels(train_images, test_images)

    def labels(split: dict[str, list[os.DirEntry]]) -> np.ndarray:
        return np.repeat(np.arange(len(classes), dtype=np.int64), [len(split[c]) for c in classes])

    return dict(classes=classes, augment=True, train_images=train_images, train_labels=labels(train),
                test_images=test_images, test_labels=labels(test))
