"""One training run at a constant learning rate: the probe that Algorithm 1 repeats.

Plain SGD (no momentum unless asked), cross-entropy, minibatches of 128 sliced from data that
already lives on the device: one gather per epoch (the shuffled copy) instead of a DataLoader
and a host-to-device copy per step. Validation accuracy is measured after every epoch and the run
stops at the first epoch that reaches the threshold.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from milr.data import Dataset
from milr.model import ReLUMLP, param_groups

log = logging.getLogger("milr")

# Offset between the seed that draws the weights and the one that orders the minibatches, so
# the two streams never coincide.
SHUFFLE_SEED_OFFSET = 0x5EED


@dataclass(frozen=True)
class TrainSettings:
    """Everything a probe needs besides the learning rate and the seed (paper defaults)."""

    threshold: float
    epochs: int = 10
    batch_size: int = 128
    input_lr_scale: float = 1.0
    momentum: float = 0.0


@dataclass
class TrainRecord:
    """The outcome of one probe."""

    lr: float
    success: bool
    diverged: bool
    epochs_run: int
    val_accuracy: list[float] = field(default_factory=list)
    final_train_loss: float = math.nan
    wall_time_s: float = 0.0

    @property
    def best_val_accuracy(self) -> float:
        return max(self.val_accuracy, default=0.0)


def shuffle_generator(seed: int) -> torch.Generator:
    """The CPU generator that orders minibatches: same seed, same order on every device."""
    return torch.Generator().manual_seed(seed + SHUFFLE_SEED_OFFSET)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Validation accuracy in one batch (10k rows fit comfortably)."""
    return float((model(x).argmax(dim=1) == y).float().mean())


def divergence_check_interval(device: torch.device) -> int:
    """Steps between reads of the non-finite flag: every step on the CPU, where a read is free;
    every 32 on CUDA, where each read stalls the launch queue."""
    return 1 if device.type == "cpu" else 32


def train_probe(
    model: ReLUMLP, data: Dataset, lr: float, settings: TrainSettings, seed: int
) -> TrainRecord:
    """Train ``model`` in place at learning rate ``lr``; the caller passes a fresh copy."""
    start = time.perf_counter()
    device = data.x_train.device
    opt = torch.optim.SGD(
        param_groups(model, lr, settings.input_lr_scale),
        lr=lr,
        momentum=settings.momentum,
        foreach=True,  # one multi-tensor update per step: measured faster on CPU and GPU
    )
    gen = shuffle_generator(seed)
    n = len(data.x_train)
    check_every = divergence_check_interval(device)
    record = TrainRecord(lr=lr, success=False, diverged=False, epochs_run=0)
    loss = torch.zeros((), device=device)
    for epoch in range(1, settings.epochs + 1):
        record.epochs_run = epoch
        order = torch.randperm(n, generator=gen).to(device)
        nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        model.train()
        for step, begin in enumerate(range(0, n, settings.batch_size), start=1):
            batch = order[begin : begin + settings.batch_size]
            loss = F.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            nonfinite |= ~torch.isfinite(loss)
            if step % check_every == 0 and bool(nonfinite):
                break
        record.final_train_loss = float(loss.detach())
        if bool(nonfinite):
            record.diverged = True
            log.info("lr=%.6g epoch %d: loss is not finite, diverged", lr, epoch)
            break
        acc = accuracy(model.eval(), data.x_val, data.y_val)
        record.val_accuracy.append(acc)
        log.info(
            "lr=%.6g epoch %d: val_acc=%.4f loss=%.4f", lr, epoch, acc, record.final_train_loss
        )
        if acc >= settings.threshold:
            record.success = True
            break
    record.wall_time_s = time.perf_counter() - start
    return record


TRAINERS = ("plain", "batched", "auto")

# A probe request: (seed, learning rate); the seed picks the initial network and data order.
Probe = tuple[int, float]
Prober = Callable[[Sequence[Probe]], list[TrainRecord]]


def _plain(
    inits: dict[int, ReLUMLP], data: Dataset, settings: TrainSettings, probes: Sequence[Probe]
) -> list[TrainRecord]:
    return [
        train_probe(copy.deepcopy(inits[seed]), data, lr, settings, seed) for seed, lr in probes
    ]


def _batched(
    inits: dict[int, ReLUMLP], data: Dataset, settings: TrainSettings, probes: Sequence[Probe]
) -> list[TrainRecord]:
    from milr.batched import Member, train_batched

    return train_batched([Member(inits[s], lr, s) for s, lr in probes], data, settings)


def _step_time(run: Callable[[], object], repeats: int = 3) -> float:
    run()  # warm-up: allocator, kernels
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def batching_pays(init: ReLUMLP, data: Dataset, k: int, steps: int = 4) -> bool:
    """Measure, on this machine and architecture, whether one stacked step of k networks beats
    k plain steps (a few steps each, on the real data), instead of guessing from the size."""
    from milr.batched import StackedMLP, losses_and_grads, masked_sgd

    device = data.x_train.device
    x, y = data.x_train[: 128 * steps], data.y_train[: 128 * steps]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    plain = copy.deepcopy(init)
    opt = torch.optim.SGD(plain.parameters(), lr=1e-6, foreach=True)

    def plain_steps() -> None:
        for i in range(steps):
            loss = F.cross_entropy(plain(x[i * 128 : (i + 1) * 128]), y[i * 128 : (i + 1) * 128])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()

    stack = StackedMLP([init] * k)
    rates = [torch.full((k,), 1e-6, device=device)] * len(stack.weights)
    mask = torch.ones(k, dtype=torch.bool, device=device)

    def stacked_steps() -> None:
        for i in range(steps):
            xb = x[i * 128 : (i + 1) * 128].unsqueeze(0).expand(k, -1, -1)
            yb = y[i * 128 : (i + 1) * 128].unsqueeze(0).expand(k, -1)
            _, grads = losses_and_grads(stack, xb, yb)
            masked_sgd(stack, grads, rates, mask)
        sync()

    plain_s, stacked_s = _step_time(plain_steps), _step_time(stacked_steps)
    log.info(
        "auto trainer: %d plain runs %.2f ms/step vs stacked %.2f ms/step -> %s",
        k,
        1e3 * k * plain_s / steps,
        1e3 * stacked_s / steps,
        "batched" if stacked_s < k * plain_s else "plain",
    )
    return stacked_s < k * plain_s


def make_prober(
    inits: dict[int, ReLUMLP], data: Dataset, settings: TrainSettings, trainer: str = "plain"
) -> Prober:
    """A function that trains fresh copies of the seeded networks at the requested rates.

    ``plain`` trains one network after another; ``batched`` stacks all requested probes into one
    model (plain SGD only); ``auto`` measures once per stack size which of the two is faster here.
    """
    if trainer not in TRAINERS:
        raise ValueError(f"unknown trainer {trainer!r}; choose one of {TRAINERS}")
    if trainer != "plain" and settings.momentum != 0:
        log.warning("momentum > 0: the batched trainer does plain SGD only; training plainly")
        trainer = "plain"
    decisions: dict[int, bool] = {}

    def probe(probes: Sequence[Probe]) -> list[TrainRecord]:
        k = len(probes)
        use_batched = trainer == "batched" and k > 1
        if trainer == "auto" and k > 1:
            if k not in decisions:
                decisions[k] = batching_pays(next(iter(inits.values())), data, k)
            use_batched = decisions[k]
        return (_batched if use_batched else _plain)(inits, data, settings, probes)

    return probe
