"""The one trainer: a network's numbers do not depend on the stack it trains in, on the trainer
(one by one or stacked), on seeds searched together or apart, or on the thread count; networks
in a stack never touch each other; momentum matches torch.optim.SGD; k-ary search agrees with
bisection and is narrower."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from milr.batched import (
    PER_NETWORK_MIN,
    Member,
    StackedMLP,
    layer_backward,
    layer_forward,
    losses_and_grads,
    masked_sgd,
    negated_rates,
    per_network,
    train_batched,
)
from milr.data import make_mnist1d, payload_to_dataset, shuffle_generator
from milr.measure import measure_eta_star, measure_eta_star_seeds
from milr.memory import EVAL_CHUNK
from milr.model import build_model, relu_mlp
from milr.records import SearchInputs
from milr.settings import Mnist1dSpec, TrainSettings
from milr.train import make_sgd, sgd_step, train_probe

SETTINGS = TrainSettings(threshold=0.8, epochs=4, input_lr_scale=0.1)


def fields(record) -> tuple:
    """Everything a probe record says, bit for bit (NaN compared as a string), but its time."""
    return (record.lr, record.success, record.diverged, record.epochs_run,
            tuple(record.val_accuracy), repr(record.final_train_loss))  # fmt: skip


def same_records(a, b) -> None:
    assert [fields(r) for r in a] == [fields(r) for r in b]


@pytest.fixture(scope="module")
def mnist1d():
    """The demo's data (presets/mnist1d.yaml), 4,000 samples: the grid's narrow and deep nets."""
    return payload_to_dataset(make_mnist1d(Mnist1dSpec(samples=4000)))


@pytest.mark.parametrize("depth, width", [(4, 16), (8, 16), (8, 256)])
def test_a_network_trains_alike_in_any_stack(mnist1d, depth, width):
    """The demo grid's narrowest and deepest nets: each member's record in a stack of three,
    at rates from easy to diverging, equals its record alone, bit for bit."""
    settings = TrainSettings(threshold=0.5, epochs=3, input_lr_scale=1.0)
    members = [Member(build_model(mnist1d.in_dim, width, depth, 10, seed=s), lr, s)
               for s, lr in [(0, 2.0), (1, 0.5), (0, 0.125)]]  # fmt: skip
    alone = [train_batched([m], mnist1d, settings)[0] for m in members]
    same_records(alone, train_batched(members, mnist1d, settings))
    assert len({fields(r) for r in alone}) == 3  # three different runs, not one repeated


STUDY_WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048]  # every preset's and config.yaml's
STUDY_INPUTS = [32, 40, 784, 3072]  # gaussian, mnist1d, (fashion-)mnist, cifar10
STUDY_LAYERS = sorted(
    {(d, w) for d in STUDY_INPUTS for w in STUDY_WIDTHS}
    | {(w, w) for w in STUDY_WIDTHS}
    | {(w, c) for w in STUDY_WIDTHS for c in (2, 10)}
)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [128, 80])  # a full batch and an epoch's last (18,000 samples)
def test_layer_products_give_autograds_numbers_bit_for_bit(rows, threads):
    """Every layer shape of the study's grids (input, hidden, output), stacks of 1 and 3: the
    trainer's forward and written-out backward give autograd's baddbmm numbers to the bit,
    whether the layer is multiplied network by network (2-D products, weight gradient in the
    weight's layout) or batched, on 1 and on 2 threads (autograd's on 2)."""
    gen = torch.Generator().manual_seed(rows)
    for fan_in, fan_out in STUDY_LAYERS:
        for k in (1, 3):
            a = torch.randn(k, rows, fan_in, generator=gen).relu().requires_grad_(True)
            weight = torch.randn(k, fan_out, fan_in, generator=gen).requires_grad_(True)
            bias = torch.randn(k, fan_out, generator=gen).requires_grad_(True)
            upstream = torch.randn(k, rows, fan_out, generator=gen)
            reference = torch.baddbmm(bias.unsqueeze(1), a, weight.transpose(1, 2))
            expected = torch.autograd.grad(reference, (a, weight, bias), upstream)
            stack = StackedMLP.of_layers([weight], [bias])
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                with torch.no_grad():
                    assert torch.equal(layer_forward(stack, 0, a), reference)
                    got = layer_backward(stack, 0, upstream, a, need_input=True)
            finally:
                torch.set_num_threads(before)
            for mine, theirs in zip(got, expected, strict=True):
                assert torch.equal(mine, theirs), (fan_in, fan_out, k)
            wide = min(fan_in, fan_out) >= PER_NETWORK_MIN
            assert per_network(weight) == wide and got[1].is_contiguous() == wide


ARCHITECTURES = [(40, 1, 256, 10), (40, 3, 128, 10), (32, 2, 16, 2), (100, 2, 512, 2)]


@pytest.mark.parametrize("in_dim, depth, width, classes", ARCHITECTURES)
def test_written_out_backward_is_autograds(in_dim, depth, width, classes):
    """The trainer's losses and gradients equal autograd's through milr.model.relu_mlp, bit for
    bit, in a stack of three networks with their own minibatches (and one that is all zeros)."""
    inits = [build_model(in_dim, width, depth, classes, seed=s) for s in range(3)]
    stack = StackedMLP(inits)
    gen = torch.Generator().manual_seed(depth)
    x = torch.randn(3, 96, in_dim, generator=gen)
    x[2] = 0.0
    y = torch.randint(0, classes, (3, 96), generator=gen)
    losses, grads = losses_and_grads(stack, x, y)
    logits = relu_mlp(x, zip(stack.weights, stack.biases, strict=True))
    per_net = torch.nn.functional.cross_entropy(
        logits.reshape(-1, classes), y.reshape(-1), reduction="none"
    ).view(3, -1)
    expected_losses = per_net.mean(dim=1)
    expected = torch.autograd.grad(expected_losses.sum(), stack.parameters())
    assert torch.equal(losses, expected_losses.detach())
    for mine, theirs in zip(grads, expected, strict=True):
        assert torch.equal(mine, theirs)


# Validation chunks of the study's datasets: MNIST-1D's 1,000, the Gaussian task's 2,000, a full
# chunk (milr.memory.EVAL_CHUNK) and the last chunk of a 10,000-image test set.
VALIDATION_ROWS = [1000, 2000, EVAL_CHUNK, 10_000 % EVAL_CHUNK]


@pytest.mark.parametrize("rows", VALIDATION_ROWS)
def test_validation_forward_is_relu_mlps(rows):
    """The validation pass (StackedMLP.forward: the training step's products, wide layers network
    by network) gives milr.model.relu_mlp's batched logits bit for bit, at the study's validation
    sizes, on 1 and on 2 threads: the accuracies it reports are the ones it always reported."""
    inits = [build_model(784, 512, 1, 10, seed=s) for s in range(3)]
    inits += [build_model(40, 1024, 1, 10, seed=s) for s in range(3)]
    x = torch.randn(3, rows, 784, generator=torch.Generator().manual_seed(rows)).relu()
    before = torch.get_num_threads()
    for stack, inputs in ((StackedMLP(inits[:3]), x), (StackedMLP(inits[3:]), x[..., :40])):
        with torch.no_grad():
            expected = relu_mlp(inputs, zip(stack.weights, stack.biases, strict=True))
        try:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                assert torch.equal(stack.forward(inputs), expected), (rows, threads)
        finally:
            torch.set_num_threads(before)


def test_seeds_and_trainers_give_identical_searches(mnist1d):
    """Issue #18's case: depth 4 x width 16, input layer at 1x, t = 0.5, upper auto from 2,
    seeds 0 and 1: stacked seeds with the batched trainer, stacked seeds trained one by one, and
    one job per seed all give the same probes and η*, bit for bit."""

    def inputs(seed: int, trainer: str) -> SearchInputs:
        return SearchInputs.of(dataset="mnist1d", depth=4, width=16, seed=seed, threshold=0.5,
                               epochs=4, upper="auto", start=2.0, iterations=3,
                               input_lr_scale=1.0, trainer=trainer)  # fmt: skip

    runs = {
        trainer: measure_eta_star_seeds([inputs(s, trainer) for s in (0, 1)], mnist1d, [None] * 2)
        for trainer in ("batched", "plain")
    }
    runs["per job"] = [measure_eta_star(inputs(s, "batched"), mnist1d) for s in (0, 1)]
    for results in runs.values():
        for result, reference in zip(results, runs["batched"], strict=True):
            assert result.eta_star == reference.eta_star
            same_records(result.probes, reference.probes)
    assert runs["batched"][0].probes[0].lr == 2.0 and len(runs["batched"][0].probes) >= 4


@pytest.mark.parametrize("width", [64, 256])  # batched products only; 2-D ones for 256 x 256
def test_thread_count_does_not_change_a_record(mnist1d, width):
    member = Member(build_model(mnist1d.in_dim, width, 2, 10, seed=0), 0.5, 0)
    settings = TrainSettings(threshold=0.9, epochs=2)
    before = torch.get_num_threads()
    try:
        records = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            records.append(train_batched([member, member], mnist1d, settings))
    finally:
        torch.set_num_threads(before)
    same_records(*records)


def test_networks_in_a_stack_are_independent(small_gaussian):
    """A diverging member and a succeeding member do not change a third member's record."""
    inits = [build_model(small_gaussian.in_dim, 16, 3, 2, seed=s) for s in (0, 1, 2)]
    members = [Member(inits[0], 1e4, 0), Member(inits[1], 0.3, 1), Member(inits[2], 0.01, 2)]
    records = train_batched(members, small_gaussian, SETTINGS)
    assert records[0].diverged and records[0].epochs_run == 1
    alone = [train_probe(m.init, small_gaussian, m.lr, SETTINGS, m.seed) for m in members[1:]]
    same_records(alone, records[1:])


