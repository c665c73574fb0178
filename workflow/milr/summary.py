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
from milr.evidence import interval, number, readings
from milr.fit import eta_point
from milr.io import read_json, read_table, study_tables, write_atomic
from milr.laws import SUBSET_WORDS
from milr.records import Study
from milr.settings import from_json

BEGIN = "<!-- begin: milr summary --tables {tables} -->"
END = "<!-- end: milr summary -->"


def _fit_label(row: pd.Series, study: Study) -> str:
    if row["quantity"] == "lambda1":
        return f"λ1 at initialisation ({row['dataset']})"
    factor = study.input_lr_variants.get(row["variant"], math.nan)
    role = "" if study.thresholds.get(row["dataset"]) == row["threshold"] else ", sweep"
    return f"η\\*, input layer at {factor:g}× (t = {row['threshold']:g}{role})"


def _header(*columns: str) -> list[str]:
    """A Markdown table's first two lines."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _factor(log_error: float, digits: int = 2) -> str:
    """A root-mean-square log error as the factor it is; 'undefined' where it is NaN."""
    return f"×{math.exp(log_error):.{digits}f}" if math.isfinite(log_error) else "undefined"


def _failed(row: pd.Series) -> bool:
    return isinstance(row["error"], str) and bool(row["error"])


def fits_table(fits: pd.DataFrame, study: Study) -> list[str]:
    lines = _header("fit", "α [95% interval]", "R²", "RMS leave-one-out factor",
                    "architectures fitted", "left out: a seed never reached t")  # fmt: skip
    for _, row in fits.iterrows():
        label = _fit_label(row, study)
        if _failed(row):
            lines.append(f"| {label} | {row['error']} | | | | |")
            continue
        interval = f"[{number(row['alpha_low'])}, {number(row['alpha_high'])}]"
        left_out = int(row["n_left_out"])
        names = f" ({row['censored'].replace(':below', '').replace(':above', ' ↑')})" if (
            left_out) else ""  # fmt: skip
        lines.append(
            f"| {label} | {number(row['alpha'])} {interval} | {number(row['r2'])} "
            f"| {_factor(row['loo_rmse'], 1)} | {int(row['n_architectures'])} "
            f"| {left_out}{names.replace('x', '×')} |"
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
    """η*·λ1 over the primary variant's main-threshold jobs, with the sharpness that matches
    the variant (the preconditioned λ1 of its per-layer rates, where the table has it)."""
    keys = ["dataset", "depth", "width", "seed"]
    variant = study.primary_variant
    main = eta[(eta["status"] == "ok") & (eta["variant"] == variant)]
    main = main[main["role"] == "main"].assign(point=eta_point)
    column = f"lambda1_{variant}" if f"lambda1_{variant}" in sharpness else "lambda1"
    joined = main.merge(sharpness[sharpness["status"] == "ok"], on=keys)
    product = (joined["point"] * joined[column]).dropna()
    if product.empty:
        return "η\\*·λ1: no search with both measured."
    which = "λ1 of the network with its input layer's rate scaled" if column != "lambda1" else "λ1"
    return (
        f"η\\*·λ1 (input layer at {study.input_lr_variants[variant]:g}×, main t, {which}) "
        f"runs from {product.min():.0f} to {product.max():.0f} over {len(product)} searches "
        "(η\\* = 2/λ1, the edge of stability of gradient descent, would give 2)."
    )


def coverage_table(coverage: pd.DataFrame, study: Study) -> list[str]:
    if coverage.empty:
        return ["No law had enough architectures to refit one without each (it needs 5)."]
    laws = list(dict.fromkeys(coverage["law"])) if "law" in coverage else ["product"]
    lines = _header("fit", *laws)
    keys = ["dataset", "variant", "threshold"]
    for (dataset, variant, threshold), rows in coverage.groupby(keys, sort=False):
        factor = study.input_lr_variants.get(variant, math.nan)
        by_law = {r.get("law", "product"): r for _, r in rows.iterrows()}
        cells = [f"{int(by_law[law]['covered'])}/{int(by_law[law]['architectures'])}"
                 if law in by_law else "" for law in laws]  # fmt: skip
        lines.append(f"| {dataset}, input layer at {factor:g}×, t = {threshold:g} | "
                     + " | ".join(cells) + " |")  # fmt: skip
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
        return f"{number(row[name])} (fixed)"
    return interval(row[name], low, high)


def _versus(row: pd.Series) -> str:
    """A law's paired leave-one-out difference from the leader, or the leader's own mark."""
    if str(row["leader"]) == "True":
        return "**best**" if str(row["best"]) == "True" else "lowest (not distinguishable)"
    if not math.isfinite(row["vs_leader"]):
        return ""
    return (f"+{number(row['vs_leader'], 3)} ± {number(row['vs_leader_se'], 3)} "
            f"(p = {row['vs_leader_p_holm']:.2g})")  # fmt: skip


def laws_table(laws: pd.DataFrame, study: Study) -> list[str]:
    """The paper's law and its rivals at each dataset's main t, with all depths and without
    depth 1: exponents, a - b, errors and each law's paired difference from the leader."""
    lines = _header("data, input layer", "depths", "law", "a (depth)", "b (width)", "a − b",
                    "R²", "RMS leave-one-out factor", "vs lowest: Δ mean squared error ± se "
                    "(Holm p)", "ΔAICc")  # fmt: skip
    main = laws[laws["threshold"] == laws["dataset"].map(study.thresholds)]
    for _, row in main.iterrows():
        factor = study.input_lr_variants.get(row["variant"], math.nan)
        where = f"{row['dataset']}, {factor:g}× | {SUBSET_WORDS[row['subset']]}"
        if _failed(row):
            lines.append(f"| {where} | {row['law']} | {row['error']} | | | | | | |")
            continue
        lines.append(
            f"| {where} | {row['law']} | {_interval(row, 'a')} | {_interval(row, 'b')} "
            f"| {_interval(row, 'a_minus_b')} | {number(row['r2'])} "
            f"| {_factor(row['loo_rmse'])} | {_versus(row)} | {number(row['delta_aicc'], 1)} |"
        )
    return lines


