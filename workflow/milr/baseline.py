"""How the learning-rate range test's suggestions compare with η*: the baseline's table.

Each range test (:mod:`milr.range_test`) is matched with the η* search of the same network
(dataset, input-layer variant, depth, width, seed) at the dataset's main threshold. A suggestion
above the bracket's top would not reach t within e epochs (the search saw that rate, or a smaller
one, fail); one below a tenth of the bracket's bottom wastes more than a factor 10 of the
largest rate that trains; above a bracket whose top never failed (a fixed u that trained) the
outcome is "unknown". The cost ratio is the range test's wall time over the search's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from milr import MilrError
from milr.fit import eta_point
from milr.io import read_json
from milr.records import RangeTestResult
from milr.settings import from_json

SUGGESTIONS = ("steepest", "minimum_over_10")
FAR_BELOW = 10.0  # a suggestion this many times below η*'s bracket counts as far below
KEYS = ["dataset", "variant", "depth", "width", "seed"]


def range_test_rows(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per range-test result file."""
    rows = []
    for path in paths:
        try:
            result = from_json(RangeTestResult, read_json(path))
            net = result.inputs.network
            rows.append({
                "dataset": net.dataset, "variant": result.inputs.variant, "depth": net.depth,
                "width": net.width, "seed": net.seed, "steepest": result.steepest,
                "minimum_over_10": result.minimum_over_10, "diverged": result.diverged,
                "range_test_steps": len(result.lrs), "range_test_wall_s": result.wall_time_s,
            })  # fmt: skip
        except (KeyError, TypeError, AttributeError) as err:
            raise MilrError(f"{path} is not a range-test result ({err}); rerun its job") from err
    return pd.DataFrame(rows, columns=[*KEYS, *SUGGESTIONS, "diverged", "range_test_steps",
                                       "range_test_wall_s"])  # fmt: skip


def verdict(
    suggestion: float, low: float, high: float, no_success: bool, hit_upper_bound: bool = False
) -> str:
    """Where a suggested rate falls against η*'s final bracket [low, high]. What the search
    never tried is "unknown": above a bracket whose top never failed (a fixed u reached), or,
    where no probe reached t, below the smallest rate it tried (``high``)."""
    if not math.isfinite(suggestion):
        return "none"
    if no_success:  # every rate tried failed: the suggestion fails if one at or below it did
        return "above" if suggestion >= high else "unknown"
    if suggestion > high:
        return "unknown" if hit_upper_bound else "above"
    if suggestion < low / FAR_BELOW:
        return "far_below"
    return "near"


def compare(
    range_tests: pd.DataFrame, eta: pd.DataFrame, thresholds: dict[str, float]
) -> pd.DataFrame:
    """The range tests joined with η* at each dataset's main threshold: ratios and verdicts."""
    main = eta[eta.status == "ok"].copy()
    main_t = main.dataset.map(thresholds).astype(float)
    main = main[np.isclose(main.threshold.astype(float), main_t)]
    main["eta_star"] = eta_point(main)
    table = range_tests.merge(
        main[[*KEYS, "threshold", "eta_star", "bracket_low", "bracket_high", "no_success",
              "hit_upper_bound", "wall_time_s"]], on=KEYS, how="left", validate="one_to_one",
    ).rename(columns={"wall_time_s": "search_wall_s"})  # fmt: skip
    for name in SUGGESTIONS:
        table[f"{name}_ratio"] = table[name] / table.eta_star
        table[f"{name}_verdict"] = [
            verdict(s, lo, hi, bool(ns), bool(up)) if pd.notna(lo) else "no_search"
            for s, lo, hi, ns, up in zip(table[name], table.bracket_low, table.bracket_high,
                                         table.no_success, table.hit_upper_bound, strict=True)
        ]  # fmt: skip
    table["cost_ratio"] = table.range_test_wall_s / table.search_wall_s
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, variant and suggestion: the fractions above η* and far below it, the median
    ratio to η*, and the median cost relative to one η* search."""
    rows = []
    for (dataset, variant), group in table.groupby(["dataset", "variant"]):
        judged = group[group.eta_star.notna() | group.no_success.fillna(False).astype(bool)]
        for name in SUGGESTIONS:
            verdicts = judged[f"{name}_verdict"]
            rows.append({
                "dataset": dataset, "variant": variant, "suggestion": name,
                "networks": len(verdicts), "above": float((verdicts == "above").mean()),
                "far_below": float((verdicts == "far_below").mean()),
                "unknown": float((verdicts == "unknown").mean()),
                "median_ratio": float(judged[f"{name}_ratio"].median()),
                "median_cost_ratio": float(group.cost_ratio.median()),
            })  # fmt: skip
    return pd.DataFrame(rows)
