"""λ1 from PyHessian against the exact top Hessian eigenvalue of tiny networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from milr.model import build_model
from milr.records import SharpnessInputs
from milr.settings import Network, SharpnessSettings
from milr.sharpness import measure_sharpness, top_eigenvalue, training_subset
from torch.func import functional_call


def exact_top_eigenvalue(model, x, y) -> float:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).double()

    def loss(vector):
        params, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            size = shape.numel()
            params[name] = vector[offset : offset + size].view(shape)
            offset += size
        return F.cross_entropy(functional_call(model.double(), params, (x.double(),)), y)

    hessian = torch.autograd.functional.hessian(loss, flat)
    model.float()
    return float(torch.linalg.eigvalsh(hessian).max())


@pytest.mark.parametrize(("depth", "width"), [(1, 6), (2, 5), (3, 4)])
def test_pyhessian_matches_exact_eigenvalue(small_gaussian, depth, width):
    model = build_model(small_gaussian.in_dim, width, depth, 2, seed=depth)
    x, y = training_subset(small_gaussian, 256, seed=0)
    exact = exact_top_eigenvalue(model, x, y)
    estimate = top_eigenvalue(model, x, y, seed=0, max_iter=500, tol=1e-7)
    assert estimate == pytest.approx(exact, rel=0.01)


def test_sharpness_is_reproducible_and_leaves_global_rng_alone(small_gaussian):
    inputs = SharpnessInputs(Network("gaussian", depth=2, width=16), SharpnessSettings(samples=300))
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = measure_sharpness(inputs, small_gaussian)
    assert torch.equal(torch.rand(1), expected_next)
    second = measure_sharpness(inputs, small_gaussian)
    assert first.lambda1 == second.lambda1 > 0
    assert first.samples_used == 300
