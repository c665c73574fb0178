"""Constant-width fully-connected ReLU networks with Kaiming-normal initialisation.

Depth, everywhere in milr (and so in every "depth x width" on an axis or in a fit), is the number
of hidden layers: ``depth = L`` means L affine+ReLU layers of ``width`` units, followed by one
affine output layer; the network has L + 1 weight matrices.

:func:`relu_mlp` is the one forward pass: :class:`ReLUMLP` runs it on one network's layers; the
batched trainer writes the same pass (and its backward) out for K networks' stacked layers
(:meth:`milr.batched.StackedMLP.activations`), checked against this one bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x W^T + b for one network (x: [B, in]) or a stack of K (x: [K, B, in], W: [K, out, in]).

    Both are one fused BLAS call (addmm / baddbmm), which round alike: a stack of one network
    trains bit for bit like the network alone on the CPU.
    """
    if x.dim() == 3:
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
    return torch.addmm(bias, x, weight.t())


def relu_mlp(x: torch.Tensor, layers: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The network: affine + ReLU for every hidden layer, affine for the output layer."""
    layers = list(layers)
    for weight, bias in layers[:-1]:
        x = torch.relu(affine(x, weight, bias))
    weight, bias = layers[-1]
    return affine(x, weight, bias)


class ReLUMLP(nn.Module):
    """x -> [Linear(width) -> ReLU] * depth -> Linear(num_classes)."""

    def __init__(self, in_dim: int, width: int, depth: int, num_classes: int) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
        sizes = [in_dim] + [width] * depth + [num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False))
        self.depth = depth
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_mlp(x, ((layer.weight, layer.bias) for layer in self.layers))

    @property
    def input_layer(self) -> nn.Linear:
        return self.layers[0]


def kaiming_init_(model: ReLUMLP, seed: int) -> ReLUMLP:
    """Kaiming-normal weights (fan-in, ReLU gain sqrt(2)) and zero biases, from ``seed`` alone.

    A private generator keeps the global RNG untouched, so the same seed gives the same network
    whatever ran before in the process.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.layers:
            weight = torch.empty(layer.weight.shape)
            nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu", generator=gen)
            layer.weight.copy_(weight)
            layer.bias.zero_()
    return model


def build_model(
    in_dim: int, width: int, depth: int, num_classes: int, seed: int, device: str = "cpu"
) -> ReLUMLP:
    """A freshly initialised network on ``device``; weights are drawn on the CPU, so every
    device starts from the same numbers."""
    with torch.random.fork_rng(devices=[]):  # nn.Linear's own init draws from the global RNG
        model = ReLUMLP(in_dim, width, depth, num_classes)
    return kaiming_init_(model, seed).to(device)


def param_groups(model: ReLUMLP, lr: float, input_lr_scale: float) -> list[dict]:
    """SGD parameter groups: the input layer at ``input_lr_scale * lr``, the rest at ``lr``.

    The paper's power law needs the input layer to train at a relatively small rate; 1.0 gives
    the plain network.
    """
    first = list(model.input_layer.parameters())
    first_ids = {id(p) for p in first}
    rest = [p for p in model.parameters() if id(p) not in first_ids]
    return [
        {"params": first, "lr": lr * input_lr_scale},
        {"params": rest, "lr": lr},
    ]
