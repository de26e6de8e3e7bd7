"""The training loop and evaluation: data resident on the device, batched augmentation, no
per-sample Python.

Images stay uint8 on the trial's device; each batch is gathered, augmented (random crop with
padding, horizontal flip) and normalized there in a few tensor operations. All random draws of an
epoch (order, crop offsets, flips) come from the trial's ``batches`` stream in one go at the start
of the epoch, so the loop never waits on the host for randomness. Mixed precision (bf16 autocast)
is used on CUDA only; on CPU the loop stays in float32 and the thread count is the trial's.
Channels-last layout, fused optimizers and a small CPU evaluation batch (large ones spill the L2
cache) were each chosen by measurement: BENCHMARKS.md, "CPU levers". Each step's logits also feed the
epoch's learning-curve counts (``sweep.engine.curves``) on the device, read once per epoch.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sweep.engine.curves import CurveCounter, EpochStats, due_for_test
from sweep.engine.recipes import Recipe

EpochCallback = Callable[[EpochStats], None]  # called after each epoch with its learning-curve record
# The model to score -> (test images per class, of those correct), both int64 (K,).
TestEvaluator = Callable[[nn.Module], tuple[np.ndarray, np.ndarray]]


def crop_padding(height: int) -> int:
    """Translation range of the random crop: 4 pixels for 32x32 images, scaled for other sizes."""
    return max(1, round(height / 8))


def normalize_stats(images_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images (N, C, H, W), shaped (1, C, 1, 1), in [0, 1] units.

    Exact, from a 256-bin histogram per channel: no float copy of the images (which would be
    4 bytes per pixel, 590 MiB for 50,000 CIFAR-10 images).
    """
    channels = images_u8.shape[1]
    counts = torch.stack(
        [torch.bincount(images_u8[:, c].reshape(-1), minlength=256) for c in range(channels)]
    ).double()
    values = torch.arange(256, dtype=torch.float64, device=images_u8.device) / 255
    n = counts.sum(dim=1)
    mean = (counts * values).sum(dim=1) / n
    var = (counts * (values - mean[:, None]) ** 2).sum(dim=1) / (n - 1).clamp_min(1)
    shape = (1, channels, 1, 1)
    return mean.float().view(shape), var.sqrt().clamp_min(1e-3).float().view(shape)


def augment_batch(x_u8: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and mirror of a uint8 batch, vectorized over the batch.

    ``shifts`` is (B, 2) integer offsets in [0, 2 * pad], ``flips`` (B,) bool.
    """
    b, c, h, w = x_u8.shape
    padded = F.pad(x_u8, (pad, pad, pad, pad))
    rows = (shifts[:, 0:1] + torch.arange(h, device=x_u8.device)).view(b, 1, h, 1)
    cols = (shifts[:, 1:2] + torch.arange(w, device=x_u8.device)).view(b, 1, 1, w)
    # Mirroring is a reversed column index, folded into the same gather.
    cols = torch.where(flips.view(b, 1, 1, 1), 2 * pad + w - 1 - cols, cols)
    # Two gathers along one axis each over expanded (not materialized) indices: half the time of
    # one 4-D advanced index on the CPU, same pixels.
    x = padded.gather(2, rows.expand(b, c, h, w + 2 * pad))
    return x.gather(3, cols.expand(b, c, h, w))


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    # No weight decay on BatchNorm parameters and biases: the usual, and it matters at high lr.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # Fused kernels: one pass over each parameter per step instead of one op per update term,
    # on the CPU and on CUDA alike.
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, fused=True)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                               fused=True)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; allowed: adam, sgd")


def lr_factor(recipe: Recipe, step: int, total: int) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` of ``total``: a linear warm-up
    over the first ``recipe.warmup`` of the steps, then the schedule over the rest."""
    progress = step / max(1, total)
    if recipe.warmup > 0 and progress < recipe.warmup:
        return progress / recipe.warmup
    after = (progress - recipe.warmup) / (1 - recipe.warmup)  # 0 -> 1 over the steps after the warm-up
    if recipe.schedule == "constant":
        return 1.0
    if recipe.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * after))
    if recipe.schedule == "triangle":
        return max(0.0, 1 - after)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; allowed: constant, cosine, triangle")


def steps_per_epoch(n: int, recipe: Recipe) -> int:
    """Optimizer steps of one full pass over ``n`` examples in the recipe's batches (at most ``n``
    each); a trailing batch of one is dropped, as BatchNorm cannot train on it."""
    batch = min(recipe.batch_size, n)
    return n // batch + (1 if n % batch > 1 else 0)


def total_steps(n: int, recipe: Recipe) -> int:
    """Optimizer steps of a training run on ``n`` examples: ``recipe.steps`` when the recipe fixes
    them (a budget equal for every train size), else ``recipe.epochs`` full passes. The learning-rate
    schedule, the warm-up and the weight average run over this total."""
    return recipe.steps if recipe.steps is not None else steps_per_epoch(n, recipe) * recipe.epochs


