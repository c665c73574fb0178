"""Predicting η* from a study's law: intervals that cover new architectures as often as they
claim (synthetic studies with a known law and realistic scatter), the leave-one-out check, and
the one-line errors of ``milr predict``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from milr import MilrError
from milr.fit import fit_tables
from milr.laws import LAWS, design
from milr.predict import (
    choose_law,
    coverage,
    leave_one_out,
    predict,
    predict_table,
)
from milr.records import Study
from milr.settings import FitOptions, PredictOptions

ALPHA, C = 0.7, 40.0
SCATTER, SEED_NOISE = 0.3, 0.05  # sd in log: architectures about the law, seeds about theirs
GRID = [(d, w) for d in (1, 2, 4) for w in (64, 128, 256, 512)]
STUDY = Study(thresholds={"gaussian": 0.85}, input_lr_variants={"small": 0.1},
              primary_variant="small", sweep_architectures=[])  # fmt: skip
OPTIONS = FitOptions(min_width_over_depth=16)


def log_eta(rng, depth: int, width: int, seeds: int = 2) -> np.ndarray:
    """log η* of ``seeds`` seeds of one architecture: the law, its scatter, the seeds' noise."""
    centre = np.log(C) - ALPHA * np.log(depth * width) + rng.normal(0, SCATTER)
    return centre + rng.normal(0, SEED_NOISE, size=seeds)


def study_table(rng, grid=GRID) -> pd.DataFrame:
    """An η* table as milr aggregate writes it: brackets of relative width 1.06 about η*."""
    rows = []
    for depth, width in grid:
        for seed, value in enumerate(log_eta(rng, depth, width)):
            low = np.exp(value) / 1.03
            rows.append(dict(dataset="gaussian", variant="small", threshold=0.85, depth=depth,
                             width=width, seed=seed, bracket_low=low, bracket_high=low * 1.06,
                             relative_bracket=1.06, no_success=False, hit_upper_bound=False,
                             status="ok"))  # fmt: skip
    return pd.DataFrame(rows)


def test_prediction_intervals_cover_new_architectures_at_their_level():
    """1,500 studies: the binomial standard error of a 95% coverage is 0.56 points, so the band
    95 ± 2 points is ±3.6 standard errors (an honest interval leaves it once in 3,000 runs)."""
    rng = np.random.default_rng(0)
    hits, trials = 0, 1500
    for _ in range(trials):
        law = choose_law("product", study_table(rng), OPTIONS)
        guess = predict(law, 3, 200, 0.95, OPTIONS.min_width_over_depth)
        hits += guess.low <= np.exp(log_eta(rng, 3, 200).mean()) <= guess.high
    assert abs(hits / trials - 0.95) <= 0.02, hits / trials


def test_parameter_only_intervals_would_not_cover():
    """The same check with the scatter left out (what a fit's parameter interval gives) covers
    far less: the scatter is what the interval is for."""
    rng = np.random.default_rng(1)
    hits, trials = 0, 200
    for _ in range(trials):
        law = choose_law("product", study_table(rng), OPTIONS)
        x, offset = design(law.spec, np.log([3]), np.log([200]))
        half = 2.2 * np.sqrt(x[0] @ law.cov @ x[0])  # the fit's uncertainty, no scatter
        centre = x[0] @ law.beta + offset[0]
        hits += abs(log_eta(rng, 3, 200).mean() - centre) <= half
    assert hits / trials < 0.7


def test_leave_one_out_coverage_is_near_nominal():
    """200 studies x 12 left-out architectures. The 2,400 checks are not independent (the 12 of
    one study share its fits), so the band is set by the spread of the 200 per-study coverages:
    ±4 standard errors of their mean around 95%."""
    rng = np.random.default_rng(2)
    covered = []
    for _ in range(200):
        eta = study_table(rng)
        fits = fit_tables(eta, eta.iloc[0:0], OPTIONS)
        loao = leave_one_out(eta, fits, PredictOptions(), ("product",))
        assert len(loao) == len(GRID)
        covered.append(coverage(loao).coverage.item())
    standard_error = np.std(covered, ddof=1) / np.sqrt(len(covered))
    assert standard_error < 0.01  # the band below is at most ±4 points
    assert abs(np.mean(covered) - 0.95) <= 4 * standard_error, (np.mean(covered), standard_error)


