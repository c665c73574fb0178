"""Use the law: η* predicted for an unseen architecture, with an interval that covers it.

The law is one of :mod:`milr.laws` (the paper's product law by default; ``--law best`` picks
the law that predicts left-out architectures better than every other by more than its
uncertainty, and the product law where no law does), fitted by least squares of log η* (the
mean over seeds of each architecture's bracket midpoint) over the architectures that satisfy
the study's condition (i). Its parameter intervals say how well the exponents are known; they
do not say where a new architecture's η* will fall, because architectures scatter about the law
(R² < 1).
The prediction interval here is the classical one for a new observation of a linear model,

    log η̂ ± t_{n-p, (1+level)/2} · s · sqrt(1 + x₀ᵀ(XᵀX)⁻¹x₀),

with s the residual standard deviation of the architectures about the law: the scatter, not
only the fit's uncertainty (for the product law, 1 + 1/n + (x - x̄)² / Sxx).
:func:`leave_one_out` checks the claim on the study itself: each
architecture is left out, predicted from the others, and the measured η* is inside the
interval about ``level`` of the time if the interval is honest.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from milr import MilrError
from milr.laws import LAWS, LawFit, Points, best_law, fit_law, points_for
from milr.records import Study
from milr.settings import FitOptions, PredictOptions


@dataclass
class Prediction:
    depth: int
    width: int
    eta: float
    low: float
    high: float
    outside_range: bool  # outside the architectures the law was fitted on (in its variables)
    condition_i: bool  # width >= min_width_over_depth x depth


def choose_law(name: str, eta: pd.DataFrame, options: FitOptions) -> LawFit:
    """The law ``name`` fitted to one (dataset, variant, threshold)'s η* jobs; ``best``: the
    law that is best on them, else the paper's product law."""
    return law_named(name, points_for(eta, options)[1])[0]


def law_named(name: str, points: Points) -> tuple[LawFit, bool]:
    """The law ``name`` fitted to ``points``, and whether ``best`` found a law that is."""
    if name != "best":
        return fit_law(LAWS[name], points), False
    best = best_law(points)
    return fit_law(LAWS[best or "product"], points), best is not None


def outside(law: LawFit, depth: int, width: int) -> bool:
    """Whether the architecture lies outside the architectures the law was fitted on: its depth
    or its width outside theirs (a law without width still saw only their widths), or, for the
    product law, its depth x width outside theirs."""
    tolerance = 1e-9

    def off(value: float, log_range: tuple[float, float]) -> bool:
        return not log_range[0] - tolerance <= math.log(value) <= log_range[1] + tolerance

    product = law.spec.name == "product" and off(depth * width, law.log_dw_range)
    return product or off(depth, law.log_d_range) or off(width, law.log_w_range)


