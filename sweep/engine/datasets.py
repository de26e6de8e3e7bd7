"""Dataset loaders: a dataset spec -> uint8 image arrays + int64 labels + class names, decoded once.

Specs (``load_dataset(spec)``):
    digits           scikit-learn's bundled 8x8 handwritten digits (1,797 images, 1 channel, no
                     download); a fixed stratified split, see ``digits_split``. The offline default.
    cifar10          torchvision's CIFAR-10 pickles under ``data_dir`` (downloaded when absent,
                     unless SWEEP_OFFLINE=1).
    parquet:DIR      DIR/train.parquet and DIR/test.parquet with an encoded-image column ``image``
                     and a ``label`` column (class name or int).
    imagefolder:DIR  DIR/train/<class>/* and DIR/test/<class>/* image files.

Caching, two levels, both keyed by the *source identity*:
    * For files: the absolute path, size in bytes and modification time (ns) of every source file
      (the two Parquet files, every image file, the seven CIFAR-10 pickle files); for digits: the
      scikit-learn version. Plus ``CACHE_FORMAT``, bumped whenever decoding changes.
      ``source_id`` is the first 16 hex digits of the SHA-256 of that identity (as JSON), so
      editing, replacing or touching a source file makes a new key and the old entry is unused.
    * In process: a dict ``source_id -> ImageDataset``, so a long-lived worker decodes a dataset
      once and shares its (read-only) arrays across trials.
    * On local disk: ``<cache_dir>/datasets/<kind>-<source_id>.npz``, uncompressed, written to a
      temporary file and moved into place with ``os.replace`` (readers never see half a file).
      ``cache_dir`` defaults to env SWEEP_CACHE_DIR, else ~/.cache/class-fragility-sweep.
      Nothing is written when loading fails.

Glossary: K classes, N examples; integer label i means ``classes[i]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from sweep.engine import image_decode

CACHE_FORMAT = 2  # part of every source identity: bump when decoding changes, to retire old caches
# (2: 16-bit grayscale scaled to 8 bits instead of clipped; integer labels must leave no class empty)
DEFAULT_CACHE_DIR = "~/.cache/class-fragility-sweep"
DIGITS_TEST_SHARE = 0.25  # of each class, rounded to the nearest image (halves up)

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                 "test_batch", "batches.meta")
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MIB = 163  # size of the download, MiB


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset's files are absent. Also a ValueError, so callers that catch bad input catch it."""


@dataclass(frozen=True)
class ImageDataset:
    """A decoded dataset, train and test split. Arrays are shared across trials: read-only."""

    name: str  # the dataset spec as given: "digits", "cifar10", "parquet:DIR", "imagefolder:DIR"
    classes: tuple[str, ...]  # class names; integer label i means classes[i]; K = len(classes) >= 2
    train_images: np.ndarray  # uint8, (N, C, H, W), C in {1, 3}, C-contiguous, pixel values 0..255
    train_labels: np.ndarray  # int64, (N,), values in [0, K)
    test_images: np.ndarray  # uint8, (N_test, C, H, W), same C, H, W as train
    test_labels: np.ndarray  # int64, (N_test,), values in [0, K)
    source_id: str  # 16 hex digits: hash of the source's identity, the cache key
    augment: bool  # whether random crop + horizontal flip suit this data (False for digits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if len(self.classes) < 2:
            raise ValueError(f"dataset {self.name!r} has {len(self.classes)} class(es) {list(self.classes)}; "
                             "need at least 2")
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
                    and images.shape[1] in (1, 3) and images.flags.c_contiguous):
                raise TypeError(f"{split}_images of {self.name!r} must be a C-contiguous uint8 array "
                                f"(N, C, H, W) with C in {{1, 3}}, got {_describe(images)}")
            if not (isinstance(labels, np.ndarray) and labels.dtype == np.int64
                    and labels.shape == images.shape[:1]):
                raise TypeError(f"{split}_labels of {self.name!r} must be an int64 array of shape "
                                f"{images.shape[:1]}, got {_describe(labels)}")
            if len(labels) == 0:
                raise ValueError(f"the {split} split of {self.name!r} is empty; need at least one image")
            if labels.min() < 0 or labels.max() >= len(self.classes):
                raise ValueError(f"{split}_labels of {self.name!r} must be in [0, {len(self.classes)}), "
                                 f"got values {labels.min()}..{labels.max()}")
            images.flags.writeable = False
            labels.flags.writeable = False
        if self.test_images.shape[1:] != self.train_images.shape[1:]:
            raise ValueError(f"test images of {self.name!r} are {self.test_images.shape[1:]} (C, H, W) but "
                             f"train images are {self.train_images.shape[1:]}; they must match")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    @property
    def num_test(self) -> int:
        return len(self.test_labels)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        order = "C-contiguous" if value.flags.c_contiguous else "not C-contiguous"
        return f"{value.dtype} array of shape {value.shape} ({order})"
    return repr(type(value).__name__)


