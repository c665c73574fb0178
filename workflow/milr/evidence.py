"""What the tables say, in sentences a referee would sign: generated, never typed.

Three readings of ``laws.csv`` and ``slopes.csv`` for each dataset x input-layer variant at its
main threshold:

- **slopes**: the exponent of width within each depth (-d log η* / d log width) and of depth
  within each width, least squares over the architectures the fits use; a law of depth x width
  predicts one width exponent at every depth, so a depth whose slope differs shows where a law
  breaks;
- **a = b?** the ``separate`` law's test of a - b = 0 (the product law's constraint), with all
  depths and without depth 1, Holm-adjusted over every such test the summary reads together; the
  product law is called rejected only where it is rejected both ways (else the sentence says
  which group of points carries the rejection);
- **which law?** a law is named only where laws.csv calls it best (its paired leave-one-out
  errors beat every other law's, Holm-adjusted) with all depths and without depth 1.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from milr.laws import ALPHA, LEVEL, SUBSET_WORDS, fitted, holm, per_fit_table, points_for
from milr.settings import FitOptions

SLOPE_COLUMNS = [
    "dataset", "variant", "threshold", "along", "at", "slope", "low", "high",
    "n_architectures", "architectures",
]  # fmt: skip


def _slope(log_x: np.ndarray, log_y: np.ndarray) -> tuple[float, float, float]:
    """-d log y / d log x by least squares and its t-interval (NaN with only two points)."""
    x = log_x - log_x.mean()
    slope = float(x @ (log_y - log_y.mean()) / (x @ x))
    n = len(x)
    if n < 3:
        return -slope, math.nan, math.nan
    residual = log_y - log_y.mean() - slope * x
    se = math.sqrt(float(residual @ residual) / (n - 2) / float(x @ x))
    half = float(stats.t.ppf((1 + LEVEL) / 2, n - 2)) * se
    return -slope, -slope - half, -slope + half


def slopes_for(eta: pd.DataFrame, options: FitOptions) -> list[dict[str, object]]:
    """Width exponents within each depth, depth exponents within each width, of one fit."""
    archs = fitted(points_for(eta, options)[0])
    rows = []
    for along, at in (("width", "depth"), ("depth", "width")):
        for value, group in archs.groupby(at):
            if group[along].nunique() < 2:
                continue
            slope, low, high = _slope(np.log(group[along].to_numpy(float)),
                                      group["log_y"].to_numpy(float))  # fmt: skip
            names = " ".join(f"{d}x{w}" for d, w in zip(group.depth, group.width, strict=True))
            rows.append({"along": along, "at": int(value), "slope": slope, "low": low,
                         "high": high, "n_architectures": len(group),
                         "architectures": names})  # fmt: skip
    return rows


def slopes_table(eta: pd.DataFrame, options: FitOptions) -> pd.DataFrame:
    """``slopes.csv``: every fit's within-depth width exponents and within-width depth ones."""
    return per_fit_table(eta, options, slopes_for, SLOPE_COLUMNS)


def number(value: float, digits: int = 2) -> str:
    """A number as the README prints it: fixed digits, a real minus sign, no "−0.00"; NaN as
    "undefined"."""
    if not math.isfinite(value):
        return "undefined"
    text = f"{value:.{digits}f}"
    return (text.lstrip("-") if float(text) == 0 else text).replace("-", "−")


def interval(centre: float, low: float, high: float) -> str:
    """An estimate and its interval; the estimate alone where the interval is undefined."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return number(centre)
    return f"{number(centre)} [{number(low)}, {number(high)}]"


def product_tests(laws: pd.DataFrame) -> pd.DataFrame:
    """The ``separate`` law's a - b = 0 tests read together (one per fit and subset), with
    Holm's adjustment over all of them."""
    tests = laws[(laws["law"] == "separate") & laws["a_minus_b_p"].notna()].copy()
    tests["p_holm"] = holm(tests["a_minus_b_p"].astype(float).tolist())
    return tests


