"""Model factories for `milr find` and `milr.find_eta_star`: each takes a seed and returns a fresh,
untrained nn.Module. milr's datasets arrive as [samples, features] float32 rows (Fashion-MNIST:
784 standardised pixels), so an image model unflattens them itself.

milr seeds torch's global RNG with the seed before calling a factory, so layers that draw their
initial weights from it (every torch.nn default) are reproducible without more.
"""

from __future__ import annotations

import torchvision
from torch import nn


def gaussian_mlp(seed: int) -> nn.Module:
    """The Gaussian task's default shape: 32 inputs, 2 classes."""
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 2))  # fmt: skip


def fashion_cnn(seed: int) -> nn.Module:
    """A small CNN for 28 x 28 grey images: two conv blocks, then a linear classifier."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def fashion_resnet(seed: int) -> nn.Module:
    """torchvision's ResNet-18 adapted to 28 x 28 grey images: one input channel, a 3 x 3 stem at
    stride 2 and no max-pool (the ImageNet stem, 7 x 7 at stride 2 then a max-pool, would shrink
    28 pixels to 7 before the first block; stride 1 costs 4x more, too much for a CPU), 10
    classes."""
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, 3, stride=2, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return nn.Sequential(nn.Unflatten(1, (1, 28, 28)), net)
