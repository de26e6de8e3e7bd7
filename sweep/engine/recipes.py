"""The models' names, the inputs they accept, and their default training recipes: no torch here.

The model builders live in ``sweep.engine.models`` (PyTorch); everything a config or a fit check
needs to know about a model without building it lives here, so that validating a trial or a whole
grid never imports torch. ``RECIPES`` is the registry: its keys are the model names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweep.engine.config import TrialConfig


@dataclass(frozen=True)
class Recipe:
    """How a model is trained by default, and the images it takes; a TrialConfig's RECIPE_OVERRIDES replace
    its training fields.

    The budget is ``epochs`` full passes over the subset unless ``steps`` is set: then exactly that
    many optimizer steps, whatever the subset's size, and ``epochs`` is not used
    (``sweep.engine.train.total_steps``).
    """

    optimizer: str  # "adam" | "sgd"
    lr: float  # peak learning rate, for the batch size below
    batch_size: int  # examples per optimizer step
    epochs: int  # passes over the training subset
    weight_decay: float = 0.0  # L2 coefficient (plain torch.optim semantics)
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    schedule: str = "constant"  # one of SCHEDULES: the learning rate after the warm-up
    warmup: float = 0.0  # share of all steps spent warming up linearly from 0, in [0, 1)
    label_smoothing: float = 0.0  # cross-entropy label smoothing, in [0, 1)
    tta: bool = False  # average predictions over the image and its mirror at test time
    batchnorm: bool = False  # has BatchNorm layers: a training batch needs at least 2 examples
    side_multiple: int = 1  # pixels: each image side must be a multiple of this (1 = any)
    min_side: int = 1  # pixels: the smallest image side the model takes
    size_reason: str = ""  # why the two limits above, for the error (e.g. "two 2x2 max-pools")
    ema: float = 0.0  # decay per optimizer step of an exponential moving average of the weights,
    # which is what gets evaluated; 0 = off (the last step's weights)
    steps: int | None = None  # optimizer steps in all, replacing epochs; None = the epochs budget


# The learning rate after the warm-up, as a share of the peak: constant; cosine to 0; triangle, a
# straight line to 0 (with a warm-up, the speed-run records' triangle).
SCHEDULES = ("constant", "cosine", "triangle")
RECIPE_OVERRIDES = ("epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup", "ema", "steps")  # TrialConfig fields


RECIPES: dict[str, Recipe] = {
    # Adam at its textbook learning rate, as a small Keras-style reference CNN is usually trained.
    "blog_cnn": Recipe(optimizer="adam", lr=1e-3, batch_size=128, epochs=15, side_multiple=4,
                       size_reason="two 2x2 max-pools"),
    # Short, aggressive schedule; batch and rate chosen by measurement (BENCHMARKS.md, recipe probe).
    "fast_cnn": Recipe(
        optimizer="sgd", lr=0.4, batch_size=1024, epochs=10, weight_decay=5e-4, momentum=0.9,
        nesterov=True, schedule="triangle", warmup=0.2, label_smoothing=0.2, tta=True, batchnorm=True,
        min_side=8, size_reason="three 2x2 max-pools",
    ),
    # The usual CIFAR ResNet-18 recipe, shortened.
    "resnet18": Recipe(
        optimizer="sgd", lr=0.1, batch_size=128, epochs=30, weight_decay=5e-4, momentum=0.9,
        nesterov=True, schedule="cosine", batchnorm=True,
    ),
}
MODEL_NAMES = tuple(RECIPES)
BATCHNORM_MODELS = tuple(name for name, recipe in RECIPES.items() if recipe.batchnorm)


def _names(names: tuple[str, ...]) -> str:
    """``a``, ``a and b``, ``a, b and c``: model names in a sentence."""
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1]))) if names else ""


def check_image_size(model: str, height: int, width: int) -> None:
    """Raise ValueError when ``model`` cannot take images of ``height`` x ``width`` pixels (its recipe's limits)."""
    recipe = RECIPES[model]
    why = f" ({recipe.size_reason})" if recipe.size_reason else ""
    if height % recipe.side_multiple or width % recipe.side_multiple:
        raise ValueError(f"{model} needs image sides divisible by {recipe.side_multiple}{why}, got {height}x{width}")
    if min(height, width) < recipe.min_side:
        raise ValueError(f"{model} needs images of at least {recipe.min_side}x{recipe.min_side}{why}, "
                         f"got {height}x{width}")


def batchnorm_help() -> str:
    """Which models need two examples per batch, for a --batch-size help text."""
    many = len(BATCHNORM_MODELS) > 1
    return f"the BatchNorm model{'s' if many else ''} {_names(BATCHNORM_MODELS)}" if BATCHNORM_MODELS else "no model"


def batchnorm_message(model: str, got: str) -> str:
    """The error for a BatchNorm model whose training batches would hold one example."""
    plain = tuple(name for name in MODEL_NAMES if name not in BATCHNORM_MODELS)
    other = (f", or model{'s' if len(plain) > 1 else ''} {_names(plain)}, which "
             f"{'have' if len(plain) > 1 else 'has'} no BatchNorm" if plain else "")
    return f"{model} has BatchNorm layers and needs at least 2 examples per batch; got {got} (allowed: >= 2{other})"


def recipe_for(config: "TrialConfig") -> Recipe:
    """The model's default recipe with the config's overrides applied."""
    overrides = {name: getattr(config, name) for name in RECIPE_OVERRIDES if getattr(config, name) is not None}
    return replace(RECIPES[config.model], **overrides)
