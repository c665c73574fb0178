"""The paper's figures, drawn from the tidy tables.

Every function takes the tables (and the fits), returns a matplotlib Figure and a caption, and
draws whatever rows exist: a partial run plots what finished and the caption says how many points
are missing. An empty table is an error, never a silently blank figure.

One style for all: seaborn "ticks", the colour-blind palette, depth coded by a sequential
palette, sized for a paper column (3.4 in per panel).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from milr.plan import FIGURES  # noqa: E402,F401  (re-exported: the figure names)

PANEL = (3.4, 2.9)  # inches per panel: one paper column
DEPTH_PALETTE = "viridis"


@dataclass(frozen=True)
class FigureSpec:
    """What the figures need to know of the study config."""

    thresholds: dict[str, float]  # main t per dataset
    primary_variant: str = "small"
    input_lr_variants: dict[str, float] = field(default_factory=dict)
    min_width_over_depth: float = 0.0
    sweep_architectures: list[list[int]] = field(default_factory=list)
    config_name: str = "config.yaml"

    @classmethod
    def from_json(cls, text: str) -> FigureSpec:
        return cls(**json.loads(text))


@dataclass
class Drawn:
    """A finished figure and its caption."""

    figure: plt.Figure
    caption: str


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


def _panels(names: Sequence[str]) -> tuple[plt.Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(
        1, len(names), figsize=(PANEL[0] * len(names), PANEL[1]), squeeze=False
    )
    return fig, list(axes[0])


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
    rows = fits[(fits["quantity"] == quantity) & (fits["dataset"] == dataset)]
    for key, value in keys.items():
        if key == "threshold":
            rows = rows[np.isclose(rows["threshold"].astype(float), value)]
        else:
            rows = rows[rows[key].fillna("") == value]
    if rows.empty or ("error" in rows and str(rows.iloc[0].get("error", "")) not in ("", "nan")):
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


def figure_eta(
    eta: pd.DataFrame, fits: pd.DataFrame, spec: FigureSpec, variants: Sequence[str], label: str
) -> Drawn:
    """Figures 1 and 2: η* against depth x width for the given input-LR variant(s)."""
    _style()
    rows_all = _main_rows(eta, spec, variants)
    rows = _require(_ok(rows_all), f"η* rows for variant(s) {', '.join(variants)}")
    datasets = sorted(rows["dataset"].unique())
    depths = sorted(rows["depth"].unique())
    fig, axes = _panels(datasets)
    for ax, dataset in zip(axes, datasets, strict=True):
        sub = rows[rows["dataset"] == dataset]
        for variant in variants:
            part = sub[sub["variant"] == variant]
            if part.empty:
                continue
            fit = _fit_row(
                fits, "eta_star", dataset, variant=variant, threshold=spec.thresholds[dataset]
            )
            _eta_panel(ax, part, fit, depths)
        _loglog(ax, "depth × width", "η*", f"{dataset} (t = {spec.thresholds[dataset]:g})")
        _legend(ax)
    fig.tight_layout()
    scales = ", ".join(f"{v} = {spec.input_lr_variants.get(v, '?')}×" for v in variants)
    caption = (
        f"η* against depth × width ({label}; input-layer learning rate {scales} the rest), "
        f"log-log. Points: geometric mean over seeds; bars: the spread over seeds and the final "
        f"search bracket. Dashed: the power-law fit η* = C (depth × width)^-α from fits.csv, on "
        f"architectures with width/depth ≥ {spec.min_width_over_depth:g}. "
        f"{_arch_counts(rows)} Config: {spec.config_name}." + _missing_note(rows_all, "η* jobs")
    )
    return Drawn(fig, caption)


def _main_rows(eta: pd.DataFrame, spec: FigureSpec, variants: Sequence[str]) -> pd.DataFrame:
    """Rows of the given input-LR variants at each dataset's main threshold (not the sweep)."""
    main_t = eta["dataset"].map(spec.thresholds).astype(float)
    return eta[eta["variant"].isin(variants) & np.isclose(eta["threshold"], main_t)]