def test_validation_covers_every_law_and_names_it():
    eta = study_table(np.random.default_rng(3))
    loao = leave_one_out(eta, fit_tables(eta, eta.iloc[0:0], OPTIONS), PredictOptions())
    assert list(dict.fromkeys(loao.law)) == list(LAWS) and len(loao) == len(LAWS) * len(GRID)
    assert list(coverage(loao).law) == list(LAWS)


def test_law_is_the_least_squares_line_through_the_architecture_means():
    """The law predict uses, against a fit computed here from the raw table by numpy alone:
    each architecture's mean log midpoint, then numpy's own polyfit and R²."""
    eta = study_table(np.random.default_rng(3))
    fits = fit_tables(eta, eta.iloc[0:0], OPTIONS)
    law = choose_law("product", eta, OPTIONS)
    kept = eta[eta.width >= 16 * eta.depth]
    logs = np.log(np.sqrt(kept.bracket_low * kept.bracket_high))
    means = logs.groupby([kept.depth, kept.width]).mean()
    x = np.log([d * w for d, w in means.index])
    slope, intercept = np.polyfit(x, means.to_numpy(), 1)
    r2 = np.corrcoef(x, means.to_numpy())[0, 1] ** 2
    alpha = law.exponent_interval((1, 0))[0]
    assert alpha == pytest.approx(-slope, rel=1e-9) == fits.alpha.item()
    assert pytest.approx(np.exp(intercept), rel=1e-9) == np.exp(law.beta[0])
    assert law.r2 == pytest.approx(r2, rel=1e-9) == fits.r2.item()


def test_report_flags_extrapolation_and_condition_i():
    eta = study_table(np.random.default_rng(4))
    fits = fit_tables(eta, eta.iloc[0:0], OPTIONS)
    report, table = predict_table(eta, fits, STUDY, "gaussian", None, None,
                                  [(2, 128), (8, 64), (1, 4096)], PredictOptions())  # fmt: skip
    assert table.condition_i.tolist() == [True, False, True]
    assert table.outside_range.tolist() == [False, True, True]  # depth 8: the study's are 1-4
    lines = report.splitlines()
    assert "R²" in lines[0] and "95% prediction intervals include that scatter" in lines[1]
    assert "condition (i) fails" in lines[4] and "outside the fitted depths" in lines[5]
    assert (table.low < table.eta).all() and (table.eta < table.high).all()


@pytest.mark.parametrize("law", ["product", "separate", "depth", "best"])
def test_every_law_flags_a_width_or_depth_it_never_saw(law):
    """A law without a width term still saw only the study's widths: a width of 10^9 is an
    extrapolation under every law, and so is a depth beyond the study's. (depth_3/2 has R² < 0
    on this study and is refused before it predicts.)"""
    eta = study_table(np.random.default_rng(4))
    fits = fit_tables(eta, eta.iloc[0:0], OPTIONS)
    report, table = predict_table(eta, fits, STUDY, "gaussian", None, None,
                                  [(2, 128), (1, 10**9), (40, 1024)], PredictOptions(min_r2=0),
                                  law)  # fmt: skip
    assert table.outside_range.tolist() == [False, True, True]
    assert report.count("outside the fitted depths") == 2


