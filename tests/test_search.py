"""Algorithm 1 and its variants against a fake trainer whose outcome is a step function of lr."""

from __future__ import annotations

import json
import math

import pytest
from milr import MilrError
from milr.journal import Journal
from milr.records import TrainRecord
from milr.search import (
    probe_points,
    search,
    update_bracket,
)
from milr.settings import SearchSpec


class StepTrainer:
    """Succeeds for lr <= threshold, fails slowly above it, diverges above ``diverge_at``."""

    def __init__(self, threshold: float, diverge_at: float = math.inf) -> None:
        self.threshold = threshold
        self.diverge_at = diverge_at
        self.calls: list[float] = []

    def __call__(self, lrs):
        records = []
        for lr in lrs:
            self.calls.append(lr)
            ok = lr <= self.threshold
            diverged = lr > self.diverge_at
            records.append(
                TrainRecord(
                    lr=lr,
                    success=ok,
                    diverged=diverged,
                    epochs_run=1 if ok or diverged else 10,
                    val_accuracy=[0.95 if ok else 0.5],
                )
            )
        return records


@pytest.mark.parametrize("true_eta", [0.013, 0.37, 0.8, 1.49])
def test_bisection_lands_within_u_over_2_to_the_s(true_eta):
    trainer = StepTrainer(true_eta, diverge_at=1.2 * true_eta)
    spec = SearchSpec(upper=1.5, iterations=5)
    out = search(trainer, spec)
    assert out.bracket_low <= true_eta < out.bracket_high
    assert out.bracket_high - out.bracket_low == pytest.approx(1.5 / 2**5)
    assert abs(out.eta_star - true_eta) <= 1.5 / 2**5
    assert len(trainer.calls) == 5


def test_bisection_is_algorithm_1_step_by_step():
    trainer = StepTrainer(0.3)
    search(trainer, SearchSpec(upper=1.0, iterations=4))
    # m = 0.5 fails -> u = .5; m = .25 ok -> l = .25; m = .375 fails; m = .3125 fails
    assert trainer.calls == [0.5, 0.25, 0.375, 0.3125]


def test_no_success_gives_zero_and_says_so():
    out = search(StepTrainer(0.0001), SearchSpec(upper=1.0, iterations=3))
    assert out.eta_star == 0.0
    assert out.no_success and not out.hit_upper_bound
    assert math.isinf(out.relative_bracket)


def test_all_success_flags_upper_bound_too_low():
    out = search(StepTrainer(10.0), SearchSpec(upper=1.0, iterations=3))
    assert out.hit_upper_bound
    assert out.bracket_high == 1.0
    assert out.eta_star == pytest.approx(0.875)


def test_journal_makes_restart_skip_finished_probes(tmp_path):
    path = tmp_path / "j.jsonl"
    key = {"depth": 3}
    first = StepTrainer(0.3)
    # Simulate a job killed after two probes: run a 2-round search with a journal.
    search(first, SearchSpec(upper=1.0, iterations=2), Journal(path, key))
    assert len(path.read_text().splitlines()) == 3  # header + 2 probes
    second = StepTrainer(0.3)
    out = search(second, SearchSpec(upper=1.0, iterations=5), Journal(path, key))
    assert second.calls == [0.375, 0.3125, 0.28125]
    assert out.resumed_probes == 2
    fresh = search(StepTrainer(0.3), SearchSpec(upper=1.0, iterations=5))
    assert (out.bracket_low, out.bracket_high) == (fresh.bracket_low, fresh.bracket_high)


def test_journal_for_other_inputs_is_set_aside(tmp_path):
    path = tmp_path / "j.jsonl"
    search(StepTrainer(0.3), SearchSpec(upper=1.0, iterations=2), Journal(path, {"seed": 0}))
    again = StepTrainer(0.3)
    search(again, SearchSpec(upper=1.0, iterations=2), Journal(path, {"seed": 1}))
    assert again.calls == [0.5, 0.25]
    assert (tmp_path / "j.jsonl.stale-inputs").exists()


def test_torn_last_journal_line_is_ignored(tmp_path):
    path = tmp_path / "j.jsonl"
    search(StepTrainer(0.3), SearchSpec(upper=1.0, iterations=2), Journal(path, {}))
    with open(path, "a") as handle:
        handle.write('{"lr": 0.375, "succ')
    journal = Journal(path, {})
    assert [r.lr for r in journal.records] == [0.5, 0.25]
    json.loads(path.read_text().splitlines()[0])


