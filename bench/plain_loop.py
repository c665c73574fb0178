"""milr's trainer versus the plain paper-style loop, side by side, with a bit-for-bit check.

The plain loop is what a researcher writes for the paper: one network at a time, an
``nn.Module``, ``torch.optim.SGD`` with the input layer in its own parameter group, minibatches
sliced from device-resident tensors in the same seeded order, validation after every epoch.
milr trains the same seeds one by one (a stack of one each: ``--trainer plain``) and all at once
(a stack of K: ``--trainer stacked``). Every configuration runs in this one process, alternating
repeat by repeat, so machine noise hits all alike. Each repeat gives a paired ratio, plain-loop
time / milr time in that repeat (above 1: milr is faster); printed are the median of the repeats'
ratios and their range, which judges "faster" better than one run on a shared machine (its
runs move by 10-20%). The times are the repeats' medians. "same bits" compares every record's
accuracies and final loss with the plain loop's.
Usage: python bench/plain_loop.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from milr.batched import Member, required_correct, train_batched  # noqa: E402
from milr.data import make_gaussian, payload_to_dataset, shuffle_generator  # noqa: E402
from milr.model import build_model  # noqa: E402
from milr.records import TrainRecord  # noqa: E402
from milr.settings import GaussianSpec, TrainSettings  # noqa: E402
from milr.train import accuracy, make_sgd  # noqa: E402

SIZES = [(3, 64), (5, 256), (10, 512), (8, 1024)]


def plain_loop(model, data, lr: float, settings: TrainSettings, seed: int) -> TrainRecord:
    """The textbook loop: forward, loss, zero_grad, backward, optimiser step."""
    opt = make_sgd(model, lr, settings)
    gen = shuffle_generator(seed)
    n, bs = len(data.x_train), settings.batch_size
    needed = required_correct(settings.threshold, len(data.y_val))
    record = TrainRecord(lr=lr, success=False, diverged=False, epochs_run=0)
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(n, generator=gen).to(data.x_train.device)
        for begin in range(0, n, bs):
            idx = order[begin : begin + bs]
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        record.epochs_run = epoch
        record.final_train_loss = loss.item()
        if not torch.isfinite(loss):
            record.diverged, record.final_train_loss = True, float("nan")
            break
        acc = accuracy(model, data.x_val, data.y_val)
        record.val_accuracy.append(acc)
        if round(acc * len(data.y_val)) >= needed:
            record.success = True
            break
    return record


def run(trainer: str, inits, data, lr: float, settings: TrainSettings) -> list[TrainRecord]:
    seeds = range(len(inits))
    if trainer == "loop":
        return [
            plain_loop(copy.deepcopy(m), data, lr, settings, s)
            for m, s in zip(inits, seeds, strict=True)
        ]
    members = [Member(m, lr, s) for m, s in zip(inits, seeds, strict=True)]
    if trainer == "plain":
        return [train_batched([m], data, settings)[0] for m in members]
    return train_batched(members, data, settings)


def key(records: list[TrainRecord]) -> list[tuple]:
    """What must match to the bit. The loss is left out: the plain loop's reduction="mean" and
    milr's per-network mean of per-example losses may round the reported value differently,
    though the weights, and so every accuracy, are the same."""
    return [(r.val_accuracy, r.epochs_run, r.success, r.diverged) for r in records]


def sizes(text: str) -> list[tuple[int, int]]:
    """--sizes: DEPTHxWIDTH items, comma-separated ("3x64,10x512"), as (depth, width) pairs."""
    pairs = []
    for item in text.split(","):
        parts = item.split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"{item!r} is not DEPTHxWIDTH, e.g. 10x512")
        pairs.append((int(parts[0]), int(parts[1])))
    return pairs


def add_paired_options(
    parser: argparse.ArgumentParser, default_sizes: list[tuple[int, int]], repeats: int
) -> None:
    """--seeds, --repeats and --sizes, as this bench and bench/validation.py take them."""
    parser.add_argument("--seeds", type=int, default=3, help="networks (seeds) stacked per size")
    parser.add_argument("--repeats", type=int, default=repeats, help="paired repeats")
    parser.add_argument(
        "--sizes",
        type=sizes,
        default=",".join(f"{d}x{w}" for d, w in default_sizes),
        help="DEPTHxWIDTH, comma-separated",
    )


def paired(loop: list[float], milr: list[float]) -> str:
    """The median of the repeats' paired time ratios (loop or other / milr) and their range, as
    "1.02x [0.97-1.08]"."""
    ratios = [a / b for a, b in zip(loop, milr, strict=True)]
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--epochs", type=int, default=2, help="epochs each network trains")
    parser.add_argument("--dim", type=int, default=100, help="the Gaussian task's input dimension")
    add_paired_options(parser, SIZES, repeats=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = payload_to_dataset(make_gaussian(GaussianSpec(dim=args.dim)), "cpu")
    # t = 1.0 is never reached: every run trains all its epochs, like the loop it is timed with.
    settings = TrainSettings(threshold=1.0, epochs=args.epochs, input_lr_scale=0.1)
    print(
        f"threads={torch.get_num_threads()} gaussian dim={args.dim} n={len(data.x_train)} "
        f"seeds={args.seeds} epochs={args.epochs} torch={torch.__version__}"
    )
    print(f"{'arch':>8} {'loop s':>7} {'plain s':>8} {'stacked s':>9} "
          f"{'plain: median [range]':>22} {'stacked: median [range]':>24} "
          f"{'same bits':>10}")  # fmt: skip
    for depth, width in args.sizes:
        size = f"{depth}x{width}"
        inits = [
            build_model(data.in_dim, width, depth, data.num_classes, s) for s in range(args.seeds)
        ]
        lr = 0.02
        times: dict[str, list[float]] = {"loop": [], "plain": [], "stacked": []}
        results = {}
        warm = TrainSettings(threshold=1.0, epochs=1, input_lr_scale=0.1)
        for trainer in times:  # warm-up (allocator, kernels): one epoch of one seed
            run(trainer, inits[:1], data, lr, warm)
        for _ in range(args.repeats):
            for trainer, spent in times.items():
                start = time.perf_counter()
                results[trainer] = run(trainer, inits, data, lr, settings)
                spent.append(time.perf_counter() - start)
        loop, plain, stacked = (statistics.median(times[t]) for t in ("loop", "plain", "stacked"))
        same = key(results["loop"]) == key(results["plain"]) == key(results["stacked"]) and [
            repr(r.final_train_loss) for r in results["plain"]
        ] == [repr(r.final_train_loss) for r in results["stacked"]]
        print(
            f"{size:>8} {loop:>7.2f} {plain:>8.2f} {stacked:>9.2f} "
            f"{paired(times['loop'], times['plain']):>22} "
            f"{paired(times['loop'], times['stacked']):>24} {same!s:>10}"
        )


if __name__ == "__main__":
    main()
