"""The plain baseline: one CIFAR-10 trial written the way most PyTorch users write it today.

A torchvision-style ``Dataset`` over the JPEG bytes of the Parquet file, per-sample PIL transforms
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), a ``DataLoader``, the
textbook training loop and an evaluation loop over a test ``DataLoader`` that decodes every JPEG
again. Same model (blog_cnn, written out below in the study's layer order, ReLU before each
max-pool; the project's ``build_model`` pools first, which gives identical outputs and gradients),
PyTorch's default initialization (seeded by ``torch.manual_seed(seed)`` as a script does, so not
the trial's own init stream), same optimizer (Adam, lr 1e-3), same batch size (128), same epochs
and the same training examples (``sweep.engine.subsets.nested_subset``) as the project's trial, so the
two differ only in how the work is done.

Nothing is cached between calls: each trial reads and decodes its JPEGs, as a user's script does
every time it runs. ``bench/bench_trial.py`` times it against ``sweep.engine.trial.run_trial``.

Run alone (from the repository root)::

    python bench/baseline_trial.py --data ../shared/data/cifar10-jpeg --train-size 5000 --epochs 2
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `sweep`

from sweep.engine.subsets import nested_subset  # noqa: E402

# The usual published CIFAR-10 channel statistics, in [0, 1] units (what tutorials paste in).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def read_parquet_split(path: str | Path) -> tuple[list[bytes], np.ndarray, tuple[str, ...]]:
    """JPEG bytes, int64 labels and class names (alphabetical: CIFAR-10's index order) of one split."""
    table = pq.read_table(path, columns=["image", "label"])
    images = table.column("image").to_pylist()
    names = [str(v) for v in table.column("label").to_pylist()]
    classes = tuple(sorted(set(names)))
    lookup = {c: i for i, c in enumerate(classes)}
    return images, np.array([lookup[n] for n in names], dtype=np.int64), classes


def reference_blog_cnn(num_classes: int = 10) -> nn.Module:
    """The reference study's 6-layer CNN as its authors (and most users) write it, for 32x32 RGB."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 256), nn.ReLU(),
        nn.Linear(256, num_classes),
    )


class JpegDataset(Dataset):
    """Decodes one JPEG with PIL and applies ``transform`` per sample, in ``__getitem__``."""

    def __init__(self, images: list[bytes], labels: np.ndarray, transform: transforms.Compose) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.open(io.BytesIO(self.images[i])).convert("RGB")
        return self.transform(image), int(self.labels[i])


def run_baseline(
    data_dir: str | Path,
    *,
    train_size: int = 5000,
    epochs: int = 2,
    seed: int = 0,
    batch_size: int = 128,
    eval_batch_size: int = 128,
    num_workers: int = 0,
    lr: float = 1e-3,
) -> dict[str, float]:
    """Train blog_cnn on ``train_size`` examples for ``epochs`` and evaluate on the whole test set.

    Returns {"accuracy", "seconds", "load_seconds", "train_seconds", "eval_seconds"}; seconds are
    wall clock and include reading the Parquet files (the script's decoding happens in the loaders).
    """
    started = time.perf_counter()
    data_dir = Path(data_dir)
    train_bytes, train_labels, classes = read_parquet_split(data_dir / "train.parquet")
    test_bytes, test_labels, _ = read_parquet_split(data_dir / "test.parquet")
    # The same examples as the project's trial of this seed and size.
    subset = nested_subset(train_labels, train_size, seed=seed)
    normalize = transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)
    train_tf = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize,
    ])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    train_set = JpegDataset([train_bytes[i] for i in subset], train_labels[subset], train_tf)
    test_set = JpegDataset(test_bytes, test_labels, test_tf)
    persistent = num_workers > 0
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                              persistent_workers=persistent)
    test_loader = DataLoader(test_set, batch_size=eval_batch_size, shuffle=False, num_workers=num_workers)
    torch.manual_seed(seed)  # a user's script seeds the global state; fine in a script
    model = reference_blog_cnn(len(classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loaded = time.perf_counter()

    model.train()
    for _ in range(epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    trained = time.perf_counter()

    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += int((model(x).argmax(dim=1) == y).sum())
    done = time.perf_counter()
    return {
        "accuracy": correct / len(test_set),
        "seconds": done - started,
        "load_seconds": loaded - started,
        "train_seconds": trained - loaded,
        "eval_seconds": done - trained,
    }


def main(argv: list[str] | None = None) -> int:
    from _cli import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg", help="folder with train/test.parquet")
    parser.add_argument("--train-size", type=int, default=5000, help="training examples")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (>= 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (>= 1); default: torch's own")
    parser.add_argument("--trials", type=int, default=1,
                        help="trials in a row in this process, seeds SEED, SEED+1, ... (>= 1): the first pays the "
                             "process's one-time costs, later ones run warm")
    parser.add_argument("--json", action="store_true", help="print each result as one JSON object per line")
    args = parser.parse_args(argv)
    for name, low in (("train_size", 1), ("epochs", 1), ("seed", 0), ("workers", 0), ("trials", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if not (Path(args.data) / "train.parquet").is_file():
        parser.error(f"{Path(args.data) / 'train.parquet'} not found; pass --data DIR with train/test.parquet")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for trial in range(args.trials):
        out = run_baseline(args.data, train_size=args.train_size, epochs=args.epochs, seed=args.seed + trial,
                           num_workers=args.workers)
        out["threads"] = torch.get_num_threads()
        print(json.dumps(out) if args.json else " ".join(f"{k}={v:.4f}" for k, v in out.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
