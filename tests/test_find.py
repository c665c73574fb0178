"""milr.find_eta_star: η* of any network, checked against the study's own search."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from milr import MilrError, find_eta_star, train_at
from milr.find import Trial, Verdict, monotone
from milr.measure import measure_eta_star
from milr.model import build_model, param_groups
from milr.records import SearchInputs
from milr.settings import FindSettings
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SETTINGS = dict(threshold=0.85, epochs=3, start=2.0)


def mlp(data, depth=2, width=32):
    return lambda seed: build_model(data.in_dim, width, depth, data.num_classes, seed)


def splits(data):
    return (data.x_train, data.y_train), (data.x_val, data.y_val)


def small_input_layer(model, rate):
    """The paper's condition (ii): the input layer at 0.1 x the rate, as a parameter group."""
    return torch.optim.SGD(param_groups(model, rate, 0.1), lr=rate)


@pytest.mark.parametrize(("depth", "width", "scale"), [(1, 16, 1.0), (3, 32, 0.1)])
def test_milrs_mlp_gets_the_same_probes_as_milr_bisect(small_gaussian, depth, width, scale):
    """On these shapes the study's stacked trainer (batched products) and this plain loop
    (nn.Linear's 2-D products) train milr's MLP to the same bits: every probe's rate, verdict,
    epochs and accuracy, and so the bracket, are the same. (On other shapes the two products can
    round apart: bench/find_prior.py measures how often on the demo's data; docs/find.md.)"""
    data = small_gaussian
    optimizer = small_input_layer if scale != 1.0 else None
    for seed in (0, 1):
        found = find_eta_star(mlp(data, depth, width), *splits(data), seeds=(seed,),
                              optimizer=optimizer, **SETTINGS)  # fmt: skip
        study = measure_eta_star(SearchInputs.of(
            dataset="gaussian", depth=depth, width=width, seed=seed, upper="auto",
            input_lr_scale=scale, **SETTINGS), data)  # fmt: skip
        assert (found.low, found.high) == (study.bracket_low, study.bracket_high)
        assert [(t.rate, t.reached, t.diverged, t.epochs_run) for t in found.trials] == [
            (p.lr, p.success, p.diverged, p.epochs_run) for p in study.probes
        ]
        assert [t.accuracy for t in found.trials if not t.diverged] == [
            p.val_accuracy[-1] for p in study.probes if not p.diverged
        ]
        assert found.complete and found.monotone and found.eta_star == study.eta_star


