"""The sentences that read the tables (milr.evidence): slopes against numpy, and each verdict
on a study built to give it, so that a sentence cannot say more than its numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from milr.evidence import number, product_tests, readings, slopes_table
from milr.laws import laws_table
from milr.settings import FitOptions

OPTIONS = FitOptions(min_width_over_depth=16)
GRID = [(d, w) for d in (1, 2, 3, 4, 8) for w in (128, 256, 512, 1024)]  # the wide study's


def study(log_eta, scatter: float = 0.02, seed: int = 0) -> pd.DataFrame:
    """η* jobs of two variants and 2 seeds on GRID, log η* = log_eta(depth, width) + scatter."""
    rng = np.random.default_rng(seed)
    rows = []
    for variant in ("small", "full"):
        for depth, width in GRID:
            centre = log_eta(depth, width) + rng.normal(0, scatter)
            for s in range(2):
                eta = math.exp(centre + rng.normal(0, scatter / 4))
                rows.append(dict(dataset="mnist1d", variant=variant, threshold=0.5, depth=depth,
                                 width=width, seed=s, bracket_low=eta / 1.03,
                                 bracket_high=eta * 1.03, relative_bracket=1.0609,
                                 no_success=False, hit_upper_bound=False,
                                 status="ok"))  # fmt: skip
    return pd.DataFrame(rows)


def read(eta: pd.DataFrame) -> str:
    laws, slopes = laws_table(eta, OPTIONS), slopes_table(eta, OPTIONS)
    return "\n".join(readings(laws, slopes, {"mnist1d": 0.5}, {"small": 0.1, "full": 1.0}))


def product_but_flat_depth_1(depth: int, width: int) -> float:
    return math.log(40) - 0.8 * (math.log(depth) + math.log(width if depth > 1 else 362))


def test_width_slope_within_each_depth_is_numpys_least_squares_slope():
    eta = study(product_but_flat_depth_1, scatter=0.2)
    slopes = slopes_table(eta, OPTIONS)
    for depth in (1, 2, 8):
        jobs = eta[(eta.variant == "small") & (eta.depth == depth)]
        means = np.log(np.sqrt(jobs.bracket_low * jobs.bracket_high)).groupby(jobs.width).mean()
        slope = np.polyfit(np.log(means.index.to_numpy(float)), means.to_numpy(), 1)[0]
        row = slopes[(slopes.variant == "small") & (slopes.along == "width")
                     & (slopes["at"] == depth)]  # fmt: skip
        assert row.slope.item() == pytest.approx(-slope, rel=1e-9)
        assert row.low.item() < row.slope.item() < row.high.item()
    assert set(slopes[slopes.along == "depth"]["at"]) == {128, 256, 512, 1024}


def test_a_rejection_that_depth_1_carries_is_said_to_be_carried_by_depth_1():
    """The product law at every depth, but depth 1's η* three times what it gives: a - b > 0
    with all depths, 0 without depth 1."""

    def depth_1_apart(depth: int, width: int) -> float:
        return math.log(40) - 0.8 * math.log(depth * width) + math.log(3) * (depth == 1)

    text = read(study(depth_1_apart))
    assert text.count("a = b is rejected only with depth 1: depth 1 carries the rejection") == 2
    assert "product law, is rejected with and without" not in text
    assert "Holm over the 4 a − b tests of this study" in text


def test_a_law_without_width_is_rejected_both_ways_and_named_only_if_it_wins_both_ways():
    text = read(study(lambda d, w: math.log(40) - 1.5 * math.log(d)))
    assert text.count("a = b, the product law, is rejected with and without depth 1") == 2
    for paragraph in text.splitlines():
        named = "fits best with and without depth 1" in paragraph
        assert named or "no law is best both with and without depth 1" in paragraph


def test_a_product_law_everywhere_is_not_rejected():
    text = read(study(lambda d, w: math.log(40) - 0.8 * math.log(d * w), scatter=0.3, seed=3))
    assert text.count("a = b is not rejected") == 2


def test_holm_counts_every_a_minus_b_test_read_together():
    laws = laws_table(study(product_but_flat_depth_1), OPTIONS)
    tests = product_tests(laws)
    assert len(tests) == 4  # 2 variants x 2 subsets
    assert (tests.p_holm >= tests.a_minus_b_p).all() and (tests.p_holm <= 1).all()


def test_numbers_print_with_a_real_minus_and_no_negative_zero():
    assert number(-0.004) == "0.00" and number(-0.5) == "−0.50" and number(math.nan) == "undefined"
