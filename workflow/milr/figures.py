"""The paper's figures, drawn from the tidy tables and the study file.

A registry maps each figure name (:data:`milr.names.FIGURES`) to one function that takes the
:class:`Tables` and returns a matplotlib Figure and its caption. An empty table is an error,
never a silently blank figure; rows marked missing are counted in the caption.

One style for all: seaborn "ticks", the colour-blind palette, depth coded by a sequential
palette, sized for a paper column (3.4 in per panel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from milr import MilrError  # noqa: E402
from milr.fit import eta_point  # noqa: E402
from milr.io import write_atomic  # noqa: E402
from milr.laws import fitted, points_for  # noqa: E402
from milr.names import FIGURES  # noqa: E402
from milr.records import Study  # noqa: E402
from milr.settings import FitOptions  # noqa: E402

PANEL = (4.6, 2.9)  # inches per panel: one paper column, plus the legend beside the axes
DEPTH_PALETTE = "viridis"
# One marker per depth or width, so that groups stay apart in greyscale and where they overlap.
MARKERS = "osDPXph*"
CENSORED_WORDS = {
    "no_success": "no rate reached t (▼ bound)",
    "hit_upper_bound": "u never failed (▲)",
}


@dataclass
class Tables:
    """Everything a figure may draw from: the workflow's tables and its study file."""

    eta: pd.DataFrame
    sharpness: pd.DataFrame
    fits: pd.DataFrame
    probes: pd.DataFrame
    study: Study
    config_name: str = "config.yaml"  # named in captions
    loao: pd.DataFrame | None = None  # milr validate: leave-one-architecture-out predictions
    lr_finder: pd.DataFrame | None = None  # milr lr-finder: range tests beside η*
    laws: pd.DataFrame | None = None  # milr fit --laws-out: the paper's law and its rivals


@dataclass
class Drawn:
    """A finished figure and its caption."""

    figure: plt.Figure
    caption: str


REGISTRY: dict[str, Callable[[Tables], Drawn]] = {}


def figure(name: str):
    """Register the function that draws figure ``name``."""
    if name not in FIGURES:
        raise ValueError(f"{name!r} is not in milr.names.FIGURES")

    def register(draw_fn: Callable[[Tables], Drawn]) -> Callable[[Tables], Drawn]:
        REGISTRY[name] = draw_fn
        return draw_fn

    return register


def _style() -> None:
    sns.set_theme(style="ticks", context="paper", palette="colorblind", font_scale=0.95)


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"] if "status" in table else table


def _missing_note(table: pd.DataFrame, what: str) -> str:
    """Caption text for absent rows, and for censored η* (drawn as bounds, not points)."""
    missing = int((table["status"] == "missing").sum()) if "status" in table else 0
    note = f" {missing} {what} missing (failed or not yet run)." if missing else ""
    if "eta_star" in table:
        ok = _ok(table)
        below, above = int(ok["no_success"].sum()), int(ok["hit_upper_bound"].sum())
        if below:
            note += f" {below} jobs with η* = 0 (no probe reached t): ▼ at their bound or the edge."
        if above:
            note += f" {above} jobs whose top rate never failed: ▲ at their bound or the edge."
    return note


def _require(table: pd.DataFrame, what: str) -> pd.DataFrame:
    if table.empty:
        raise MilrError(f"no {what} to plot: the table has no finished rows; run the study first")
    return table


def _per_dataset(
    rows: pd.DataFrame, panel: Callable[[plt.Axes, str, pd.DataFrame], None]
) -> plt.Figure:
    """One panel per dataset, side by side, each drawn by ``panel(ax, dataset, its rows)``."""
    datasets = sorted(rows["dataset"].unique())
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(PANEL[0] * len(datasets), PANEL[1]), squeeze=False
    )
    for ax, dataset in zip(axes[0], datasets, strict=True):
        panel(ax, dataset, rows[rows["dataset"] == dataset])
    fig.tight_layout()
    return fig


