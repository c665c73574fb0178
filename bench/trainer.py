"""milr.train's device-resident slicing versus the DataLoader loop a researcher would write.

Same model, data, learning rate and number of SGD steps; prints steps/s for both and the ratio
(ours / DataLoader) for each (depth, width). Both loops run in this one process, alternating,
so machine noise hits both alike. Usage: python bench/trainer.py [--device cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from milr.data import cache_payload, make_gaussian, payload_to_dataset  # noqa: E402
from milr.model import build_model  # noqa: E402
from milr.settings import GaussianSpec, TrainSettings  # noqa: E402
from milr.train import accuracy, sgd_step, train_probe  # noqa: E402

SIZES = [(3, 64), (5, 256), (10, 512)]


def dataloader_epoch(model, data, lr: float, batch_size: int, seed: int) -> int:
    """The straightforward loop: TensorDataset + shuffling DataLoader + torch.optim.SGD."""
    loader = DataLoader(
        TensorDataset(data.x_train.cpu(), data.y_train.cpu()),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    device = data.x_train.device
    steps = 0
    for xb, yb in loader:
        sgd_step(model, opt, xb.to(device), yb.to(device))  # the same step as milr's loop
        steps += 1
    accuracy(model.eval(), data.x_val, data.y_val)  # Algorithm 1 evaluates after every epoch
    return steps


def milr_epoch(model, data, lr: float, batch_size: int, seed: int) -> int:
    # threshold 1.0 is never reached: exactly one full epoch, like the loop above.
    settings = TrainSettings(threshold=1.0, epochs=1, batch_size=batch_size)
    train_probe(model, data, lr, settings, seed)
    return -(-len(data.x_train) // batch_size)


def timed(fn, model, data, lr, seed) -> float:
    if data.x_train.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    steps = fn(copy.deepcopy(model), data, lr, 128, seed)
    if data.x_train.is_cuda:
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def make_data(shape: str) -> dict:
    """MNIST-shaped random uint8 images (60k x 784, 10 classes; no download needed), or the
    Gaussian task (18k x 32, 2 classes)."""
    if shape == "gaussian":
        return make_gaussian(GaussianSpec())
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (70_000, 784), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, 10, (70_000,), generator=gen)
    return cache_payload("mnist", x[:60_000], y[:60_000], x[60_000:], y[60_000:], 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", choices=("mnist", "gaussian"), default="mnist")
    args = parser.parse_args()
    data = payload_to_dataset(make_data(args.shape), args.device)
    shape = tuple(data.x_train.shape)
    print(f"device={args.device} threads={torch.get_num_threads()} {args.shape} data={shape}")
    print(f"{'depth':>5} {'width':>5} {'dataloader steps/s':>19} {'milr steps/s':>13} {'ratio':>6}")
    for depth, width in SIZES:
        model = build_model(data.in_dim, width, depth, data.num_classes, 0, args.device)
        lr = 0.01
        timed(milr_epoch, model, data, lr, 0)  # warm-up (allocator, kernels)
        ours, theirs = [], []
        for rep in range(args.repeats):
            theirs.append(timed(dataloader_epoch, model, data, lr, rep))
            ours.append(timed(milr_epoch, model, data, lr, rep))
        best_ours, best_theirs = max(ours), max(theirs)
        print(
            f"{depth:>5} {width:>5} {best_theirs:>19.1f} {best_ours:>13.1f} "
            f"{best_ours / best_theirs:>5.2f}x"
        )


if __name__ == "__main__":
    main()
