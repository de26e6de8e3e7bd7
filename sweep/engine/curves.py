"""Learning curves from the training passes: per epoch and class, what the model fits and memorises.

Label-noise research watches two things while a network trains on corrupted labels: how well it
fits the labels it is given, and when it starts to *memorise* the corrupted ones, predicting an
example's wrong label instead of its true class. Both are read here from the logits the training
step already computed for its loss (argmax and a scatter-add per batch on the trial's device), so
no extra forward pass is made and the host syncs once per epoch, not per step. The prediction is
the one of the batch's own forward pass, in train mode, on the augmented image, by a model that
changes during the epoch: the standard cheap proxy for "the model fits this example now", not a
separate evaluation of the finished epoch's model. Rows are indexed by the example's **true**
class: a class's ``memorised`` counts its images whose wrong label the model has learned.

A test-set curve (``TrialConfig.eval_every``) is a separate evaluation pass every N epochs; it does
not touch a random stream, the weights or the BatchNorm statistics, so the trial's result is the
same with it or without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sweep.contract import EPOCH_COUNT_COLUMNS

# Per-class counts of one epoch, columns of EpochStats.counts, in this order; each over the epoch's
# training examples of the row's true class (meanings: sweep.contract.EPOCHS_SCHEMA). A trailing
# batch of one, which the loop drops, is not counted.
COUNT_COLUMNS = EPOCH_COUNT_COLUMNS


@dataclass(frozen=True)
class EpochStats:
    """One epoch of one trial: per-class counts from the training passes, test counts if evaluated."""

    epoch: int  # 1-based
    epochs: int  # the trial's total
    seconds: float  # wall clock since training started, at the end of this epoch
    counts: np.ndarray  # int64 (K, len(COUNT_COLUMNS)), rows = true class
    loss_sum: np.ndarray  # float64 (K,): summed per-example training loss (as trained: label smoothing included)
    test_examples: np.ndarray | None = None  # int64 (K,): test images per class, when evaluated this epoch
    test_correct: np.ndarray | None = None  # int64 (K,): of those, classified correctly

    def column(self, name: str) -> np.ndarray:
        """One per-class count column by name (see COUNT_COLUMNS)."""
        return self.counts[:, COUNT_COLUMNS.index(name)]

    @property
    def train_loss(self) -> float:
        """Mean training loss over the epoch's examples."""
        return float(self.loss_sum.sum() / max(1, self.column("examples").sum()))

    @property
    def train_accuracy(self) -> float:
        """Share of the epoch's examples predicted as their given label."""
        return float(self.column("fitted").sum() / max(1, self.column("examples").sum()))

    @property
    def memorised_share(self) -> float:
        """Share of the corrupted examples predicted as their wrong label; NaN without corrupted examples."""
        corrupted = self.column("corrupted").sum()
        return float(self.column("memorised").sum() / corrupted) if corrupted else float("nan")

    @property
    def test_accuracy(self) -> float | None:
        """Test accuracy of this epoch's model, or None when the test set was not evaluated."""
        if self.test_examples is None:
            return None
        return float(self.test_correct.sum() / max(1, self.test_examples.sum()))

    def metrics(self) -> dict[str, float | int]:
        """Flat, trial-level numbers of the epoch (Tune's per-epoch report, loggers, progress lines)."""
        out: dict[str, float | int] = {
            "epoch": self.epoch, "train_loss": self.train_loss, "train_accuracy": self.train_accuracy,
            "memorised_share": self.memorised_share, "epoch_seconds": self.seconds,
        }
        if self.test_examples is not None:
            out["test_accuracy"] = self.test_accuracy
        return out


class CurveCounter:
    """Accumulates one epoch's per-class counts on the device, from each step's logits.

    ``update`` costs an argmax, a per-example cross-entropy on (B, K) logits and two index_add_
    per step, all on the trial's device and without a host sync; ``finish`` copies the (K, 5)
    counts to the host once and starts the next epoch.
    """

    def __init__(self, true_labels: torch.Tensor, given_labels: torch.Tensor, num_classes: int, *,
                 label_smoothing: float) -> None:
        device = given_labels.device
        self.true = true_labels.to(device)
        self.corrupted = (self.true != given_labels)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.counts = torch.zeros((num_classes, len(COUNT_COLUMNS)), dtype=torch.int64, device=device)
        self.loss = torch.zeros(num_classes, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, idx: torch.Tensor, logits: torch.Tensor, given: torch.Tensor) -> None:
        """Count the batch of training examples ``idx`` (their given labels ``given``, logits (B, K))."""
        logits = logits.detach().float()
        pred = logits.argmax(dim=1)
        true = self.true[idx]
        corrupted = self.corrupted[idx]
        fitted = pred == given
        flags = torch.stack([torch.ones_like(fitted), fitted, corrupted, corrupted & fitted,
                             corrupted & (pred == true)], dim=1).to(torch.int64)
        self.counts.index_add_(0, true, flags)
        loss = F.cross_entropy(logits, given, reduction="none", label_smoothing=self.label_smoothing)
        self.loss.index_add_(0, true, loss.double())

    def finish(self, epoch: int, epochs: int, seconds: float,
               test: tuple[np.ndarray, np.ndarray] | None = None) -> EpochStats:
        """The epoch's EpochStats (one host sync), and zeroed counters for the next epoch."""
        stats = EpochStats(
            epoch=epoch, epochs=epochs, seconds=seconds, counts=self.counts.cpu().numpy().copy(),
            loss_sum=self.loss.cpu().numpy().copy(),
            test_examples=None if test is None else np.asarray(test[0], dtype=np.int64),
            test_correct=None if test is None else np.asarray(test[1], dtype=np.int64),
        )
        self.counts.zero_()
        self.loss.zero_()
        return stats


def due_for_test(epoch: int, eval_every: int) -> bool:
    """Whether the test set is evaluated after ``epoch`` (1-based): every ``eval_every`` epochs; 0 = never."""
    return eval_every > 0 and epoch % eval_every == 0
