"""Use the law: η* predicted for an unseen architecture, with an interval that covers it.

The law is the study's fit (:mod:`milr.fit`): least squares of log η* (the mean over seeds of each
architecture's bracket midpoint) on log(depth x width), over the architectures that satisfy the
study's condition (i). Its parameter intervals say how well α is known; they do not say where
a new architecture's η* will fall, because architectures scatter about the law (R² < 1). The
prediction interval here is the classical one for a new observation of a fitted line,

    log η̂ ± t_{n-2, (1+level)/2} · s · sqrt(1 + 1/n + (x - x̄)² / Sxx),

with s the residual standard deviation of the architectures about the line: the scatter, not
only the fit's uncertainty. :func:`leave_one_out` checks the claim on the study itself: each
architecture is left out, predicted from the others, and the measured η* is inside the
interval about ``level`` of the time if the interval is honest.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from milr import MilrError
from milr.fit import (
    MIN_ARCHITECTURES,
    Line,
    eta_point,
    fit_line,
    r_squared,
    select_points,
)
from milr.records import Study
from milr.settings import FitOptions, PredictOptions


@dataclass(frozen=True)
class Law(Line):
    """log η* = intercept + slope · log(depth x width), with what a prediction interval needs."""

    r2: float
    x_min: float  # the fitted range of depth x width
    x_max: float

    @property
    def alpha(self) -> float:
        return -self.slope

    @property
    def C(self) -> float:
        return math.exp(self.intercept)


@dataclass
class Prediction:
    depth: int
    width: int
    eta: float
    low: float
    high: float
    outside_range: bool  # depth x width outside the architectures the law was fitted on
    condition_i: bool  # width >= min_width_over_depth x depth


def architecture_points(eta: pd.DataFrame, options: FitOptions) -> pd.DataFrame:
    """One row per architecture with a measured η*: the mean log of its seeds' bracket midpoints
    (what the fit uses) and the geometric mean of their brackets. ``eta`` holds one
    (dataset, variant, threshold)."""
    chosen, _ = select_points(eta, options)
    chosen = chosen.assign(point=eta_point(chosen)).dropna(subset=["point"])
    logs = chosen.assign(
        log_y=np.log(chosen.point),
        log_low=np.log(chosen.bracket_low.astype(float)),
        log_high=np.log(chosen.bracket_high.astype(float)),
    )
    grouped = logs.groupby(["depth", "width"], as_index=False).agg(
        log_y=("log_y", "mean"),
        log_low=("log_low", "mean"),
        log_high=("log_high", "mean"),
        seeds=("seed", "count"),
    )
    grouped["log_x"] = np.log(grouped.depth * grouped.width)
    return grouped


def fit_law(points: pd.DataFrame) -> Law:
    """The least-squares line through the architectures' (log_x, log_y)."""
    n = len(points)
    x, y = points.log_x.to_numpy(float), points.log_y.to_numpy(float)
    if n < MIN_ARCHITECTURES or np.ptp(x) == 0:
        raise MilrError(
            f"{n} architectures with a measured η*: a law needs at least {MIN_ARCHITECTURES} "
            "with distinct depth x width"
        )
    line = fit_line(x, y)  # the study's fit, computed the same way
    return Law(
        **dataclasses.asdict(line),
        r2=r_squared(x, y, line.slope, line.intercept),
        x_min=float(math.exp(x.min())),
        x_max=float(math.exp(x.max())),
    )


def predict(
    law: Law, depth: int, width: int, level: float, min_width_over_depth: float
) -> Prediction:
    """η* of a depth x width network, with its ``level`` prediction interval."""
    x = math.log(depth * width)
    centre = law.intercept + law.slope * x
    spread = law.residual_sd * math.sqrt(1 + 1 / law.n + (x - law.x_mean) ** 2 / law.sxx)
    half = law.t_quantile(level) * spread
    return Prediction(
        depth=depth,
        width=width,
        eta=math.exp(centre),
        low=math.exp(centre - half),
        high=math.exp(centre + half),
        outside_range=not law.x_min <= depth * width <= law.x_max,
        condition_i=width >= min_width_over_depth * depth,
    )


def law_rows(table: pd.DataFrame, dataset: str, variant: str, threshold: float) -> pd.DataFrame:
    """The rows of ``table`` (η* jobs or fits) that belong to one law."""
    rows = table[(table.dataset == dataset) & (table.variant == variant)]
    return rows[np.isclose(rows.threshold.astype(float), threshold)]


def fit_options_of(fits: pd.DataFrame, dataset: str, variant: str, threshold: float) -> FitOptions:
    """The study's fit options for one law, from its row in ``fits.csv``."""
    rows = law_rows(fits[fits.quantity == "eta_star"], dataset, variant, threshold)
    if rows.empty:
        raise MilrError(
            f"fits.csv has no η* law for {dataset}/{variant} at t={threshold:g}: "
            "run the workflow for that dataset, variant and threshold first"
        )
    row = rows.iloc[0]
    if isinstance(row.error, str) and row.error:
        raise MilrError(
            f"the study has no law for {dataset}/{variant} at t={threshold:g}: {row.error}"
        )
    bracket = row.get("max_relative_bracket", math.nan)
    return FitOptions(
        min_width_over_depth=float(row.min_width_over_depth),
        max_relative_bracket=None if pd.isna(bracket) else float(bracket),
    )


