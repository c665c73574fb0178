"""Figures from small synthetic tables: files are written, the drawn fit is the fitted law,
partial tables still draw and say so, empty ones fail clearly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from milr import MilrError
from milr.baseline import compare
from milr.figures import REGISTRY, Tables, draw, save
from milr.fit import fit_tables
from milr.laws import laws_table
from milr.names import FIGURES
from milr.predict import leave_one_out
from milr.records import Study
from milr.settings import FitOptions, PredictOptions

SPEC = Study(
    thresholds={"gaussian": 0.85, "mnist": 0.925},
    primary_variant="small",
    input_lr_variants={"small": 0.1, "full": 1.0},
    sweep_architectures=[(1, 32), (4, 64)],
)


def probe_rows(row) -> list[dict]:
    """Two probes of one search: a diverged one above η*, a success at η*."""
    keys = {k: row[k] for k in ("dataset", "variant", "threshold", "depth", "width", "seed")}
    return [
        {**keys, "probe": 1, "lr": row["eta_star"] * 2, "success": False, "diverged": True,
         "best_val_accuracy": 0.0},
        {**keys, "probe": 2, "lr": row["eta_star"], "success": True, "diverged": False,
         "best_val_accuracy": 0.9},
    ]  # fmt: skip


def with_eta(t: Tables, eta: pd.DataFrame) -> Tables:
    return dataclasses.replace(t, eta=eta)


def range_tests(eta: pd.DataFrame) -> pd.DataFrame:
    """Range tests of every main network: one suggestion near η*, one far above it."""
    main = eta[eta.role == "main"]
    return main[["dataset", "variant", "depth", "width", "seed"]].assign(
        steepest=main.eta_star.to_numpy() * 0.5, minimum_over_10=main.eta_star.to_numpy() * 3,
        diverged=True, range_test_steps=150, range_test_wall_s=1.0,
    )  # fmt: skip


@pytest.fixture()
def tables():
    rng = np.random.default_rng(0)
    eta_rows, sharp_rows, probes = [], [], []
    for dataset in ("gaussian", "mnist"):
        for depth in (1, 2, 4):
            for width in (16, 32, 64):
                for seed in (0, 1):
                    dw = depth * width
                    lam = 0.5 * dw**0.6 * np.exp(rng.normal(0, 0.05))
                    sharp_rows.append(dict(dataset=dataset, depth=depth, width=width,
                                           depth_width=dw, seed=seed, lambda1=lam,
                                           status="ok"))  # fmt: skip
                    thresholds = [SPEC.thresholds[dataset]]
                    if (depth, width) in SPEC.sweep_architectures:
                        thresholds += [SPEC.thresholds[dataset] - 0.05]
                    for variant, scale in (("small", 1.0), ("full", 0.5)):
                        for t in thresholds:
                            eta = scale * 30 * dw**-0.5 * np.exp(rng.normal(0, 0.05))
                            row = dict(
                                dataset=dataset, variant=variant, threshold=t, depth=depth,
                                width=width, depth_width=dw, seed=seed, eta_star=eta,
                                bracket_low=eta, bracket_high=eta * 1.1, relative_bracket=1.1,
                                no_success=False, hit_upper_bound=False,
                                role="main" if t == SPEC.thresholds[dataset] else "sweep",
                                status="ok", wall_time_s=20.0,
                            )  # fmt: skip
                            probes += probe_rows(row)
                            eta_rows.append(row)
    eta, sharp = pd.DataFrame(eta_rows), pd.DataFrame(sharp_rows)
    fits = fit_tables(eta, sharp, FitOptions(min_width_over_depth=8))
    loao = leave_one_out(eta, fits, PredictOptions())
    finder = compare(range_tests(eta), eta, SPEC.thresholds)
    laws = laws_table(eta, FitOptions(min_width_over_depth=8))
    return Tables(eta, sharp, fits, pd.DataFrame(probes), SPEC, config_name="test.yaml",
                  loao=loao, lr_finder=finder, laws=laws)  # fmt: skip


def test_every_figure_name_has_one_registered_function():
    assert set(REGISTRY) == set(FIGURES)


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_written(tables, tmp_path, name):
    drawn = draw(name, tables)
    png, pdf, caption = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf", tmp_path / "c.txt"
    save(drawn, png, pdf, caption)
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "test.yaml" in caption.read_text() or name == "bisection_trace"


@pytest.mark.parametrize(("name", "quantity"), [("eta_small_input_lr", "eta_star"),
                                                ("lambda1", "lambda1")])  # fmt: skip
def test_drawn_fit_line_has_the_fitted_slope(tables, name, quantity):
    fits = tables.fits
    drawn = draw(name, tables)
    for ax, dataset in zip(drawn.figure.axes, ("gaussian", "mnist"), strict=True):
        (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "fit"]
        x, y = line.get_data()
        slope = np.polyfit(np.log(x), np.log(y), 1)[0]
        row = fits[(fits.quantity == quantity) & (fits.dataset == dataset)]
        if quantity == "eta_star":
            row = row[(row.variant == "small") & (row.threshold == SPEC.thresholds[dataset])]
        assert slope == pytest.approx(-row.alpha.item(), rel=1e-9)
        assert f"α = {row.alpha.item():.2f}" in line.get_label()


def test_partial_table_still_draws_and_says_how_many_are_missing(tables):
    eta = tables.eta.copy()
    gone = eta.index[(eta.dataset == "mnist") & (eta.depth == 4)]
    eta.loc[gone, "status"] = "missing"
    eta.loc[gone, "eta_star"] = np.nan
    drawn = draw("eta_small_input_lr", with_eta(tables, eta))
    missing = ((eta.status == "missing") & (eta.variant == "small") & (eta.role == "main")).sum()
    assert f"{missing} η* jobs missing" in drawn.caption


def test_empty_table_fails_with_a_clear_message(tables):
    no_sharpness = Tables(tables.eta, tables.sharpness.iloc[0:0], tables.fits, tables.probes, SPEC)
    with pytest.raises(MilrError, match="no .* to plot"):
        draw("lambda1", no_sharpness)
    with pytest.raises(MilrError, match="no .* to plot"):
        draw("eta_small_input_lr", with_eta(tables, tables.eta.assign(status="missing")))


def test_zero_eta_is_named_in_the_caption(tables):
    eta = tables.eta.copy()
    gone = eta.index[(eta.dataset == "gaussian") & (eta.depth == 1)]
    eta.loc[gone, ["eta_star", "bracket_low", "no_success"]] = [0.0, 0.0, True]
    drawn = draw("eta_small_input_lr", with_eta(tables, eta))
    zero = ((eta.eta_star == 0) & (eta.variant == "small") & (eta.role == "main")).sum()
    assert zero and f"{zero} jobs with η* = 0 (no probe reached t): ▼" in drawn.caption
    (ax, _) = drawn.figure.axes
    bounds = [c for c in ax.collections if c.get_label() == "no rate reached t (▼ bound)"]
    assert len(bounds) == 1 and len(bounds[0].get_offsets()) == zero


@pytest.mark.parametrize("name", FIGURES)
def test_legends_sit_beside_the_axes_never_on_data(tables, name):
    drawn = draw(name, tables)
    drawn.figure.canvas.draw()
    for ax in drawn.figure.axes:
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent()
            assert box.x0 >= ax.get_window_extent().x1  # entirely right of the plotting area


def test_eta_figure_separates_seed_spread_bracket_and_depth_lines(tables):
    drawn = draw("eta_small_input_lr", tables)
    ax = drawn.figure.axes[0]
    depth_lines = [
        ln for ln in ax.get_lines() if ln.get_gid() != "fit" and ln.get_linestyle() == "-"
    ]
    assert len(depth_lines) >= 3  # one per depth (1, 2, 4)
    assert "thick bars: spread over seeds" in drawn.caption and "final brackets" in drawn.caption


@pytest.mark.parametrize("name", ["eta_vs_lambda1", "eta_times_lambda1", "eta_vs_threshold"])
def test_all_censored_draws_a_figure_that_says_so(tables, name):
    eta = tables.eta.assign(no_success=True, bracket_low=0.0, eta_star=0.0)
    drawn = draw(name, with_eta(tables, eta))
    job = "4x64-s1" if name == "eta_vs_threshold" else "1x16-s0"  # a sweep architecture
    assert "nothing to draw" in drawn.caption and job in drawn.caption


def test_lr_finder_figure_counts_suggestions_above_eta(tables):
    drawn = draw("lr_finder", tables)
    labels = [c.get_label() for c in drawn.figure.axes[0].collections]
    assert "steepest slope\n0% > η*, 0% < η*/10" in labels
    assert "loss minimum / 10\n100% > η*, 0% < η*/10" in labels
    assert not any("_" in label for label in labels)  # words, not code names
    assert "0.05× the wall time of one η* search" in drawn.caption


def test_predicted_vs_measured_reports_coverage(tables):
    drawn = draw("predicted_vs_measured", tables)
    assert "Coverage (nominal 95%): gaussian/full:" in drawn.caption


def test_figures_of_extra_tables_say_which_option_they_need(tables):
    with pytest.raises(MilrError, match="needs --loao"):
        draw("predicted_vs_measured", dataclasses.replace(tables, loao=None))


def test_no_law_to_validate_draws_a_figure_that_says_so(tables):
    drawn = draw("predicted_vs_measured", dataclasses.replace(tables, loao=tables.loao.iloc[0:0]))
    assert "nothing to draw" in drawn.caption and "at least 5 architectures" in drawn.caption


def geometric_means(rows: pd.DataFrame, by: list[str]) -> dict[tuple, float]:
    """The value a figure should place per group, computed here from the table alone: the
    geometric mean over seeds of each job's bracket midpoint sqrt(low * high)."""
    logs = np.log(np.sqrt(rows.bracket_low * rows.bracket_high))
    return {key: float(np.exp(v)) for key, v in logs.groupby([rows[k] for k in by]).mean().items()}