def test_missing_or_weak_law_is_a_clear_error():
    eta = study_table(np.random.default_rng(5))
    fits = fit_tables(eta, eta.iloc[0:0], OPTIONS)
    with pytest.raises(MilrError, match="no η\\* law for gaussian/full at t=0.85"):
        predict_table(eta, fits, STUDY, "gaussian", "full", None, [(1, 64)], PredictOptions())
    few = eta[eta.width == 64]
    with pytest.raises(MilrError, match="has no law .*not fitted: 3 architectures"):
        predict_table(few, fit_tables(few, few.iloc[0:0], OPTIONS), STUDY, "gaussian", None,
                      None, [(1, 64)], PredictOptions())  # fmt: skip
    flat = eta.assign(bracket_low=np.exp(np.random.default_rng(6).normal(0, 1, len(eta))))
    flat = flat.assign(bracket_high=flat.bracket_low * 1.06)
    with pytest.raises(MilrError, match="R² 0.[0-4][0-9] < 0.5: too weak"):
        predict_table(flat, fit_tables(flat, flat.iloc[0:0], OPTIONS), STUDY, "gaussian",
                      None, None, [(1, 64)], PredictOptions())  # fmt: skip


def milr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "milr", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.fixture()
def tables_dir(tmp_path):
    eta = study_table(np.random.default_rng(7))
    eta.to_csv(tmp_path / "eta_star.csv", index=False)
    fit_tables(eta, eta.iloc[0:0], OPTIONS).to_csv(tmp_path / "fits.csv", index=False)
    (tmp_path / "study.json").write_text(json.dumps({
        "thresholds": STUDY.thresholds, "input_lr_variants": STUDY.input_lr_variants,
        "primary_variant": "small", "sweep_architectures": []}))  # fmt: skip
    return tmp_path


