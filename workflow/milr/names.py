"""Names shared by the package and the workflow: datasets, figures and result paths.

Torch-free and dependency-free, so that the Snakefile (wildcard constraints, job lists) and the
package agree on every name from one definition.
"""

from __future__ import annotations

# The datasets the package knows; the names used in paths, configs and the CLI.
DATASETS = ("gaussian", "mnist", "fashion_mnist", "cifar10", "mnist1d")

# The laws milr fits and compares (milr.laws): the paper's, and its rivals.
LAW_NAMES = ("product", "separate", "depth", "depth_3/2")

# The paper's figures, in order (milr.figures registers one function per name).
FIGURES = (
    "eta_small_input_lr",
    "eta_full_input_lr",
    "condition_width_over_depth",
    "eta_vs_threshold",
    "lambda1",
    "eta_vs_lambda1",
    "eta_times_lambda1",
    "bisection_trace",
    "predicted_vs_measured",
    "lr_finder",
    "laws",
)
# Tables a figure reads besides the study's common ones (eta, sharpness, fits, probes, study):
# figure -> the `milr figure` options that give them.
FIGURE_EXTRA_TABLES = {
    "predicted_vs_measured": ("loao",),
    "lr_finder": ("lr_finder",),
    "laws": ("laws",),
}

# Columns of milr's tables that hold numbers: a value there that is not one is an error that
# names the file, row and column (any other column whose values are mostly numbers is checked
# the same way).
NUMERIC_COLUMNS = frozenset({
    "depth", "width", "depth_width", "seed", "threshold", "input_lr_scale", "upper",
    "iterations", "eta_star", "bracket_low", "bracket_high", "relative_bracket", "probes",
    "bracketing_probes", "samples", "lambda1", "probe", "lr", "epochs_run", "alpha", "C", "r2",
    "alpha_low", "alpha_high", "C_low", "C_high", "loo_rmse", "n_architectures", "n_points",
    "n_censored", "n_selected_out", "min_width_over_depth", "measured", "predicted", "low",
    "high", "steepest", "minimum_over_10",
})  # fmt: skip

# Result paths under the results folder, with the workflow's wildcards.
DATA_PATTERN = "data/{dataset}.pt"
BISECT_PATTERN = "bisect/{dataset}/{variant}/t{threshold}/d{depth}-w{width}-s{seed}.json"
SHARPNESS_PATTERN = "sharpness/{dataset}/d{depth}-w{width}-s{seed}.json"
RANGE_TEST_PATTERN = "range_test/{dataset}/{variant}/d{depth}-w{width}-s{seed}.json"
# `milr together`: the word before each command it runs in one process.
THEN = "::"

# What each wildcard may hold (Snakemake's wildcard_constraints and the tables' path parser).
WILDCARDS = {
    "dataset": "|".join(DATASETS),
    "variant": "[A-Za-z0-9_]+",
    "threshold": r"[0-9.]+(?:e-[0-9]+)?",  # format_threshold: 0.925, 1e-05
    "depth": r"\d+",
    "width": r"\d+",
    "seed": r"\d+",
}


def format_threshold(t: float) -> str:
    """The threshold as it appears in paths: shortest exact form (0.925, 0.34)."""
    return f"{t:g}" if float(f"{t:g}") == t else repr(t)
