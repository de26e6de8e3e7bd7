"""The three models, built for the dataset (their recipes and input rules: sweep.engine.recipes).

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

from typing import Callable

import torch
from torch import nn

from sweep.engine.recipes import MODEL_NAMES, check_image_size


def blog_cnn(channels: int, height: int, width: int, num_classes: int) -> nn.Module:
    check_image_size("blog_cnn", height, width)
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
    check_image_size("fast_cnn", height, width)
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
