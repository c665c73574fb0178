"""Power-law fits of η* (and λ1) against depth x width.

Model: log y = log C - alpha * log(depth * width), by least squares over architectures (each
architecture enters once, as the mean of log y over its seeds, so that architectures with more
seeds do not dominate). The 95% intervals come from a bootstrap: seeds are resampled within each
architecture when there are several, architectures are resampled otherwise.

For η* the paper's law has alpha > 0; for λ1, which grows with depth x width, the same formula
gives alpha < 0 (λ1 ≈ C * (depth*width)^(-alpha)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from milr import MilrError
from milr.settings import FitOptions


@dataclass
class PowerLawFit:
    """One fitted law y ≈ C * x^(-alpha) with its 95% bootstrap intervals."""

    alpha: float
    C: float
    r2: float
    alpha_low: float
    alpha_high: float
    C_low: float
    C_high: float
    n_architectures: int
    n_points: int
    n_excluded: int
    resampled: str


def _line(log_x: np.ndarray, log_y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of log_y against log_x."""
    slope, intercept = np.polyfit(log_x, log_y, 1)
    return float(slope), float(intercept)


def _r2(log_x: np.ndarray, log_y: np.ndarray, slope: float, intercept: float) -> float:
    residual = log_y - (intercept + slope * log_x)
    total = log_y - log_y.mean()
    denom = float(total @ total)
    return 1.0 - float(residual @ residual) / denom if denom > 0 else math.nan


def fit_power_law(
    depth_width: np.ndarray | pd.Series,
    values: np.ndarray | pd.Series,
    groups: np.ndarray | pd.Series | None = None,
    bootstrap: int = 2000,
    seed: int = 0,
) -> PowerLawFit:
    """Fit y ≈ C x^(-alpha); ``groups`` names each row's architecture (default: x itself).

    Rows with a non-positive or non-finite value are dropped (η* = 0 means no probe succeeded
    and has no logarithm) and counted in ``n_excluded``.
    """
    x = np.asarray(depth_width, dtype=float)
    y = np.asarray(values, dtype=float)
    g = np.asarray(groups if groups is not None else x)
    keep = np.isfinite(y) & (y > 0) & np.isfinite(x) & (x > 0)
    excluded = int((~keep).sum())
    x, y, g = x[keep], y[keep], g[keep]
    arch_keys = list(dict.fromkeys(g.tolist()))
    if len(arch_keys) < 2 or len(set(x.tolist())) < 2:
        raise MilrError(
            f"a power-law fit needs at least two architectures with distinct depth x width and "
            f"a positive value; got {len(arch_keys)} usable (excluded {excluded} rows)"
        )
    per_arch_x = np.array([x[g == k][0] for k in arch_keys])
    per_arch_logy = [np.log(y[g == k]) for k in arch_keys]
    log_x = np.log(per_arch_x)
    log_y = np.array([v.mean() for v in per_arch_logy])
    slope, intercept = _line(log_x, log_y)

    rng = np.random.default_rng(seed)
    several_seeds = any(len(v) > 1 for v in per_arch_logy)
    slopes, intercepts = [], []
    for _ in range(bootstrap):
        if several_seeds:
            draw_y = np.array([rng.choice(v, size=len(v)).mean() for v in per_arch_logy])
            draw_x = log_x
        else:
            pick = rng.integers(0, len(log_x), size=len(log_x))
            draw_x, draw_y = log_x[pick], log_y[pick]
            if np.ptp(draw_x) == 0:
                continue
        s, i = _line(draw_x, draw_y)
        slopes.append(s)
        intercepts.append(i)
    if slopes:
        s_lo, s_hi = np.percentile(slopes, [2.5, 97.5])
        i_lo, i_hi = np.percentile(intercepts, [2.5, 97.5])
    else:
        s_lo = s_hi = i_lo = i_hi = math.nan
    return PowerLawFit(
        alpha=-slope,
        C=math.exp(intercept),
        r2=_r2(log_x, log_y, slope, intercept),
        alpha_low=float(-s_hi),
        alpha_high=float(-s_lo),
        C_low=float(math.exp(i_lo)),
        C_high=float(math.exp(i_hi)),
        n_architectures=len(arch_keys),
        n_points=int(len(y)),
        n_excluded=excluded,
        resampled="seeds" if several_seeds else "architectures",
    )


def select_points(table: pd.DataFrame, options: FitOptions) -> tuple[pd.DataFrame, int]:
    """Rows that may enter a fit: width/depth above the ratio, bracket narrow enough."""
    keep = table["width"] / table["depth"] >= options.min_width_over_depth
    if "relative_bracket" in table and options.max_relative_bracket is not None:
        keep &= table["relative_bracket"] <= options.max_relative_bracket
    return table[keep], int((~keep).sum())


def fit_tables(eta: pd.DataFrame, sharpness: pd.DataFrame, options: FitOptions) -> pd.DataFrame:
    """One row per (quantity, dataset, variant, t): the tidy ``fits.csv``."""
    rows = []
    jobs = [("eta_star", eta, ["dataset", "variant", "threshold"])]
    jobs.append(("lambda1", sharpness, ["dataset"]))
    for quantity, table, keys in jobs:
        if table.empty:
            continue
        for key, group in table.groupby(keys, sort=True, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            labels = dict(zip(keys, key, strict=True))
            chosen, dropped = select_points(group, options)
            row = {"quantity": quantity, "dataset": labels["dataset"]}
            row["variant"] = labels.get("variant", "") if pd.notna(labels.get("variant")) else ""
            row["threshold"] = labels.get("threshold", math.nan)
            try:
                fit = fit_power_law(
                    chosen["depth"] * chosen["width"],
                    chosen[quantity],
                    chosen["depth"].astype(str) + "x" + chosen["width"].astype(str),
                    options.bootstrap,
                    options.seed,
                )
            except MilrError as err:
                row.update(error=str(err), n_selected_out=dropped)
            else:
                row.update(asdict(fit), n_selected_out=dropped, error="")
            rows.append(row)
    return pd.DataFrame(rows)
