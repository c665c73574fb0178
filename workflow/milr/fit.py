"""Power-law fits of η* (and λ1) against depth x width, with intervals that can be trusted.

What is fitted. A search returns η* as an interval, its final bracket [low, high]; the fit uses
the geometric midpoint sqrt(low * high), the centre of the bracket on the log scale the law lives
on (the lower end biases every point down by up to the bracket's width, and the slope with it
wherever brackets differ in relative width). A job whose η* is censored, no probe reached t
(η* below the bracket's top) or the top of the bracket never failed (η* above its bottom), has no
midpoint: it is counted and named in the fit's row, drawn as a bound in the figures, and never
silently dropped.

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
the typical factor by which the law misses an unseen architecture.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from milr import MilrError
from milr.settings import FitOptions

MIN_ARCHITECTURES = 4
LEVEL = 0.95  # the intervals' nominal coverage


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


def least_squares_line(log_x: np.ndarray, log_y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of log_y against log_x."""
    slope, intercept = np.polyfit(log_x, log_y, 1)
    return float(slope), float(intercept)


def r_squared(log_x: np.ndarray, log_y: np.ndarray, slope: float, intercept: float) -> float:
    residual = log_y - (intercept + slope * log_x)
    total = log_y - log_y.mean()
    denom = float(total @ total)
    return 1.0 - float(residual @ residual) / denom if denom > 0 else math.nan


def _loo_rmse(log_x: np.ndarray, log_y: np.ndarray) -> float:
    """Leave-one-architecture-out prediction error of the law, in natural-log units."""
    errors = []
    for i in range(len(log_x)):
        rest = np.arange(len(log_x)) != i
        if np.ptp(log_x[rest]) == 0:
            continue
        slope, intercept = least_squares_line(log_x[rest], log_y[rest])
        errors.append(log_y[i] - (intercept + slope * log_x[i]))
    return float(np.sqrt(np.mean(np.square(errors)))) if errors else math.nan


@dataclass(frozen=True)
class Line:
    """The least-squares line log y = intercept + slope · log x through the architecture means,
    with what its t-intervals (and :mod:`milr.predict`'s prediction intervals) need."""

    slope: float
    intercept: float
    n: int  # architectures
    x_mean: float
    sxx: float
    residual_sd: float  # scatter of the architectures about the line (n - 2 dof)

    def t_quantile(self, level: float) -> float:
        return float(stats.t.ppf((1 + level) / 2, self.n - 2))

    def slope_interval(self, level: float = LEVEL) -> tuple[float, float]:
        half = self.t_quantile(level) * self.residual_sd / math.sqrt(self.sxx)
        return self.slope - half, self.slope + half

    def intercept_interval(self, level: float = LEVEL) -> tuple[float, float]:
        spread = self.residual_sd * math.sqrt(1 / self.n + self.x_mean**2 / self.sxx)
        half = self.t_quantile(level) * spread
        return self.intercept - half, self.intercept + half


def fit_line(log_x: np.ndarray, log_y: np.ndarray) -> Line:
    """Least squares through (log_x, log_y); needs at least 3 points with distinct x."""
    slope, intercept = least_squares_line(log_x, log_y)
    residual = log_y - (intercept + slope * log_x)
    n = len(log_x)
    return Line(
        slope=slope,
        intercept=intercept,
        n=n,
        x_mean=float(log_x.mean()),
        sxx=float(((log_x - log_x.mean()) ** 2).sum()),
        residual_sd=float(math.sqrt((residual @ residual) / (n - 2))),
    )


