"""The three models and their fixed default training recipes.

Every model adapts to the dataset: input channels C, image size H x W and class count K.

- ``blog_cnn``: the reference study's 6-layer CNN, exactly
  conv3x3(C->32)-ReLU-conv3x3(32->32)-ReLU-maxpool2-conv3x3(32->64)-ReLU-conv3x3(64->64)-ReLU-maxpool2-
  flatten-linear(->256)-ReLU-linear(256->K), padding 1. Each ReLU-maxpool pair runs as maxpool-ReLU:
  ReLU is monotone, so it commutes with max, and the outputs and gradients are identical (tested)
  while the ReLU touches a quarter of the values. Parameter names and init order are unchanged.
- ``fast_cnn``: a BatchNorm/GELU conv net in the spirit of the public CIFAR-10 speed-run records
  (three conv groups 64-256-256 with max-pooling, global max-pool, a scaled linear head), trained
  with Nesterov SGD, a triangular learning-rate schedule, label smoothing and flip test-time
  augmentation. Built for accuracy per GPU-second on 32x32 images.
- ``resnet18``: torchvision's ResNet-18 with a 32x32 stem (3x3 stride-1 first conv, no max-pool).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn

from sweep.engine.config import MODEL_NAMES, TrialConfig


@dataclass(frozen=True)
class Recipe:
    """How a model is trained by default. A TrialConfig's epochs/batch_size/lr/weight_decay override it."""

    optimizer: str  # "adam" | "sgd"
    lr: float  # peak learning rate, for the batch size below
    batch_size: int  # examples per optimizer step
    epochs: int  # passes over the training subset
    weight_decay: float = 0.0  # L2 coefficient (decoupled from nothing: plain torch.optim semantics)
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    schedule: str = "constant"  # "constant" | "triangle" (linear warm-up then linear decay to 0) | "cosine"
    warmup: float = 0.0  # share of all steps spent warming up, for "triangle"
    label_smoothing: float = 0.0  # cross-entropy label smoothing, in [0, 1)
    tta: bool = False  # average predictions over the image and its mirror at test time


RECIPES: dict[str, Recipe] = {
    # Adam at its textbook learning rate, as a small Keras-style reference CNN is usually trained.
    "blog_cnn": Recipe(optimizer="adam", lr=1e-3, batch_size=128, epochs=15),
    # Short, aggressive schedule. Batch 1,024 at lr 0.4 matched batch 512 at lr 0.2 in accuracy
    # (88.6 vs 88.7 %, n=1) in half the time on an H100 (3.4 vs 6.2 s): BENCHMARKS.md, recipe probe.
    "fast_cnn": Recipe(
        optimizer="sgd", lr=0.4, batch_size=1024, epochs=10, weight_decay=5e-4, momentum=0.9,
        nesterov=True, schedule="triangle", warmup=0.2, label_smoothing=0.2, tta=True,
    ),
    # The usual CIFAR ResNet-18 recipe, shortened.
    "resnet18": Recipe(
        optimizer="sgd", lr=0.1, batch_size=128, epochs=30, weight_decay=5e-4, momentum=0.9,
        nesterov=True, schedule="cosine",
    ),
}
assert tuple(RECIPES) == MODEL_NAMES


def recipe_for(config: TrialConfig) -> Recipe:
    """The model's default recipe with the config's overrides applied."""
    recipe = RECIPES[config.model]
    overrides = {
        name: getattr(config, name)
        for name in ("epochs", "batch_size", "lr", "weight_decay")
        if getattr(config, name) is not None
    }
    return replace(recipe, **overrides)


def blog_cnn(channels: int, height: int, width: int, num_classes: int) -> nn.Module:
    if height % 4 or width % 4:
        raise ValueError(f"blog_cnn needs image sides divisible by 4 (two 2x2 max-pools), got {height}x{width}")
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * (height // 4) * (width // 4), 256), nn.ReLU(),
        nn.Linear(256, num_classes),
    )


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, momentum=0.4), nn.GELU()]


class _Scale(nn.Module):
    """Multiplies logits by a constant: keeps a bias-free head well conditioned at high learning rates."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def fast_cnn(channels: int, height: int, width: int, num_classes: int) -> nn.Module:
    if min(height, width) < 8:
        raise ValueError(f"fast_cnn needs images of at least 8x8 (three 2x2 max-pools), got {height}x{width}")
    widths = (64, 256, 256)
    layers: list[nn.Module] = _conv_bn(channels, 32)
    c_in = 32
    for c_out in widths:
        # conv, pool, conv: the pool sits between the convs so the second runs at a quarter of the cost.
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out, momentum=0.4), nn.GELU()]
        layers += _conv_bn(c_out, c_out)
        c_in = c_out
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes, bias=False), _Scale(1 / 9)]
    return nn.Sequential(*layers)


def resnet18(channels: int, height: int, width: int, num_classes: int) -> nn.Module:
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=num_classes)  # never downloads: no weights
    model.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


MODELS: dict[str, Callable[[int, int, int, int], nn.Module]] = {
    "blog_cnn": blog_cnn,
    "fast_cnn": fast_cnn,
    "resnet18": resnet18,
}
assert tuple(MODELS) == MODEL_NAMES


def build_model(name: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build ``name`` for images of shape (C, H, W) and K classes, with torch's current RNG state."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    channels, height, width = image_shape
    return MODELS[name](channels, height, width, num_classes)