def test_the_same_inputs_give_the_same_bits_and_leave_the_caller_as_it_was(small_gaussian):
    template = build_model(small_gaussian.in_dim, 32, 2, 2, seed=5)
    before = copy.deepcopy(template.state_dict())
    rng = torch.get_rng_state()
    train, val = splits(small_gaussian)
    train_before = train[0].clone()

    def factory(seed):  # a factory that copies a model it holds: the copies train, not it
        return copy.deepcopy(template)

    first = find_eta_star(factory, train, val, seeds=(0, 1), **SETTINGS)
    second = find_eta_star(factory, train, val, seeds=(0, 1), **SETTINGS)
    assert first == second  # every field but the wall time, to the bit
    assert all(torch.equal(before[k], v) for k, v in template.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(train[0], train_before)
    assert first.trainings == len(first.trials) > 2


def test_init_seed_and_order_seed_are_separate(small_gaussian):
    """The same initialisation with another minibatch order is another trial, not the same."""
    train, val = splits(small_gaussian)
    same = find_eta_star(mlp(small_gaussian), train, val, seeds=(3,), **SETTINGS)
    other = find_eta_star(mlp(small_gaussian), train, val, seeds=(3,), data_seeds=(4,),
                          **SETTINGS)  # fmt: skip
    assert [t.data_seed for t in other.trials] == [4] * other.trainings
    assert [t.accuracy for t in same.trials] != [t.accuracy for t in other.trials]


def test_k_of_n_decides_a_rate_as_soon_as_the_rest_cannot_change_it(small_gaussian):
    train, val = splits(small_gaussian)
    found = find_eta_star(mlp(small_gaussian), train, val, seeds=(0, 1, 2), must_pass=2,
                          **SETTINGS)  # fmt: skip
    for verdict in found.verdicts:
        reached = [t.reached for t in verdict.trials]
        assert verdict.success == (sum(reached) >= 2)
        # two passes, or two failures, end the rate; a third training only after a split
        assert len(reached) == 2 if reached[:2] in ([True, True], [False, False]) else 3
    assert any(len(v.trials) == 2 for v in found.verdicts)


def test_a_budget_in_trainings_returns_the_partial_bracket_marked(small_gaussian):
    train, val = splits(small_gaussian)
    full = find_eta_star(mlp(small_gaussian), train, val, **SETTINGS)
    cut = find_eta_star(mlp(small_gaussian), train, val, max_probes=3, **SETTINGS)
    assert not cut.complete and cut.stopped_by == "max_probes" and cut.trainings == 3
    assert cut.trials == full.trials[:3]  # the same trainings, as far as they went
    assert cut.low <= full.low and cut.high >= full.high  # a wider bracket around the same η*
    assert "partial" in cut.describe()
    assert full.complete and full.relative_bracket <= 1 + FindSettings(threshold=0.5).tolerance


def test_a_budget_in_seconds_says_it_stopped_the_search(small_gaussian):
    train, val = splits(small_gaussian)
    found = find_eta_star(mlp(small_gaussian), train, val, max_seconds=1e-9, **SETTINGS)
    assert found.stopped_by == "max_seconds" and found.trainings == 0 and found.no_success
    assert "raise the budget" in found.describe()


def test_a_diverging_start_is_stopped_at_its_first_non_finite_loss(small_gaussian):
    train, val = splits(small_gaussian)
    found = find_eta_star(mlp(small_gaussian, depth=4, width=64), train, val, threshold=0.85,
                          epochs=3, start=4096.0)  # fmt: skip
    first = found.trials[0]
    assert first.diverged and not first.reached and first.epochs_run == 1
    assert math.isnan(first.accuracy) and found.verdicts[0].diverged
    assert found.complete and 0 < found.eta_star < 4096


def test_a_dataloader_trains_with_a_seeded_shuffle(small_gaussian):
    """A DataLoader's own shuffling is seeded by the order seed: the same bits every run."""
    x, y = small_gaussian.x_train, small_gaussian.y_train

    def run():
        loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
        val = DataLoader(TensorDataset(small_gaussian.x_val, small_gaussian.y_val), batch_size=500)
        return find_eta_star(mlp(small_gaussian), loader, val, **SETTINGS)

    first, second = run(), run()
    assert first == second and first.complete and first.eta_star > 0
    assert "DataLoader" in first.provenance["train"]


def test_a_conv_net_with_batch_norm_and_momentum_trains(small_gaussian):
    """Any module: a small CNN (batch norm, eval mode for validation) on 8-pixel "images"."""
    train, val = splits(small_gaussian)

    def cnn(seed):
        conv = nn.Conv1d(1, 4, 3, padding=1)
        return nn.Sequential(nn.Unflatten(1, (1, 8)), conv, nn.BatchNorm1d(4), nn.ReLU(),
                             nn.Flatten(), nn.Linear(32, 2))  # fmt: skip

    def momentum(model, rate):
        return torch.optim.SGD(model.parameters(), lr=rate, momentum=0.9)

    found = find_eta_star(cnn, train, val, optimizer=momentum, **SETTINGS)
    assert found.complete and 0 < found.eta_star < found.high
    assert found.provenance["optimizer"].endswith("momentum")


class Broken(nn.Module):
    def __init__(self, outputs: int, scale: float = 1.0) -> None:
        super().__init__()
        self.layer, self.scale = nn.Linear(8, outputs), scale

    def forward(self, x):
        return self.layer(x) * self.scale


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda seed: "a model", "returned str, not an nn.Module"),
        (lambda seed: Broken(1), "needs at least 2 outputs"),
        (lambda seed: nn.Sequential(nn.Linear(8, 2), nn.Flatten(0)), "must be [batch, classes]"),
        (lambda seed: Broken(2, math.nan), "the loss is nan at initialisation"),
    ],
)
def test_a_broken_model_gets_one_line(small_gaussian, factory, message):
    with pytest.raises(MilrError, match=message.replace("[", r"\[").replace("]", r"\]")):
        find_eta_star(factory, *splits(small_gaussian), **SETTINGS)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(seeds=(0, 1), max_probes=1), "raise it to at least 2"),
        (dict(seeds=(0,), must_pass=2), "more than the 1 seeds"),
        (dict(seeds=(0, 0)), "must be distinct"),
        (dict(seeds=(0, 1), data_seeds=(1,)), "one seed per seed"),
        (dict(tolerance=0.0), r"tolerance must be in \(0, 1\]"),
        (dict(start=1e9), "must lie in \\[min_rate, max_rate\\]"),
    ],
)
def test_settings_that_cannot_work_get_one_line(settings, message):
    with pytest.raises(MilrError, match=message):
        FindSettings(threshold=0.5, **settings)


def test_mismatched_data_gets_one_line(small_gaussian):
    (x, y), val = splits(small_gaussian)
    with pytest.raises(MilrError, match="inputs and .* labels"):
        find_eta_star(mlp(small_gaussian), (x, y[:10]), val, **SETTINGS)
    with pytest.raises(MilrError, match="integer class labels"):
        find_eta_star(mlp(small_gaussian), (x, y.float()), val, **SETTINGS)


def trial(rate: float, reached: bool, seed: int = 0) -> Trial:
    return Trial(rate, seed, seed, reached, False, 1, 0.5)


def test_monotone_flags_a_seed_that_fails_below_a_rate_it_passes():
    ok = [Verdict(1.0, True, (trial(1.0, True),)), Verdict(2.0, False, (trial(2.0, False),))]
    assert monotone(ok)
    bad = [*ok, Verdict(3.0, True, (trial(3.0, True),))]
    assert not monotone(bad)
    other_seed = [*ok, Verdict(3.0, True, (trial(3.0, True, seed=1),))]
    assert monotone(other_seed)  # another seed's success says nothing of seed 0's edge


def test_train_at_trains_exactly_as_a_probe(small_gaussian):
    train, val = splits(small_gaussian)
    found = find_eta_star(mlp(small_gaussian), train, val, seeds=(2,), **SETTINGS)
    for probe in found.trials[:3]:
        again = train_at(mlp(small_gaussian), train, val, probe.rate, seed=2, **SETTINGS)
        assert again == probe


def test_reading_divergence_less_often_changes_no_record(small_gaussian, monkeypatch):
    """On CUDA the non-finite flag is read every 32 steps, not every step: the records must not
    depend on it (checked here on the CPU with another interval)."""
    train, val = splits(small_gaussian)
    kwargs = dict(threshold=0.85, epochs=3, start=4096.0)
    every_step = find_eta_star(mlp(small_gaussian, depth=4, width=64), train, val, **kwargs)
    monkeypatch.setattr("milr.find.divergence_check_interval", lambda device: 7)
    sparse = find_eta_star(mlp(small_gaussian, depth=4, width=64), train, val, **kwargs)
    assert sparse == every_step and any(t.diverged for t in sparse.trials)