def passes(n: int, recipe: Recipe) -> int:
    """Passes over the ``n`` examples the run begins (one learning-curve record each): ``recipe.epochs``,
    or under a steps budget as many as the steps need, the last one cut short."""
    return -(-total_steps(n, recipe) // steps_per_epoch(n, recipe))


def epochs_trained(n: int, recipe: Recipe) -> float:
    """Passes over the ``n`` examples the run makes, counted in steps: fractional when the last is cut short."""
    return total_steps(n, recipe) / steps_per_epoch(n, recipe)


def train_model(
    model: nn.Module,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    *,
    recipe: Recipe,
    mean: torch.Tensor,
    std: torch.Tensor,
    augment: bool,
    generator: torch.Generator,
    curves: CurveCounter | None = None,
    on_epoch: EpochCallback | None = None,
    evaluate: TestEvaluator | None = None,
    eval_every: int = 0,
) -> float:
    """Train ``model`` in place on uint8 images (N, C, H, W) already on the model's device.

    With ``curves``, each step's logits also feed the epoch's learning-curve counts
    (``sweep.engine.curves``) and ``on_epoch`` gets the epoch's :class:`EpochStats`; with
    ``evaluate`` and ``eval_every`` N > 0, the model that would be evaluated now (the weight
    average when the recipe keeps one) is scored on the test set after every N-th epoch, which
    draws no random numbers and changes no weight or BatchNorm statistic.
    The run takes :func:`total_steps` optimizer steps in passes over a fresh order each; under a
    steps budget the last pass stops when the total is reached, and its record (and the loss
    returned) covers the batches it took.
    Returns the training loss of the last epoch (mean over its batches).
    """
    if (on_epoch is not None or evaluate is not None) and curves is None:
        raise ValueError("on_epoch and evaluate need curves (a CurveCounter over the training labels)")
    device = images_u8.device
    cuda = device.type == "cuda"
    n, _, height, _ = images_u8.shape
    pad = crop_padding(height)
    batch = min(recipe.batch_size, n)
    per_epoch, total, epochs = steps_per_epoch(n, recipe), total_steps(n, recipe), passes(n, recipe)
    # channels_last pays on the CPU (oneDNN's NHWC kernels) as on CUDA; converting before the
    # optimizer is built keeps the optimizer's state in the same layout as its parameters.
    memory_format = torch.channels_last
    model.to(memory_format=memory_format)
    optimizer = make_optimizer(model, recipe)
    # The weights' moving average, buffers included (BatchNorm statistics), when the recipe asks.
    average = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(recipe.ema), use_buffers=True)
        if recipe.ema > 0 else None)
    model.train()
    step, started, last_loss = 0, time.perf_counter(), float("nan")
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator).to(device, non_blocking=True)
        shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(device, non_blocking=True)
        flips = (torch.rand(n, generator=generator) < 0.5).to(device, non_blocking=True)
        loss_sum = torch.zeros((), device=device)
        taken = min(per_epoch, total - step)  # this pass's steps
        for i in range(taken):
            idx = order[i * batch : (i + 1) * batch]
            x = images_u8[idx]
            if augment:
                x = augment_batch(x, shifts[idx], flips[idx], pad)
            x = ((x.float() / 255 - mean) / std).contiguous(memory_format=memory_format)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * lr_factor(recipe, step, total)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(x)
            y = labels[idx]
            loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            loss_sum += loss.detach()
            if curves is not None:
                curves.update(idx, logits, y)  # learning curves from this pass's logits: no extra pass
            step += 1
        last_loss = float(loss_sum) / taken  # one host sync per epoch
        if curves is not None:
            test = None
            if evaluate is not None and due_for_test(epoch + 1, eval_every):
                scored = average.module if average is not None else model
                test = evaluate(scored)
                scored.train()  # back to training mode (BatchNorm batch statistics) for the next epoch
                model.train()
            stats = curves.finish(epoch + 1, epochs, time.perf_counter() - started, test)
            if on_epoch is not None:
                on_epoch(stats)
    if average is not None:  # what gets evaluated is the average
        model.load_state_dict(average.module.state_dict())
    return last_loss


# Evaluation images per forward pass: small on the CPU, where a batch's activations should stay in
# cache (blog_cnn, 1 thread: 5.2 s per 10,000 images at 128, 7.1 at 256, 14.9 at 1,000), large on CUDA.
EVAL_BATCH_SIZE = {"cpu": 128, "cuda": 2000}


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    images_u8: torch.Tensor,
    *,
    mean: torch.Tensor,
    std: torch.Tensor,
    tta: bool,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Softmax probabilities (N, K) in float32; with ``tta`` averaged over the image and its mirror.

    ``batch_size`` defaults to ``EVAL_BATCH_SIZE`` of the images' device type.
    """
    cuda = images_u8.device.type == "cuda"
    if batch_size is None:
        batch_size = EVAL_BATCH_SIZE.get(images_u8.device.type, 1000)
    memory_format = torch.channels_last
    model.to(memory_format=memory_format)
    model.eval()
    out = []
    for start in range(0, len(images_u8), batch_size):
        x = ((images_u8[start : start + batch_size].float() / 255 - mean) / std).contiguous(memory_format=memory_format)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(3)).float()) / 2
        out.append(torch.softmax(logits, dim=1))
    return torch.cat(out).float()