def test_frozen_member_keeps_its_weights(small_gaussian):
    init = build_model(small_gaussian.in_dim, 8, 1, 2, seed=0)
    stack = StackedMLP([init, init])
    before = [p.detach().clone() for p in stack.parameters()]
    grads = [torch.full_like(p, math.nan) for p in stack.parameters()]
    grads = [torch.cat([g[:1], torch.ones_like(g[1:])]) for g in grads]
    rates = negated_rates(stack, [torch.tensor([1.0, 0.5])] * len(stack.weights))
    masked_sgd(stack, grads, rates, torch.tensor([False, True]))
    for old, new in zip(before, stack.parameters(), strict=True):
        assert torch.equal(old[0], new[0])  # frozen: untouched, even by NaN gradients
        assert torch.allclose(new[1], old[1] - 0.5)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_the_trainer_follows_torch_optim_sgd(small_gaussian, momentum):
    """One epoch against the textbook loop (torch.optim.SGD, same batches, input layer at its
    own rate): the weights agree to float32 rounding, with and without momentum."""
    settings = TrainSettings(threshold=1.0, epochs=1, input_lr_scale=0.1, momentum=momentum)
    init = build_model(small_gaussian.in_dim, 16, 2, 2, seed=4)
    stack = {}
    original = StackedMLP.__init__

    def keep(self, inits):
        original(self, inits)
        stack["model"] = self

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StackedMLP, "__init__", keep)
        train_probe(init, small_gaussian, 0.05, settings, seed=4)
    reference = copy.deepcopy(init)
    opt = make_sgd(reference, 0.05, settings)
    order = torch.randperm(len(small_gaussian.x_train), generator=shuffle_generator(4))
    for begin in range(0, len(order), settings.batch_size):
        batch = order[begin : begin + settings.batch_size]
        sgd_step(reference, opt, small_gaussian.x_train[batch], small_gaussian.y_train[batch])
    trained = zip(init.layers, reference.layers, stack["model"].weights, strict=True)
    for before, layer, weight in trained:
        assert (layer.weight - before.weight).abs().max() > 1e-3  # trained, not the initial
        torch.testing.assert_close(weight[0], layer.weight, rtol=1e-4, atol=1e-5)


