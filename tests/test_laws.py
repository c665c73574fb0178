"""The paper's law and its rivals (milr.laws): intervals that cover the true exponents as often
as they claim, censored jobs used or left out whole (never half), the law that generated the
data found by leave-one-out, and the laws table and figure the workflow writes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from milr.fit import fit_tables
from milr.laws import LAWS, Points, architecture_table, fit_law, laws_table, to_points
from milr.settings import FitOptions

SCATTER, SEED_NOISE = 0.3, 0.05  # sd in log: architectures about the law, seeds about theirs
# Grids of 4, 6, 8 and 12 architectures in which depth and width both vary (the separate law
# needs both), widths >= 16 x depth as in a study that keeps condition (i).
GRIDS = {
    4: [(1, 64), (2, 256), (4, 128), (8, 512)],
    6: [(1, 64), (1, 256), (2, 128), (4, 512), (4, 128), (8, 256)],
    8: [(d, w) for d in (1, 2, 4, 8) for w in (128, 512)],
    12: [(d, w) for d in (1, 2, 4, 8) for w in (128, 256, 512)],
}
OPTIONS = FitOptions(min_width_over_depth=16)


def synthetic_eta(rng, grid, a: float, b: float, c: float = 40.0, seeds: int = 2,
                  floor: float = 0.0) -> pd.DataFrame:  # fmt: skip
    """An η* table as milr aggregate writes it, from the law C · depth^-a · width^-b with
    architecture scatter and seed noise. Jobs whose η* is below ``floor`` are censored the way a
    search reports it: no success, bracket [0, floor]."""
    rows = []
    for depth, width in grid:
        centre = math.log(c) - a * math.log(depth) - b * math.log(width) + rng.normal(0, SCATTER)
        for seed in range(seeds):
            eta = math.exp(centre + rng.normal(0, SEED_NOISE))
            censored = eta < floor
            low, high = (0.0, floor) if censored else (eta / 1.03, eta * 1.03)
            rows.append(dict(dataset="gaussian", variant="small", threshold=0.85, depth=depth,
                             width=width, seed=seed, bracket_low=low, bracket_high=high,
                             relative_bracket=math.inf if censored else 1.0609,
                             no_success=censored, hit_upper_bound=False, status="ok"))  # fmt: skip
    return pd.DataFrame(rows)


def points_of(eta: pd.DataFrame, censoring: str = "exclude") -> Points:
    return to_points(architecture_table(eta), censoring)


def synthetic_points(rng, grid, a: float, b: float, c: float = 40.0, seeds: int = 2) -> Points:
    """What :func:`points_of` gives for :func:`synthetic_eta` without censoring (each bracket's
    midpoint is η* itself), drawn straight into arrays: thousands of studies in seconds."""
    log_d, log_w = np.log(np.array(grid, float)).T
    centre = math.log(c) - a * log_d - b * log_w + rng.normal(0, SCATTER, len(grid))
    log_y = centre + rng.normal(0, SEED_NOISE, (seeds, len(grid))).mean(axis=0)
    return Points(log_d, log_w, log_y, np.full(len(grid), "value"))


def test_synthetic_points_are_what_the_tables_give():
    eta = synthetic_eta(np.random.default_rng(9), GRIDS[6], 1.0, 0.5)
    points = points_of(eta)
    means = np.log(eta.bracket_low * 1.03).groupby([eta.depth, eta.width]).mean()
    assert points.log_y == pytest.approx(means.to_numpy(), rel=1e-12)
    shape = synthetic_points(np.random.default_rng(9), sorted(GRIDS[6]), 1.0, 0.5)
    assert (shape.log_d == points.log_d).all() and (shape.log_w == points.log_w).all()


# (law fitted, true a, true b, exponents whose intervals are checked: name -> weights on (a, b))
COVERAGE_CASES = [
    ("product", 0.7, 0.7, {"alpha": (1, 0)}),
    ("separate", 1.2, 0.5, {"a": (1, 0), "b": (0, 1), "a - b": (1, -1)}),
    ("depth", 1.5, 0.0, {"a": (1, 0)}),
]


@pytest.mark.parametrize("n", sorted(GRIDS))
@pytest.mark.parametrize(("law", "a", "b", "checked"), COVERAGE_CASES)
def test_every_exponent_interval_covers_the_truth_95_percent_of_the_time(n, law, a, b, checked):
    """1,500 synthetic studies per case: the binomial standard error of a 95% coverage is 0.56
    points, so the band 95 ± 2 points is ±3.6 standard errors."""
    rng = np.random.default_rng([n, len(law)])
    truth = np.array([a, b])
    hits = dict.fromkeys(checked, 0)
    trials = 1500
    for _ in range(trials):
        fit = fit_law(LAWS[law], synthetic_points(rng, GRIDS[n], a, b), with_loo=False)
        for name, weights in checked.items():
            _, low, high = fit.exponent_interval(weights)
            hits[name] += low <= float(np.dot(weights, truth)) <= high
    for name, count in hits.items():
        assert abs(count / trials - 0.95) <= 0.02, (law, n, name, count / trials)


def test_separate_law_is_least_squares_on_log_depth_and_log_width():
    """Against numpy alone: lstsq on [1, -log d, -log w] over the architecture means, and the
    textbook covariance s² (XᵀX)⁻¹ for the a - b interval."""
    eta = synthetic_eta(np.random.default_rng(7), GRIDS[12], 1.0, 0.4)
    fit = fit_law(LAWS["separate"], points_of(eta))
    means = np.log(np.sqrt(eta.bracket_low * eta.bracket_high)).groupby(
        [eta.depth, eta.width]).mean()  # fmt: skip
    d, w = np.array(means.index.tolist()).T
    x = np.column_stack([np.ones(len(d)), -np.log(d), -np.log(w)])
    beta, rss, *_ = np.linalg.lstsq(x, means.to_numpy(), rcond=None)
    s2 = rss[0] / (len(d) - 3)
    contrast = np.array([0, 1, -1])
    half = 2.2621571628 * math.sqrt(s2 * contrast @ np.linalg.inv(x.T @ x) @ contrast)  # t_9
    centre, low, high = fit.exponent_interval((1, -1))
    assert centre == pytest.approx(beta[1] - beta[2], rel=1e-9)
    assert (low, high) == pytest.approx((centre - half, centre + half), rel=1e-8)
    assert fit.exponents() == pytest.approx(beta[1:], rel=1e-9)


def test_the_law_that_made_the_data_has_the_lowest_leave_one_out_error():
    """Data from a depth-only law (width has no effect): over 200 studies of 12 architectures the
    depth law beats the paper's product law by leave-one-out error in most of them, and the
    product law wins when it made the data."""
    rng = np.random.default_rng(11)
    wins = {"depth": 0, "product": 0}
    for _ in range(200):
        for truth, (a, b) in (("depth", (1.5, 0.0)), ("product", (0.7, 0.7))):
            points = synthetic_points(rng, GRIDS[12], a, b)
            other = "product" if truth == "depth" else "depth"
            wins[truth] += fit_law(LAWS[truth], points).loo_rmse < fit_law(
                LAWS[other], points).loo_rmse  # fmt: skip
    assert wins["depth"] > 180 and wins["product"] > 180, wins


def test_a_partly_censored_architecture_is_left_out_whole_and_counted():
    """One seed of 2x512 censored (no success): its mean from the other seed alone would be
    biased, so the architecture leaves the fit whole; fits.csv and laws.csv say so."""
    eta = synthetic_eta(np.random.default_rng(3), GRIDS[8], 0.7, 0.7)
    hit = eta.index[(eta.depth == 2) & (eta.width == 512)][0]
    eta.loc[hit, ["no_success", "bracket_low", "bracket_high"]] = [True, 0.0, 1e-4]
    fits = fit_tables(eta, eta.iloc[0:0], OPTIONS)
    row = fits.iloc[0]
    assert (row.n_censored, row.n_censored_architectures, row.n_left_out) == (1, 1, 1)
    assert row.n_architectures == 7 and row.n_points == 14 and row.censored == "2x512:below"
    laws = laws_table(eta, OPTIONS)
    assert (laws.n_architectures == 7).all() and (laws.n_censored == 1).all()
    # the same study without that architecture: the same law, to the last bit
    rest = eta[~((eta.depth == 2) & (eta.width == 512))]
    assert fit_tables(rest, rest.iloc[0:0], OPTIONS).alpha.item() == row.alpha


def test_censored_jobs_are_not_counted_as_selected_out_by_the_bracket_rule():
    eta = synthetic_eta(np.random.default_rng(4), GRIDS[8], 0.7, 0.7)
    eta.loc[0, ["no_success", "bracket_low", "bracket_high", "relative_bracket"]] = [
        True, 0.0, 1e-4, math.inf]  # fmt: skip
    eta.loc[3, "relative_bracket"] = 3.0  # one coarse bracket: selected out
    options = FitOptions(min_width_over_depth=16, max_relative_bracket=1.5)
    row = fit_tables(eta, eta.iloc[0:0], options).iloc[0]
    assert row.n_selected_out == 1 and row.n_censored == 1


def test_bounds_recover_the_exponent_where_excluding_censored_points_biases_it():
    """η* censored below a floor (the smallest rate a search tried): the deep wide architectures
    fall under it. Left out, they take the low end of the law with them and flatten the slope;
    fitted as bounds (Tobit), the exponent is recovered. 300 studies of 12 architectures."""
    rng = np.random.default_rng(5)
    estimates = {"exclude": [], "bounds": []}
    censored = 0
    for _ in range(300):
        eta = synthetic_eta(rng, GRIDS[12], 0.7, 0.7, floor=0.25)
        censored += int(eta.no_success.sum())
        for censoring in estimates:
            points = points_of(eta, censoring)
            estimates[censoring].append(fit_law(LAWS["product"], points, with_loo=False)
                                        .exponent_interval((1, 0))[0])  # fmt: skip
    assert 0.15 < censored / (300 * 24) < 0.4  # a realistic share of censored jobs
    bias = {k: float(np.mean(v)) - 0.7 for k, v in estimates.items()}
    assert abs(bias["bounds"]) < 0.03, bias
    assert bias["exclude"] < -0.08, bias


def test_fixed_exponent_law_fits_only_its_constant():
    eta = synthetic_eta(np.random.default_rng(6), GRIDS[12], 1.5, 0.0)
    fit = fit_law(LAWS["depth_3/2"], points_of(eta))
    a, low, high = fit.exponent_interval((1, 0))
    assert a == low == high == 1.5 and fit.dof == 11
    means = np.log(np.sqrt(eta.bracket_low * eta.bracket_high)).groupby(
        [eta.depth, eta.width]).mean()  # fmt: skip
    depths = np.array([d for d, _ in means.index])
    assert math.exp(fit.beta[0]) == pytest.approx(
        math.exp(float(np.mean(means.to_numpy() + 1.5 * np.log(depths)))), rel=1e-9)  # fmt: skip


def test_laws_table_marks_one_best_law_and_explains_a_failed_fit():
    eta = synthetic_eta(np.random.default_rng(8), GRIDS[12], 0.7, 0.7)
    laws = laws_table(eta, OPTIONS)
    assert list(laws.law) == list(LAWS) and laws.best.sum() == 1
    assert laws.loc[laws.best, "loo_rmse"].item() == laws.loo_rmse.min()
    small = laws_table(eta[eta.depth == 1], OPTIONS)  # 3 architectures
    assert (small.error.str.contains("not fitted")).all() and not small.best.any()
