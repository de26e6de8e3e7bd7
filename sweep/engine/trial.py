"""One trial, start to end: (dataset, model, noise, size, seed) -> confusion matrix on the test set.

Plain Python and PyTorch; no Ray. The Ray layer (sweep.distributed.tune_layer) only builds a TrialConfig,
calls :func:`run_trial` and writes the result, so a trial runs the same in a notebook, on a GPU
box without Ray, or in a benchmark.

Order of work: load (memoized per process) -> nested subset -> label noise on the subset ->
model init -> train (per-epoch learning curves from the training passes, ``sweep.engine.curves``)
-> predict the untouched test set -> confusion matrix.
"""

from __future__ import annotations

import math
import platform
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch

from sweep.engine.config import TrialConfig
from sweep.engine.curves import CurveCounter, EpochStats
from sweep.engine.datasets import ImageDataset, load_dataset
from sweep.engine.fit import check_fits
from sweep.engine.malloc_tuning import retain_freed_memory
from sweep.engine.models import build_model
from sweep.engine.noise import NoisyLabels, make_noisy_labels
from sweep.engine.recipes import recipe_for
from sweep.engine.rng import torch_generator, torch_seed
from sweep.engine.subsets import nested_subset
from sweep.engine.train import (EpochCallback, epochs_trained, normalize_stats, passes, predict_probs, total_steps,
                                train_model)


@dataclass(frozen=True)
class TrialResult:
    """What one trial measured, and what actually happened (realized noise, size, device, time)."""

    config: TrialConfig
    classes: tuple[str, ...]
    confusion: np.ndarray  # int64 (K, K): rows = true class, columns = predicted class, counts
    accuracy: float  # share of the test set classified correctly
    per_class_accuracy: np.ndarray  # float64 (K,): recall of each true class
    realized_noise: float  # share of training labels that differ from the truth
    train_size: int  # training examples actually used
    train_fraction: float  # train_size / size of the full train split
    test_size: int
    epochs: int  # passes over the subset begun, the last one partial under a steps budget
    steps: int  # optimizer steps taken
    epochs_trained: float  # steps / steps of a full pass: the passes made, fractional under a steps budget
    train_seconds: float  # wall clock, training only
    seconds: float  # wall clock, the whole trial including data preparation and evaluation
    final_train_loss: float  # mean loss of the last epoch, on the noisy labels
    device: str  # e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3"
    versions: dict[str, str]
    test_labels: np.ndarray  # int64 (test_size,)
    probs: np.ndarray | None = None  # float32 (test_size, K) softmax, when config.keep_probs
    curves: tuple[EpochStats, ...] = ()  # one record per epoch, in order (sweep.engine.curves)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary: the CLI's --json output.

        Strict JSON: a NaN (the recall of a class with no test example, the loss of a diverged run)
        becomes null, so ``json.dumps(..., allow_nan=False)`` accepts it.
        """
        return {
            "trial_id": self.config.trial_id,
            "config": self.config.to_dict(),
            "classes": list(self.classes),
            "accuracy": _number_or_null(self.accuracy),
            "per_class_accuracy": {c: _number_or_null(a) for c, a in zip(self.classes, self.per_class_accuracy)},
            "confusion": self.confusion.tolist(),
            "realized_noise": _number_or_null(self.realized_noise),
            "train_size": self.train_size,
            "train_fraction": self.train_fraction,
            "test_size": self.test_size,
            "epochs": self.epochs,
            "steps": self.steps,
            "epochs_trained": self.epochs_trained,
            "train_seconds": self.train_seconds,
            "seconds": self.seconds,
            "final_train_loss": _number_or_null(self.final_train_loss),
            "device": self.device,
            "versions": self.versions,
            "curves": [{**{k: _number_or_null(v) if isinstance(v, float) else v for k, v in s.metrics().items()},
                        "memorised": dict(zip(self.classes, s.column("memorised").tolist())),
                        "corrupted": dict(zip(self.classes, s.column("corrupted").tolist()))}
                       for s in self.curves],
        }


def _number_or_null(value: float) -> float | None:
    """``value`` as a float, or None for NaN and infinities (JSON has no such numbers)."""
    value = float(value)
    return value if math.isfinite(value) else None


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """K x K counts, rows = true class, columns = predicted class (zeros included)."""
    flat = np.asarray(true, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def resolve_device(requested: str) -> torch.device:
    """"auto" -> CUDA when this process sees a GPU, else CPU (a node may declare GPUs it lacks)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available here; use 'auto' or 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def library_versions() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),
        "numpy": np.__version__,
        "sweep": version("class-fragility-sweep"),
    }


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor over a dataset array, without copying it.

    Dataset arrays are shared across trials and flagged read-only; torch only reads them here, so
    its warning about non-writable arrays is silenced instead of paying for a copy per trial.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


# (source_id, device) -> (train images, test images) resident on a GPU, one dataset per device, so
# a worker copies its dataset to the GPU once rather than once per trial.
_RESIDENT: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}