def inputs(seed: int, **overrides) -> SearchInputs:
    base = dict(dataset="gaussian", depth=2, width=16, seed=seed, threshold=0.8, epochs=4,
                batch_size=128, upper=8.0, lower=0.0, iterations=3, input_lr_scale=0.1)  # fmt: skip
    base.update(overrides)
    return SearchInputs.of(**base)


def test_kary_agrees_with_bisection_to_its_resolution_and_is_narrower():
    """On the default Gaussian task (depth 4, width 32): 2 rounds of k = 8 against 5 bisections.

    Near eta* success is not monotone in lr (the edge of stability is chaotic: here 1.5 fails
    while 1.58 succeeds), so the two searches may find neighbouring transitions and their
    brackets need not overlap. What must hold: they lie within one bisection bracket of each
    other, and k-ary's bracket is narrower.
    """
    from milr.data import GaussianSpec, make_gaussian, payload_to_dataset

    data = payload_to_dataset(make_gaussian(GaussianSpec()))
    common = dict(depth=4, width=32, threshold=0.85, epochs=10, upper=16.0)
    bisect = measure_eta_star(inputs(0, iterations=5, **common), data)
    kary = measure_eta_star(
        inputs(0, iterations=2, method="kary", k=8, trainer="batched", **common), data
    )
    width = lambda r: r.bracket_high - r.bracket_low  # noqa: E731
    gap = max(kary.bracket_low - bisect.bracket_high, bisect.bracket_low - kary.bracket_high, 0)
    assert gap <= width(bisect)
    assert width(kary) < width(bisect) / 2
