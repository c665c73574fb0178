"""A finished study's results as Markdown: the numbers the README shows, from one command.

``milr summary --tables DIR`` prints the fits, the searches' resolution, η*·λ1, the
leave-one-architecture-out coverage and the LR-finder comparison of one study. The README holds
that output between two markers that name the tables folder; ``--readme README.md --write``
puts a fresh copy there and ``--check`` fails, with a diff, where the README differs from what
the tables say (``.ci/run`` runs it on a fresh ``make demo``). No result number is typed by hand.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path

import pandas as pd

from milr import MilrError
from milr.fit import eta_point
from milr.io import read_json, read_table, write_atomic
from milr.records import Study
from milr.settings import from_json

BEGIN = "<!-- begin: milr summary --tables {tables} -->"
END = "<!-- end: milr summary -->"


def _number(value: float, digits: int = 2) -> str:
    """A number as the README prints it: fixed digits, a real minus sign."""
    return f"{value:.{digits}f}".replace("-", "−")


def _fit_label(row: pd.Series, study: Study) -> str:
    if row["quantity"] == "lambda1":
        return f"λ1 at initialisation ({row['dataset']})"
    factor = study.input_lr_variants.get(row["variant"], math.nan)
    role = "" if study.thresholds.get(row["dataset"]) == row["threshold"] else ", sweep"
    return f"η\\*, input layer at {factor:g}× (t = {row['threshold']:g}{role})"


def _censored_archs(row: pd.Series) -> str:
    archs = row.get("n_censored_architectures", math.nan)
    left_out = row.get("n_left_out", math.nan)
    if pd.isna(archs):
        return "?"
    return f"{int(archs)}, {int(left_out)} left out"


def _header(*columns: str) -> list[str]:
    """A Markdown table's first two lines."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def fits_table(fits: pd.DataFrame, study: Study) -> list[str]:
    lines = _header("fit", "α [95% interval]", "R²", "leave-one-out error", "architectures",
                    "censored jobs (architectures, left out)")  # fmt: skip
    for _, row in fits.iterrows():
        label = _fit_label(row, study)
        if isinstance(row["error"], str) and row["error"]:
            lines.append(f"| {label} | {row['error']} | | | | |")
            continue
        interval = f"[{_number(row['alpha_low'])}, {_number(row['alpha_high'])}]"
        lines.append(
            f"| {label} | {_number(row['alpha'])} {interval} | {_number(row['r2'])} "
            f"| ×{math.exp(row['loo_rmse']):.1f} | {int(row['n_architectures'])} "
            f"| {int(row['n_censored'])} ({_censored_archs(row)}) |"
        )
    return lines


def searches_line(eta: pd.DataFrame) -> str:
    """How well the searches resolved η*: probes, bracket widths, jobs that never reached t."""
    ok = eta[eta["status"] == "ok"]
    finite = ok[ok["relative_bracket"].apply(math.isfinite)]
    zero = ok[ok["no_success"].astype(bool)]
    archs = sorted({f"{d}×{w}" for d, w in zip(zero["depth"], zero["width"], strict=True)})
    never = (
        f"; η\\* = 0 (t never reached) in {len(zero)} of them ({', '.join(archs)})"
        if len(zero)
        else "; every search reached t"
    )
    return (
        f"{len(ok)} searches, {ok['probes'].mean():.1f} probes per search; "
        f"{(finite['relative_bracket'] <= 1.0625).sum()} of {len(finite)} brackets within a "
        f"factor 1.0625 (widest {finite['relative_bracket'].max():.4f}){never}."
    )


def product_line(eta: pd.DataFrame, sharpness: pd.DataFrame, study: Study) -> str:
    """η*·λ1 over the primary variant's main-threshold jobs (η* = 2/λ1 would give 2)."""
    keys = ["dataset", "depth", "width", "seed"]
    main = eta[(eta["status"] == "ok") & (eta["variant"] == study.primary_variant)]
    main = main[main["role"] == "main"].assign(point=eta_point)
    joined = main.merge(sharpness[sharpness["status"] == "ok"], on=keys)
    product = (joined["point"] * joined["lambda1"]).dropna()
    if product.empty:
        return "η\\*·λ1: no search with both measured."
    return (
        f"η\\*·λ1 (input layer at {study.input_lr_variants[study.primary_variant]:g}×, main t) "
        f"runs from {product.min():.0f} to {product.max():.0f} over {len(product)} searches "
        "(η\\* = 2/λ1 would give 2)."
    )


def coverage_table(coverage: pd.DataFrame, study: Study) -> list[str]:
    lines = _header("law", "inside its 95% prediction interval, each architecture left out")
    for _, row in coverage.iterrows():
        factor = study.input_lr_variants.get(row["variant"], math.nan)
        lines.append(
            f"| {row['dataset']}, input layer at {factor:g}×, t = {row['threshold']:g} "
            f"| {int(row['covered'])}/{int(row['architectures'])} |"
        )
    return lines