def _product_sentence(tests: pd.DataFrame, n_tests: int) -> str:
    """Whether a = b is rejected with all depths and without depth 1."""
    parts, rejected = [], {}
    for subset, words in SUBSET_WORDS.items():
        row = tests[tests["subset"] == subset]
        if row.empty:
            parts.append(f"{words}: not fitted (too few architectures)")
            continue
        r = row.iloc[0]
        rejected[subset] = bool(r["p_holm"] < ALPHA)
        shown = interval(r["a_minus_b"], r["a_minus_b_low"], r["a_minus_b_high"])
        parts.append(f"{words} {shown} (Holm-adjusted p = {r['p_holm']:.2g})")
    if "all" not in rejected:
        verdict = "too few architectures to test it"
    elif "no_depth_1" not in rejected:
        verdict = (("a = b is rejected with all depths" if rejected["all"] else
                    "a = b is not rejected with all depths") + "; too few architectures remain "
                   "without depth 1 to tell whether depth 1 carries the result")  # fmt: skip
    elif all(rejected.values()):
        verdict = "a = b, the product law, is rejected with and without depth 1"
    elif rejected["all"]:
        verdict = "a = b is rejected only with depth 1: depth 1 carries the rejection"
    elif rejected["no_depth_1"]:
        verdict = "a = b is rejected only without depth 1"
    else:
        verdict = (
            "a = b is not rejected: these data do not tell the product law from separate exponents"
        )
    return (f"a − b: {'; '.join(parts)}; Holm over the {n_tests} a − b tests of this study: "
            f"{verdict}.")  # fmt: skip


def _ranking_sentence(fit_laws: pd.DataFrame) -> str:
    """Which law, if any, beats every other with all depths and without depth 1."""
    parts, named = [], {}
    for subset, words in SUBSET_WORDS.items():
        rows = fit_laws[fit_laws["subset"] == subset]
        leader = rows[rows["leader"].astype(str) == "True"]
        if leader.empty:
            parts.append(f"{words}: no two laws with a leave-one-out error to compare")
            continue
        lead = leader.iloc[0]
        others = rows[rows["vs_leader_p_holm"].notna()]
        closest = others.loc[others["vs_leader_p_holm"].astype(float).idxmax()]
        is_best = str(lead["best"]) == "True"
        named[subset] = lead["law"] if is_best else None
        parts.append(
            f"{words}, {lead['law']} has the lowest (RMS factor ×{math.exp(lead['loo_rmse']):.2f})"
            + ("" if is_best else f", not distinguishable from {closest['law']}")
            + f" (paired difference of squared log errors {number(closest['vs_leader'])} ± "
            f"{number(closest['vs_leader_se'])}, Holm-adjusted p = "
            f"{closest['vs_leader_p_holm']:.2g})"
        )
    laws = set(named.values())
    if len(named) == len(SUBSET_WORDS) and len(laws) == 1 and None not in laws:
        verdict = f"{laws.pop()} fits best with and without depth 1"
    else:
        verdict = "no law is best both with and without depth 1"
    return f"Leave-one-architecture-out: {'; '.join(parts)}. So {verdict}."


def _slopes_sentence(slopes: pd.DataFrame) -> str:
    width = slopes[slopes["along"] == "width"].sort_values("at")
    if width.empty:
        return "Width exponent within a depth: no depth has two widths the fits use."
    return "Width exponent within each depth: " + ", ".join(
        f"{interval(r.slope, r.low, r.high)} at depth {r.at}" for r in width.itertuples()
    ) + "."  # fmt: skip


def readings(
    laws: pd.DataFrame, slopes: pd.DataFrame, thresholds: dict[str, float],
    factors: dict[str, float],
) -> list[str]:  # fmt: skip
    """One paragraph per dataset x variant at its main threshold: slopes, a = b, which law."""
    main = laws[np.isclose(laws["threshold"].astype(float),
                           laws["dataset"].map(thresholds).astype(float))]  # fmt: skip
    tests = product_tests(main)
    paragraphs = []
    for (dataset, variant), fit_laws in main.groupby(["dataset", "variant"], sort=False):
        threshold = thresholds[dataset]
        own = slopes[(slopes["dataset"] == dataset) & (slopes["variant"] == variant)
                     & np.isclose(slopes["threshold"].astype(float), threshold)]  # fmt: skip
        fit_tests = tests[(tests["dataset"] == dataset) & (tests["variant"] == variant)]
        paragraphs.append(
            f"- **{dataset}, input layer at {factors.get(variant, math.nan):g}× "
            f"(t = {threshold:g})**. {_slopes_sentence(own)} "
            f"{_product_sentence(fit_tests, len(tests))} {_ranking_sentence(fit_laws)}"
        )
    return paragraphs