def fit_power_law(
    depth_width: np.ndarray | pd.Series,
    values: np.ndarray | pd.Series,
    groups: np.ndarray | pd.Series | None = None,
) -> PowerLawFit:
    """Fit y ≈ C x^(-alpha); ``groups`` names each row's architecture (default: x itself).

    Every value must be positive and finite: the caller decides what a censored value is.
    """
    x = np.asarray(depth_width, dtype=float)
    y = np.asarray(values, dtype=float)
    g = np.asarray(groups if groups is not None else x)
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError("power-law values must be positive and finite")
    arch_keys = list(dict.fromkeys(g.tolist()))
    if len(arch_keys) < MIN_ARCHITECTURES or len(set(x.tolist())) < 2:
        raise MilrError(
            f"not fitted: {len(arch_keys)} architectures with a measured value; a power law "
            f"needs at least {MIN_ARCHITECTURES} with distinct depth x width"
        )
    log_x = np.log(np.array([x[g == k][0] for k in arch_keys]))
    per_arch_logy = [np.log(y[g == k]) for k in arch_keys]
    log_y = np.array([v.mean() for v in per_arch_logy])
    line = fit_line(log_x, log_y)
    s_lo, s_hi = line.slope_interval()
    i_lo, i_hi = line.intercept_interval()
    return PowerLawFit(
        alpha=-line.slope,
        C=math.exp(line.intercept),
        r2=r_squared(log_x, log_y, line.slope, line.intercept),
        alpha_low=float(-s_hi),
        alpha_high=float(-s_lo),
        C_low=float(math.exp(i_lo)),
        C_high=float(math.exp(i_hi)),
        loo_rmse=_loo_rmse(log_x, log_y),
        n_architectures=len(arch_keys),
        n_points=int(len(y)),
    )


def eta_point(table: pd.DataFrame) -> pd.Series:
    """The value fitted for each η* job: the geometric midpoint of its final bracket, NaN when
    η* is censored (no success, or the bracket's top never failed)."""
    censored = table["no_success"].astype(bool) | table["hit_upper_bound"].astype(bool)
    low, high = table["bracket_low"].astype(float), table["bracket_high"].astype(float)
    ok = ~censored & (low > 0) & np.isfinite(high)
    return pd.Series(np.where(ok, np.sqrt(low.where(ok, 1.0) * high.where(ok, 1.0)), np.nan),
                     index=table.index)  # fmt: skip


def select_points(table: pd.DataFrame, options: FitOptions) -> tuple[pd.DataFrame, int]:
    """Rows that may enter a fit: width/depth above the ratio, bracket narrow enough."""
    keep = table["width"] / table["depth"] >= options.min_width_over_depth
    if "relative_bracket" in table and options.max_relative_bracket is not None:
        keep &= table["relative_bracket"] <= options.max_relative_bracket
    return table[keep], int((~keep).sum())


def _job_names(rows: pd.DataFrame) -> str:
    return " ".join(f"{d}x{w}-s{s}" for d, w, s in zip(rows.depth, rows.width, rows.seed,
                                                        strict=True))  # fmt: skip


def fit_tables(eta: pd.DataFrame, sharpness: pd.DataFrame, options: FitOptions) -> pd.DataFrame:
    """One row per (quantity, dataset, variant, t): the tidy ``fits.csv``."""
    rows = []
    jobs = [("eta_star", eta, ["dataset", "variant", "threshold"])]
    jobs.append(("lambda1", sharpness, ["dataset"]))
    for quantity, table, keys in jobs:
        if table.empty:
            continue
        for key, group in table.groupby(keys, sort=True, dropna=False):
            labels = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            chosen, dropped = select_points(group, options)
            value = eta_point(chosen) if quantity == "eta_star" else chosen[quantity]
            censored = chosen[~np.isfinite(value) | (value <= 0)]
            measured = chosen[np.isfinite(value) & (value > 0)]
            row = {
                "quantity": quantity,
                "dataset": labels["dataset"],
                "variant": labels.get("variant", ""),
                "threshold": labels.get("threshold", math.nan),
                "n_censored": len(censored),
                "censored": _job_names(censored),
                "n_selected_out": dropped,
                "min_width_over_depth": options.min_width_over_depth,
                "max_relative_bracket": options.max_relative_bracket,
            }
            try:
                fit = fit_power_law(
                    measured["depth"] * measured["width"],
                    value[measured.index],
                    measured["depth"].astype(str) + "x" + measured["width"].astype(str),
                )
            except MilrError as err:
                row.update(error=str(err))
            else:
                row.update(asdict(fit), error="")
            rows.append(row)
    columns = ["quantity", "dataset", "variant", "threshold", "n_censored", "censored",
               "n_selected_out", "min_width_over_depth", "max_relative_bracket",
               *(f.name for f in dataclasses.fields(PowerLawFit)), "error"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