def _seed_summary(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per architecture: geometric mean over seeds, min and max (the spread)."""
    positive = table[np.isfinite(table[value]) & (table[value] > 0)]
    grouped = positive.groupby(["depth", "width", "depth_width"])[value]
    out = grouped.agg(
        mean=lambda v: float(np.exp(np.log(v).mean())), low="min", high="max", seeds="count"
    )
    return out.reset_index()


def _spread(center: pd.Series, low: pd.Series, high: pd.Series) -> list[np.ndarray]:
    """Asymmetric error bars; clipped at 0 (a geometric mean can exceed the max by rounding)."""
    return [np.clip(center - low, 0, None), np.clip(high - center, 0, None)]


def _fit_row(fits: pd.DataFrame, quantity: str, dataset: str, **keys) -> pd.Series | None:
    """The fit of ``quantity`` on ``dataset`` matching ``keys`` exactly, unless it failed."""
    rows = fits[(fits["quantity"] == quantity) & (fits["dataset"] == dataset)]
    for key, value in keys.items():
        rows = rows[rows[key].fillna("") == value]
    if rows.empty or str(rows.iloc[0].get("error", "")) not in ("", "nan"):
        return None
    return rows.iloc[0]


def _draw_fit(ax: plt.Axes, fit: pd.Series | None, x: np.ndarray, label: str) -> None:
    """The fitted law y = C x^-alpha over the plotted range, tagged gid='fit' for tests."""
    if fit is None or not np.isfinite(fit["alpha"]):
        return
    xs = np.geomspace(x.min(), x.max(), 50)
    text = (
        f"{label}: α = {fit['alpha']:.2f} [{fit['alpha_low']:.2f}, {fit['alpha_high']:.2f}], "
        f"R² = {fit['r2']:.2f}"
    )
    ax.plot(xs, fit["C"] * xs ** (-fit["alpha"]), "k--", lw=1, label=text, gid="fit")


def _log_ticks(axis, decades: float = 2.0) -> None:
    """Plain-number ticks, no minor labels (no overlapping "2x10^1"): at 1, 2, 5 x 10^k over a
    range of up to 1.8 decades, at powers of 10 beyond."""
    subs = (1.0, 2.0, 5.0) if decades <= 1.8 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _depth_palette(depths: Sequence[int]) -> dict[int, tuple]:
    return dict(zip(depths, sns.color_palette(DEPTH_PALETTE, len(depths)), strict=True))


def _loglog(ax: plt.Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        _log_ticks(axis, np.log10(limits[1] / limits[0]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def _eta_panel(
    ax: plt.Axes,
    rows: pd.DataFrame,
    fit: pd.Series | None,
    depths: Sequence[int],
    mark_ratio: float | None = None,
) -> None:
    """η* per architecture as three separate marks: the point is the geometric mean over seeds
    of each bracket's geometric midpoint, the thick bar the spread over seeds, the thin capped
    bar beside it the union of the seeds' final brackets (the search's resolution). A thin line
    joins each depth's widths, so the eye can tell depth from width; censored jobs are bounds."""
    palette = _depth_palette(depths)
    rows = rows.assign(point=eta_point(rows))
    measured = rows[np.isfinite(rows["point"])]
    summary = _seed_summary(rows, "point").join(
        measured.groupby(["depth", "width"]).agg(
            bracket_low=("bracket_low", "min"), bracket_high=("bracket_high", "max")
        ),
        on=["depth", "width"],
    )
    for depth, group in summary.groupby("depth"):
        colour = palette[depth]
        hollow = group["width"] / depth < (mark_ratio or 0)
        ax.plot(group["depth_width"], group["mean"], "-", color=colour, lw=0.6, alpha=0.6)
        ax.errorbar(
            group["depth_width"],
            group["mean"],
            fmt="none",
            ecolor=colour,
            elinewidth=2,
            yerr=_spread(group["mean"], group["low"], group["high"]),
        )
        ax.errorbar(
            group["depth_width"] * 1.07,
            group["mean"],
            fmt="none",
            ecolor=colour,
            elinewidth=0.7,
            capsize=2,
            alpha=0.7,
            yerr=_spread(group["mean"], group["bracket_low"], group["bracket_high"]),
        )
        ax.scatter(
            group["depth_width"],
            group["mean"],
            s=18,
            zorder=3,
            edgecolors=colour,
            c=[(1, 1, 1) if h else colour for h in hollow],
            label=f"depth {depth}",
        )
    # Censored jobs: a bound, drawn at the bound or, when far outside the measured range, at the
    # panel's edge (the marker says which way η* lies); the measured points set the range.
    if len(measured):
        low, high = measured["bracket_low"].min() / 2, measured["bracket_high"].max() * 2
        ax.set_ylim(low, high)
    for flag, marker, bound in (
        ("no_success", "v", "bracket_high"),
        ("hit_upper_bound", "^", "bracket_low"),
    ):
        censored = rows[rows[flag].astype(bool) & np.isfinite(rows[bound]) & (rows[bound] > 0)]
        if len(censored) and len(measured):
            censored = censored.assign(**{bound: censored[bound].clip(low * 1.15, high / 1.15)})
        if len(censored):
            ax.scatter(
                censored["depth_width"],
                censored[bound],
                marker=marker,
                s=22,
                zorder=3,
                c=[palette[d] for d in censored["depth"]],
                label=CENSORED_WORDS[flag],
            )
    _draw_fit(ax, fit, rows["depth_width"].to_numpy(dtype=float), "fit")


