"""One training run at a constant learning rate: the probe that Algorithm 1 repeats.

Plain SGD (no momentum unless asked), cross-entropy, minibatches sliced from data that already
lives on the device: one gather per epoch (the shuffled copy) instead of a DataLoader and a
host-to-device copy per step. Validation accuracy is measured after every epoch and the run
stops at the first epoch that reaches the threshold.
"""

from __future__ import annotations

import logging
import math
import time
from fractions import Fraction

import torch
import torch.nn.functional as F

from milr.data import Dataset, shuffle_generator
from milr.model import ReLUMLP, param_groups
from milr.records import TrainRecord
from milr.settings import TrainSettings

log = logging.getLogger("milr")


def make_sgd(model: ReLUMLP, lr: float, settings: TrainSettings) -> torch.optim.SGD:
    """SGD with the input layer at ``input_lr_scale`` x lr; ``foreach``: one multi-tensor update
    per step, measured faster on CPU and GPU."""
    groups = param_groups(model, lr, settings.input_lr_scale)
    return torch.optim.SGD(groups, lr=lr, momentum=settings.momentum, foreach=True)


def sgd_step(
    model: ReLUMLP, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """One SGD step on the minibatch (x, y); returns the loss before the step."""
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def required_correct(threshold: float, n: int) -> int:
    """Correct predictions out of ``n`` that reach accuracy t: ceil(t * n), in exact decimal
    arithmetic. A float comparison would fail a probe exactly at t (9,000 / 10,000 in float32 is
    0.89999998 < 0.9)."""
    return math.ceil(Fraction(repr(threshold)) * n)


@torch.no_grad()
def correct_count(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Correct predictions on (x, y) in one batch (10k rows fit comfortably)."""
    return int((model(x).argmax(dim=1) == y).sum())


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return correct_count(model, x, y) / len(y)


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
    opt = make_sgd(model, lr, settings)
    gen = shuffle_generator(seed)
    n = len(data.x_train)
    check_every = divergence_check_interval(device)
    record = TrainRecord(lr=lr, success=False, diverged=False, epochs_run=0)
    needed = required_correct(settings.threshold, len(data.y_val))
    loss = torch.zeros((), device=device)
    for epoch in range(1, settings.epochs + 1):
        record.epochs_run = epoch
        order = torch.randperm(n, generator=gen).to(device)
        nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        model.train()
        for step, begin in enumerate(range(0, n, settings.batch_size), start=1):
            batch = order[begin : begin + settings.batch_size]
            loss = sgd_step(model, opt, data.x_train[batch], data.y_train[batch])
            nonfinite |= ~torch.isfinite(loss)
            if step % check_every == 0 and bool(nonfinite):
                break
        record.final_train_loss = float(loss.detach())
        if bool(nonfinite):
            record.diverged = True
            log.info("lr=%.6g epoch %d: loss is not finite, diverged", lr, epoch)
            break
        correct = correct_count(model.eval(), data.x_val, data.y_val)
        record.val_accuracy.append(correct / len(data.y_val))
        log.info(
            "lr=%.6g epoch %d: val_acc=%.4f loss=%.4f",
            lr,
            epoch,
            record.val_accuracy[-1],
            record.final_train_loss,
        )
        if correct >= needed:
            record.success = True
            break
    record.wall_time_s = time.perf_counter() - start
    return record
