"""Which trainer trains a round's probes: one network after another, or all as one stack.

``auto`` measures, once per stack size, a few real steps of each on this machine and this
architecture (with the run's own batch size and step functions), instead of guessing from sizes.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence

import torch

from milr.batched import Member, StackedMLP, stacked_sgd_step, train_batched
from milr.data import Dataset
from milr.model import ReLUMLP
from milr.records import TrainRecord
from milr.settings import TrainSettings
from milr.train import make_sgd, sgd_step, train_probe

log = logging.getLogger("milr")

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
    return train_batched([Member(inits[s], lr, s) for s, lr in probes], data, settings)


def _seconds_per_call(run: Callable[[], object], repeats: int = 3) -> float:
    run()  # warm-up: allocator, kernels
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def batching_pays(
    init: ReLUMLP, data: Dataset, settings: TrainSettings, k: int, steps: int = 4
) -> bool:
    """Whether one stacked step of k networks beats k plain steps, measured on the real data."""
    device = data.x_train.device
    bs = settings.batch_size
    x, y = data.x_train[: bs * steps], data.y_train[: bs * steps]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    plain = copy.deepcopy(init)
    opt = make_sgd(plain, 1e-6, settings)

    def plain_steps() -> None:
        for i in range(steps):
            sgd_step(plain, opt, x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs])
        sync()

    stack = StackedMLP([init] * k)
    rates = [torch.full((k,), 1e-6, device=device)] * len(stack.weights)
    active = torch.ones(k, dtype=torch.bool, device=device)
    finite = torch.zeros(k, dtype=torch.bool, device=device)

    def stacked_steps() -> None:
        for i in range(steps):
            xb = x[i * bs : (i + 1) * bs].unsqueeze(0).expand(k, -1, -1)
            yb = y[i * bs : (i + 1) * bs].unsqueeze(0).expand(k, -1)
            stacked_sgd_step(stack, xb, yb, rates, active, finite.clone())
        sync()

    plain_s, stacked_s = _seconds_per_call(plain_steps), _seconds_per_call(stacked_steps)
    pays = stacked_s < k * plain_s
    log.info(
        "auto trainer: %d plain runs %.2f ms/step vs stacked %.2f ms/step -> %s",
        k,
        1e3 * k * plain_s / steps,
        1e3 * stacked_s / steps,
        "batched" if pays else "plain",
    )
    return pays


def make_prober(
    inits: dict[int, ReLUMLP], data: Dataset, settings: TrainSettings, trainer: str = "plain"
) -> Prober:
    """A function that trains fresh copies of the seeded networks at the requested rates.

    ``plain`` trains one network after another; ``batched`` stacks all requested probes into one
    model (plain SGD only); ``auto`` measures once per stack size which of the two is faster here.
    """
    if trainer != "plain" and settings.momentum != 0:
        log.warning("momentum > 0: the batched trainer does plain SGD only; training plainly")
        trainer = "plain"
    decisions: dict[int, bool] = {}

    def probe(probes: Sequence[Probe]) -> list[TrainRecord]:
        k = len(probes)
        use_batched = trainer == "batched" and k > 1
        if trainer == "auto" and k > 1:
            if k not in decisions:
                decisions[k] = batching_pays(next(iter(inits.values())), data, settings, k)
            use_batched = decisions[k]
        return (_batched if use_batched else _plain)(inits, data, settings, probes)

    return probe