def scatter_points(ax, label_prefix: str) -> set[tuple[float, float]]:
    return {(round(float(x), 9), round(float(y), 9)) for c in ax.collections
            if c.get_label().startswith(label_prefix) for x, y in c.get_offsets()}  # fmt: skip


ETA_FIGURES = [("eta_full_input_lr", "full"), ("condition_width_over_depth", "small")]


@pytest.mark.parametrize(("name", "variant"), ETA_FIGURES)
def test_eta_figures_plot_their_variants_rows(tables, name, variant):
    """Each panel's points are the variant's η* per architecture at the main t, as computed
    from the table here (a figure that plots another variant or column fails)."""
    drawn = draw(name, tables)
    for ax, dataset in zip(drawn.figure.axes, ("gaussian", "mnist"), strict=True):
        eta = tables.eta
        rows = eta[(eta.dataset == dataset) & (eta.variant == variant) & (eta.role == "main")]
        expected = {(round(float(d * w), 9), round(v, 9))
                    for (d, w), v in geometric_means(rows, ["depth", "width"]).items()}  # fmt: skip
        assert scatter_points(ax, "depth ") == expected
    if name == "condition_width_over_depth":  # the narrow architectures are drawn hollow
        ax = drawn.figure.axes[0]
        hollow = sum((tuple(f[:3]) == (1.0, 1.0, 1.0)) for c in ax.collections
                     if c.get_label().startswith("depth ") for f in c.get_facecolors())  # fmt: skip
        rows = tables.eta[(tables.eta.dataset == "gaussian") & (tables.eta.role == "main")]
        narrow = {(d, w) for d, w in zip(rows.depth, rows.width, strict=True) if w < 8 * d}
        assert hollow == len(narrow) > 0


