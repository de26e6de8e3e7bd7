"""Fixtures for the engine tests: tiny generated datasets, and the shared real CIFAR-10 loaded once.

Every test here runs with SWEEP_CACHE_DIR and SWEEP_DATA_DIR pointing at fresh temporary folders and
SWEEP_OFFLINE=1, so no test writes to the user's home or touches the network.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sweep.engine.datasets import ImageDataset, load_dataset

# ../shared/data/cifar10-jpeg from the repository root (CI has it at the same relative place).
CIFAR10_PARQUET_DIR = Path(__file__).parents[2].parent / "shared" / "data" / "cifar10-jpeg"


@pytest.fixture(autouse=True)
def _isolated_dataset_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point every dataset cache and data directory at temporary folders; forbid downloads."""
    cache_dir = tmp_path_factory.mktemp("sweep-cache")
    monkeypatch.setenv("SWEEP_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("SWEEP_DATA_DIR", str(tmp_path_factory.mktemp("sweep-data")))
    monkeypatch.setenv("SWEEP_OFFLINE", "1")
    return cache_dir


@pytest.fixture
def cache_dir(_isolated_dataset_env: Path) -> Path:
    """This test's dataset cache folder (SWEEP_CACHE_DIR)."""
    return _isolated_dataset_env


# --- the shared real CIFAR-10 ------------------------------------------------------------------

@pytest.fixture(scope="session")
def cifar10_parquet_dir() -> Path:
    """The shared real CIFAR-10 as image Parquet (50,000 + 10,000 JPEGs); skips when absent."""
    if not (CIFAR10_PARQUET_DIR / "train.parquet").is_file():
        pytest.skip(f"real CIFAR-10 Parquet not found at {CIFAR10_PARQUET_DIR} (expected ../shared/data/cifar10-jpeg "
                    "next to the repository)")
    return CIFAR10_PARQUET_DIR


@pytest.fixture(scope="session")
def cifar10_parquet_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One disk cache for the whole session, so the 60,000 JPEGs are decoded at most once per run."""
    return tmp_path_factory.mktemp("cifar10-parquet-cache")


@pytest.fixture(scope="session")
def cifar10_parquet_dataset(cifar10_parquet_dir: Path, cifar10_parquet_cache_dir: Path) -> ImageDataset:
    """The real CIFAR-10 loaded through ``parquet:DIR`` (8-12 s to decode on a 2-core CPU, once)."""
    return load_dataset(f"parquet:{cifar10_parquet_dir}", cache_dir=cifar10_parquet_cache_dir)


# --- tiny generated data -----------------------------------------------------------------------

@pytest.fixture
def encode_image() -> Callable[..., bytes]:
    """``encode_image(pixels, format="PNG")``: (H, W) or (H, W, 3) uint8 -> encoded bytes."""
    def encode(pixels: np.ndarray, format: str = "PNG") -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=format)
        return buffer.getvalue()
    return encode


@pytest.fixture
def write_parquet() -> Callable[..., Path]:
    """``write_parquet(path, {"image": [...], "label": [...]}, dictionary=False, metadata=None)``."""
    def write(path: Path, columns: dict[str, list], *, dictionary: bool = False,
              metadata: dict[bytes, bytes] | None = None) -> Path:
        table = pa.table(columns)
        if dictionary:
            table = table.set_column(table.schema.get_field_index("label"), "label",
                                     _dictionary_encode(table.column("label")))
        if metadata:
            table = table.replace_schema_metadata(metadata)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path
    return write


def _dictionary_encode(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pa.chunked_array([chunk.dictionary_encode() for chunk in column.chunks])


@pytest.fixture
def tiny_pixels() -> dict[str, tuple[np.ndarray, list[str]]]:
    """Random 5x4 RGB images (H=5, W=4): 6 train, 3 test, classes cat/dog/ant (unsorted on purpose)."""
    rng = np.random.default_rng(123)
    names = ["cat", "dog", "ant"]
    return {
        "train": (rng.integers(0, 256, size=(6, 5, 4, 3), dtype=np.uint8), [names[i % 3] for i in range(6)]),
        "test": (rng.integers(0, 256, size=(3, 5, 4, 3), dtype=np.uint8), ["dog", "ant", "cat"]),
    }


@pytest.fixture
def tiny_parquet_dir(tmp_path: Path, tiny_pixels, encode_image, write_parquet) -> Path:
    """DIR/{train,test}.parquet of the tiny images as PNG bytes with string labels."""
    folder = tmp_path / "tiny-parquet"
    for split, (pixels, labels) in tiny_pixels.items():
        write_parquet(folder / f"{split}.parquet",
                      {"image": [encode_image(p) for p in pixels], "label": labels, "index": list(range(len(labels)))})
    return folder


@pytest.fixture
def tiny_image_folder(tmp_path: Path, tiny_pixels, encode_image) -> Path:
    """DIR/{train,test}/<class>/NNN.png of the tiny images, plus files a loader must ignore."""
    folder = tmp_path / "tiny-folder"
    for split, (pixels, labels) in tiny_pixels.items():
        for i, (p, label) in enumerate(zip(pixels, labels)):
            (folder / split / label).mkdir(parents=True, exist_ok=True)
            (folder / split / label / f"{i:03d}.png").write_bytes(encode_image(p))
        (folder / split / "cat" / "notes.txt").write_text("not an image")
        (folder / split / "cat" / ".hidden.png").write_bytes(b"not an image either")
    return folder


@pytest.fixture
def cifar_pickle_dir(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A data_dir holding a tiny cifar-10-batches-py in torchvision's pickle format (3 images a batch).

    Returns (data_dir, {"train_data", "train_labels", "test_data", "test_labels"}) with data as the
    format's rows: 3,072 bytes = 1,024 red, then green, then blue values, row-major.
    """
    rng = np.random.default_rng(7)
    folder = tmp_path / "cifar-data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    expected: dict[str, list] = {"train_data": [], "train_labels": [], "test_data": [], "test_labels": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=3)]
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels, "filenames": ["x.png"] * 3}, f)
        split = "test" if name == "test_batch" else "train"
        expected[f"{split}_data"].append(data)
        expected[f"{split}_labels"].extend(labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": 3, "num_vis": 3072}, f)
    return folder.parent, {"train_data": np.concatenate(expected["train_data"]),
                           "train_labels": np.array(expected["train_labels"]),
                           "test_data": np.concatenate(expected["test_data"]),
                           "test_labels": np.array(expected["test_labels"])}
