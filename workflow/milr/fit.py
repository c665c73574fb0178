"""Power-law fits of η* (and λ1) against depth x width, with intervals that can be trusted.

What is fitted. A search returns η* as an interval, its final bracket [low, high]; the fit uses
the geometric midpoint sqrt(low * high), the centre of the bracket on the log scale the law lives
on (the lower end biases every point down by up to the bracket's width, and the slope with it
wherever brackets differ in relative width). A job whose η* is censored, no probe reached t
(η* below the bracket's top) or the top of the bracket never failed (η* above its bottom), has no
midpoint: it is counted and named in the fit's row, drawn as a bound in the figures, and never
silently dropped. An architecture with a censored seed is left out whole (a mean over its other
seeds would be biased); see :mod:`milr.laws`, which also fits the paper's rivals.

Model: log y = log C - alpha * log(depth * width), least squares over architectures, each entering
once as the mean of log y over its seeds. For λ1, which grows with depth x width, alpha < 0.

Interval: the least-squares t-interval on the architecture means, slope ± t_{n-2} · s / sqrt(Sxx)
(and the same for log C), with s the residual standard deviation of the architectures about the
line. It assumes that each architecture's mean log η* lies off the law by an independent, normal
amount of one common size: the architectures' own scatter (which a power law does not explain)
plus their seed noise, which averages over the same number of seeds everywhere. Both widen the
interval, not only the seed noise. It covers the true exponent in 95% of synthetic studies with
architecture scatter and seed noise, from 4 to 12 architectures (tests/test_fit.py); the
two-stage bootstrap it replaced covered 90-92% there, since resampling 4 to 10 points
underestimates their spread. A fit over fewer than four architectures is not reported: its
row says why.

Prediction error: each architecture is left out in turn and predicted by the law fitted to the
others; ``loo_rmse`` is the root mean square of log(measured / predicted), so exp(loo_rmse) is
the root-mean-square factor by which the law misses an unseen architecture.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from milr import MilrError
from milr.laws import (
    LAWS,
    LEVEL,
    MIN_ARCHITECTURES,
    LawFit,
    Points,
    censor_counts,
    eta_point,
    fit_law,
    fitted,
    points_for,
    select_points,
)
from milr.settings import FitOptions

__all__ = ["LEVEL", "MIN_ARCHITECTURES", "PowerLawFit", "eta_point", "fit_power_law", "fit_tables"]


@dataclass
class PowerLawFit:
    """One fitted law y ≈ C * x^(-alpha) with its 95% t-intervals."""

    alpha: float
    C: float
    r2: float
    alpha_low: float
    alpha_high: float
    C_low: float
    C_high: float
    loo_rmse: float
    n_architectures: int
    n_points: int


def product_points(depth_width: np.ndarray, log_y: np.ndarray) -> Points:
    """Points for the product law from depth x width alone (it only sees their product)."""
    return Points(np.log(depth_width), np.zeros(len(depth_width)), log_y)


def power_law_fit(fit: LawFit, n_points: int) -> PowerLawFit:
    alpha, alpha_low, alpha_high = fit.exponent_interval((1, 0))
    log_c, c_low, c_high = fit.log_c_interval()
    return PowerLawFit(
        alpha=alpha,
        C=math.exp(log_c),
        r2=fit.r2,
        alpha_low=alpha_low,
        alpha_high=alpha_high,
        C_low=math.exp(c_low),
        C_high=math.exp(c_high),
        loo_rmse=fit.loo_rmse,
        n_architectures=fit.n,
        n_points=n_points,
    )


def fit_power_law(
    depth_width: np.ndarray | pd.Series,
    values: np.ndarray | pd.Series,
    groups: np.ndarray | pd.Series | None = None,
) -> PowerLawFit:
    """Fit y ≈ C x^(-alpha) over architecture means; ``groups`` names each row's architecture
    (default: x itself). Every value must be positive and finite: the caller decides what a
    censored value is."""
    x = np.asarray(depth_width, dtype=float)
    y = np.asarray(values, dtype=float)
    g = np.asarray(groups if groups is not None else x)
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError("power-law values must be positive and finite")
    keys = list(dict.fromkeys(g.tolist()))
    if len(keys) < MIN_ARCHITECTURES or len(set(x.tolist())) < 2:
        raise MilrError(
            f"not fitted: {len(keys)} architectures with a measured value; a power law "
            f"needs at least {MIN_ARCHITECTURES} with distinct depth x width"
        )
    arch_x = np.array([x[g == k][0] for k in keys])
    log_y = np.array([np.log(y[g == k]).mean() for k in keys])
    points = product_points(arch_x, log_y)
    return power_law_fit(fit_law(LAWS["product"], points), len(y))


def eta_fit_row(group: pd.DataFrame, options: FitOptions) -> dict[str, object]:
    """The paper's law for one (dataset, variant, threshold) under ``options``."""
    archs, points, dropped = points_for(group, options)
    row = {"n_selected_out": dropped, **censor_counts(archs)}
    n_points = int(fitted(archs).seeds.sum())
    try:
        product = product_points(np.exp(points.log_d + points.log_w), points.log_y)
        row.update(asdict(power_law_fit(fit_law(LAWS["product"], product), n_points)), error="")
    except MilrError as err:
        row.update(error=str(err))
    return row


def lambda1_fit_row(group: pd.DataFrame, options: FitOptions) -> dict[str, object]:
    """λ1's law over the architectures condition (i) keeps (λ1 is never censored)."""
    chosen, dropped = select_points(group, options)
    row = {"n_selected_out": dropped, "n_censored": 0, "n_left_out": 0, "censored": ""}
    try:
        fit = fit_power_law(
            chosen["depth"] * chosen["width"],
            chosen["lambda1"],
            chosen["depth"].astype(str) + "x" + chosen["width"].astype(str),
        )
        row.update(asdict(fit), error="")
    except MilrError as err:
        row.update(error=str(err))
    return row


FIT_COLUMNS = [
    "quantity", "dataset", "variant", "threshold", "n_censored", "n_left_out", "censored",
    "n_selected_out",
    "min_width_over_depth", "max_relative_bracket",
    *(f.name for f in dataclasses.fields(PowerLawFit)), "error",
]  # fmt: skip


def fit_tables(eta: pd.DataFrame, sharpness: pd.DataFrame, options: FitOptions) -> pd.DataFrame:
    """One row per (quantity, dataset, variant, t): the tidy ``fits.csv``."""
    rows = []
    jobs = [("eta_star", eta, ["dataset", "variant", "threshold"], eta_fit_row)]
    jobs.append(("lambda1", sharpness, ["dataset"], lambda1_fit_row))
    for quantity, table, keys, fit_row in jobs:
        if table.empty:
            continue
        for key, group in table.groupby(keys, sort=True, dropna=False):
            labels = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            row = {
                "quantity": quantity,
                "dataset": labels["dataset"],
                "variant": labels.get("variant", ""),
                "threshold": labels.get("threshold", math.nan),
                "min_width_over_depth": options.min_width_over_depth,
                "max_relative_bracket": options.max_relative_bracket,
                **fit_row(group, options),
            }
            rows.append(row)
    return pd.DataFrame(rows, columns=FIT_COLUMNS)