def test_eta_vs_threshold_plots_each_sweep_architecture_at_each_t(tables):
    drawn = draw("eta_vs_threshold", tables)
    for ax, dataset in zip(drawn.figure.axes, ("gaussian", "mnist"), strict=True):
        eta = tables.eta
        rows = eta[(eta.dataset == dataset) & (eta.variant == "small")]
        rows = rows[[(d, w) in {(1, 32), (4, 64)} for d, w in zip(rows.depth, rows.width,
                                                                   strict=True)]]  # fmt: skip
        expected = geometric_means(rows, ["depth", "width", "threshold"])
        plotted = {}
        for bars in ax.containers:  # one errorbar per architecture, labelled with it
            arch = [k[:2] for k in expected if bars.get_label() == f"depth {k[0]}, width {k[1]}"]
            for x, y in zip(*bars.lines[0].get_data(), strict=True) if arch else ():
                plotted[(*arch[0], round(float(x), 9))] = y
        assert {(d, w, round(t, 9)): pytest.approx(v, rel=1e-12)
                for (d, w, t), v in expected.items()} == plotted  # fmt: skip


def test_bisection_trace_plots_the_chosen_searchs_probes(tables):
    drawn = draw("bisection_trace", tables)
    for ax in drawn.figure.axes:
        dataset, rest = ax.get_title().split(": ")
        depth, width, seed = (int(part.split()[1]) for part in rest.split(", "))
        probes = tables.probes
        probes = probes[(probes.dataset == dataset) & (probes.depth == depth)
                        & (probes.width == width) & (probes.seed == seed)
                        & (probes.variant == "small")
                        & (probes.threshold == SPEC.thresholds[dataset])]  # fmt: skip
        expected = {(round(float(lr), 9), round(float(a), 9))
                    for lr, a in zip(probes.lr, probes.best_val_accuracy, strict=True)}  # fmt: skip
        shown = {(round(float(x), 9), round(float(y), 9)) for c in ax.collections
                 if c.get_label() in ("success", "failure", "diverged")
                 for x, y in c.get_offsets()}  # fmt: skip
        assert shown == expected and len(expected) == 2


