"""A training job's memory, estimated from its settings before any data is loaded.

A width no machine can hold (``--width 1000000000``) should stop at validation, in one line, not
after minutes of data loading with the allocator's message. The estimate counts what the trainer
keeps in float32 for every network it trains at once: the weights, their gradients and the
backward's temporaries, and the validation pass's activations. It is a floor, not a bound: a job
near the limit can still run out, but a job over it cannot fit.

Imports nothing heavy: the workflow's config validation uses it.
"""

from __future__ import annotations

import os

from milr import MilrError

# Validation rows per forward pass: bounds the K x rows x width activation memory.
EVAL_CHUNK = 4096
FLOAT_BYTES = 4
# Input features and classes of the datasets whose shape is fixed (the Gaussian task's input
# dimension is one of its settings).
SHAPES = {
    "mnist": (784, 10),
    "fashion_mnist": (784, 10),
    "cifar10": (3072, 10),
    "mnist1d": (40, 10),
}


def dataset_shape(dataset: str, gaussian_dim: int) -> tuple[int, int]:
    """(input features, classes) of ``dataset``."""
    return SHAPES.get(dataset, (gaussian_dim, 2))


def parameters(in_dim: int, width: int, depth: int, classes: int) -> int:
    """Weights and biases of the depth x width ReLU network (``depth`` hidden layers)."""
    return (in_dim + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * classes


def training_bytes(
    in_dim: int, width: int, depth: int, classes: int, networks: int = 1, batch_size: int = 128
) -> int:
    """Float32 bytes the trainer holds for ``networks`` networks trained at once."""
    per_network = 3 * parameters(in_dim, width, depth, classes)  # weights, gradients, backward
    per_network += 2 * max(EVAL_CHUNK, batch_size * depth) * width  # two layers' activations
    return FLOAT_BYTES * networks * per_network


def networks_at_once(seeds: int, method: str, k: int, trainer: str) -> int:
    """Networks one search job trains at once: its seeds times a round's probes (k for k-ary),
    stacked by the batched trainer; the plain trainer trains one at a time."""
    return seeds * (k if method == "kary" else 1) if trainer == "batched" else 1


def machine_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def gib(n: float) -> str:
    size = n / 2**30
    return f"{size:,.0f} GiB" if size >= 100 else f"{size:.3g} GiB"


def check_fits(
    dataset: str,
    gaussian_dim: int,
    depth: int,
    width: int,
    networks: int,
    limit: int | None = None,
    where: str = "--width",
) -> None:
    """Raise a one-line error when the job cannot fit in ``limit`` bytes (default: this
    machine's memory)."""
    limit = machine_bytes() if limit is None else limit
    in_dim, classes = dataset_shape(dataset, gaussian_dim)
    need = training_bytes(in_dim, width, depth, classes, networks)
    if need > limit:
        several = f" ({networks} networks at once)" if networks > 1 else ""
        raise MilrError(
            f"{where}: a {depth} x {width} network on {dataset}{several} needs at least "
            f"{gib(need)} to train, more than the {gib(limit)} available: lower the width"
            + (" or train fewer networks at once" if networks > 1 else "")
        )
