"""The learning-rate range test people use today instead of measuring η*: the baseline.

Smith (2017), as fastai's ``lr_find``, PyTorch Lightning's ``Tuner.lr_find`` and the
torch-lr-finder package run it: one SGD step per minibatch at a learning rate growing
exponentially from ``start_lr`` towards ``end_lr``, the training loss of each step smoothed
(``smooth`` x new + (1 - ``smooth``) x previous), stopping once the smoothed loss exceeds
``diverge`` x its best. Two suggestions are read off the curve: the rate of steepest descent
(torch-lr-finder's, skipping the first 10 and last 5 points) and the rate of the minimum / 10
(fastai's ``lr_min``).

Why our own loop and not torch-lr-finder: its ramp moves every parameter group towards the same
``end_lr``, so the input layer's factor (the paper's condition ii) would not stay fixed; and the
data stays on the device as in our trainer. ``tests/test_range_test.py`` checks this loop against
torch-lr-finder step for step on a network where the two must agree (factor 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np
import torch

from milr import MilrError
from milr.data import Dataset, shuffle_generator
from milr.io import Provenance
from milr.model import ReLUMLP, build_model
from milr.numerics import pin_float32, thread_count_free
from milr.records import RangeTestInputs, RangeTestResult
from milr.settings import RangeTestSettings, TrainSettings
from milr.train import make_sgd, sgd_step

SKIP_START, SKIP_END = 10, 5  # torch-lr-finder's defaults for its suggestion


def ramp(settings: RangeTestSettings) -> np.ndarray:
    """The learning rate of every step: start_lr x (end_lr / start_lr)^(i / (steps - 1))."""
    if settings.end_lr <= settings.start_lr:
        raise MilrError(
            f"range test: end_lr {settings.end_lr:g} must exceed start_lr {settings.start_lr:g}"
        )
    fraction = np.arange(settings.steps) / (settings.steps - 1)
    return settings.start_lr * (settings.end_lr / settings.start_lr) ** fraction


def minibatches(
    data: Dataset, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Minibatches without end, reshuffled every epoch with the search's own generator."""
    gen = shuffle_generator(seed)
    n = len(data.x_train)
    while True:
        order = torch.randperm(n, generator=gen).to(data.x_train.device)
        for begin in range(0, n - batch_size + 1, batch_size):
            batch = order[begin : begin + batch_size]
            yield data.x_train[batch], data.y_train[batch]


def run_ramp(
    model: ReLUMLP,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    settings: RangeTestSettings,
    input_lr_scale: float,
    momentum: float,
) -> tuple[list[float], list[float], bool]:
    """(lrs, smoothed losses, diverged) of one range test on ``model`` (trained in place)."""
    lrs = ramp(settings)
    # the search's optimiser (threshold is unused by an optimiser)
    train = TrainSettings(threshold=1.0, input_lr_scale=input_lr_scale, momentum=momentum)
    opt = make_sgd(model, float(lrs[0]), train)
    factors = [group["lr"] / lrs[0] for group in opt.param_groups]  # each group's share of lr
    losses: list[float] = []
    best = math.inf
    for lr, (x, y) in zip(lrs, batches, strict=False):
        for group, factor in zip(opt.param_groups, factors, strict=True):
            group["lr"] = float(lr) * factor
        loss = float(sgd_step(model, opt, x, y).detach())
        if losses and math.isfinite(loss):
            loss = settings.smooth * loss + (1 - settings.smooth) * losses[-1]
        losses.append(loss)
        best = min(best, loss)
        if not math.isfinite(loss) or loss > settings.diverge * best:
            return lrs[: len(losses)].tolist(), losses, True
    return lrs.tolist(), losses, False


def suggestions(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steepest descent, minimum / 10) of a smoothed curve; NaN where the curve is too short."""
    finite = [(lr, loss) for lr, loss in zip(lrs, losses, strict=True) if math.isfinite(loss)]
    if not finite:
        return math.nan, math.nan
    lr_arr, loss_arr = np.array(finite).T
    minimum = float(lr_arr[np.argmin(loss_arr)]) / 10
    trimmed = loss_arr[SKIP_START:-SKIP_END]
    if len(trimmed) < 2:
        return math.nan, minimum
    steepest = float(lr_arr[SKIP_START:-SKIP_END][np.gradient(trimmed).argmin()])
    return steepest, minimum


def lr_range_test(inputs: RangeTestInputs, data: Dataset) -> RangeTestResult:
    """Run the range test on the freshly initialised network of ``inputs`` (same seed, data
    order and batch size as its η* search)."""
    pin_float32()
    start = time.perf_counter()
    net = inputs.network
    device = data.x_train.device
    if len(data.x_train) < inputs.batch_size:
        raise MilrError(f"range test: {len(data.x_train)} training samples < one minibatch")
    model = build_model(data.in_dim, net.width, net.depth, data.num_classes, net.seed, device)
    batches = minibatches(data, inputs.batch_size, net.seed)
    with thread_count_free(str(device)):
        lrs, losses, diverged = run_ramp(
            model, batches, inputs.range_test, inputs.input_lr_scale, inputs.momentum
        )
    steepest, minimum_over_10 = suggestions(lrs, losses)
    return RangeTestResult(
        inputs=inputs,
        lrs=lrs,
        losses=losses,
        diverged=diverged,
        steepest=steepest,
        minimum_over_10=minimum_over_10,
        wall_time_s=time.perf_counter() - start,
        provenance=Provenance.collect(str(device)),
    )