def test_kary_update_takes_largest_success_and_smallest_failure_above():
    records = [
        TrainRecord(lr=0.1, success=True, diverged=False, epochs_run=1),
        TrainRecord(lr=0.2, success=False, diverged=False, epochs_run=10),
        TrainRecord(lr=0.3, success=True, diverged=False, epochs_run=1),
        TrainRecord(lr=0.4, success=False, diverged=True, epochs_run=1),
        TrainRecord(lr=0.5, success=False, diverged=True, epochs_run=1),
    ]
    assert update_bracket(0.0, 1.0, records) == (0.3, 0.4)


def test_kary_two_rounds_of_8_beat_five_bisections():
    true_eta = 0.237
    kary = search(StepTrainer(true_eta), SearchSpec(upper=1.0, iterations=2, method="kary", k=8))
    bis = search(StepTrainer(true_eta), SearchSpec(upper=1.0, iterations=5))
    assert kary.bracket_low <= true_eta < kary.bracket_high
    assert kary.bracket_high - kary.bracket_low < bis.bracket_high - bis.bracket_low


def test_geometric_bisection_has_relative_precision():
    true_eta = 0.0031
    spec = SearchSpec(upper=2.0, lower=2.0 / 1024, iterations=5, scale="geometric")
    out = search(StepTrainer(true_eta), spec)
    assert out.bracket_low <= true_eta < out.bracket_high
    assert out.relative_bracket == pytest.approx(1024 ** (1 / 32))
    linear = search(StepTrainer(true_eta), SearchSpec(upper=2.0, iterations=5))
    assert linear.no_success  # linear spacing never probes below u/32 = 0.0625


def test_probe_points_are_inside_the_bracket():
    assert probe_points(0.0, 1.0, 1, "linear") == [0.5]
    pts = probe_points(0.01, 1.0, 3, "geometric")
    assert pts == pytest.approx([0.01 * 100**0.25, 0.1, 0.01 * 100**0.75])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"upper": 1.0, "lower": 1.0},
        {"upper": 1.0, "lower": -0.1},
        {"upper": 1.0, "scale": "geometric"},
        {"upper": 1.0, "method": "ternary"},
        {"upper": 1.0, "iterations": 0},
        {"upper": "auto", "scale": "geometric", "lower": 0.1},
        {"upper": "auto", "start": 1e5},
        {"upper": "tall"},
    ],
)
def test_bad_specs_are_rejected(kwargs):
    with pytest.raises(MilrError):
        SearchSpec(**kwargs)


@pytest.mark.parametrize("true_eta", [0.0021, 0.013, 0.37, 0.99, 1.0, 7.5, 260.0])
@pytest.mark.parametrize("start", [0.25, 1.0, 16.0])
def test_auto_upper_brackets_every_scale_to_the_target(true_eta, start):
    """Bracketing finds u with u failing and u/2 succeeding, then Algorithm 1 runs on [0, u]
    (its first probe, u/2, is not trained again): relative bracket <= 1 + 2^-(s-1)."""
    trainer = StepTrainer(true_eta)
    out = search(trainer, SearchSpec(upper="auto", start=start, iterations=5))
    assert out.bracket_low <= true_eta < out.bracket_high
    assert out.relative_bracket <= 1.0625 + 1e-12
    assert out.upper_found == "auto" and out.upper / 2 <= true_eta < out.upper
    assert len(trainer.calls) == len(set(trainer.calls)) == out.bracketing_probes + 4
    assert len(out.probes) == len(trainer.calls)
    assert not out.no_success and not out.hit_upper_bound


def test_auto_upper_near_the_start_costs_few_probes():
    trainer = StepTrainer(1.5)
    out = search(trainer, SearchSpec(upper="auto", start=1.0, iterations=5))
    assert trainer.calls[:3] == [1.0, 4.0, 2.0] and out.upper == 2.0
    assert len(trainer.calls) == 7


def test_auto_upper_reports_eta_below_the_smallest_rate():
    trainer = StepTrainer(1e-9)
    out = search(trainer, SearchSpec(upper="auto", start=1.0, min_rate=1e-3))
    assert out.no_success and out.eta_star == 0.0
    assert out.bracket_high == min(trainer.calls) < 4e-3 and min(trainer.calls) >= 1e-3


def test_auto_upper_reports_eta_above_the_largest_rate():
    out = search(StepTrainer(1e9), SearchSpec(upper="auto", start=1.0, max_rate=100.0))
    assert out.hit_upper_bound and out.eta_star == 64.0 and math.isinf(out.bracket_high)


def test_auto_upper_resumes_from_the_journal(tmp_path):
    path = tmp_path / "j.jsonl"
    spec = SearchSpec(upper="auto", start=1.0, iterations=5)
    first = search(StepTrainer(0.05), spec, Journal(path, {}))
    again = StepTrainer(0.05)
    second = search(again, spec, Journal(path, {}))
    assert again.calls == [] and second.resumed_probes == len(first.probes)
    assert (second.eta_star, second.upper) == (first.eta_star, first.upper)
