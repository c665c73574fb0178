"""Sharpness at initialisation: λ1, the top eigenvalue of the loss Hessian, through PyHessian.

PyHessian's power iteration puts the model in eval mode and draws its start vector from the
global RNG, so we hand it a copy of the model and fork the RNG under our own seed: the result is
reproducible and the caller's model and RNG stream are left untouched.
"""

from __future__ import annotations

import copy
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from milr.data import Dataset
from milr.io import Provenance
from milr.model import build_model
from milr.records import SharpnessInputs, SharpnessResult

# Offset between the seed of the network and the seed that picks the data subset.
SUBSET_SEED_OFFSET = 0x5AB5E7


def training_subset(data: Dataset, samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random subset of the training set (all of it when ``samples`` exceeds its size)."""
    n = len(data.x_train)
    if samples >= n:
        return data.x_train, data.y_train
    gen = torch.Generator().manual_seed(seed + SUBSET_SEED_OFFSET)
    idx = torch.randperm(n, generator=gen)[:samples].to(data.x_train.device)
    return data.x_train[idx], data.y_train[idx]


def top_eigenvalue(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> float:
    """λ1 of the mean cross-entropy on (x, y) at the model's current weights."""
    from pyhessian import hessian

    device = x.device
    work = copy.deepcopy(model)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        # PyHessian moves data with .cuda(), i.e. to the current device: make it ours.
        if device.type == "cuda":
            torch.cuda.set_device(device)
        with warnings.catch_warnings():  # PyHessian's backward(create_graph=True) warns
            warnings.simplefilter("ignore", UserWarning)
            engine = hessian(work, F.cross_entropy, data=(x, y), cuda=device.type == "cuda")
        eigenvalues, _ = engine.eigenvalues(maxIter=max_iter, tol=tol, top_n=1)
    return float(eigenvalues[0])


def measure_sharpness(inputs: SharpnessInputs, data: Dataset) -> SharpnessResult:
    """λ1 of a freshly initialised network (same init as the bisection's probes for this seed)."""
    start = time.perf_counter()
    device = data.x_train.device
    net, how = inputs.network, inputs.sharpness
    model = build_model(data.in_dim, net.width, net.depth, data.num_classes, net.seed, str(device))
    x, y = training_subset(data, how.samples, net.seed)
    lam = top_eigenvalue(model, x, y, net.seed, how.max_iter, how.tol)
    return SharpnessResult(
        inputs=inputs,
        lambda1=lam,
        samples_used=len(x),
        wall_time_s=time.perf_counter() - start,
        provenance=Provenance.collect(str(device)),
    )