def finder_table(finder: pd.DataFrame, study: Study) -> list[str]:
    lines = _header("variant", "suggestion", "networks", "above η\\* (would not reach t)",
                    "below η\\*/10", "not tried (unknown)", "median suggestion / η\\*")  # fmt: skip
    for _, row in finder.iterrows():
        factor = study.input_lr_variants.get(row["variant"], math.nan)
        lines.append(
            f"| input layer at {factor:g}× | {row['suggestion'].replace('_over_', ' / ')} "
            f"| {int(row['networks'])} | {row['above']:.0%} | {row['far_below']:.0%} "
            f"| {row.get('unknown', 0.0):.0%} | {row['median_ratio']:#.2g} |"
        )
    return lines


def _interval(row: pd.Series, name: str) -> str:
    """An exponent and its interval; a fixed one (an interval of zero width) as the number."""
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    if low == high:
        return f"{_number(row[name])} (fixed)"
    return f"{_number(row[name])} [{_number(low)}, {_number(high)}]"


def laws_table(laws: pd.DataFrame, study: Study) -> list[str]:
    """The paper's law and its rivals at each dataset's main t: exponents, a - b, errors."""
    lines = _header("data, input layer", "law", "a (depth)", "b (width)", "a − b", "R²",
                    "leave-one-out error", "ΔAICc")  # fmt: skip
    main = laws[laws["threshold"] == laws["dataset"].map(study.thresholds)]
    for _, row in main.iterrows():
        factor = study.input_lr_variants.get(row["variant"], math.nan)
        where = f"{row['dataset']}, {factor:g}×"
        if isinstance(row["error"], str) and row["error"]:
            lines.append(f"| {where} | {row['law']} | {row['error']} | | | | | |")
            continue
        best = " **(best)**" if str(row["best"]) == "True" else ""
        lines.append(
            f"| {where} | {row['law']}{best} | {_interval(row, 'a')} | {_interval(row, 'b')} "
            f"| {_interval(row, 'a_minus_b')} | {_number(row['r2'])} "
            f"| ×{math.exp(row['loo_rmse']):.2f} | {_number(row['delta_aicc'], 1)} |"
        )
    return lines


def summary(tables: Path) -> str:
    """The study's numbers as Markdown, from its tables folder."""
    tables = Path(tables)
    try:
        study = from_json(Study, read_json(tables / "study.json"))
    except TypeError as err:
        raise MilrError(f"{tables / 'study.json'} is not a study file ({err})") from err
    eta = read_table(tables / "eta_star.csv", ("status", "relative_bracket", "probes"),
                     study.rows.get("eta"))  # fmt: skip
    sharpness = read_table(tables / "sharpness.csv", ("status", "lambda1"),
                           study.rows.get("sharpness"))  # fmt: skip
    fits = read_table(tables / "fits.csv", ("quantity", "alpha", "r2", "loo_rmse", "error"))
    parts = ["**Fits** (`fits.csv`):", "", *fits_table(fits, study), "",
             searches_line(eta), product_line(eta, sharpness, study)]  # fmt: skip
    if (tables / "laws.csv").is_file():
        laws = read_table(tables / "laws.csv", ("law", "a", "b", "loo_rmse", "best"))
        parts += ["", "**Which law?** (`laws.csv`, main t; best: lowest leave-one-out error; "
                  "intervals 95%):", "", *laws_table(laws, study)]  # fmt: skip
    if (tables / "loao_coverage.csv").is_file():
        coverage = read_table(tables / "loao_coverage.csv", ("covered", "architectures"),
                              may_be_empty=True)  # fmt: skip
        parts += ["", "**Leave-one-architecture-out** (`loao_coverage.csv`):", "",
                  *coverage_table(coverage, study)]  # fmt: skip
    if (tables / "lr_finder_summary.csv").is_file():
        finder = read_table(tables / "lr_finder_summary.csv", ("suggestion", "above"),
                            may_be_empty=True)  # fmt: skip
        parts += ["", "**The LR finder beside η\\*** (`lr_finder_summary.csv`):", "",
                  *finder_table(finder, study)]  # fmt: skip
    return "\n".join(parts) + "\n"


def block(tables: Path, text: str) -> str:
    return f"{BEGIN.format(tables=tables)}\n{text}{END}"


def splice(readme: str, tables: Path, text: str) -> str:
    """``readme`` with the summary block of ``tables`` replaced by ``text``."""
    pattern = re.compile(re.escape(BEGIN.format(tables=tables)) + r"\n.*?" + re.escape(END),
                         re.DOTALL)  # fmt: skip
    if not pattern.search(readme):
        raise MilrError(
            f"the README has no block {BEGIN.format(tables=tables)} ... {END}; add the two "
            "marker lines where the summary belongs"
        )
    return pattern.sub(lambda _: block(tables, text), readme, count=1)


def update_readme(readme: Path, tables: Path, check: bool) -> list[str]:
    """Write the fresh summary into ``readme``, or (``check``) return the diff, empty if equal."""
    old = readme.read_text(encoding="utf-8")
    new = splice(old, tables, summary(tables))
    if check:
        return list(difflib.unified_diff(old.splitlines(), new.splitlines(),
                                         f"{readme} (as committed)",
                                         f"{readme} (from {tables})", lineterm=""))  # fmt: skip
    if new != old:
        write_atomic(readme, new)
    return []