def test_the_same_figure_gives_the_same_bytes(tables, tmp_path):
    """PNG and PDF bytes repeat from one drawing to the next, a second apart (a PDF's creation
    date would differ)."""
    import time

    files = []
    for run in ("a", "b"):
        time.sleep(1.1 if run == "b" else 0)
        paths = [tmp_path / f"{run}.png", tmp_path / f"{run}.pdf", tmp_path / f"{run}.txt"]
        save(draw("lambda1", tables), *paths)
        files.append([p.read_bytes() for p in paths])
    assert files[0] == files[1]


def test_laws_figure_draws_the_papers_law_beside_the_leader(tables):
    """The curves drawn are C · depth^-a · width^-b of laws.csv rows (all depths): the paper's
    product law and the law with the lowest leave-one-out error, one curve per width on the
    depth panel for a law with a width term, one for a law without."""
    drawn = draw("laws", tables)
    ax = drawn.figure.axes[0]  # gaussian, against depth
    laws = tables.laws[(tables.laws.dataset == "gaussian") & (tables.laws.variant == "small")
                       & (tables.laws.threshold == SPEC.thresholds["gaussian"])
                       & (tables.laws.subset == "all")]  # fmt: skip
    shown = laws[(laws.law == "product") | laws.leader]
    assert 1 <= len(shown) <= 2
    curves = [line for line in ax.get_lines() if line.get_gid() == "law"]
    ratio = tables.fits.min_width_over_depth.iloc[0]
    widths = sorted(tables.eta[tables.eta.width >= ratio * tables.eta.depth].width.unique())
    expected = sum(len(widths) if row.b != 0 else 1 for row in shown.itertuples())
    assert len(curves) == expected
    product = laws[laws.law == "product"].iloc[0]
    x, y = curves[0].get_data()
    assert y == pytest.approx(product.C * x**-product.a * widths[0] ** -product.b, rel=1e-9)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("C·(depth·width)^-α\nthe paper's: error ×") for label in labels)
    assert not any("_" in label for label in labels)  # words, not code names
    assert "Holm-adjusted" in drawn.caption
    with pytest.raises(MilrError, match="needs --laws"):
        draw("laws", dataclasses.replace(tables, laws=None))


def test_laws_groups_differ_in_marker_as_well_as_colour(tables):
    """#30: widths 16 and 64 got near-identical colours; a marker per group keeps them apart
    in greyscale and where points overlap."""
    drawn = draw("laws", tables)
    for ax in drawn.figure.axes:
        groups = [c for c in ax.collections if c.get_label().startswith(("width ", "depth "))]
        shapes = {tuple(map(tuple, c.get_paths()[0].vertices.round(3))) for c in groups}
        assert len(groups) >= 2 and len(shapes) == len(groups)
