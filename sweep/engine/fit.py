"""Does a trial fit its dataset? The check a driver runs once per grid cell, without torch.

A config is valid on its own (``TrialConfig`` checks every value); whether it can run depends on
the dataset too: the train size must resolve within the train split, the model must take the
image size, a BatchNorm model needs two examples per batch, and a noise mode's parameter must
name the dataset's classes. :func:`check_fits` decides all of these from the dataset's shape and
classes (numpy only), and returns what it resolved, which the trial then uses: the check and the
work it guards are one piece of code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from sweep.engine.config import TrialConfig
from sweep.engine.noise import NOISE_MODES, resolve_param
from sweep.engine.recipes import BATCHNORM_MODELS, batchnorm_message, check_image_size, recipe_for
from sweep.engine.subsets import resolve_train_size


class DatasetShape(Protocol):
    """What a fit check reads of a dataset (an ``ImageDataset`` has all of it)."""

    name: str
    classes: Sequence[str]
    num_train: int
    image_shape: tuple[int, int, int]


@dataclass(frozen=True)
class Fit:
    """What :func:`check_fits` resolved: the trial's train size and its noise mode's parameter."""

    train_size: int  # examples the trial trains on
    noise_param: Any  # the mode's parameter as the noise maker takes it (index pairs, a K x K array), or None


def check_fits(config: TrialConfig, dataset: DatasetShape) -> Fit:
    """Raise ValueError, naming the value, when ``config`` cannot run on ``dataset``; else what it resolved."""
    train_size = resolve_train_size(config.train_size, dataset.num_train)
    _, height, width = dataset.image_shape
    check_image_size(config.model, height, width)
    if config.model in BATCHNORM_MODELS:
        batch = min(recipe_for(config).batch_size, train_size)
        if batch < 2:
            got = f"batch_size {batch}" if train_size >= 2 else (
                f"train_size {config.train_size!r}, which selects {train_size} example of the "
                f"{dataset.num_train}-example train split")
            raise ValueError(batchnorm_message(config.model, got))
    param = NOISE_MODES[config.noise_mode].param
    try:
        noise_param = resolve_param(config.noise_mode, getattr(config, param.field) if param else None,
                                    dataset.classes)
    except ValueError as exc:
        raise ValueError(f"{param.field} for {dataset.name} ({len(dataset.classes)} classes): {exc}") from None
    return Fit(train_size=train_size, noise_param=noise_param)
