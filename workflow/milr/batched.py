"""The trainer: K independent networks of one architecture trained as one stacked model.

Every probe milr trains goes through this one code path; a single probe is a stack of one
(:func:`milr.train.train_probe`). On the CPU a network's numbers do not depend on what else is
in its stack (the per-network matmuls, reductions and updates are the same kernels whatever K
is; ``tests/test_batched.py`` checks it bit for bit), so training a round's probes one by one
or together gives the same η* to the last bit: the choice is a matter of speed only.

The paper's study is thousands of short SGD runs of small MLPs; on a GPU each run is bound by
kernel launches and host synchronisation, not arithmetic. Stacking K networks (different
learning rates, different seeds, or both) turns K small matmuls into one ``torch.baddbmm`` per
layer and K optimiser steps into one masked update (a layer wide enough for the products to
dominate is multiplied network by network on the CPU: :data:`PER_NETWORK_MIN`), while every
network keeps:

- its own weights (drawn exactly as :func:`milr.model.build_model` draws them for its seed),
- its own learning rate (and input-layer rate),
- its own minibatch order (the same seeded order the plain trainer uses),
- its own success/divergence state: a network that reached t is frozen, a network whose loss
  went non-finite is frozen, and neither touches the others (the summed loss has unit
  derivative with respect to each network's own loss, so gradients never mix).

Inside the step loop nothing is read back to the host: divergence flags accumulate on the device
and are read once per epoch, when validation accuracy is measured in one pass over the stack.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from milr.data import Dataset, shuffle_generator
from milr.memory import EVAL_CHUNK
from milr.model import ReLUMLP, affine
from milr.records import TrainRecord
from milr.settings import TrainSettings

log = logging.getLogger("milr")


def required_correct(threshold: float, n: int) -> int:
    """Correct predictions out of ``n`` that reach accuracy t: ceil(t * n), in exact decimal
    arithmetic. A float comparison would fail a probe exactly at t (9,000 / 10,000 in float32 is
    0.89999998 < 0.9)."""
    return math.ceil(Fraction(repr(threshold)) * n)


def divergence_check_interval(device: torch.device) -> int:
    """Steps between host reads of "has every network stopped?": every step on the CPU, where a
    read is free; every 32 on CUDA, where each read stalls the launch queue. Only when all have
    stopped does the epoch end early, so the interval never changes a number."""
    return 1 if device.type == "cpu" else 32


@dataclass(frozen=True)
class Member:
    """One network of the stack: its initial weights, learning rate and data-order seed."""

    init: ReLUMLP
    lr: float
    seed: int


class StackedMLP:
    """Weights of K networks as [K, out, in] tensors; a layer's forward is one baddbmm, or for a
    wide layer one addmm per network (:func:`layer_forward`).

    For its own training step (:func:`losses_and_grads`) it also keeps, per wide layer
    (:func:`per_network`; a narrow layer's list is empty), each network's 2-D views of the
    weights and bias (updates are in place, so the views stay valid) and the step's output
    buffers, reused from step to step: a step at width 1,024 then allocates no large tensor (a
    fresh one costs its page faults every step)."""

    def __init__(self, inits: Sequence[ReLUMLP]) -> None:
        layers = list(zip(*(m.layers for m in inits), strict=True))
        self._hold(
            [torch.stack([lin.weight.detach() for lin in group]).clone() for group in layers],
            [torch.stack([lin.bias.detach() for lin in group]).clone() for group in layers],
        )

    @classmethod
    def of_layers(cls, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> StackedMLP:
        """A stack holding these [K, out, in] weights and [K, out] biases themselves."""
        stack = cls.__new__(cls)
        stack._hold(weights, biases)
        return stack

    def _hold(self, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> None:
        self.weights = [w.requires_grad_(True) for w in weights]
        self.biases = [b.requires_grad_(True) for b in biases]
        self.views = [
            [(wk, wk.t(), bk) for wk, bk in zip(w.detach(), b.detach(), strict=True)]
            if per_network(w)
            else []
            for w, b in zip(self.weights, self.biases, strict=True)
        ]
        self._buffers: dict[tuple, torch.Tensor] = {}

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [K, B, in] -> logits [K, B, classes] (no autograd), in new tensors: validation's
        pass, by the training step's products."""
        # Only the last is kept: each layer's activations are dropped once the next is made.
        (logits,) = deque(self.activations(x, reuse=False), maxlen=1)
        return logits

    def activations(self, x: torch.Tensor, reuse: bool) -> Iterator[torch.Tensor]:
        """Every layer's input (x, then each hidden layer's ReLU output), then the logits:
        :func:`milr.model.relu_mlp`'s numbers by :func:`layer_forward`'s products, into the
        step's reused buffers (``reuse``) or new tensors. Run it under ``torch.no_grad()``."""
        yield x
        last = len(self.weights) - 1
        for i in range(last + 1):
            x = layer_forward(self, i, x, reuse)
            yield x.clamp_min_(0.0) if i < last else x

    def buffer(self, role: str, layer: int, shape: tuple[int, ...]) -> torch.Tensor:
        """The step's reusable output tensor for (role, layer, shape), made on first use."""
        key = (role, layer, shape)
        if key not in self._buffers:
            self._buffers[key] = self.weights[layer].new_empty(shape)
        return self._buffers[key]


def _orders(seeds: Sequence[int], n: int, epochs: int, device: torch.device) -> list[torch.Tensor]:
    """Per epoch, a [K, n] index tensor: network k's order is the plain trainer's for its seed."""
    gens = [shuffle_generator(s) for s in seeds]
    return [
        torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        for _ in range(epochs)
    ]


@torch.no_grad()
def _correct_counts(model: StackedMLP, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions of each network of the stack on (x, y), in chunks."""
    k = model.weights[0].shape[0]
    correct = torch.zeros(k, dtype=torch.long, device=x.device)
    for start in range(0, len(x), EVAL_CHUNK):
        logits = model.forward(x[start : start + EVAL_CHUNK].unsqueeze(0).expand(k, -1, -1))
        correct += (logits.argmax(dim=2) == y[start : start + EVAL_CHUNK]).sum(dim=1)
    return correct


def train_batched(
    members: Sequence[Member], data: Dataset, settings: TrainSettings
) -> list[TrainRecord]:
    """Train every member at once; returns one record per member."""
    start = time.perf_counter()
    device = data.x_train.device
    k = len(members)
    model = StackedMLP([m.init for m in members])
    # Per-layer rates, computed in double like torch.optim's python floats: the input layer
    # trains at input_lr_scale x lr.
    lrs = torch.tensor([m.lr for m in members], device=device)
    input_lrs = torch.tensor([m.lr * settings.input_lr_scale for m in members], device=device)
    layer_lrs = [input_lrs] + [lrs] * (len(model.weights) - 1)
    rates = negated_rates(model, layer_lrs)
    active = torch.ones(k, dtype=torch.bool, device=device)
    records = [TrainRecord(lr=m.lr, success=False, diverged=False, epochs_run=0) for m in members]
    n, bs, n_val = len(data.x_train), settings.batch_size, len(data.y_val)
    needed = required_correct(settings.threshold, n_val)
    orders = _orders([m.seed for m in members], n, settings.epochs, device)
    losses = torch.zeros(k, device=device)
    buffers = Momentum(settings.momentum)
    check_every = divergence_check_interval(device)
    for epoch in range(1, settings.epochs + 1):
        order = orders[epoch - 1]
        nonfinite = torch.zeros(k, dtype=torch.bool, device=device)
        for step, begin in enumerate(range(0, n, bs), start=1):
            idx = order[:, begin : begin + bs]
            losses, stepping = stacked_sgd_step(
                model, data.x_train[idx], data.y_train[idx], rates, active, nonfinite, buffers
            )
            if step % check_every == 0 and not bool(stepping.any()):
                break  # every network diverged this epoch: the rest of it changes nothing
        correct = _correct_counts(model, data.x_val, data.y_val)
        # The one host read of the epoch.
        correct_h, nonfinite_h, active_h = correct.tolist(), nonfinite.tolist(), active.tolist()
        losses_h = losses.detach().tolist()
        for i, record in enumerate(records):
            if not active_h[i]:
                continue
            record.epochs_run = epoch
            record.final_train_loss = losses_h[i]
            if nonfinite_h[i]:
                # NaN, not the last step's loss: after divergence that depends on how long the
                # rest of the stack kept the epoch going, and a record must not.
                record.diverged = True
                record.final_train_loss = math.nan
                active[i] = False
                continue
            record.val_accuracy.append(correct_h[i] / n_val)
            if correct_h[i] >= needed:
                record.success = True
                active[i] = False
        log.info(
            "batched epoch %d: %s",
            epoch,
            ", ".join(
                f"{r.lr:.4g}:{'div' if r.diverged else f'{r.val_accuracy[-1]:.3f}'}"
                for r in records
                if r.epochs_run == epoch
            ),
        )
        if not any(active.tolist()):
            break
    elapsed = time.perf_counter() - start
    for record in records:
        record.wall_time_s = elapsed / k
    return records


def stacked_sgd_step(
    model: StackedMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    rates: Sequence[torch.Tensor],
    active: torch.Tensor,
    nonfinite: torch.Tensor,
    momentum: Momentum | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step of every network still training (``active`` and finite so far); a network
    whose loss turns non-finite is flagged in ``nonfinite`` (in place) and stops stepping.
    ``rates``: :func:`negated_rates`. Returns the per-network losses before the step and which
    networks stepped."""
    losses, grads = losses_and_grads(model, x, y)
    nonfinite |= ~torch.isfinite(losses)
    if momentum is not None:
        grads = momentum.directions(grads)
    stepping = active & ~nonfinite
    masked_sgd(model, grads, rates, stepping)
    return losses, stepping


class Momentum:
    """SGD's heavy-ball buffers (torch.optim.SGD, dampening 0, not Nesterov): the step direction
    is b <- momentum * b + g, with b = g on the first step. ``momentum = 0`` keeps no buffers
    and returns the gradients themselves (the paper's plain SGD).

    A frozen network's buffer keeps moving with its (ignored) gradients; it is never read again,
    since a network that stops never resumes."""

    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.buffers: list[torch.Tensor] | None = None

    @torch.no_grad()
    def directions(self, grads: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        if self.momentum == 0:
            return grads
        if self.buffers is None:
            self.buffers = [g.detach().clone() for g in grads]
        else:
            for buf, g in zip(self.buffers, grads, strict=True):
                buf.mul_(self.momentum).add_(g)
        return self.buffers


# A layer at least this wide on both sides is multiplied network by network with 2-D products
# (addmm/mm, as nn.Linear and a torch.optim loop do) on the CPU, where the products are the
# step's cost and MKL's 2-D kernels were the faster (with them and the written-out backward the
# trainer went from 0.61-0.79x a plain loop at widths 512-1,024 to level with it, a median of
# 1.02-1.03x: bench/plain_loop.py, docs/performance.md). At 16 or more on both sides MKL's 2-D
# and batched products, in either orientation, round alike (tests/test_batched.py checks every
# layer shape of the study's grids bit for bit); below 16 they do not, and narrow layers gain
# from batching, so they keep the batched products. Must stay >= 16.
PER_NETWORK_MIN = 128


def per_network(weight: torch.Tensor) -> bool:
    """Whether a [K, out, in] layer is multiplied network by network (see PER_NETWORK_MIN)."""
    return weight.device.type == "cpu" and min(weight.shape[1:]) >= PER_NETWORK_MIN


def layer_forward(model: StackedMLP, i: int, a: torch.Tensor, reuse: bool = True) -> torch.Tensor:
    """a W^T + b of layer ``i`` for every network of the stack (a: [K, B, in]):
    :func:`milr.model.affine`'s batched product, or its 2-D twin network by network for a wide
    layer, into the step's reused buffer (``reuse``) or a new tensor (validation, whose chunks
    would otherwise hold a buffer per layer between epochs)."""
    weight, bias, views = model.weights[i], model.biases[i], model.views[i]
    if not views:
        return affine(a, weight, bias)
    shape = (a.shape[0], a.shape[1], weight.shape[1])
    out = model.buffer("out", i, shape) if reuse else a.new_empty(shape)
    for k, (_, weight_t, bias_k) in enumerate(views):
        torch.addmm(bias_k, a[k], weight_t, out=out[k])
    return out


def layer_backward(
    model: StackedMLP, i: int, grad: torch.Tensor, a: torch.Tensor, need_input: bool
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Gradients of layer ``i``'s input, weight and bias from its output's gradient: the numbers
    autograd gives for baddbmm. A wide layer's weight gradient is g^T a, computed straight into
    the weight's [K, out, in] layout; autograd's x^T g comes back transposed, and the update then
    read it against the grain (at width 1,024 that took longer than the layer's forward product).
    """
    weight, views, grad_b = model.weights[i], model.views[i], grad.sum(dim=1)
    if not views:
        grad_w = a.transpose(1, 2).bmm(grad).transpose(1, 2)
        grad_a = grad.bmm(weight) if need_input else None
        return grad_a, grad_w, grad_b
    grad_w = model.buffer("grad_w", i, tuple(weight.shape))
    grad_a = model.buffer("grad_a", i, tuple(a.shape)) if need_input else None
    for k, (weight_k, _, _) in enumerate(views):
        torch.mm(grad[k].t(), a[k], out=grad_w[k])
        if grad_a is not None:
            torch.mm(grad[k], weight_k, out=grad_a[k])
    return grad_a, grad_w, grad_b


_relu_backward = torch.ops.aten.threshold_backward.grad_input  # ReluBackward0's own kernel


def losses_and_grads(
    model: StackedMLP, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Each network's mean cross-entropy on its own minibatch (x: [K, B, in], y: [K, B]) and the
    gradients of their sum: d(sum)/d(loss_k) = 1, so every network gets its own gradient.

    The MLP's backward is written out (autograd only differentiates the loss with respect to the
    logits): every product, ReLU mask and bias sum is the one autograd runs for
    :func:`milr.model.relu_mlp`, bit for bit, without autograd's graph, and a wide layer's weight
    gradient comes out in the weight's own layout (:func:`layer_backward`). The gradients are the
    model's reused buffers: valid until its next step."""
    with torch.no_grad():
        *inputs, logits = model.activations(x, reuse=True)
    logits.requires_grad_(True)
    per_net = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none"
    ).view(len(x), -1)
    losses = per_net.mean(dim=1)
    (grad,) = torch.autograd.grad(losses.sum(), logits)
    weight_grads, bias_grads = [], []  # from the output layer back
    with torch.no_grad():
        for i in reversed(range(len(inputs))):
            grad_a, grad_w, grad_b = layer_backward(model, i, grad, inputs[i], need_input=i > 0)
            weight_grads.append(grad_w)
            bias_grads.append(grad_b)
            if grad_a is not None:  # through the ReLU that made inputs[i], as ReluBackward0
                grad = _relu_backward(grad_a, inputs[i], 0.0, grad_input=grad_a)
    return losses.detach(), (*reversed(weight_grads), *reversed(bias_grads))


def negated_rates(model: StackedMLP, layer_lrs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each parameter's -lr per network, shaped to broadcast over it ([K, 1, 1] or [K, 1]):
    computed once per training run, not once per step."""
    count = len(model.weights)
    return [
        layer_lrs[i % count].neg().view((-1,) + (1,) * (param.dim() - 1))
        for i, param in enumerate(model.parameters())
    ]


@torch.no_grad()
def masked_sgd(
    model: StackedMLP,
    grads: Sequence[torch.Tensor],
    rates: Sequence[torch.Tensor],
    step: torch.Tensor,
) -> None:
    """p <- p - lr_k * g, in place, for networks that still train (``rates``: -lr per
    parameter, :func:`negated_rates`); a frozen network's gradient rows are zeroed first and its
    rate is 0, so its weights stay as they are, even where its gradient is NaN. (``grads`` are
    this step's own tensors, free to overwrite.) On the CPU, where reading the mask is free, a
    step in which every network trains (always, for a stack of one) skips the masking.

    ``addcmul_`` with the negated rate rounds as torch.optim.SGD's ``p.add_(g, alpha=-lr)`` does,
    element by element, so a network's update does not depend on the rest of the stack. In place,
    because an out-of-place update and a select cost three passes over the weights and two
    allocations: a fifth of the step at width 512 (``bench/plain_loop.py``).
    """
    params = model.parameters()
    if step.device.type == "cpu" and bool(step.all()):
        for param, grad, rate in zip(params, grads, rates, strict=True):
            param.addcmul_(grad, rate)
        return
    for param, grad, rate in zip(params, grads, rates, strict=True):
        keep = step.view(rate.shape)
        grad.masked_fill_(~keep, 0.0)
        param.addcmul_(grad, torch.where(keep, rate, 0.0))