def _legend(ax: plt.Axes, title: str | None = None) -> None:
    """Outside the axes, on the right: a legend never hides a point."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(
            unique.values(),
            unique.keys(),
            fontsize="x-small",
            frameon=False,
            title=title,
            title_fontsize="x-small",
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
        )


def _main_rows(eta: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Rows of the given input-LR variants at each dataset's main threshold (not the sweep)."""
    return eta[eta["variant"].isin(variants) & (eta["role"] == "main")]


def _arch_counts(rows: pd.DataFrame) -> str:
    archs = rows[["depth", "width"]].drop_duplicates()
    return f"{len(archs)} architectures, {rows['seed'].nunique()} seeds, {len(rows)} jobs."


def _eta_figure(
    t: Tables, variants: Sequence[str], title: str, mark_ratio: float | None = None
) -> tuple[plt.Figure, pd.DataFrame, pd.DataFrame]:
    """η* against depth x width per dataset, one fit per variant; returns the figure, the rows
    drawn and every row asked for (missing ones included, for the caption)."""
    rows_all = _main_rows(t.eta, variants)
    rows = _require(_ok(rows_all), f"η* rows for variant(s) {', '.join(variants)}")
    depths = sorted(rows["depth"].unique())

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        threshold = t.study.thresholds[dataset]
        for variant, part in sub.groupby("variant"):
            fit = _fit_row(t.fits, "eta_star", dataset, variant=variant, threshold=threshold)
            _eta_panel(ax, part, fit, depths, mark_ratio)
        _loglog(ax, "depth × width", "η*", title.format(dataset=dataset, t=threshold))
        _legend(ax)

    return _per_dataset(rows, panel), rows, rows_all


def _fit_ratio(fits: pd.DataFrame) -> float:
    """The width/depth ratio the fits selected on (condition (i)), as fits.csv records it."""
    if "min_width_over_depth" not in fits or fits.empty:
        return 0.0
    return float(fits["min_width_over_depth"].iloc[0])


def _eta_caption(t: Tables, variants: Sequence[str], label: str, rows, rows_all) -> str:
    scales = ", ".join(f"{v} = {t.study.input_lr_variants.get(v, '?')}×" for v in variants)
    return (
        f"η* against depth × width ({label}; input-layer learning rate {scales} the rest), "
        "log-log. Each job's η* is the geometric midpoint of its final search bracket; points: "
        "geometric mean over seeds; thick bars: spread over seeds; thin capped bars (offset "
        "right): the seeds' final brackets; thin lines join the widths of one depth. Dashed: the "
        "power-law fit η* = C (depth × width)^-α from fits.csv (95% t-interval)"
        f", on architectures with width/depth ≥ {_fit_ratio(t.fits):g}. "
        f"{_arch_counts(rows)} Config: {t.config_name}." + _missing_note(rows_all, "η* jobs")
    )


@figure("eta_small_input_lr")
def figure_eta_small(t: Tables) -> Drawn:
    """Figure 1: η* against depth x width, input layer at a small rate (condition (ii))."""
    variants = [t.study.primary_variant]
    fig, rows, rows_all = _eta_figure(t, variants, "{dataset} (t = {t:g})")
    return Drawn(fig, _eta_caption(t, variants, "input layer at a small rate", rows, rows_all))


@figure("eta_full_input_lr")
def figure_eta_full(t: Tables) -> Drawn:
    """Figure 2: the same for the other variants (the input layer at the full rate)."""
    variants = [v for v in t.study.input_lr_variants if v != t.study.primary_variant]
    fig, rows, rows_all = _eta_figure(t, variants, "{dataset} (t = {t:g})")
    return Drawn(fig, _eta_caption(t, variants, "input layer at the full rate", rows, rows_all))


@figure("condition_width_over_depth")
def figure_condition_i(t: Tables) -> Drawn:
    """Figure 3: architectures with width not large compared with depth, marked hollow."""
    ratio = _fit_ratio(t.fits)
    fig, rows, rows_all = _eta_figure(
        t, [t.study.primary_variant], "{dataset}: condition (i)", mark_ratio=ratio
    )
    narrow = rows[rows["width"] / rows["depth"] < ratio]
    caption = (
        f"Condition (i): η* against depth × width with architectures whose width is less than "
        f"{ratio:g} × depth drawn hollow ({len(narrow)} jobs); the dashed fit "
        f"uses only the filled points. {_arch_counts(rows)} Config: {t.config_name}."
        + _missing_note(rows_all, "η* jobs")
    )
    return Drawn(fig, caption)