def predict(
    law: LawFit, depth: int, width: int, level: float, min_width_over_depth: float
) -> Prediction:
    """η* of a depth x width network, with its ``level`` prediction interval."""
    eta, low, high = law.predict(depth, width, level)
    return Prediction(
        depth=depth,
        width=width,
        eta=eta,
        low=low,
        high=high,
        outside_range=outside(law, depth, width),
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


def leave_one_out(
    eta: pd.DataFrame,
    fits: pd.DataFrame,
    options: PredictOptions,
    laws: Sequence[str] = tuple(LAWS),
) -> pd.DataFrame:
    """Every measured architecture of every fitted η* law, predicted by each of ``laws``
    refitted without it (``best``: the law chosen anew without it, as a user would)."""
    rows = []
    ok = eta[eta.status == "ok"] if "status" in eta else eta
    for (dataset, variant, threshold), group in ok.groupby(["dataset", "variant", "threshold"]):
        try:
            fit_options = fit_options_of(fits, dataset, variant, float(threshold))
        except MilrError:
            continue  # no law to validate (too few architectures): fits.csv says why
        archs = points_for(group, fit_options)[0]
        for law, i in itertools.product(laws, np.flatnonzero(archs.kind == "value")):
            left_out = archs.iloc[i]
            rest = group[(group.depth != left_out.depth) | (group.width != left_out.width)]
            try:
                fitted = choose_law(law, rest, fit_options)
            except MilrError:
                continue
            guess = predict(fitted, int(left_out.depth), int(left_out.width), options.level,
                            fit_options.min_width_over_depth)  # fmt: skip
            measured = math.exp(left_out.log_y)
            alpha = fitted.exponent_interval((1, 0))[0]
            rows.append({
                "dataset": dataset, "variant": variant, "threshold": float(threshold),
                "depth": guess.depth, "width": guess.width, "seeds": int(left_out.seeds),
                "measured": measured, "bracket_low": math.exp(left_out.log_low),
                "bracket_high": math.exp(left_out.log_high), "predicted": guess.eta,
                "low": guess.low, "high": guess.high, "inside": guess.low <= measured <= guess.high,
                "outside_range": guess.outside_range, "level": options.level, "law": law,
                "law_fitted": fitted.spec.name, "law_r2": fitted.r2, "law_alpha": alpha,
                "law_architectures": fitted.n,
            })  # fmt: skip
    columns = ["dataset", "variant", "threshold", "depth", "width", "seeds", "measured",
               "bracket_low", "bracket_high", "predicted", "low", "high", "inside",
               "outside_range", "level", "law", "law_fitted", "law_r2", "law_alpha",
               "law_architectures"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def coverage(loao: pd.DataFrame) -> pd.DataFrame:
    """Per law and η* fit: how often the measured η* fell inside its leave-one-out prediction
    interval."""
    return (
        loao.groupby(["dataset", "variant", "threshold", "law"], as_index=False, sort=False)
        .agg(covered=("inside", "sum"), architectures=("inside", "size"), level=("level", "first"))
        .assign(coverage=lambda t: t.covered / t.architectures)
    )


def prediction_rows(law: LawFit, predictions: list[Prediction]) -> pd.DataFrame:
    a, b = law.exponents()
    return pd.DataFrame([asdict(p) for p in predictions]).assign(
        law=law.spec.name, a=a, b=b, r2=law.r2
    )


def _note(p: Prediction, law: LawFit, min_ratio: float) -> str:
    notes = []
    if p.outside_range:
        notes.append(f"outside the fitted {law_variables(law)}")
    if not p.condition_i:
        notes.append(f"width < {min_ratio:g} x depth: condition (i) fails, the law may not hold")
    return "; ".join(notes)


def law_variables(law: LawFit) -> str:
    """The fitted range of the architectures, as a reader wants it."""

    def span(log_range: tuple[float, float]) -> str:
        return f"{math.exp(log_range[0]):g}-{math.exp(log_range[1]):g}"

    text = f"depths {span(law.log_d_range)}, widths {span(law.log_w_range)}"
    return (
        text + f", depth x width {span(law.log_dw_range)}" if law.spec.name == "product" else text
    )


def law_formula(law: LawFit) -> str:
    """The fitted law with its numbers: η* ≈ C · depth^-a · width^-b in the law's own form."""
    a, b = law.exponents()
    c = math.exp(law.beta[0])
    return {
        "product": f"{c:.4g} (depth x width)^-{a:.3f}",
        "separate": f"{c:.4g} depth^-{a:.3f} width^-{b:.3f}",
        "depth": f"{c:.4g} depth^-{a:.3f}",
        "depth_3/2": f"{c:.4g} depth^-3/2",
    }[law.spec.name]


def predict_table(
    eta: pd.DataFrame,
    fits: pd.DataFrame,
    study: Study,
    dataset: str,
    variant: str | None,
    threshold: float | None,
    architectures: list[tuple[int, int]],
    options: PredictOptions,
    law_name: str = "product",
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
    law, won = law_named(law_name, points_for(rows, fit_options)[1])
    if not law.r2 >= options.min_r2:
        raise MilrError(
            f"the {law.spec.name} law for {dataset}/{variant} at t={threshold:g} has R² "
            f"{law.r2:.2f} < {options.min_r2:g}: too weak to predict from (--min-r2 lowers the "
            "floor)"
        )
    ratio = fit_options.min_width_over_depth
    predictions = [predict(law, d, w, options.level, ratio) for d, w in architectures]
    chosen = ""
    if law_name == "best":
        chosen = (" (best: its leave-one-out errors beat every other law's, Holm-adjusted)" if won
                  else " (best: no law beats the others; the paper's law)")  # fmt: skip
    check = leave_one_out(rows, fits, options, (law_name,))
    lines = [
        f"{dataset}, input-layer variant {variant}, t = {threshold:g}, {law.spec.name} law"
        f"{chosen}: η* ≈ {law_formula(law)}; R² {law.r2:.2f} over {law.n} architectures "
        f"({law_variables(law)}); architectures scatter about it by "
        f"x{math.exp(law.residual_sd):.2f} (1 sd)",
        f"{options.level:.0%} prediction intervals include that scatter; "
        + (
            f"left out one at a time, {int(check.inside.sum())} of {len(check)} architectures "
            "fell inside theirs."
            if len(check)
            else "too few architectures to check them by "
            "leaving one out (the law needs 4 without it)."
        ),  # fmt: skip
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