def _arch_counts(rows: pd.DataFrame) -> str:
    archs = rows[["depth", "width"]].drop_duplicates()
    return f"{len(archs)} architectures, {rows['seed'].nunique()} seeds, {len(rows)} jobs."


def figure_condition_i(eta: pd.DataFrame, fits: pd.DataFrame, spec: FigureSpec) -> Drawn:
    """Figure 3: architectures with width not large compared with depth, marked hollow."""
    _style()
    rows_all = _main_rows(eta, spec, [spec.primary_variant])
    rows = _require(_ok(rows_all), "η* rows for the primary variant")
    datasets = sorted(rows["dataset"].unique())
    depths = sorted(rows["depth"].unique())
    fig, axes = _panels(datasets)
    for ax, dataset in zip(axes, datasets, strict=True):
        sub = rows[rows["dataset"] == dataset]
        fit = _fit_row(
            fits,
            "eta_star",
            dataset,
            variant=spec.primary_variant,
            threshold=spec.thresholds[dataset],
        )
        _eta_panel(ax, sub, fit, depths, mark_ratio=spec.min_width_over_depth)
        _loglog(ax, "depth × width", "η*", f"{dataset}: condition (i)")
        _legend(ax)
    fig.tight_layout()
    narrow = rows[rows["width"] / rows["depth"] < spec.min_width_over_depth]
    caption = (
        f"Condition (i): η* against depth × width with architectures whose width is less than "
        f"{spec.min_width_over_depth:g} × depth drawn hollow ({len(narrow)} jobs); the dashed fit "
        f"uses only the filled points. {_arch_counts(rows)} Config: {spec.config_name}."
        + _missing_note(rows_all, "η* jobs")
    )
    return Drawn(fig, caption)


