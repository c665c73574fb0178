"""Sharpness at initialisation: λ1, the top eigenvalue of the loss Hessian, through PyHessian.

PyHessian's power iteration puts the model in eval mode and draws its start vector from the
global RNG, so we hand it a copy of the model and fork the RNG under our own seed: the result is
reproducible and the caller's model and RNG stream are left untouched.
"""

from __future__ import annotations

import copy
import math
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from milr.data import Dataset
from milr.io import Provenance
from milr.model import ReLUMLP, build_model
from milr.numerics import pin_float32, thread_count_free
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


def preconditioned_top_eigenvalue(
    model: ReLUMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    input_lr_scale: float,
    seed: int,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> float:
    """Top eigenvalue of P^1/2 H P^1/2, P = each parameter's learning-rate factor (the input
    layer's ``input_lr_scale``, 1 elsewhere).

    SGD with per-layer rates steps by -lr P g; on a quadratic it is stable iff
    lr < 2 / λ1(P^1/2 H P^1/2), so this, not plain λ1, is the sharpness a variant that scales a
    layer should be compared with. Power iteration on Hessian-vector products (double backward),
    from a start vector drawn from ``seed``.
    """
    params = list(model.parameters())
    first = {id(p) for p in model.input_layer.parameters()}
    roots = [input_lr_scale**0.5 if id(p) in first else 1.0 for p in params]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    vector = [torch.randn(p.shape, generator=gen).to(p.device) for p in params]
    eigenvalue = math.nan
    for _ in range(max_iter):
        norm = torch.sqrt(sum((v * v).sum() for v in vector))
        vector = [v / norm for v in vector]
        scaled = [r * v for r, v in zip(roots, vector, strict=True)]
        hvp = torch.autograd.grad(grads, params, grad_outputs=scaled, retain_graph=True)
        product = [r * h for r, h in zip(roots, hvp, strict=True)]
        new = float(sum((v * p).sum() for v, p in zip(vector, product, strict=True)))
        done = abs(new - eigenvalue) <= tol * (abs(eigenvalue) + 1e-6)
        eigenvalue, vector = new, [p.detach() for p in product]
        if done:
            break
    return eigenvalue


def measure_sharpness(inputs: SharpnessInputs, data: Dataset) -> SharpnessResult:
    """λ1 of a freshly initialised network (same init as the bisection's probes for this seed)."""
    pin_float32()
    start = time.perf_counter()
    device = data.x_train.device
    net, how = inputs.network, inputs.sharpness
    model = build_model(data.in_dim, net.width, net.depth, data.num_classes, net.seed, str(device))
    x, y = training_subset(data, how.samples, net.seed)
    with thread_count_free(str(device)):
        lam = top_eigenvalue(model, x, y, net.seed, how.max_iter, how.tol)
        preconditioned = {
            name: lam
            if scale == 1.0
            else preconditioned_top_eigenvalue(model, x, y, scale, net.seed, how.max_iter, how.tol)
            for name, scale in inputs.input_lr_variants.items()
        }
    return SharpnessResult(
        inputs=inputs,
        lambda1=lam,
        preconditioned=preconditioned,
        samples_used=len(x),
        wall_time_s=time.perf_counter() - start,
        provenance=Provenance.collect(str(device)),
    )