@figure("eta_vs_threshold")
def figure_eta_vs_threshold(t: Tables) -> Drawn:
    """Figure 4: η* against t for the sweep architectures."""
    archs = sorted({tuple(a) for a in t.study.sweep_architectures})
    eta = t.eta
    picked = pd.Series(list(zip(eta["depth"], eta["width"], strict=True)), index=eta.index)
    rows_all = eta[(eta["variant"] == t.study.primary_variant) & picked.isin(archs)]
    rows = _require(_ok(rows_all), "η* rows for the threshold-sweep architectures")
    if not (eta_point(rows) > 0).any():
        return _nothing_measured(rows, "η* against t")
    colours = dict(zip(archs, sns.color_palette("colorblind", len(archs)), strict=True))

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        for (depth, width), part in sub.assign(point=eta_point(sub)).groupby(["depth", "width"]):
            stats = (
                part.groupby("threshold")["point"]
                .agg(mean=lambda v: float(np.exp(np.log(v).mean())), min="min", max="max")
                .reset_index()
            )
            ax.errorbar(
                stats["threshold"],
                stats["mean"],
                yerr=_spread(stats["mean"], stats["min"], stats["max"]),
                fmt="o-",
                ms=4,
                capsize=2,
                color=colours[(depth, width)],
                label=f"depth {depth}, width {width}",
            )
        ax.axvline(t.study.thresholds[dataset], color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        _log_ticks(ax.yaxis, np.log10(high / low))
        ax.set(xlabel="threshold accuracy t", ylabel="η*", title=dataset)
        _legend(ax)

    caption = (
        "η* against the threshold accuracy t for the sweep architectures (primary input-LR "
        "variant); points: geometric mean over seeds of the brackets' geometric midpoints, "
        "bars: min to max over seeds; dotted: the main t. "
        f"{_arch_counts(rows)} Config: {t.config_name}." + _missing_note(rows_all, "η* jobs")
    )
    return Drawn(_per_dataset(rows, panel), caption)


@figure("lambda1")
def figure_lambda1(t: Tables) -> Drawn:
    """Figure 5: λ1 at initialisation against depth x width, with its power-law fit."""
    rows = _require(_ok(t.sharpness), "λ1 rows")
    palette = _depth_palette(sorted(rows["depth"].unique()))

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        summary = _seed_summary(sub, "lambda1")
        for depth, group in summary.groupby("depth"):
            ax.errorbar(
                group["depth_width"],
                group["mean"],
                yerr=_spread(group["mean"], group["low"], group["high"]),
                fmt="o",
                ms=4,
                capsize=1.5,
                color=palette[depth],
                label=f"depth {depth}",
            )
        _draw_fit(ax, _fit_row(t.fits, "lambda1", dataset), sub["depth_width"].to_numpy(), "fit")
        _loglog(ax, "depth × width", "λ1 at initialisation", dataset)
        _legend(ax)

    caption = (
        "Sharpness λ1 (top Hessian eigenvalue of the training loss, PyHessian) at "
        "initialisation against depth × width, log-log; dashed: its power-law fit "
        f"(α < 0 means λ1 grows). {_arch_counts(rows)} Config: {t.config_name}."
        + _missing_note(t.sharpness, "λ1 jobs")
    )
    return Drawn(_per_dataset(rows, panel), caption)


def _joined(t: Tables) -> pd.DataFrame:
    """Primary-variant η* (measured, main t) beside λ1 and the sharpness matching the variant:
    λ1 of P^1/2 H P^1/2 with the input layer's rate factor in P (plain λ1 when not measured)."""
    primary = t.study.primary_variant
    matching = f"lambda1_{primary}" if f"lambda1_{primary}" in t.sharpness else "lambda1"
    main = _ok(_main_rows(t.eta, [primary])).assign(point=lambda r: eta_point(r))
    keys = ["dataset", "depth", "width", "depth_width", "seed"]
    sharp = _ok(t.sharpness)[[*keys, matching]].rename(columns={matching: "sharpness"})
    joined = _require(main.merge(sharp, on=keys), "jobs with both η* and λ1")
    return joined[np.isfinite(joined["point"])]


def _text_figure(text: str, caption: str) -> Drawn:
    """A figure that says why there is nothing to draw, instead of a failed run or blank axes."""
    fig, ax = plt.subplots(figsize=PANEL)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return Drawn(fig, caption)


def _nothing_measured(rows: pd.DataFrame, what: str) -> Drawn:
    """Finished jobs but no η* to place (every one censored): a figure that says so, with the
    jobs named, instead of a failed run or a blank axis."""
    jobs = ", ".join(f"{d}x{w}-s{s}" for d, w, s in zip(rows.depth, rows.width, rows.seed,
                                                          strict=True))  # fmt: skip
    caption = (
        f"{what}: nothing to draw. Every job's η* is censored (no probe reached t, or the top "
        f"of the bracket never failed): {jobs}. See eta_star.csv (no_success, hit_upper_bound)."
    )
    return _text_figure(f"no measured η*:\nall {len(rows)} jobs censored", caption)


def _depth_scatter(
    rows: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, reference
) -> plt.Figure:
    """Log-log points coloured by depth, plus a reference line drawn by ``reference(ax, rows)``."""
    depths = sorted(rows["depth"].unique())

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        sns.scatterplot(
            data=sub,
            x=x,
            y=y,
            hue="depth",
            palette=_depth_palette(depths),
            hue_order=depths,
            s=18,
            ax=ax,
            legend="full",
        )
        reference(ax, sub)
        _loglog(ax, xlabel, ylabel, dataset)
        _legend(ax, title="depth")

    return _per_dataset(rows, panel)


def _stability_lines(ax: plt.Axes, rows: pd.DataFrame) -> None:
    xs = np.geomspace(rows["sharpness"].min() / 1.5, rows["sharpness"].max() * 1.5, 20)
    ax.plot(xs, 2 / xs, color="grey", lw=1, ls="--", label="η = 2/λ (stability)")
    ax.plot(xs, 4 / xs, color="grey", lw=1, ls=":", label="η = 4/λ (catapult's end)")


SHARPNESS_NOTE = (
    "λ is the sharpness matching the variant: the top eigenvalue of P^1/2 H P^1/2, H the Hessian "
    "of the training loss at initialisation and P each parameter's learning-rate factor (the "
    "input layer's factor, 1 elsewhere), which is plain λ1 when P = 1; SGD stepping by -η P g on "
    "a quadratic is stable iff η < 2/λ. The catapult phase of Lewkowycz et al. (2020) lies "
    "between 2/λ and 4/λ in their solvable model, where λ is the NTK's top eigenvalue under "
    "squared loss (they observe a larger end, ~12/λ, for wide ReLU nets); under cross-entropy the "
    "Hessian is the NTK weighted by the softmax covariance, so both lines are references, not "
    "predictions."
)


@figure("eta_vs_lambda1")
def figure_eta_vs_lambda1(t: Tables) -> Drawn:
    """Figure 6: η* against the matching sharpness, with the stability and catapult lines."""
    rows = _joined(t)
    if rows.empty:
        return _nothing_measured(_ok(_main_rows(t.eta, [t.study.primary_variant])), "η* against λ")
    fig = _depth_scatter(
        rows, "sharpness", "point", "sharpness λ at initialisation", "η*", _stability_lines
    )
    caption = (
        "η* (geometric midpoint of the final bracket) against the sharpness λ at initialisation, "
        "one point per architecture and seed, primary input-LR variant, main t, log-log. "
        f"Dashed: η = 2/λ; dotted: η = 4/λ. {SHARPNESS_NOTE} The paper finds η* and λ1 closely "
        f"but not inversely related. {_arch_counts(rows)} Config: {t.config_name}."
    )
    return Drawn(fig, caption)


@figure("eta_times_lambda1")
def figure_eta_times_lambda1(t: Tables) -> Drawn:
    """Figure 7: η*·λ against depth x width: the drift away from a constant."""
    rows = _joined(t).assign(product=lambda r: r["point"] * r["sharpness"])
    if rows.empty:
        return _nothing_measured(_ok(_main_rows(t.eta, [t.study.primary_variant])), "η* · λ")

    def references(ax: plt.Axes, _: pd.DataFrame) -> None:
        ax.axhline(2.0, color="grey", lw=1, ls="--", label="η·λ = 2 (stability)")
        ax.axhline(4.0, color="grey", lw=1, ls=":", label="η·λ = 4 (catapult's end)")

    fig = _depth_scatter(rows, "depth_width", "product", "depth × width", "η* · λ", references)
    caption = (
        "η* · λ against depth × width, log-log: were η* inversely proportional to the sharpness "
        f"the points would lie on a horizontal line. {SHARPNESS_NOTE} {_arch_counts(rows)} "
        f"Config: {t.config_name}."
    )
    return Drawn(fig, caption)


def _trace_choice(rows: pd.DataFrame) -> pd.Series:
    """The job whose trace is shown: the median architecture's lowest seed."""
    archs = rows.sort_values("depth_width")[["depth", "width"]].drop_duplicates()
    depth, width = archs.iloc[len(archs) // 2]
    pick = rows[(rows["depth"] == depth) & (rows["width"] == width)].sort_values("seed")
    return pick.iloc[0]


PROBE_STYLE = {"success": ("o", "C2"), "failure": ("s", "C1"), "diverged": ("X", "C3")}


@figure("bisection_trace")
def figure_bisection_trace(t: Tables) -> Drawn:
    """Figure 8: one search per dataset, probe by probe, with the final bracket shaded."""
    rows = _require(_ok(_main_rows(t.eta, [t.study.primary_variant])), "η* rows to trace")
    keys = ["dataset", "variant", "threshold", "depth", "width", "seed"]
    shown = []

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        job = _trace_choice(sub)
        probes = t.probes[np.logical_and.reduce([t.probes[k] == job[k] for k in keys])]
        ax.axvspan(job["bracket_low"], job["bracket_high"], color="C2", alpha=0.2, label="bracket")
        for p in probes.itertuples():
            kind = "success" if p.success else "diverged" if p.diverged else "failure"
            marker, colour = PROBE_STYLE[kind]
            ax.scatter(
                p.lr, p.best_val_accuracy, marker=marker, color=colour, s=30, zorder=3, label=kind
            )
            ax.annotate(
                str(p.probe),
                (p.lr, p.best_val_accuracy),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize="x-small",
            )
        ax.axhline(job["threshold"], color="grey", lw=0.8, ls=":", label="t")
        _legend(ax)
        ax.set(xlabel="learning rate of the probe", ylabel="best validation accuracy")
        ax.set_title(f"{dataset}: depth {job['depth']}, width {job['width']}, seed {job['seed']}")
        shown.append(f"{dataset} d{job['depth']} w{job['width']} s{job['seed']}")

    fig = _per_dataset(rows, panel)
    caption = (
        "One search per dataset, probe by probe (numbers give the order): each probe's best "
        "validation accuracy within e epochs against its learning rate; circles reached t, squares "
        "did not, crosses diverged; shaded: the final bracket [η*, upper]. Shown: "
        + "; ".join(shown)
        + f". Config: {t.config_name}."
    )
    return Drawn(fig, caption)


def _extra(table: pd.DataFrame | None, option: str, step: str) -> pd.DataFrame:
    if table is None:
        raise MilrError(f"this figure needs {option} (written by milr {step})")
    return table


@figure("predicted_vs_measured")
def figure_predicted_vs_measured(t: Tables) -> Drawn:
    """η* of each architecture predicted by the law fitted without it, against its measured η*."""
    rows = _extra(t.loao, "--loao", "validate")
    if "law" in rows:
        rows = rows[rows["law"] == "product"]  # the paper's law; loao_coverage.csv has them all
    if rows.empty:
        return _text_figure(
            "no law to validate",
            "Leave-one-architecture-out check: nothing to draw. No η* law was fitted on at "
            "least 5 architectures (one left out, 4 to refit); fits.csv says why for each. "
            f"Config: {t.config_name}.",
        )
    variants = sorted(rows["variant"].unique())
    colours = dict(zip(variants, sns.color_palette("colorblind", len(variants)), strict=True))
    level = float(rows["level"].iloc[0])

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        for variant, group in sub.groupby("variant"):
            inside = int(group["inside"].sum())
            ax.errorbar(
                group["measured"],
                group["predicted"],
                xerr=_spread(group["measured"], group["bracket_low"], group["bracket_high"]),
                yerr=_spread(group["predicted"], group["low"], group["high"]),
                fmt="o", ms=4, capsize=1.5, color=colours[variant],
                label=f"{variant}: {inside}/{len(group)} inside",
            )  # fmt: skip
        lo = min(sub["measured"].min(), sub["low"].min())
        hi = max(sub["measured"].max(), sub["high"].max())
        ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="predicted = measured")
        _loglog(ax, "measured η* (bracket)", f"predicted η* ({level:.0%} interval)", dataset)
        _legend(ax)

    cover = rows.groupby(["dataset", "variant"])["inside"].agg(["sum", "size"])
    coverage = "; ".join(f"{d}/{v}: {s}/{n} = {s / n:.0%}" for (d, v), (s, n) in cover.iterrows())
    caption = (
        "Leave-one-architecture-out check of the law η* ≈ C (depth × width)^-α: each "
        "architecture's η* (x: geometric mean over seeds of the bracket midpoints, bars: the "
        "brackets) against the prediction of the law refitted without it (y, bars: the "
        f"{level:.0%} prediction interval, which includes the architectures' scatter about the "
        f"law). Coverage (nominal {level:.0%}): {coverage}. Dotted: predicted = measured. "
        f"Config: {t.config_name}."
    )
    return Drawn(_per_dataset(rows, panel), caption)


LR_FINDER_STYLE = {"steepest": ("v", "C0"), "minimum_over_10": ("^", "C1")}
LR_FINDER_WORDS = {"steepest": "steepest slope", "minimum_over_10": "loss minimum / 10"}


@figure("lr_finder")
def figure_lr_finder(t: Tables) -> Drawn:
    """The LR range test's suggestions beside η* against depth x width (primary variant)."""
    table = _require(_extra(t.lr_finder, "--lr-finder", "lr-finder"), "range tests")
    rows = table[table["variant"] == t.study.primary_variant]
    rows = _require(rows if len(rows) else table, "range tests").assign(
        depth_width=lambda r: r["depth"] * r["width"]
    )

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        measured = sub[np.isfinite(sub["eta_star"])]
        ax.scatter(measured["depth_width"], measured["eta_star"], s=22, color="k",
                   label="η* (bracket midpoint)", zorder=3)  # fmt: skip
        for name, (marker, colour) in LR_FINDER_STYLE.items():
            above = (sub[f"{name}_verdict"] == "above").mean()
            far = (sub[f"{name}_verdict"] == "far_below").mean()
            label = f"{LR_FINDER_WORDS[name]}\n{above:.0%} > η*, {far:.0%} < η*/10"
            ax.scatter(sub["depth_width"], sub[name], marker=marker, s=18, color=colour,
                       label=label)  # fmt: skip
        _loglog(ax, "depth × width", "learning rate", dataset)
        _legend(ax)

    cost = float(rows["cost_ratio"].median())
    caption = (
        "The learning-rate range test (Smith 2017; torch-lr-finder / fastai lr_find: an "
        "exponential ramp, stopped when the smoothed loss diverges) on the same networks, data "
        "and batch size as the η* searches, variant "
        f"{rows['variant'].iloc[0]}: its suggestions (steepest descent of the loss curve, and "
        "the minimum / 10) against depth × width beside η* (black). 'Above η*': the suggested "
        "rate exceeds the η* bracket, so training at it would not reach t within e epochs; "
        f"'< η*/10': more than 10× below the largest rate that trains. One range test costs "
        f"{cost:.2g}× the wall time of one η* search (median). Config: {t.config_name}."
    )
    return Drawn(_per_dataset(rows, panel), caption)


LAW_STYLE = {"product": "-", "separate": "--", "depth": "-.", "depth_3/2": ":"}
LAW_WORDS = {"product": "C·(depth·width)^-α", "separate": "C·depth^-a·width^-b",
             "depth": "C·depth^-a", "depth_3/2": "C·depth^-3/2"}  # fmt: skip


def _law_curve(law: pd.Series, depth: np.ndarray, width: np.ndarray) -> np.ndarray:
    """η* = C · depth^-a · width^-b of one laws.csv row."""
    return law["C"] * depth ** (-law["a"]) * width ** (-law["b"])


def _law_label(law: pd.Series) -> str:
    """Short: the law, its role, its root-mean-square leave-one-out factor (the caption says
    what each word means)."""
    role = "the paper's" if law["law"] == "product" else (
        "best" if str(law["best"]) == "True" else "lowest error, tied")  # fmt: skip
    words = LAW_WORDS.get(law["law"], law["law"])
    return f"{words}\n{role}: error ×{np.exp(law['loo_rmse']):.2f}"


def supported_laws(laws: pd.DataFrame) -> pd.DataFrame:
    """The rows to draw from one fit's laws.csv rows (all depths): the paper's product law and
    the law the data support, the best one, or the leader where no law is distinguishable."""
    leader = laws[laws["leader"].astype(str) == "True"]["law"].tolist()
    return laws[laws["law"].isin(["product", *leader])]


def _laws_panel(ax: plt.Axes, archs: pd.DataFrame, laws: pd.DataFrame, along: str) -> None:
    """η* against ``along`` (depth or width), one colour per value of the other variable, each
    law drawn over the points for each of those values (a law without that variable: black)."""
    other = "width" if along == "depth" else "depth"
    values = sorted(archs[other].unique())
    palette = dict(zip(values, sns.color_palette(DEPTH_PALETTE, len(values)), strict=True))
    span = np.geomspace(archs[along].min(), archs[along].max(), 40)
    markers = dict(zip(values, MARKERS * len(values), strict=False))
    for value, group in archs.groupby(other):
        ax.scatter(group[along], group["eta"], color=palette[value], s=22, zorder=3,
                   marker=markers[value], label=f"{other} {value}")  # fmt: skip
    for _, law in laws.iterrows():
        uses_other = law["b"] != 0 if other == "width" else True
        style = LAW_STYLE.get(law["law"], "-")
        for value in values if uses_other else [values[0]]:
            d, w = (span, np.full_like(span, value)) if along == "depth" else (
                np.full_like(span, value), span)  # fmt: skip
            colour = palette[value] if uses_other else "k"
            ax.plot(span, _law_curve(law, d, w), style, color=colour, lw=1, gid="law")
        ax.plot([], [], style, color="k", lw=1, label=_law_label(law))
    _loglog(ax, along, "η*", f"η* against {along}")
    _legend(ax)


@figure("laws")
def figure_laws(t: Tables) -> Drawn:
    """Where each law fails: η* against depth (a line per width) and against width (a line per
    depth), the paper's law and its rivals drawn over the points (primary variant, main t)."""
    table = _require(_extra(t.laws, "--laws", "fit --laws-out"), "laws")
    variant = t.study.primary_variant
    rows = _require(_ok(_main_rows(t.eta, [variant])), f"η* rows for variant {variant}")
    datasets = sorted(rows["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(PANEL[0] * 2, PANEL[1] * len(datasets)),
                             squeeze=False)  # fmt: skip
    notes = []
    for ax_row, dataset in zip(axes, datasets, strict=True):
        threshold = t.study.thresholds[dataset]
        laws = table[(table["dataset"] == dataset) & (table["variant"] == variant)
                     & np.isclose(table["threshold"].astype(float), threshold)]  # fmt: skip
        laws = laws[laws["error"].fillna("").astype(str).isin(["", "nan"])]
        laws = supported_laws(laws[laws["subset"] == "all"])
        options = FitOptions(min_width_over_depth=_fit_ratio(t.fits))
        archs = fitted(points_for(rows[rows["dataset"] == dataset], options)[0])
        archs = archs.assign(eta=lambda a: np.exp(a["log_y"]))
        if archs.empty or laws.empty:
            for ax in ax_row:
                ax.set_axis_off()
            notes.append(f"{dataset}: no law fitted")
            continue
        for ax, along in zip(ax_row, ("depth", "width"), strict=True):
            _laws_panel(ax, archs, laws, along)
            ax.set_title(f"{dataset}, t = {threshold:g}: η* against {along}")
        first = laws.iloc[0]
        notes.append(f"{dataset}: {int(first['n_left_out'])} architectures left out (a seed "
                     "never reached t or never failed)")  # fmt: skip
    fig.tight_layout()
    caption = (
        "Which law? η* (geometric mean over seeds of each architecture's bracket midpoints, "
        f"input-layer variant {variant}, the architectures the fits use: width/depth ≥ "
        f"{_fit_ratio(t.fits):g}, every seed measured) "
        "against depth, one colour and marker per width (left), and against width, one per depth "
        "(right). Lines: the paper's C·(depth·width)^-α (solid) and, beside it, the law with "
        "the lowest leave-one-architecture-out error (laws.csv, all depths): dashed separate "
        "exponents C·depth^-a·width^-b, dash-dot depth only C·depth^-a, dotted C·depth^-3/2 "
        "(Chen et al. 2024); a law without a width term is one black line. Legend: each law's "
        'root-mean-square leave-one-out factor ("error ×"); "best" where its paired '
        "leave-one-out errors beat every other law's by more than their uncertainty "
        '(Holm-adjusted), "tied" where they do not. '
        + "; ".join(notes)
        + f". Config: {t.config_name}."
    )
    return Drawn(fig, caption)


def draw(name: str, tables: Tables) -> Drawn:
    """Draw figure ``name`` (one of :data:`milr.names.FIGURES`)."""
    if name not in REGISTRY:
        raise MilrError(f"unknown figure {name!r}; choose one of {', '.join(FIGURES)}")
    _style()
    return REGISTRY[name](tables)


def save(drawn: Drawn, png: Path, pdf: Path, caption: Path) -> None:
    """PNG (for the report), PDF (for papers) and the caption text, each written atomically.
    The PDF carries no creation date, so the same figure gives the same bytes on every run."""
    import io

    for path, fmt, metadata in ((png, "png", None), (pdf, "pdf", {"CreationDate": None})):
        buffer = io.BytesIO()
        drawn.figure.savefig(buffer, format=fmt, dpi=200, bbox_inches="tight", metadata=metadata)
        write_atomic(path, buffer.getvalue())
    write_atomic(caption, drawn.caption + "\n")
    plt.close(drawn.figure)
