"""Batched trainer versus sequential plain runs, and k-ary versus bisection search.

Part 1: K = 8 networks of one architecture (8 learning rates) trained for one epoch as one stack
versus the same 8 trained one after another with the plain trainer: same total SGD steps.
Part 2: one full η* search (one architecture): Algorithm 1 (5 bisections, plain trainer) versus
k-ary (2 rounds of k = 8, batched trainer): wall time and final bracket width.
Both parts run side by side in this one process; ratios are printed, not absolute claims.
Usage: python bench/batched.py [--device cpu|cuda] [--dataset gaussian|mnist-shaped]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from milr.batched import Member, train_batched  # noqa: E402
from milr.data import payload_to_dataset  # noqa: E402
from milr.measure import measure_eta_star  # noqa: E402
from milr.model import build_model  # noqa: E402
from milr.records import SearchInputs  # noqa: E402
from milr.settings import TrainSettings  # noqa: E402
from milr.train import train_probe  # noqa: E402
from trainer import make_data  # noqa: E402

SIZES = [(3, 64), (5, 256), (10, 512)]
K = 8


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def one_epoch_each(data, depth: int, width: int, device: str) -> tuple[float, float, bool]:
    """Seconds for K sequential epochs and for one stacked epoch of K networks, and whether the
    two gave the same records bit for bit (they do on the CPU; a GPU may round otherwise)."""
    settings = TrainSettings(threshold=1.0, epochs=1)  # never reached: exactly one epoch
    init = build_model(data.in_dim, width, depth, data.num_classes, 0, device)
    lrs = [1e-3 * (i + 1) for i in range(K)]
    train_probe(copy.deepcopy(init), data, lrs[0], settings, 0)  # warm-up
    sync(device)
    start = time.perf_counter()
    alone = [train_probe(init, data, lr, settings, 0) for lr in lrs]
    sync(device)
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    stacked = train_batched([Member(init, lr, 0) for lr in lrs], data, settings)
    sync(device)
    same = all(
        (a.val_accuracy, repr(a.final_train_loss)) == (b.val_accuracy, repr(b.final_train_loss))
        for a, b in zip(alone, stacked, strict=True)
    )
    return sequential, time.perf_counter() - start, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dataset", choices=("gaussian", "mnist"), default="gaussian")
    parser.add_argument("--search-depth", type=int, default=4)
    parser.add_argument("--search-width", type=int, default=64)
    args = parser.parse_args()
    data = payload_to_dataset(make_data(args.dataset), args.device)
    print(f"device={args.device} threads={torch.get_num_threads()} data={args.dataset} K={K}")
    print(f"{'depth':>5} {'width':>5} {'8 sequential s':>15} {'batched s':>10} {'speed-up':>9}"
          f" {'same bits':>10}")  # fmt: skip
    for depth, width in SIZES:
        seq, bat, same = one_epoch_each(data, depth, width, args.device)
        print(f"{depth:>5} {width:>5} {seq:>15.2f} {bat:>10.2f} {seq / bat:>8.2f}x {same!s:>10}")

    base = dict(dataset=args.dataset, depth=args.search_depth, width=args.search_width, seed=0,
                threshold=0.85 if args.dataset == "gaussian" else 0.2, epochs=10,
                batch_size=128, upper=16.0 if args.dataset == "gaussian" else 2.0, lower=0.0,
                input_lr_scale=0.1)  # fmt: skip
    runs = {
        "bisect s=5 (plain)": SearchInputs.of(**base, iterations=5, trainer="plain"),
        "k-ary 2x8 (batched)": SearchInputs.of(
            **base, iterations=2, method="kary", k=8, trainer="batched"
        ),
    }
    print(f"\nsearch: depth {args.search_depth}, width {args.search_width}")
    print(f"{'mode':>20} {'wall s':>8} {'probes':>7} {'bracket':>22} {'width':>8}")
    timings = {}
    for name, inputs in runs.items():
        start = time.perf_counter()
        result = measure_eta_star(inputs, data)
        sync(args.device)
        timings[name] = time.perf_counter() - start
        bracket = f"[{result.bracket_low:.4g}, {result.bracket_high:.4g}]"
        width = result.bracket_high - result.bracket_low
        print(f"{name:>20} {timings[name]:>8.2f} {len(result.probes):>7} {bracket:>22} "
              f"{width:>8.4g}")  # fmt: skip
    names = list(timings)
    print(f"k-ary / bisect wall-time ratio: {timings[names[1]] / timings[names[0]]:.2f}")


if __name__ == "__main__":
    main()