# --- the public entry point and its two caches ------------------------------------------------

_MEMORY: dict[str, ImageDataset] = {}  # source_id -> dataset, for this process
_STATS = {"memory_hits": 0, "disk_hits": 0, "decodes": 0}


def load_dataset(spec: str, *, data_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None) -> ImageDataset:
    """Load dataset ``spec`` (see the module docstring), from memory, the disk cache, or its source.

    ``data_dir`` is where ``cifar10`` lives (default env SWEEP_DATA_DIR, else
    ~/.cache/class-fragility-sweep/torchvision); ``cache_dir`` holds decoded arrays (default env
    SWEEP_CACHE_DIR, else ~/.cache/class-fragility-sweep). Raises ValueError (bad value, absent
    files: DatasetNotFoundError) or TypeError (bad type), one line naming the value.
    """
    kind, identity, decode = _resolve(spec, data_dir)
    source_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    cached = _MEMORY.get(source_id)
    if cached is not None:
        _STATS["memory_hits"] += 1
        return cached if cached.name == spec else dataclasses.replace(cached, name=spec)
    path = _cache_root(cache_dir) / "datasets" / f"{kind}-{source_id}.npz"
    fields = _read_cache(path)
    if fields is not None:
        _STATS["disk_hits"] += 1
        dataset = ImageDataset(name=spec, source_id=source_id, **fields)
    else:
        _STATS["decodes"] += 1
        dataset = ImageDataset(name=spec, source_id=source_id, **decode())
        _write_cache(path, dataset)  # only after decoding and validation succeeded
    _MEMORY[source_id] = dataset
    return dataset


def cache_stats() -> dict[str, int]:
    """Counts since import: loads served from memory, from the disk cache, and by decoding."""
    return dict(_STATS)


