"""Test images by their index in the test split, read from the dataset a results folder names.

The report's misclassified-images panel needs the pixels of a few test examples. ``analysis`` does
not load datasets through the sweep's engine (no cache, no torch): it reads the source itself,
with the engine's own pure rules for which image is test example i, imported from
``sweep.engine.datasets`` (``digits_split``) and ``sweep.engine.image_decode`` (the sorted class
folders, the Parquet columns, Pillow decoding), which import numpy, pyarrow and Pillow only. So
example i here is example i of the trial's ``test_labels``, and a test checks it against
``load_dataset``. ``READERS`` maps each dataset kind to its reader; ``cifar10`` is not read
(``UNREADABLE``): its files are Python pickles, and ``analysis`` never unpickles; export it as
``parquet:DIR`` to see its images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

class ImagesUnavailable(ValueError):
    """The images cannot be shown here: the dataset is absent, unreadable here, or not the one scored."""


def read_test_images(dataset: str, examples, *, true_classes=None) -> np.ndarray:
    """The test images ``examples`` (indices in the test split) of ``dataset``, as uint8 (n, C, H, W).

    ``true_classes`` (optional, one class name per example) is checked against the dataset's own
    labels, so a folder edited since the sweep ran is refused rather than shown wrongly.
    Raises :class:`ImagesUnavailable` with one line saying why the images cannot be shown.
    """
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a dataset spec string, got {dataset!r}")
    examples = np.asarray(examples, dtype=np.int64)
    kind, colon, rest = dataset.partition(":")
    if kind in UNREADABLE:
        why, instead = UNREADABLE[kind]
        raise ImagesUnavailable(f"the images of {kind} are not shown: {why}; the panel reads {', '.join(READABLE)} "
                                f"({instead})")
    form, reader = READERS.get(kind, ("", None))
    if reader is None or (not rest if form.endswith(":DIR") else colon):
        raise ImagesUnavailable(f"cannot read images of dataset {dataset!r}; the panel reads {', '.join(READABLE)}")
    images, names, size = reader(Path(rest).expanduser(), examples)
    if true_classes is not None:
        for example, expected, name in zip(examples, true_classes, names):
            if str(expected) != name:
                raise ImagesUnavailable(f"test example {example} of {dataset} here is a {name!r}, but the results say "
                                        f"{expected!r}: the dataset on this machine is not the one the sweep scored")
    return images


def _check_range(examples: np.ndarray, size: int, where: str) -> None:
    if examples.size and (examples.min() < 0 or examples.max() >= size):
        raise ImagesUnavailable(f"{where} has {size} test images, but the results name example {examples.max()}: "
                                "not the test split the sweep scored")


def _digits(_folder: Path, examples: np.ndarray) -> tuple[np.ndarray, list[str], int]:
    from sklearn.datasets import load_digits

    from sweep.engine.datasets import digits_split

    bunch = load_digits()
    _, test = digits_split(bunch.target)
    _check_range(examples, len(test), "digits")
    rows = test[examples]
    # Counts 0..16 per pixel, scaled to 0..255 as the engine does.
    images = np.rint(bunch.images[rows] * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    return images, [str(int(bunch.target[r])) for r in rows], len(test)


def _parquet(folder: Path, examples: np.ndarray) -> tuple[np.ndarray, list[str], int]:
    from sweep.engine.image_decode import decode_images, read_parquet_split

    path = folder / "test.parquet"
    if not path.is_file():
        raise ImagesUnavailable(f"{path} is not on this machine")
    encoded, labels, names = read_parquet_split(path)
    _check_range(examples, len(encoded), str(path))
    images = decode_images([encoded[i] for i in examples], lambda i: f"{path} row {examples[i]}")
    if isinstance(labels, list):
        shown = [str(labels[i]) for i in examples]
    else:  # integers: the ClassLabel names when the file has them, else "0".."K-1", as the engine names them
        shown = [names[int(labels[i])] if names and int(labels[i]) < len(names) else str(int(labels[i]))
                 for i in examples]
    return images, shown, len(encoded)


def _imagefolder(folder: Path, examples: np.ndarray) -> tuple[np.ndarray, list[str], int]:
    from sweep.engine.image_decode import decode_images, scan_image_folder

    split = folder / "test"
    if not split.is_dir():
        raise ImagesUnavailable(f"{split} is not on this machine")
    scanned = scan_image_folder(split)
    files = [(name, Path(entry.path)) for name in sorted(scanned) for entry in scanned[name]]  # the engine's order
    _check_range(examples, len(files), str(split))
    chosen = [files[i] for i in examples]
    images = decode_images([path for _, path in chosen], lambda i: str(chosen[i][1]))
    return images, [name for name, _ in chosen], len(files)


# One entry per kind of sweep.engine.datasets.LOADERS (a test holds them equal): its spec form and the reader
# of its test images (folder, examples) -> (uint8 images, class names, test-split size), or why not and what
# to do instead.
READERS = {"digits": ("digits", _digits), "parquet": ("parquet:DIR", _parquet),
           "imagefolder": ("imagefolder:DIR", _imagefolder)}
UNREADABLE = {"cifar10": ("its files are Python pickles, which analysis never unpickles",
                          "export CIFAR-10 as parquet:DIR to see them")}
READABLE = tuple(form for form, _ in READERS.values())

__all__ = ["read_test_images", "ImagesUnavailable", "READABLE", "READERS", "UNREADABLE"]
