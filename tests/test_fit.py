"""Power-law fits recover known exponents; selection options act as documented."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from milr import MilrError
from milr.fit import FitOptions, fit_power_law, fit_tables


def synthetic(alpha=0.7, C=40.0, seeds=3, noise=0.05, rng_seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    rows = []
    for depth in (1, 2, 4, 8):
        for width in (32, 64, 128, 256):
            for seed in range(seeds):
                x = depth * width
                value = C * x**-alpha * math.exp(rng.normal(0, noise))
                rows.append(dict(depth=depth, width=width, seed=seed, eta_star=value))
    return pd.DataFrame(rows)


def fit_of(table, bootstrap=300):
    return fit_power_law(
        table.depth * table.width,
        table.eta_star,
        table.depth.astype(str) + "x" + table.width.astype(str),
        bootstrap=bootstrap,
    )


@pytest.mark.parametrize("seeds", [1, 3])
def test_fit_recovers_known_exponent(seeds):
    fit = fit_of(synthetic(seeds=seeds))
    assert fit.alpha == pytest.approx(0.7, abs=0.05)
    assert pytest.approx(40.0, rel=0.2) == fit.C
    assert fit.alpha_low < fit.alpha < fit.alpha_high
    assert fit.r2 > 0.95
    assert fit.n_architectures == 16
    assert fit.resampled == ("seeds" if seeds > 1 else "architectures")


@pytest.mark.parametrize("seeds", [1, 3])
def test_interval_covers_true_exponent_most_of_the_time(seeds):
    """A 95% bootstrap interval must cover the true alpha in most of 40 independent studies
    (a few seeds per architecture make the seed bootstrap a little optimistic: allow 80%)."""
    covered = 0
    for study in range(40):
        fit = fit_of(synthetic(seeds=seeds, rng_seed=100 + study), bootstrap=200)
        covered += fit.alpha_low <= 0.7 <= fit.alpha_high
    assert covered >= 32


def test_zero_eta_is_excluded_and_counted():
    table = synthetic(seeds=1)
    table.loc[0, "eta_star"] = 0.0
    fit = fit_power_law(table.depth * table.width, table.eta_star, bootstrap=50)
    assert fit.n_excluded == 1 and fit.n_points == len(table) - 1


def test_fit_needs_two_distinct_architectures():
    with pytest.raises(MilrError, match="at least two architectures"):
        fit_power_law([64, 64], [0.1, 0.2], bootstrap=10)


def test_fit_tables_honour_width_over_depth_and_bracket_options():
    eta = synthetic(seeds=1).assign(dataset="gaussian", variant="small", threshold=0.85)
    eta["relative_bracket"] = 1.1
    eta.loc[eta.depth == 8, "relative_bracket"] = 3.0
    sharp = synthetic(alpha=-0.5, seeds=1).rename(columns={"eta_star": "lambda1"})
    sharp["dataset"] = "gaussian"
    options = FitOptions(min_width_over_depth=16, max_relative_bracket=2.0, bootstrap=50)
    fits = fit_tables(eta, sharp, options).set_index("quantity")
    kept = eta[(eta.width / eta.depth >= 16) & (eta.depth < 8)]
    assert fits.loc["eta_star", "n_architectures"] == len(kept)
    assert fits.loc["lambda1", "alpha"] == pytest.approx(-0.5, abs=0.05)
