"""The validation pass: the trainer's products against batched products, side by side.

Every epoch of every probe ends with validation accuracy measured on the whole validation set
for every network of the stack. milr runs it with the training step's products
(``StackedMLP.forward``: a wide layer network by network with 2-D products); until 2026-12-05 it
ran ``milr.model.relu_mlp``'s batched products over the stack. This script times the two on the
same stack and inputs, alternating repeat by repeat, and prints the median of the repeats' paired
ratios (batched time / milr time; above 1: milr is faster) with their range, and whether the two
gave the same logits bit for bit. Default: the wide study's setting (MNIST-1D's 40 inputs and
1,000 validation rows, 3 seeds stacked) on 1 and 2 threads.
Usage: python bench/validation.py [--threads 1,2] [--rows 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from milr.batched import StackedMLP  # noqa: E402
from milr.model import build_model, relu_mlp  # noqa: E402
from plain_loop import add_paired_options, paired  # noqa: E402

SIZES = [(3, 64), (4, 512), (8, 1024)]


def batched(stack: StackedMLP, x: torch.Tensor) -> torch.Tensor:
    """The previous validation pass: relu_mlp's batched products over the whole stack."""
    with torch.no_grad():
        return relu_mlp(x, zip(stack.weights, stack.biases, strict=True))


def milr(stack: StackedMLP, x: torch.Tensor) -> torch.Tensor:
    return stack.forward(x)


def thread_counts(text: str) -> list[int]:
    """--threads: positive integers, comma-separated."""
    if not all(t.isdigit() and int(t) > 0 for t in text.split(",")):
        raise argparse.ArgumentTypeError(f"{text!r} is not thread counts, e.g. 1,2")
    return [int(t) for t in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=thread_counts, default="1,2", help="thread counts, comma-separated"
    )
    parser.add_argument("--rows", type=int, default=1000, help="validation rows")
    parser.add_argument("--in-dim", type=int, default=40, help="input features")
    add_paired_options(parser, SIZES, repeats=7)
    args = parser.parse_args()
    print(
        f"validation of {args.seeds} stacked networks, {args.rows} rows x {args.in_dim} inputs, "
        f"10 classes; median of {args.repeats} paired repeats; torch={torch.__version__}"
    )
    print(f"{'threads':>7} {'arch':>7} {'batched ms':>10} {'milr ms':>8} "
          f"{'batched / milr: median [range]':>31} {'same bits':>10}")  # fmt: skip
    x = torch.randn(args.seeds, args.rows, args.in_dim, generator=torch.Generator().manual_seed(0))
    for threads in args.threads:
        torch.set_num_threads(threads)
        for depth, width in args.sizes:
            size = f"{depth}x{width}"
            stack = StackedMLP(
                [build_model(args.in_dim, width, depth, 10, s) for s in range(args.seeds)]
            )
            same = torch.equal(batched(stack, x), milr(stack, x))  # and a warm-up of both
            times: dict[str, list[float]] = {"batched": [], "milr": []}
            for repeat in range(args.repeats):
                for name in ("batched", "milr") if repeat % 2 == 0 else ("milr", "batched"):
                    start = time.perf_counter()
                    (batched if name == "batched" else milr)(stack, x)
                    times[name].append(time.perf_counter() - start)
            print(
                f"{threads:>7} {size:>7} {statistics.median(times['batched']) * 1e3:>10.2f} "
                f"{statistics.median(times['milr']) * 1e3:>8.2f} "
                f"{paired(times['batched'], times['milr']):>31} {same!s:>10}"
            )


if __name__ == "__main__":
    main()
