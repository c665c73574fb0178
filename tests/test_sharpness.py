"""λ1 from PyHessian against the exact top Hessian eigenvalue of tiny networks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from milr.model import build_model
from milr.records import SharpnessInputs
from milr.settings import Network, SharpnessSettings
from milr.sharpness import (
    measure_sharpness,
    preconditioned_top_eigenvalue,
    top_eigenvalue,
    training_subset,
)
from torch.func import functional_call


def exact_hessian(model, x, y) -> torch.Tensor:
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
    return hessian


def exact_top_eigenvalue(model, x, y) -> float:
    return float(torch.linalg.eigvalsh(exact_hessian(model, x, y)).max())


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


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
def test_preconditioned_sharpness_matches_the_exact_eigenvalue(small_gaussian, scale):
    """λ1(P^1/2 H P^1/2) with P = the input layer's rate factor, against the exact matrix."""
    model = build_model(small_gaussian.in_dim, 5, 2, 2, seed=4)
    x, y = training_subset(small_gaussian, 256, seed=0)
    hessian = exact_hessian(model, x, y)
    first = sum(p.numel() for p in model.input_layer.parameters())
    root = torch.ones(hessian.shape[0], dtype=torch.float64)
    root[:first] = scale**0.5
    exact = float(torch.linalg.eigvalsh(root[:, None] * hessian * root[None, :]).max())
    estimate = preconditioned_top_eigenvalue(model, x, y, scale, seed=0, max_iter=1000, tol=1e-9)
    assert estimate == pytest.approx(exact, rel=0.01)
    if scale == 1.0:
        assert estimate == pytest.approx(exact_top_eigenvalue(model, x, y), rel=0.01)


def test_sharpness_job_measures_each_variant(small_gaussian):
    """The job's λ1 and its preconditioned sharpness per variant, each against the exact
    eigenvalue of the matrix it claims to be the top of (the network the job builds for its
    seed, on the subset it draws)."""
    net = Network("gaussian", depth=2, width=5, seed=2)
    inputs = SharpnessInputs(net, SharpnessSettings(samples=256, max_iter=1000, tol=1e-9),
                             {"small": 0.1, "full": 1.0})  # fmt: skip
    result = measure_sharpness(inputs, small_gaussian)
    model = build_model(small_gaussian.in_dim, 5, 2, 2, seed=2)
    x, y = training_subset(small_gaussian, 256, seed=2)
    hessian = exact_hessian(model, x, y)
    first = sum(p.numel() for p in model.input_layer.parameters())
    for name, scale in {"small": 0.1, "full": 1.0}.items():
        root = torch.ones(hessian.shape[0], dtype=torch.float64)
        root[:first] = scale**0.5
        exact = float(torch.linalg.eigvalsh(root[:, None] * hessian * root[None, :]).max())
        assert result.preconditioned[name] == pytest.approx(exact, rel=0.01), name
    assert result.lambda1 == pytest.approx(float(torch.linalg.eigvalsh(hessian).max()), rel=0.01)
    assert result.preconditioned["small"] < 0.99 * result.lambda1  # the variants differ here


def test_lambda1_and_the_range_test_do_not_depend_on_the_thread_count():
    """MKL splits some matrix products' sums across threads (on MNIST-1D at depth 8 x width 64
    λ1 and the range test's losses differ in their last digits between 1 and 2 threads): these
    jobs run on one thread so that the config's thread count decides no number."""
    from milr.data import make_mnist1d, payload_to_dataset
    from milr.range_test import lr_range_test
    from milr.records import RangeTestInputs
    from milr.settings import Mnist1dSpec, RangeTestSettings

    data = payload_to_dataset(make_mnist1d(Mnist1dSpec(samples=4000)))
    net = Network("mnist1d", depth=8, width=64)
    sharp = SharpnessInputs(net, SharpnessSettings(samples=128, max_iter=20), {"small": 0.1})
    ramp = RangeTestInputs(net, RangeTestSettings(steps=40), input_lr_scale=0.1)
    before, results = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            lam = measure_sharpness(sharp, data)
            results.append((lam.lambda1, lam.preconditioned, lr_range_test(ramp, data).losses))
            assert torch.get_num_threads() == threads  # restored after the job
    finally:
        torch.set_num_threads(before)
    assert repr(results[0]) == repr(results[1])