def device_images(dataset: ImageDataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's uint8 train and test images as tensors on ``device``.

    On the CPU these are views of the shared arrays; on a GPU one copy per process is kept and
    reused by later trials (an older dataset on the same device is dropped first).
    """
    if device.type == "cpu":
        return _as_tensor(dataset.train_images), _as_tensor(dataset.test_images)
    key = (dataset.source_id, str(device))
    if key not in _RESIDENT:
        for old in [k for k in _RESIDENT if k[1] == str(device)]:
            del _RESIDENT[old]
        _RESIDENT[key] = (
            _as_tensor(dataset.train_images).to(device), _as_tensor(dataset.test_images).to(device)
        )
    return _RESIDENT[key]


def prepare_labels(config: TrialConfig, dataset: ImageDataset) -> tuple[int, np.ndarray, NoisyLabels]:
    """The trial's training subset and its noisy labels: (train size, subset indices, labels).

    Raises ValueError for a config that does not fit the dataset (``sweep.engine.fit``).
    """
    fit = check_fits(config, dataset)
    subset = nested_subset(dataset.train_labels, fit.train_size, seed=config.seed, mode=config.subset_mode)
    noisy = make_noisy_labels(
        dataset.train_labels[subset], config.noise_fraction, mode=config.noise_mode,
        num_classes=dataset.num_classes, seed=config.seed, example_ids=subset, population=dataset.num_train,
        param=fit.noise_param,
    )
    return fit.train_size, subset, noisy


def run_trial(
    config: TrialConfig,
    dataset: ImageDataset | None = None,
    *,
    on_epoch: EpochCallback | None = None,
) -> TrialResult:
    """Run one trial. ``dataset`` defaults to ``load_dataset(config.dataset)`` (memoized per process).

    ``on_epoch`` receives each epoch's :class:`~sweep.engine.curves.EpochStats` as it ends (the same
    records the result's ``curves`` holds); with ``config.eval_every`` N > 0 every N-th of them also
    carries the test set's per-class counts.

    Process-wide side effects: ``torch.set_num_threads(config.num_threads)`` when that is set, and on
    the CPU :func:`sweep.engine.malloc_tuning.retain_freed_memory` (freed tensor memory stays in the process).
    """
    started = time.perf_counter()
    if dataset is None:
        dataset = load_dataset(config.dataset, data_dir=config.data_dir)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    if device.type == "cpu":
        retain_freed_memory()  # once per process: activations reuse mapped pages (sweep.engine.malloc_tuning)
    num_classes = dataset.num_classes
    population = dataset.num_train

    train_size, subset, noisy = prepare_labels(config, dataset)

    recipe = recipe_for(config)
    augment = dataset.augment if config.augment is None else config.augment
    # Init draws come from the seed's own stream; fork_rng keeps global RNG state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(config.seed, "init"))
        model = build_model(config.model, dataset.image_shape, num_classes)
    model = model.to(device)

    train_all, test_x = device_images(dataset, device)
    # The trial's own copy of its subset, gathered where the data lives (on the GPU for CUDA).
    train_x = train_all.index_select(0, torch.from_numpy(subset).to(device))
    train_y = torch.from_numpy(noisy.labels).to(device)
    mean, std = normalize_stats(train_x)
    tta = recipe.tta and augment
    true_y = torch.from_numpy(np.asarray(dataset.train_labels[subset], dtype=np.int64))
    curves = CurveCounter(true_y, train_y, num_classes, label_smoothing=recipe.label_smoothing)
    records: list[EpochStats] = []

    def record(stats: EpochStats) -> None:
        records.append(stats)
        if on_epoch is not None:
            on_epoch(stats)

    def evaluate(scored: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        # The same evaluation as the final one (TTA included), so the last point matches it.
        pred = predict_probs(scored, test_x, mean=mean, std=std, tta=tta).argmax(dim=1).cpu().numpy()
        confusion = confusion_matrix(dataset.test_labels, pred, num_classes)
        return confusion.sum(axis=1), np.diag(confusion).copy()

    train_started = time.perf_counter()
    final_loss = train_model(
        model, train_x, train_y, recipe=recipe, mean=mean, std=std, augment=augment,
        generator=torch_generator(config.seed, "batches"), curves=curves, on_epoch=record,
        evaluate=evaluate if config.eval_every else None, eval_every=config.eval_every,
    )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - train_started

    probs = predict_probs(model, test_x, mean=mean, std=std, tta=tta).cpu().numpy()
    pred = probs.argmax(axis=1)
    confusion = confusion_matrix(dataset.test_labels, pred, num_classes)
    per_class_total = confusion.sum(axis=1)
    per_class = np.divide(
        np.diag(confusion), per_class_total, out=np.full(num_classes, np.nan), where=per_class_total > 0
    )
    if device.type == "cuda":
        device_name = f"{device.type}:{device.index or 0} {torch.cuda.get_device_name(device)}"
    else:
        device_name = f"cpu ({torch.get_num_threads()} threads)"
    return TrialResult(
        config=config,
        classes=dataset.classes,
        confusion=confusion,
        accuracy=float(np.trace(confusion) / confusion.sum()),
        per_class_accuracy=per_class,
        realized_noise=noisy.realized_noise,
        train_size=train_size,
        train_fraction=train_size / population,
        test_size=int(confusion.sum()),
        epochs=passes(train_size, recipe),
        steps=total_steps(train_size, recipe),
        epochs_trained=epochs_trained(train_size, recipe),
        train_seconds=train_seconds,
        seconds=time.perf_counter() - started,
        final_train_loss=final_loss,
        device=device_name,
        versions=library_versions(),
        test_labels=np.asarray(dataset.test_labels, dtype=np.int64),
        probs=probs.astype(np.float32) if config.keep_probs else None,
        curves=tuple(records),
    )
