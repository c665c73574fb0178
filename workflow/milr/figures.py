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
from milr.io import write_atomic  # noqa: E402
from milr.names import FIGURES  # noqa: E402
from milr.records import Study  # noqa: E402

PANEL = (3.4, 2.9)  # inches per panel: one paper column
DEPTH_PALETTE = "viridis"


@dataclass
class Tables:
    """Everything a figure may draw from: the workflow's tables and its study file."""

    eta: pd.DataFrame
    sharpness: pd.DataFrame
    fits: pd.DataFrame
    probes: pd.DataFrame
    study: Study


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
    """Caption text for absent rows, and for η* = 0 rows that a log axis cannot show."""
    missing = int((table["status"] == "missing").sum()) if "status" in table else 0
    note = f" {missing} {what} missing (failed or not yet run)." if missing else ""
    if "eta_star" in table:
        zero = int((_ok(table)["eta_star"] <= 0).sum())
        if zero:
            note += f" {zero} jobs with η* = 0 (no probe reached t) are not drawn."
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
    positive = table[table[value] > 0]
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


def _log_ticks(axis) -> None:
    """Plain-number ticks at 1, 2, 5 x 10^k, no minor labels: no overlapping "2x10^1"."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _depth_palette(depths: Sequence[int]) -> dict[int, tuple]:
    return dict(zip(depths, sns.color_palette(DEPTH_PALETTE, len(depths)), strict=True))


def _loglog(ax: plt.Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_ticks(ax.xaxis)
    _log_ticks(ax.yaxis)
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
    """η* per architecture: mean over seeds, seed spread and final bracket as error bars."""
    palette = _depth_palette(depths)
    summary = _seed_summary(rows, "eta_star")
    brackets = rows.groupby(["depth", "width"]).agg(
        bracket_low=("bracket_low", "min"), bracket_high=("bracket_high", "max")
    )
    summary = summary.join(brackets, on=["depth", "width"])
    for depth, group in summary.groupby("depth"):
        lower = group["mean"] - np.minimum(group["low"], group["bracket_low"].clip(lower=1e-12))
        upper = np.maximum(group["high"], group["bracket_high"]) - group["mean"]
        excluded = (
            group["width"] / group["depth"] < mark_ratio
            if mark_ratio is not None
            else pd.Series(False, index=group.index)
        )
        for flag, part in group.groupby(excluded):
            ax.errorbar(
                part["depth_width"],
                part["mean"],
                yerr=[lower[part.index].clip(lower=0), upper[part.index].clip(lower=0)],
                fmt="o",
                ms=4,
                mfc="white" if flag else palette[depth],
                mec=palette[depth],
                ecolor=palette[depth],
                elinewidth=0.8,
                capsize=1.5,
                label=f"depth {depth}" + (" (width/depth < ratio)" if flag else ""),
            )
    _draw_fit(ax, fit, rows["depth_width"].to_numpy(dtype=float), "fit")


def _legend(ax: plt.Axes, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            fontsize="x-small", loc="best", frameon=False, title=title, title_fontsize="x-small"
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


def _eta_caption(t: Tables, variants: Sequence[str], label: str, rows, rows_all) -> str:
    scales = ", ".join(f"{v} = {t.study.input_lr_variants.get(v, '?')}×" for v in variants)
    return (
        f"η* against depth × width ({label}; input-layer learning rate {scales} the rest), "
        f"log-log. Points: geometric mean over seeds; bars: the spread over seeds and the final "
        f"search bracket. Dashed: the power-law fit η* = C (depth × width)^-α from fits.csv, on "
        f"architectures with width/depth ≥ {t.study.min_width_over_depth:g}. "
        f"{_arch_counts(rows)} Config: {t.study.config_name}." + _missing_note(rows_all, "η* jobs")
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
    ratio = t.study.min_width_over_depth
    fig, rows, rows_all = _eta_figure(
        t, [t.study.primary_variant], "{dataset}: condition (i)", mark_ratio=ratio
    )
    narrow = rows[rows["width"] / rows["depth"] < ratio]
    caption = (
        f"Condition (i): η* against depth × width with architectures whose width is less than "
        f"{ratio:g} × depth drawn hollow ({len(narrow)} jobs); the dashed fit "
        f"uses only the filled points. {_arch_counts(rows)} Config: {t.study.config_name}."
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
    colours = dict(zip(archs, sns.color_palette("colorblind", len(archs)), strict=True))

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        for (depth, width), part in sub.groupby(["depth", "width"]):
            stats = part.groupby("threshold")["eta_star"].agg(["mean", "min", "max"]).reset_index()
            ax.errorbar(
                stats["threshold"], stats["mean"],
                yerr=_spread(stats["mean"], stats["min"], stats["max"]), fmt="o-", ms=4,
                capsize=2, color=colours[(depth, width)], label=f"depth {depth}, width {width}",
            )  # fmt: skip
        ax.axvline(t.study.thresholds[dataset], color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        _log_ticks(ax.yaxis)
        ax.set(xlabel="threshold accuracy t", ylabel="η*", title=dataset)
        _legend(ax)

    caption = (
        "η* against the threshold accuracy t for the sweep architectures (primary input-LR "
        "variant); points: mean over seeds, bars: min to max; dotted: the main t. "
        f"{_arch_counts(rows)} Config: {t.study.config_name}." + _missing_note(rows_all, "η* jobs")
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
                group["depth_width"], group["mean"],
                yerr=_spread(group["mean"], group["low"], group["high"]), fmt="o", ms=4,
                capsize=1.5, color=palette[depth], label=f"depth {depth}",
            )  # fmt: skip
        _draw_fit(ax, _fit_row(t.fits, "lambda1", dataset), sub["depth_width"].to_numpy(), "fit")
        _loglog(ax, "depth × width", "λ1 at initialisation", dataset)
        _legend(ax)

    caption = (
        "Sharpness λ1 (top Hessian eigenvalue of the training loss, PyHessian) at "
        "initialisation against depth × width, log-log; dashed: its power-law fit "
        f"(α < 0 means λ1 grows). {_arch_counts(rows)} Config: {t.study.config_name}."
        + _missing_note(t.sharpness, "λ1 jobs")
    )
    return Drawn(_per_dataset(rows, panel), caption)


def _joined(t: Tables) -> pd.DataFrame:
    main = _main_rows(t.eta, [t.study.primary_variant])
    keys = ["dataset", "depth", "width", "depth_width", "seed"]
    joined = _ok(main).merge(_ok(t.sharpness)[[*keys, "lambda1"]], on=keys)
    return _require(joined[joined["eta_star"] > 0], "jobs with both η* > 0 and λ1")


def _depth_scatter(
    rows: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, reference
) -> plt.Figure:
    """Log-log points coloured by depth, plus a reference line drawn by ``reference(ax, rows)``."""
    depths = sorted(rows["depth"].unique())

    def panel(ax: plt.Axes, dataset: str, sub: pd.DataFrame) -> None:
        sns.scatterplot(
            data=sub, x=x, y=y, hue="depth", palette=_depth_palette(depths), hue_order=depths,
            s=18, ax=ax, legend="full",
        )  # fmt: skip
        reference(ax, sub)
        _loglog(ax, xlabel, ylabel, dataset)
        _legend(ax, title="depth")

    return _per_dataset(rows, panel)


def _stability_line(ax: plt.Axes, rows: pd.DataFrame) -> None:
    xs = np.geomspace(rows["lambda1"].min() / 1.5, rows["lambda1"].max() * 1.5, 20)
    ax.plot(xs, 2 / xs, color="grey", lw=1, ls="--", label="η = 2/λ1")


@figure("eta_vs_lambda1")
def figure_eta_vs_lambda1(t: Tables) -> Drawn:
    """Figure 6: η* against λ1, with η = 2/λ1 for reference."""
    rows = _joined(t)
    fig = _depth_scatter(rows, "lambda1", "eta_star", "λ1 at initialisation", "η*", _stability_line)
    caption = (
        "η* against λ1 at initialisation (one point per architecture and seed, primary input-LR "
        "variant, main t), log-log; dashed: η = 2/λ1, the classical stability bound. The paper "
        f"finds the two closely but not inversely related. {_arch_counts(rows)} "
        f"Config: {t.study.config_name}."
    )
    return Drawn(fig, caption)


@figure("eta_times_lambda1")
def figure_eta_times_lambda1(t: Tables) -> Drawn:
    """Figure 7: η*·λ1 against depth x width: the drift away from a constant."""
    rows = _joined(t).assign(product=lambda r: r["eta_star"] * r["lambda1"])
    fig = _depth_scatter(
        rows, "depth_width", "product", "depth × width", "η* · λ1",
        lambda ax, _: ax.axhline(2.0, color="grey", lw=1, ls="--", label="η·λ1 = 2"),
    )  # fmt: skip
    caption = (
        "η* · λ1 against depth × width, log-log: were η* inversely proportional to λ1 the points "
        f"would lie on a horizontal line. {_arch_counts(rows)} Config: {t.study.config_name}."
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
        ax.axvspan(job["bracket_low"], job["bracket_high"], color="C2", alpha=0.2,
                   label="bracket")  # fmt: skip
        for p in probes.itertuples():
            kind = "success" if p.success else "diverged" if p.diverged else "failure"
            marker, colour = PROBE_STYLE[kind]
            ax.scatter(p.lr, p.best_val_accuracy, marker=marker, color=colour, s=30, zorder=3,
                       label=kind)  # fmt: skip
            ax.annotate(str(p.probe), (p.lr, p.best_val_accuracy), textcoords="offset points",
                        xytext=(3, 3), fontsize="x-small")  # fmt: skip
        ax.axhline(job["threshold"], color="grey", lw=0.8, ls=":", label="t")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize="x-small", frameon=False)
        ax.set(xlabel="learning rate of the probe", ylabel="best validation accuracy")
        ax.set_title(f"{dataset}: depth {job['depth']}, width {job['width']}, seed {job['seed']}")
        shown.append(f"{dataset} d{job['depth']} w{job['width']} s{job['seed']}")

    fig = _per_dataset(rows, panel)
    caption = (
        "One search per dataset, probe by probe (numbers give the order): each probe's best "
        "validation accuracy within e epochs against its learning rate; circles reached t, squares "
        "did not, crosses diverged; shaded: the final bracket [η*, upper]. Shown: "
        + "; ".join(shown)
        + f". Config: {t.study.config_name}."
    )
    return Drawn(fig, caption)


def draw(name: str, tables: Tables) -> Drawn:
    """Draw figure ``name`` (one of :data:`milr.names.FIGURES`)."""
    if name not in REGISTRY:
        raise MilrError(f"unknown figure {name!r}; choose one of {', '.join(FIGURES)}")
    _style()
    return REGISTRY[name](tables)


def save(drawn: Drawn, png: Path, pdf: Path, caption: Path) -> None:
    """PNG (for the report), PDF (for papers) and the caption text, each written atomically."""
    import io

    for path, fmt in ((png, "png"), (pdf, "pdf")):
        buffer = io.BytesIO()
        drawn.figure.savefig(buffer, format=fmt, dpi=200, bbox_inches="tight")
        write_atomic(path, buffer.getvalue())
    write_atomic(caption, drawn.caption + "\n")
    plt.close(drawn.figure)