def test_cli_predicts_a_grid_and_writes_csv(tables_dir):
    out = tables_dir / "predicted.csv"
    run = milr("predict", "--tables", str(tables_dir), "--dataset", "gaussian", "--depths", "2",
               "3", "--widths", "100", "300", "--arch", "4x256", "--out", str(out))  # fmt: skip
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    assert list(zip(table.depth, table.width, strict=True)) == [(4, 256), (2, 100), (2, 300),
                                                                 (3, 100), (3, 300)]  # fmt: skip
    assert "η* ≈" in run.stdout and len(run.stdout.splitlines()) == 3 + 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "gaussian"], "nothing to predict"),
        (["--dataset", "gaussian", "--depths", "2"], "--depths and --widths go together"),
        (["--dataset", "mnist", "--arch", "2x64"], "the study has no mnist results"),
        (["--dataset", "gaussian", "--arch", "2x64", "--min-r2", "0.999"], "too weak"),
        (["--dataset", "gaussian", "--arch", "2by64"], "is not DEPTHxWIDTH"),
        (["--dataset", "gaussian", "--arch", "0x128"], "depth and width must be >= 1"),
        (["--dataset", "gaussian", "--arch", "3x0"], "depth and width must be >= 1"),
        (["--dataset", "gaussian", "--arch=-1x5"], "depth and width must be >= 1"),
    ],
)
def test_cli_errors_are_one_line(tables_dir, args, message):
    run = milr("predict", "--tables", str(tables_dir), *args)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("milr: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in run.stderr


def test_cli_without_a_finished_study_says_so(tmp_path):
    run = milr("predict", "--tables", str(tmp_path), "--dataset", "gaussian", "--arch", "2x64")
    assert run.returncode == 2 and "no finished study" in run.stderr  # and how to make one:
    assert "'make demo' writes results/mnist1d/tables" in run.stderr


def one_error(run: subprocess.CompletedProcess) -> str:
    errors = [line for line in run.stderr.splitlines() if line.startswith("milr: error:")]
    assert run.returncode == 2 and len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
    return errors[0]


def test_a_table_cut_off_mid_row_names_the_file(tables_dir):
    path = tables_dir / "eta_star.csv"
    path.write_text(path.read_text()[:-25])
    error = one_error(milr("predict", "--tables", str(tables_dir), "--dataset", "gaussian",
                           "--arch", "2x64"))  # fmt: skip
    assert str(path) in error and "cut off" in error


def test_a_table_cut_at_a_row_boundary_is_not_read_as_a_smaller_study(tables_dir):
    """study.json says how many rows aggregate wrote: a table that lost its last rows at a line
    end (R² 0.69 -> 0.32 and a prediction from 7 architectures, before) stops instead."""
    study = json.loads((tables_dir / "study.json").read_text())
    path = tables_dir / "eta_star.csv"
    lines = path.read_text().splitlines(keepends=True)
    study["rows"] = {"eta": len(lines) - 1}
    (tables_dir / "study.json").write_text(json.dumps(study))
    args = ("predict", "--tables", str(tables_dir), "--dataset", "gaussian", "--arch", "2x64")
    assert milr(*args).returncode == 0
    path.write_text("".join(lines[:-6]))
    error = one_error(milr(*args))
    assert str(path) in error and f"{len(lines) - 7} rows where study.json says" in error


def test_a_garbled_number_names_file_row_and_column(tables_dir):
    path = tables_dir / "fits.csv"
    fits = pd.read_csv(path)
    row = int(fits.index[fits["quantity"] == "eta_star"][0])
    text = path.read_text().splitlines(keepends=True)
    value = repr(float(fits.loc[row, "alpha"]))
    assert value in text[row + 1]
    text[row + 1] = text[row + 1].replace(value, "x.45", 1)
    path.write_text("".join(text))
    error = one_error(milr("predict", "--tables", str(tables_dir), "--dataset", "gaussian",
                           "--arch", "2x64"))  # fmt: skip
    assert f"{path} row {row + 1}, column alpha: 'x.45' is not a number" in error


def test_an_empty_table_is_one_line(tables_dir):
    path = tables_dir / "fits.csv"
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    error = one_error(milr("predict", "--tables", str(tables_dir), "--dataset", "gaussian",
                           "--arch", "2x64"))  # fmt: skip
    assert str(path) in error and "no rows" in error


def test_summary_writes_the_readme_block_and_check_finds_a_changed_number(tables_dir):
    """milr summary puts the study's numbers between the README's markers; --check passes on
    that README and fails, with a diff and one error line, once a number in it is edited."""
    eta = pd.read_csv(tables_dir / "eta_star.csv").assign(probes=7, role="main")
    eta.to_csv(tables_dir / "eta_star.csv", index=False)  # the columns aggregate adds
    sharp = eta[["dataset", "depth", "width", "seed"]].assign(lambda1=2.0, status="ok")
    sharp.to_csv(tables_dir / "sharpness.csv", index=False)
    readme = tables_dir / "README.md"
    marker = f"<!-- begin: milr summary --tables {tables_dir} -->\n<!-- end: milr summary -->"
    readme.write_text(f"# A study\n\n{marker}\n\nafter\n")
    assert milr("summary", "--tables", str(tables_dir), "--readme", str(readme),
                "--write").returncode == 0  # fmt: skip
    text = readme.read_text()
    fits = pd.read_csv(tables_dir / "fits.csv")
    alpha = fits[fits.quantity == "eta_star"].alpha.item()
    assert f"| {alpha:.2f} [" in text and text.endswith("\nafter\n")
    check = ("summary", "--tables", str(tables_dir), "--readme", str(readme), "--check")
    assert milr(*check).returncode == 0
    readme.write_text(text.replace(f"| {alpha:.2f} [", f"| {alpha + 0.01:.2f} [", 1))
    run = milr(*check)
    assert run.returncode == 1 and f"+| η\\*, input layer at 0.1× (t = 0.85) | {alpha:.2f}" in (
        run.stdout)  # fmt: skip
    errors = [line for line in run.stderr.splitlines() if line.startswith("milr: error:")]
    assert len(errors) == 1 and "differs from the summary" in errors[0]