def slopes_lines(slopes: pd.DataFrame, study: Study) -> list[str]:
    """Within-depth width exponents and within-width depth exponents at the main t."""
    lines = _header("data, input layer", "exponent of", "within", "value [95% interval]",
                    "architectures")  # fmt: skip
    main = slopes[slopes["threshold"] == slopes["dataset"].map(study.thresholds)]
    for _, row in main.iterrows():
        factor = study.input_lr_variants.get(row["variant"], math.nan)
        within = "depth" if row["along"] == "width" else "width"
        value = interval(row["slope"], row["low"], row["high"])
        lines.append(f"| {row['dataset']}, {factor:g}× | {row['along']} | {within} "
                     f"{row['at']} | {value} | {int(row['n_architectures'])} |")  # fmt: skip
    return lines


def architecture_sets(laws: pd.DataFrame, study: Study) -> str:
    """Whether the input-layer variants' fits use the same architectures, and if not, which
    architectures only one of them uses."""
    main = laws[(laws["threshold"] == laws["dataset"].map(study.thresholds))
                & (laws["subset"] == "all") & (laws["law"] == "product")]  # fmt: skip
    notes = []
    for dataset, rows in main.groupby("dataset", sort=False):
        sets = {r.variant: set(str(r.architectures).split()) - {"nan"} for r in rows.itertuples()}
        union = set().union(*sets.values())
        only = {v: sorted(union - s) for v, s in sets.items() if union - s}
        if not only:
            notes.append(f"{dataset}: both input-layer variants are fitted on the same "
                         f"{len(union)} architectures.")  # fmt: skip
            continue
        missing = "; ".join(
            f"{', '.join(a.replace('x', '×') for a in archs)} not at "
            f"{study.input_lr_variants.get(v, math.nan):g}×"
            for v, archs in only.items()
        )
        notes.append(f"{dataset}: the variants are fitted on different architectures "
                     f"({missing}: a seed never reached t there).")  # fmt: skip
    return " ".join(notes)


def summary(tables: Path) -> str:
    """The study's numbers as Markdown, from its tables folder."""
    tables = study_tables(tables)
    try:
        study = from_json(Study, read_json(tables / "study.json"))
    except TypeError as err:
        raise MilrError(f"{tables / 'study.json'} is not a study file ({err})") from err
    eta = read_table(tables / "eta_star.csv", ("status", "relative_bracket", "probes"),
                     study.rows.get("eta"))  # fmt: skip
    sharpness = read_table(tables / "sharpness.csv", ("status", "lambda1"),
                           study.rows.get("sharpness"))  # fmt: skip
    fits = read_table(tables / "fits.csv", ("quantity", "alpha", "r2", "loo_rmse", "error"))
    ratio = fits["min_width_over_depth"].iloc[0] if len(fits) else math.nan
    said = [searches_line(eta), product_line(eta, sharpness, study)]
    shown = [f"**The paper's law** (`fits.csv`; fits use width ≥ {ratio:g} × depth, condition "
             "(i)):", "", *fits_table(fits, study)]  # fmt: skip
    if (tables / "laws.csv").is_file() and (tables / "slopes.csv").is_file():
        laws = read_table(tables / "laws.csv", ("law", "subset", "a", "b", "loo_rmse", "best"))
        slopes = read_table(tables / "slopes.csv", ("along", "at", "slope"), may_be_empty=True)
        said = ["**What the data say** (generated from `laws.csv` and `slopes.csv`; 95% "
                "intervals; p-values Holm-adjusted as stated):", "",
                *readings(laws, slopes, study.thresholds, study.input_lr_variants), "",
                architecture_sets(laws, study), "", *said]  # fmt: skip
        shown += ["", "**Which law?** (`laws.csv`, main t; each law fitted with all depths and "
                  "without depth 1; the lowest leave-one-out error is called best only where "
                  "every other law's paired difference from it is positive at Holm-adjusted "
                  "p < 0.05):", "", *laws_table(laws, study), "",
                  "**Exponents within one depth or one width** (`slopes.csv`, main t):", "",
                  *slopes_lines(slopes, study)]  # fmt: skip
    if (tables / "loao_coverage.csv").is_file():
        coverage = read_table(tables / "loao_coverage.csv", ("covered", "architectures"),
                              may_be_empty=True)  # fmt: skip
        shown += ["", "**Leave-one-architecture-out** (`loao_coverage.csv`: architectures inside "
                  "the 95% prediction interval of each law refitted without them):", "",
                  *coverage_table(coverage, study)]  # fmt: skip
    if (tables / "lr_finder_summary.csv").is_file():
        finder = read_table(tables / "lr_finder_summary.csv", ("suggestion", "above"),
                            may_be_empty=True)  # fmt: skip
        shown += ["", "**The LR finder beside η\\*** (`lr_finder_summary.csv`):", "",
                  *finder_table(finder, study)]  # fmt: skip
    # The sentences first; the tables they are read from folded below them.
    parts = [*said, "", "<details><summary>The tables behind these numbers</summary>", "",
             *shown, "", "</details>"]  # fmt: skip
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