def figure_eta_vs_threshold(eta: pd.DataFrame, spec: FigureSpec) -> Drawn:
    """Figure 4: η* against t for the sweep architectures."""
    _style()
    archs = {tuple(a) for a in spec.sweep_architectures}
    rows_all = eta[
        (eta["variant"] == spec.primary_variant)
        & eta.apply(lambda r: (r["depth"], r["width"]) in archs, axis=1)
    ]
    rows = _require(_ok(rows_all), "η* rows for the threshold-sweep architectures")
    datasets = sorted(rows["dataset"].unique())
    fig, axes = _panels(datasets)
    colours = dict(zip(sorted(archs), sns.color_palette("colorblind", len(archs)), strict=True))
    for ax, dataset in zip(axes, datasets, strict=True):
        sub = rows[rows["dataset"] == dataset]
        for (depth, width), part in sub.groupby(["depth", "width"]):
            stats = part.groupby("threshold")["eta_star"].agg(["mean", "min", "max"]).reset_index()
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
        ax.axvline(spec.thresholds[dataset], color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        _log_ticks(ax.yaxis)
        ax.set_xlabel("threshold accuracy t")
        ax.set_ylabel("η*")
        ax.set_title(dataset)
        _legend(ax)
    fig.tight_layout()
    caption = (
        "η* against the threshold accuracy t for the sweep architectures (primary input-LR "
        "variant); points: mean over seeds, bars: min to max; dotted: the main t. "
        f"{_arch_counts(rows)} Config: {spec.config_name}." + _missing_note(rows_all, "η* jobs")
    )
    return Drawn(fig, caption)


def figure_lambda1(sharp: pd.DataFrame, fits: pd.DataFrame, spec: FigureSpec) -> Drawn:
    """Figure 5: λ1 at initialisation against depth x width, with its power-law fit."""
    _style()
    rows = _require(_ok(sharp), "λ1 rows")
    datasets = sorted(rows["dataset"].unique())
    depths = sorted(rows["depth"].unique())
    palette = _depth_palette(depths)
    fig, axes = _panels(datasets)
    for ax, dataset in zip(axes, datasets, strict=True):
        sub = rows[rows["dataset"] == dataset]
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
        _draw_fit(ax, _fit_row(fits, "lambda1", dataset), sub["depth_width"].to_numpy(), "fit")
        _loglog(ax, "depth × width", "λ1 at initialisation", dataset)
        _legend(ax)
    fig.tight_layout()
    caption = (
        "Sharpness λ1 (top Hessian eigenvalue of the training loss, PyHessian) at "
        "initialisation against depth × width, log-log; dashed: its power-law fit "
        f"(α < 0 means λ1 grows). {_arch_counts(rows)} Config: {spec.config_name}."
        + _missing_note(sharp, "λ1 jobs")
    )
    return Drawn(fig, caption)


def _joined(eta: pd.DataFrame, sharp: pd.DataFrame, spec: FigureSpec) -> pd.DataFrame:
    main = _main_rows(eta, spec, [spec.primary_variant])
    keys = ["dataset", "depth", "width", "depth_width", "seed"]
    joined = _ok(main).merge(_ok(sharp)[[*keys, "lambda1"]], on=keys)
    return _require(joined[joined["eta_star"] > 0], "jobs with both η* > 0 and λ1")


def _depth_scatter(
    rows: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, reference
) -> plt.Figure:
    """One log-log panel per dataset, points coloured by depth, plus a reference line drawn by
    ``reference(ax, panel_rows)``."""
    datasets = sorted(rows["dataset"].unique())
    depths = sorted(rows["depth"].unique())
    fig, axes = _panels(datasets)
    for ax, dataset in zip(axes, datasets, strict=True):
        sub = rows[rows["dataset"] == dataset]
        sns.scatterplot(
            data=sub, x=x, y=y, hue="depth", palette=_depth_palette(depths), hue_order=depths,
            s=18, ax=ax, legend="full",
        )  # fmt: skip
        reference(ax, sub)
        _loglog(ax, xlabel, ylabel, dataset)
        _legend(ax, title="depth")
    fig.tight_layout()
    return fig


def _stability_line(ax: plt.Axes, rows: pd.DataFrame) -> None:
    xs = np.geomspace(rows["lambda1"].min() / 1.5, rows["lambda1"].max() * 1.5, 20)
    ax.plot(xs, 2 / xs, color="grey", lw=1, ls="--", label="η = 2/λ1")


def figure_eta_vs_lambda1(eta: pd.DataFrame, sharp: pd.DataFrame, spec: FigureSpec) -> Drawn:
    """Figure 6: η* against λ1, with η = 2/λ1 for reference."""
    _style()
    rows = _joined(eta, sharp, spec)
    fig = _depth_scatter(rows, "lambda1", "eta_star", "λ1 at initialisation", "η*", _stability_line)
    caption = (
        "η* against λ1 at initialisation (one point per architecture and seed, primary input-LR "
        "variant, main t), log-log; dashed: η = 2/λ1, the classical stability bound. The paper "
        f"finds the two closely but not inversely related. {_arch_counts(rows)} "
        f"Config: {spec.config_name}."
    )
    return Drawn(fig, caption)


def figure_eta_times_lambda1(eta: pd.DataFrame, sharp: pd.DataFrame, spec: FigureSpec) -> Drawn:
    """Figure 7: η*·λ1 against depth x width: the drift away from a constant."""
    _style()
    rows = _joined(eta, sharp, spec).assign(product=lambda t: t["eta_star"] * t["lambda1"])
    fig = _depth_scatter(
        rows,
        "depth_width",
        "product",
        "depth × width",
        "η* · λ1",
        lambda ax, _: ax.axhline(2.0, color="grey", lw=1, ls="--", label="η·λ1 = 2"),
    )
    caption = (
        "η* · λ1 against depth × width, log-log: were η* inversely proportional to λ1 the points "
        f"would lie on a horizontal line. {_arch_counts(rows)} Config: {spec.config_name}."
    )
    return Drawn(fig, caption)


def _trace_choice(rows: pd.DataFrame) -> pd.Series:
    """The job whose trace is shown: the median architecture's lowest seed."""
    archs = rows.sort_values("depth_width")[["depth", "width"]].drop_duplicates()
    depth, width = archs.iloc[len(archs) // 2]
    pick = rows[(rows["depth"] == depth) & (rows["width"] == width)].sort_values("seed")
    return pick.iloc[0]


def figure_bisection_trace(eta: pd.DataFrame, spec: FigureSpec) -> Drawn:
    """Figure 8: one search per dataset, probe by probe, with the final bracket shaded."""
    _style()
    rows_all = _main_rows(eta, spec, [spec.primary_variant])
    rows = _require(_ok(rows_all), "η* rows with a search to trace")
    datasets = sorted(rows["dataset"].unique())
    fig, axes = _panels(datasets)
    shown = []
    for ax, dataset in zip(axes, datasets, strict=True):
        job = _trace_choice(rows[rows["dataset"] == dataset])
        doc = json.loads(Path(job["path"]).read_text())
        probes = doc["probes"]
        ax.axvspan(doc["bracket_low"], doc["bracket_high"], color="C2", alpha=0.2, label="bracket")
        for i, probe in enumerate(probes, start=1):
            best = max(probe["val_accuracy"], default=0.0)
            kind = "success" if probe["success"] else "diverged" if probe["diverged"] else "failure"
            marker = {"success": "o", "failure": "s", "diverged": "X"}[kind]
            colour = {"success": "C2", "failure": "C1", "diverged": "C3"}[kind]
            ax.scatter(probe["lr"], best, marker=marker, color=colour, s=30, zorder=3,
                       label=kind)  # fmt: skip
            ax.annotate(str(i), (probe["lr"], best), textcoords="offset points", xytext=(3, 3),
                        fontsize="x-small")  # fmt: skip
        ax.axhline(doc["inputs"]["threshold"], color="grey", lw=0.8, ls=":", label="t")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize="x-small", frameon=False)
        ax.set_xlabel("learning rate of the probe")
        ax.set_ylabel("best validation accuracy")
        ax.set_title(f"{dataset}: depth {job['depth']}, width {job['width']}, seed {job['seed']}")
        shown.append(f"{dataset} d{job['depth']} w{job['width']} s{job['seed']}")
    fig.tight_layout()
    caption = (
        "One search per dataset, probe by probe (numbers give the order): each probe's best "
        "validation accuracy within e epochs against its learning rate; circles reached t, squares "
        "did not, crosses diverged; shaded: the final bracket [η*, upper]. Shown: "
        + "; ".join(shown)
        + f". Config: {spec.config_name}."
    )
    return Drawn(fig, caption)


def draw(
    name: str, eta: pd.DataFrame, sharp: pd.DataFrame, fits: pd.DataFrame, spec: FigureSpec
) -> Drawn:
    """Dispatch by figure name (see FIGURES)."""
    others = [v for v in spec.input_lr_variants if v != spec.primary_variant]
    if name == "eta_small_input_lr":
        return figure_eta(eta, fits, spec, [spec.primary_variant], "input layer at a small rate")
    if name == "eta_full_input_lr":
        return figure_eta(eta, fits, spec, others, "input layer at the full rate")
    if name == "condition_width_over_depth":
        return figure_condition_i(eta, fits, spec)
    if name == "eta_vs_threshold":
        return figure_eta_vs_threshold(eta, spec)
    if name == "lambda1":
        return figure_lambda1(sharp, fits, spec)
    if name == "eta_vs_lambda1":
        return figure_eta_vs_lambda1(eta, sharp, spec)
    if name == "eta_times_lambda1":
        return figure_eta_times_lambda1(eta, sharp, spec)
    if name == "bisection_trace":
        return figure_bisection_trace(eta, spec)
    raise MilrError(f"unknown figure {name!r}; choose one of {', '.join(FIGURES)}")


def save(drawn: Drawn, png: Path, pdf: Path, caption: Path) -> None:
    """PNG (for the report), PDF (for papers) and the caption text, each written atomically."""
    import io

    for path, fmt in ((png, "png"), (pdf, "pdf")):
        buffer = io.BytesIO()
        drawn.figure.savefig(buffer, format=fmt, dpi=200, bbox_inches="tight")
        write_atomic(path, buffer.getvalue())
    write_atomic(caption, drawn.caption + "\n")
    plt.close(drawn.figure)