def leave_one_out(eta: pd.DataFrame, fits: pd.DataFrame, options: PredictOptions) -> pd.DataFrame:
    """Every architecture of every fitted η* law, predicted by the law refitted without it."""
    rows = []
    ok = eta[eta.status == "ok"] if "status" in eta else eta
    for (dataset, variant, threshold), group in ok.groupby(["dataset", "variant", "threshold"]):
        try:
            fit_options = fit_options_of(fits, dataset, variant, float(threshold))
        except MilrError:
            continue  # no law to validate (too few architectures): fits.csv says why
        points = architecture_points(group, fit_options)
        for i in range(len(points)):
            try:
                law = fit_law(points.drop(index=points.index[i]))
            except MilrError:
                continue
            left_out = points.iloc[i]
            guess = predict(law, int(left_out.depth), int(left_out.width), options.level,
                            fit_options.min_width_over_depth)  # fmt: skip
            measured = math.exp(left_out.log_y)
            rows.append({
                "dataset": dataset, "variant": variant, "threshold": float(threshold),
                "depth": guess.depth, "width": guess.width, "seeds": int(left_out.seeds),
                "measured": measured, "bracket_low": math.exp(left_out.log_low),
                "bracket_high": math.exp(left_out.log_high), "predicted": guess.eta,
                "low": guess.low, "high": guess.high, "inside": guess.low <= measured <= guess.high,
                "outside_range": guess.outside_range, "level": options.level,
                "law_r2": law.r2, "law_alpha": law.alpha, "law_architectures": law.n,
            })  # fmt: skip
    columns = ["dataset", "variant", "threshold", "depth", "width", "seeds", "measured",
               "bracket_low", "bracket_high", "predicted", "low", "high", "inside",
               "outside_range", "level", "law_r2", "law_alpha", "law_architectures"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def coverage(loao: pd.DataFrame) -> pd.DataFrame:
    """Per law: how often the measured η* fell inside its leave-one-out prediction interval."""
    return (
        loao.groupby(["dataset", "variant", "threshold"], as_index=False)
        .agg(covered=("inside", "sum"), architectures=("inside", "size"), level=("level", "first"))
        .assign(coverage=lambda t: t.covered / t.architectures)
    )


def prediction_rows(law: Law, predictions: list[Prediction]) -> pd.DataFrame:
    return pd.DataFrame([asdict(p) for p in predictions]).assign(alpha=law.alpha, r2=law.r2)


def _note(p: Prediction, law: Law, min_ratio: float) -> str:
    notes = []
    if p.outside_range:
        notes.append(f"outside the fitted depth x width {law.x_min:g}-{law.x_max:g}")
    if not p.condition_i:
        notes.append(f"width < {min_ratio:g} x depth: condition (i) fails, the law may not hold")
    return "; ".join(notes)


def predict_table(
    eta: pd.DataFrame,
    fits: pd.DataFrame,
    study: Study,
    dataset: str,
    variant: str | None,
    threshold: float | None,
    architectures: list[tuple[int, int]],
    options: PredictOptions,
) -> tuple[str, pd.DataFrame]:
    """The printed report and the table of predictions for ``architectures``."""
    variant = variant or study.primary_variant
    if threshold is None:
        if dataset not in study.thresholds:
            raise MilrError(
                f"the study has no {dataset} results; pick one of {sorted(study.thresholds)}"
            )
        threshold = study.thresholds[dataset]
    fit_options = fit_options_of(fits, dataset, variant, threshold)
    rows = law_rows(eta[eta.status == "ok"], dataset, variant, threshold)
    law = fit_law(architecture_points(rows, fit_options))
    if not law.r2 >= options.min_r2:
        raise MilrError(
            f"the law for {dataset}/{variant} at t={threshold:g} has R² {law.r2:.2f} < "
            f"{options.min_r2:g}: too weak to predict from (--min-r2 lowers the floor)"
        )
    ratio = fit_options.min_width_over_depth
    predictions = [predict(law, d, w, options.level, ratio) for d, w in architectures]
    lines = [
        f"{dataset}, input-layer variant {variant}, t = {threshold:g}: η* ≈ {law.C:.4g} "
        f"(depth x width)^-{law.alpha:.3f}; R² {law.r2:.2f} over {law.n} architectures "
        f"(depth x width {law.x_min:g}-{law.x_max:g}); architectures scatter about it by "
        f"x{math.exp(law.residual_sd):.2f} (1 sd)",
        f"{options.level:.0%} prediction intervals include that scatter.",
        f"{'depth':>5} {'width':>6} {'d x w':>7} {'η*':>9}  {'interval':<21} note",
    ]
    for p in predictions:
        interval = f"[{p.low:.3g}, {p.high:.3g}]"
        lines.append(f"{p.depth:>5} {p.width:>6} {p.depth * p.width:>7} {p.eta:>9.4g}  "
                     f"{interval:<21} {_note(p, law, ratio)}".rstrip())  # fmt: skip
    table = prediction_rows(law, predictions).assign(
        dataset=dataset, variant=variant, threshold=threshold, level=options.level
    )
    return "\n".join(lines), table
