"""One training run at a constant learning rate: the probe that Algorithm 1 repeats.

A probe is a stack of one in :mod:`milr.batched`, the one trainer: plain SGD (momentum only if
asked), cross-entropy, minibatches gathered from data that already lives on the device (no
DataLoader, no host-to-device copy per step), validation accuracy after every epoch, and a stop
at the first epoch that reaches the threshold. Training probes one by one or stacked therefore
gives the same numbers on the CPU.

``make_sgd`` and ``sgd_step`` are the textbook ``torch.optim`` loop: the learning-rate range
test (:mod:`milr.range_test`) runs on it, as the LR finders it reproduces do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from milr.batched import Member, train_batched
from milr.data import Dataset
from milr.model import ReLUMLP, param_groups
from milr.records import TrainRecord
from milr.settings import TrainSettings


def train_probe(
    model: ReLUMLP, data: Dataset, lr: float, settings: TrainSettings, seed: int
) -> TrainRecord:
    """Train a copy of ``model`` at learning rate ``lr`` with ``seed``'s minibatch order."""
    return train_batched([Member(model, lr, seed)], data, settings)[0]


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


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Validation accuracy of one network in one batch."""
    return int((model(x).argmax(dim=1) == y).sum()) / len(y)