def clear_memory_cache() -> None:
    """Forget the in-process datasets (the disk cache stays), e.g. to test a load from disk."""
    _MEMORY.clear()


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a path string or None, got {cache_dir!r}")
    return Path(cache_dir or os.environ.get("SWEEP_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()


_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def _read_cache(path: Path) -> dict[str, Any] | None:
    """The cached fields, or None when absent or unreadable (then the source is decoded again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            fields = {key: npz[key] for key in _ARRAYS}
            fields["classes"] = tuple(str(c) for c in npz["classes"])
            fields["augment"] = bool(npz["augment"])
        return fields
    except Exception as exc:  # noqa: BLE001 - truncated or damaged (zipfile.BadZipFile, a bad CRC), old numpy, ...
        # The source is decoded again and its cache written over this file.
        warnings.warn(f"ignoring unreadable dataset cache {path}: {type(exc).__name__}: {exc}", stacklevel=3)
        return None


ABANDONED_TEMP_S = 3600  # a cache temp file this old belongs to a writer that was killed


def _remove_abandoned_temp_files(path: Path) -> None:
    """Delete ``path``'s temp files left by writers killed mid-write (a CIFAR-10 one is ~180 MB).

    A temp file younger than ``ABANDONED_TEMP_S`` may be another process writing right now: kept.
    """
    now = time.time()
    for tmp in path.parent.glob(f".{path.stem}-*.tmp"):
        try:
            if now - tmp.stat().st_mtime > ABANDONED_TEMP_S:
                tmp.unlink()
        except OSError:  # gone meanwhile, or not ours to remove
            pass


def _write_cache(path: Path, dataset: ImageDataset) -> None:
    arrays = {key: getattr(dataset, key) for key in _ARRAYS}
    arrays["classes"] = np.array(dataset.classes, dtype=str)
    arrays["augment"] = np.array(dataset.augment)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_temp_files(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # uncompressed: loading is a plain read
                f.flush()
                os.fsync(f.fileno())  # on disk before it takes the final name: a crash leaves no half file there
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:  # a read-only or full disk costs speed, not correctness
        warnings.warn(f"could not write the dataset cache {path} ({exc.strerror or exc}), so the dataset is "
                      "decoded again in every new process; set SWEEP_CACHE_DIR to a writable folder", stacklevel=3)


# --- specs -> (kind, source identity, decoder) -----------------------------------------------

Decoder = Callable[[], dict[str, Any]]


def _resolve(spec: str, data_dir: str | os.PathLike | None) -> tuple[str, dict[str, Any], Decoder]:
    if not isinstance(spec, str):
        raise TypeError(f"dataset must be a string, one of {', '.join(SPEC_FORMS)}; got {spec!r}")
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path string or None, got {data_dir!r}")
    kind, colon, rest = spec.partition(":")
    loader = LOADERS.get(kind)
    if loader is None or loader.takes_dir != bool(colon):
        raise ValueError(f"unknown dataset {spec!r}; allowed: {', '.join(SPEC_FORMS)}")
    if not loader.takes_dir:
        identity, decode = loader.source(data_dir)
        return kind, identity, decode
    if not rest:
        raise ValueError(f"dataset {spec!r} names no directory; allowed: {', '.join(SPEC_FORMS)}")
    folder = Path(rest).expanduser().resolve()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"dataset directory {folder} (from {spec!r}) does not exist "
                                   "or is not a directory")
    identity, decode = loader.source(folder)
    return kind, identity, decode


def _file_identity(kind: str, files: list[Path] | list[os.DirEntry]) -> dict[str, Any]:
    entries = []
    for f in files:
        st = f.stat()
        entries.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
    return {"kind": kind, "format": CACHE_FORMAT, "files": entries}


# --- digits -----------------------------------------------------------------------------------

def digits_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed digits split: (train indices, test indices), each sorted ascending.

    For each class c in ascending order, its indices (ascending) are permuted by one
    ``numpy.random.default_rng(0)`` shared across the classes, and the first
    round(0.25 * n_c) (halves up) go to test, the rest to train.
    """
    rng = np.random.default_rng(0)
    test_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = int(np.floor(DIGITS_TEST_SHARE * len(members) + 0.5))
        test_parts.append(members[rng.permutation(len(members))[:n_test]])
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(len(labels)), test)  # sorted
    return train, test


def _digits_source(data_dir: Any) -> tuple[dict[str, Any], Decoder]:
    identity = {"kind": "digits", "scikit-learn": version("scikit-learn"), "test_share": DIGITS_TEST_SHARE}
    return {**identity, "format": CACHE_FORMAT}, _decode_digits


def _decode_digits() -> dict[str, Any]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are counts 0..16 (4x4 blocks of a 32x32 bitmap); scale to 0..255.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    train, test = digits_split(labels)
    return dict(classes=tuple(str(d) for d in range(10)), augment=False,
                train_images=np.ascontiguousarray(images[train]), train_labels=labels[train],
                test_images=np.ascontiguousarray(images[test]), test_labels=labels[test])


# --- cifar10 (torchvision's pickles) ----------------------------------------------------------

def _cifar10_source(data_dir: str | os.PathLike | None) -> tuple[dict[str, Any], Decoder]:
    root = Path(data_dir or os.environ.get("SWEEP_DATA_DIR")
                or Path(DEFAULT_CACHE_DIR) / "torchvision").expanduser().resolve()
    return _file_identity("cifar10", _cifar10_files(root)), lambda: _decode_cifar10(root)


def _cifar10_files(root: Path) -> list[Path]:
    """The seven pickle files, fetching them first (from an archive in ``root`` or online) if absent."""
    folder = root / CIFAR10_FOLDER
    files = [folder / name for name in CIFAR10_FILES]
    if not all(f.is_file() for f in files):
        _fetch_cifar10(root)
        if not all(f.is_file() for f in files):
            raise DatasetNotFoundError(_cifar10_absent(root, f"{CIFAR10_ARCHIVE} did not yield {folder}"))
    return files


def _cifar10_absent(root: Path, reason: str) -> str:
    return (f"cifar10 is not in {root} and {reason}; it needs {CIFAR10_ARCHIVE} (about {CIFAR10_ARCHIVE_MIB} MiB, "
            f"https://www.cs.toronto.edu/~kriz/{CIFAR10_ARCHIVE}): put that file or its extracted folder "
            f"{CIFAR10_FOLDER} in {root} (or pass data_dir / set SWEEP_DATA_DIR), or use parquet:DIR "
            "with CIFAR-10 as image Parquet")


def _fetch_cifar10(root: Path) -> None:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity, download_and_extract_archive, extract_archive

    archive = root / CIFAR10_ARCHIVE
    if archive.is_file():
        if not check_integrity(str(archive), CIFAR10.tgz_md5):
            raise ValueError(f"{archive} fails torchvision's MD5 check (truncated or not the CIFAR-10 release); "
                             "delete it and supply it again")
        extract_archive(str(archive), str(root))
    elif os.environ.get("SWEEP_OFFLINE") == "1":
        raise DatasetNotFoundError(_cifar10_absent(root, "SWEEP_OFFLINE=1 forbids downloading it"))
    else:
        try:
            download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
        except Exception as exc:  # network, HTTP, disk or checksum: all mean "not here", said once
            raise DatasetNotFoundError(_cifar10_absent(root, f"the download failed ({type(exc).__name__}: {exc})"
                                                       )) from None


def _cifar10_integrity_ok(root: Path) -> bool:
    """torchvision's own MD5 check of every CIFAR-10 file; nothing is unpickled before it passes."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    expected = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    return all(check_integrity(str(root / CIFAR10.base_folder / name), md5) for name, md5 in expected)


def _decode_cifar10(root: Path) -> dict[str, Any]:
    if not _cifar10_integrity_ok(root):
        raise ValueError(f"the CIFAR-10 files in {root / CIFAR10_FOLDER} fail torchvision's MD5 check (corrupted "
                         f"or not the CIFAR-10 release); delete that folder and supply {CIFAR10_ARCHIVE} again")
    return _read_cifar_batches(root / CIFAR10_FOLDER)


def _read_cifar_batches(folder: Path) -> dict[str, Any]:
    """Read the CIFAR pickle format (data_batch_1..5, test_batch, batches.meta) from ``folder``.

    Unpickling runs code from the file: call this only after ``_cifar10_integrity_ok``.
    """
    def read(name: str) -> dict[str, Any]:
        with open(folder / name, "rb") as f:
            return pickle.load(f, encoding="latin1")

    def split(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        batches = [read(n) for n in names]
        images = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
        return np.ascontiguousarray(images.reshape(-1, 3, 32, 32)), labels  # rows are R, G, B planes

    train_images, train_labels = split(CIFAR10_FILES[:5])
    test_images, test_labels = split(("test_batch",))
    return dict(classes=tuple(read("batches.meta")["label_names"]), augment=True,
                train_images=train_images, train_labels=train_labels,
                test_images=test_images, test_labels=test_labels)


# --- parquet:DIR ------------------------------------------------------------------------------

def _parquet_source(folder: Path) -> tuple[dict[str, Any], Decoder]:
    paths = [folder / "train.parquet", folder / "test.parquet"]
    for path in paths:
        if not path.is_file():
            raise DatasetNotFoundError(f"{path} not found; parquet:DIR needs DIR/train.parquet and DIR/test.parquet")
    return _file_identity("parquet", paths), lambda: image_decode.decode_parquet(*paths)


# --- imagefolder:DIR --------------------------------------------------------------------------

def _imagefolder_source(folder: Path) -> tuple[dict[str, Any], Decoder]:
    train = image_decode.scan_image_folder(folder / "train")
    test = image_decode.scan_image_folder(folder / "test")
    if set(train) != set(test):
        raise ValueError(f"train and test classes of {folder} differ: only in train: {sorted(set(train) - set(test))}, "
                         f"only in test: {sorted(set(test) - set(train))}; both need the same class folders")
    files = [f for split in (train, test) for entries in split.values() for f in entries]
    return _file_identity("imagefolder", files), lambda: image_decode.decode_imagefolder(train, test)


# --- the registry: "<kind>" or "<kind>:DIR" -> where its identity and decoder come from ---------

@dataclass(frozen=True)
class Loader:
    form: str  # how a spec names it: "digits", or "parquet:DIR" for a loader that reads a folder
    help: str  # what it reads, in a few words (help texts and docs)
    source: Callable[[Any], tuple[dict[str, Any], Decoder]]  # data_dir, or DIR -> (identity, decoder)

    @property
    def takes_dir(self) -> bool:
        return self.form.endswith(":DIR")


LOADERS: dict[str, Loader] = {
    "digits": Loader("digits", "scikit-learn's bundled 8x8 digits (offline default)", _digits_source),
    "cifar10": Loader("cifar10", "torchvision's CIFAR-10 under --data-dir", _cifar10_source),
    "parquet": Loader("parquet:DIR", "DIR/train.parquet and DIR/test.parquet (image bytes + label)", _parquet_source),
    "imagefolder": Loader("imagefolder:DIR", "DIR/train/<class>/* and DIR/test/<class>/*", _imagefolder_source),
}
SPEC_FORMS = tuple(loader.form for loader in LOADERS.values())
