"""The plain trainer and a real end-to-end search on a small Gaussian task."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from milr.batched import required_correct
from milr.io import to_jsonable
from milr.measure import measure_eta_star
from milr.model import build_model, param_groups
from milr.prober import make_prober
from milr.records import SearchInputs
from milr.settings import TrainSettings
from milr.train import train_probe


def inputs(**overrides) -> SearchInputs:
    base = dict(
        dataset="gaussian",
        depth=2,
        width=32,
        seed=0,
        threshold=0.8,
        epochs=3,
        batch_size=128,
        upper=4.0,
        lower=0.0,
        iterations=4,
        input_lr_scale=1.0,
    )
    base.update(overrides)
    return SearchInputs.of(**base)


def test_model_is_kaiming_normal_with_zero_bias():
    model = build_model(in_dim=400, width=400, depth=3, num_classes=10, seed=1)
    assert len(model.layers) == 4  # depth = hidden layers; plus the output layer
    for layer in model.layers:
        assert torch.all(layer.bias == 0)
        std = layer.weight.std().item()
        assert math.isclose(std, math.sqrt(2 / layer.in_features), rel_tol=0.05)
    same = build_model(400, 400, 3, 10, seed=1)
    assert torch.equal(model.layers[1].weight, same.layers[1].weight)


def test_input_layer_group_uses_the_scaled_rate():
    model = build_model(8, 16, 2, 2, seed=0)
    groups = param_groups(model, lr=0.5, input_lr_scale=0.1)
    assert groups[0]["lr"] == 0.05 and groups[1]["lr"] == 0.5
    assert groups[0]["params"][0] is model.layers[0].weight
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_small_rate_succeeds_and_stops_at_threshold(small_gaussian):
    model = build_model(small_gaussian.in_dim, 32, 2, 2, seed=0)
    settings = TrainSettings(threshold=0.8, epochs=10)
    record = train_probe(model, small_gaussian, 0.1, settings, seed=0)
    assert record.success and not record.diverged
    assert record.val_accuracy[-1] >= 0.8
    assert all(a < 0.8 for a in record.val_accuracy[:-1])
    assert record.epochs_run == len(record.val_accuracy)


def test_huge_rate_diverges_at_once(small_gaussian):
    model = build_model(small_gaussian.in_dim, 32, 4, 2, seed=0)
    record = train_probe(model, small_gaussian, 1e4, TrainSettings(threshold=0.8), seed=0)
    assert record.diverged and not record.success
    assert record.epochs_run == 1
    assert not math.isfinite(record.final_train_loss)


def test_unreachable_threshold_runs_every_epoch(small_gaussian):
    model = build_model(small_gaussian.in_dim, 16, 1, 2, seed=0)
    record = train_probe(model, small_gaussian, 0.01, TrainSettings(threshold=1.0, epochs=3), 0)
    assert not record.success and record.epochs_run == 3 and len(record.val_accuracy) == 3


def test_end_to_end_search_is_reproducible(small_gaussian):
    first = measure_eta_star(inputs(), small_gaussian)
    second = measure_eta_star(inputs(), small_gaussian)
    assert 0 < first.eta_star < 4.0
    strip = lambda r: [(p.lr, p.success, p.val_accuracy) for p in r.probes]  # noqa: E731
    assert strip(first) == strip(second)
    assert (first.eta_star, first.bracket_high) == (second.eta_star, second.bracket_high)
    doc = to_jsonable(first)
    assert doc["inputs"]["network"]["depth"] == 2 and doc["provenance"]["numerics"]["torch"]
    assert doc["provenance"]["numerics"]["float32_precision"] == "ieee"


def test_probes_share_one_initialisation(small_gaussian):
    """Every probe of a search starts from the weights build_model draws for its seed: the
    initial weights of each stack the trainer builds are recorded and compared."""
    from milr.batched import StackedMLP

    starts: list[list[torch.Tensor]] = []
    original = StackedMLP.__init__

    def record(self, inits):
        original(self, inits)
        starts.extend([w[i].detach().clone() for w in self.weights] for i in range(len(inits)))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StackedMLP, "__init__", record)
        result = measure_eta_star(inputs(seed=3, width=16, iterations=3), small_gaussian)
    expected = [layer.weight for layer in build_model(small_gaussian.in_dim, 16, 2, 2, 3).layers]
    other_seed = build_model(small_gaussian.in_dim, 16, 2, 2, 4).layers[0].weight
    assert len(starts) == len(result.probes) == 3
    for weights in starts:
        assert all(torch.equal(w, e) for w, e in zip(weights, expected, strict=True))
        assert not torch.equal(weights[0], other_seed)


def test_required_correct_is_exact_decimal_arithmetic():
    assert required_correct(0.9, 10_000) == 9000  # float: 0.9 * 10000 = 9000.000000000002
    assert required_correct(0.925, 10_000) == 9250 and required_correct(0.34, 10_000) == 3400
    assert required_correct(0.85, 7) == 6  # ceil(5.95)


@pytest.mark.parametrize("trainer", ["plain", "batched"])
def test_a_probe_exactly_at_t_succeeds(small_gaussian, trainer):
    """Ten validation points: t = k/10 exactly as reached counts as success in both trainers
    (k/10 in float32 is below the decimal k/10 for k = 7, so a float comparison would fail)."""
    data = dataclasses.replace(small_gaussian, x_val=small_gaussian.x_val[:10],
                               y_val=small_gaussian.y_val[:10])  # fmt: skip
    model = build_model(data.in_dim, 16, 2, 2, seed=0)
    probe = make_prober({0: model}, data, TrainSettings(threshold=1.0, epochs=1), "plain")
    reached = probe([(0, 1e-3)])[0].val_accuracy[0]
    settings = TrainSettings(threshold=float(f"{reached:.1f}"), epochs=1)
    (record,) = make_prober({0: model}, data, settings, trainer)([(0, 1e-3), (0, 1e-3)])[:1]
    assert record.success and record.val_accuracy == [reached]
