"""The learning-rate range test: the same curve and suggestion as torch-lr-finder where the two
must agree, a suggestion between a rate that trains and one that diverges, and its table beside
η* (verdicts and ratios)."""

from __future__ import annotations

import math
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from milr import MilrError
from milr.baseline import compare, summary, verdict
from milr.data import shuffle_generator
from milr.model import build_model
from milr.range_test import lr_range_test, ramp, run_ramp, suggestions
from milr.records import RangeTestInputs
from milr.settings import Network, RangeTestSettings, TrainSettings
from milr.train import train_probe

matplotlib.use("Agg")
RAMP = RangeTestSettings(start_lr=1e-4, end_lr=50.0, steps=60)


def test_curve_and_suggestion_match_torch_lr_finder(small_gaussian):
    """Same network, same batches in the same order, factor 1: torch-lr-finder's loop and ours
    must give the same rates, the same smoothed losses and the same steepest-descent rate."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch_lr_finder import LRFinder

    data, batch = small_gaussian, 16
    order = torch.randperm(len(data.x_train), generator=shuffle_generator(3))
    x, y = data.x_train[order], data.y_train[order]
    assert RAMP.steps <= len(x) // batch  # one epoch: both see each batch once, in this order

    def net():
        return build_model(data.in_dim, 32, 2, data.num_classes, seed=3)

    theirs = net()
    opt = torch.optim.SGD(theirs.parameters(), lr=RAMP.start_lr)
    finder = LRFinder(theirs, opt, torch.nn.CrossEntropyLoss(), device="cpu")
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)
    finder.range_test(loader, end_lr=RAMP.end_lr, num_iter=RAMP.steps, step_mode="exp",
                      smooth_f=RAMP.smooth, diverge_th=RAMP.diverge)  # fmt: skip
    _, their_suggestion = finder.plot(ax=matplotlib.pyplot.figure().gca(), suggest_lr=True)

    batches = ((x[i : i + batch], y[i : i + batch]) for i in range(0, len(x), batch))
    lrs, losses, diverged = run_ramp(net(), batches, RAMP, input_lr_scale=1.0, momentum=0.0)
    assert np.allclose(lrs, finder.history["lr"], rtol=1e-12)
    assert np.allclose(losses, finder.history["loss"], rtol=1e-5)
    assert diverged == (len(lrs) < RAMP.steps)
    assert suggestions(lrs, losses)[0] == pytest.approx(their_suggestion, rel=1e-12)


def test_suggestion_lies_between_a_rate_that_trains_and_one_that_diverges(small_gaussian):
    net = Network(dataset="gaussian", depth=2, width=32, seed=0)
    inputs = RangeTestInputs(network=net, range_test=RangeTestSettings(), batch_size=32)
    result = lr_range_test(inputs, small_gaussian)
    assert result.diverged and 20 <= len(result.lrs) < 200
    assert result.minimum_over_10 > 0 and 0 < result.steepest < result.lrs[-1]
    settings = TrainSettings(threshold=0.8, epochs=3, batch_size=32)

    def probe(lr: float):
        model = build_model(small_gaussian.in_dim, 32, 2, small_gaussian.num_classes, seed=0)
        return train_probe(model, small_gaussian, lr, settings, seed=0)

    low = min(result.steepest, result.minimum_over_10)
    assert probe(low).success  # the suggestion trains
    stopped = probe(result.lrs[-1])  # the rate at which the ramp saw the loss blow up
    assert stopped.diverged or not stopped.success


def test_input_layer_keeps_its_factor_along_the_ramp(small_gaussian):
    model = build_model(small_gaussian.in_dim, 16, 1, small_gaussian.num_classes, seed=0)
    seen = []
    original = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append([group["lr"] for group in self.param_groups])
        return original(self, *args, **kwargs)

    batches = iter([(small_gaussian.x_train[:32], small_gaussian.y_train[:32])] * 30)
    torch.optim.SGD.step = spy
    try:
        run_ramp(model, batches, RangeTestSettings(steps=30), input_lr_scale=0.1, momentum=0.0)
    finally:
        torch.optim.SGD.step = original
    ratios = [first / rest for first, rest in seen]
    assert np.allclose(ratios, 0.1) and seen[-1][1] > seen[0][1] * 10


def test_ramp_rejects_an_end_below_its_start():
    with pytest.raises(MilrError, match="end_lr 0.001 must exceed start_lr 0.01"):
        ramp(RangeTestSettings(start_lr=1e-2, end_lr=1e-3))


def test_cli_bad_ramp_is_one_line_and_exit_2():
    run = subprocess.run(
        [sys.executable, "-m", "milr", "range-test", "--dataset", "gaussian", "--depth", "1",
         "--width", "8", "--start-lr", "1", "--end-lr", "0.5", "--gaussian-dim", "4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("milr: error: range test: end_lr 0.5")


def test_verdicts_against_the_bracket():
    assert verdict(2.0, low=1.0, high=1.5, no_success=False) == "above"
    assert verdict(1.2, low=1.0, high=1.5, no_success=False) == "near"
    assert verdict(0.05, low=1.0, high=1.5, no_success=False) == "far_below"
    # no probe reached t: every rate tried failed, the smallest being 0.1 (the bracket's top)
    assert verdict(0.5, low=0.0, high=0.1, no_success=True) == "above"  # 0.1 <= 0.5 failed
    assert verdict(0.1, low=0.0, high=0.1, no_success=True) == "above"
    assert verdict(0.05, low=0.0, high=0.1, no_success=True) == "unknown"  # never tried
    assert verdict(math.nan, low=1.0, high=1.5, no_success=False) == "none"
    # a fixed u that never failed: a rate above it is not known to fail
    assert verdict(9.0, low=3.0, high=4.0, no_success=False, hit_upper_bound=True) == "unknown"


def test_table_joins_each_network_with_its_main_threshold_search():
    keys = {"dataset": "gaussian", "variant": "small", "depth": 1, "width": 32}
    eta = pd.DataFrame([
        {**keys, "seed": 0, "threshold": 0.85, "bracket_low": 1.0, "bracket_high": 1.21,
         "no_success": False, "hit_upper_bound": False, "wall_time_s": 40.0, "status": "ok"},
        {**keys, "seed": 0, "threshold": 0.8, "bracket_low": 9.0, "bracket_high": 9.9,
         "no_success": False, "hit_upper_bound": False, "wall_time_s": 40.0, "status": "ok"},
        {**keys, "seed": 1, "threshold": 0.85, "bracket_low": 1.0, "bracket_high": 1.21,
         "no_success": False, "hit_upper_bound": False, "wall_time_s": 20.0, "status": "ok"},
    ])  # fmt: skip
    tests = pd.DataFrame([
        {**keys, "seed": 0, "steepest": 0.05, "minimum_over_10": 2.0, "diverged": True,
         "range_test_steps": 150, "range_test_wall_s": 2.0},
        {**keys, "seed": 1, "steepest": 0.5, "minimum_over_10": 1.1, "diverged": True,
         "range_test_steps": 150, "range_test_wall_s": 2.0},
    ])  # fmt: skip
    table = compare(tests, eta, {"gaussian": 0.85})
    assert len(table) == 2 and (table.threshold == 0.85).all()
    assert table.eta_star.tolist() == pytest.approx([1.1, 1.1])  # geometric midpoint
    assert table.steepest_verdict.tolist() == ["far_below", "near"]
    assert table.minimum_over_10_verdict.tolist() == ["above", "near"]
    assert table.cost_ratio.tolist() == pytest.approx([0.05, 0.1])
    rows = summary(table).set_index("suggestion")
    assert rows.loc["steepest", "far_below"] == 0.5 and rows.loc["minimum_over_10", "above"] == 0.5
    assert rows.loc["steepest", "median_cost_ratio"] == pytest.approx(0.075)
