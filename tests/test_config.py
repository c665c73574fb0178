"""A battery of malformed configs: every one stops before any job is planned, in one line that
names its own key."""

from __future__ import annotations

import copy
import math

import pytest
import yaml
from milr import MilrError
from milr.config import validate_config
from milr.plan import bisect_paths, sharpness_paths


@pytest.fixture(scope="module")
def paper(root):
    return yaml.safe_load((root / "config.yaml").read_text())


def put(config: dict, path: str, value) -> None:
    """Set ``a.b[0].c`` in ``config`` (every key but the last must exist)."""
    keys = [int(p[1:-1]) if p.startswith("[") else p for p in path.replace("[", ".[").split(".")]
    node = config
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


NAN, INF = math.nan, math.inf
BATTERY = [
    # (key path edited, value, key named in the message)
    ("datasets.mnist.upper", NAN, "datasets.mnist.upper"),
    ("datasets.mnist.upper", INF, "datasets.mnist.upper"),
    ("datasets.mnist.upper", -1.0, "datasets.mnist.upper"),
    ("datasets.mnist.upper", "big", "datasets.mnist.upper"),
    ("datasets.mnist.start", NAN, "datasets.mnist.start"),
    ("datasets.mnist.start", 0.0, "datasets.mnist.start"),
    ("datasets.mnist.lower", NAN, "datasets.mnist.lower"),
    ("datasets.mnist.lower", -0.5, "datasets.mnist.lower"),
    ("datasets.mnist.threshold", NAN, "datasets.mnist.threshold"),
    ("datasets.mnist.threshold", 1.5, "datasets.mnist.threshold"),
    ("datasets.mnist.threshold", 0, "datasets.mnist.threshold"),
    ("datasets.mnist.threshold", "high", "datasets.mnist.threshold"),
    ("datasets.mnist.threshold_sweep", [0.9, NAN], "datasets.mnist.threshold_sweep[1]"),
    ("datasets.mnist.threshold_sweep", [2.0], "datasets.mnist.threshold_sweep[0]"),
    ("datasets.gaussian.threshold_sweep", [0.99], "datasets.gaussian.threshold_sweep"),
    ("datasets.gaussian.threshold", 0.95, "datasets.gaussian.threshold"),
    ("datasets.gaussian.gaussian.dim", 2.0, "datasets.gaussian.gaussian.dim"),
    ("datasets.gaussian.gaussian.dim", 0, "datasets.gaussian.gaussian.dim"),
    ("datasets.gaussian.gaussian.mahalanobis", NAN, "datasets.gaussian.gaussian.mahalanobis"),
    ("datasets.gaussian.gaussian.mahalanobis", INF, "datasets.gaussian.gaussian.mahalanobis"),
    ("datasets.gaussian.gaussian.condition", NAN, "datasets.gaussian.gaussian.condition"),
    ("datasets.gaussian.gaussian.condition", 0.5, "datasets.gaussian.gaussian.condition"),
    ("datasets.gaussian.gaussian.seed", 1.5, "datasets.gaussian.gaussian.seed"),
    ("datasets.gaussian.gaussian.seed", -1, "datasets.gaussian.gaussian.seed"),
    ("datasets.gaussian.gaussian.colour", 1, "datasets.gaussian.gaussian"),
    ("datasets.mnist1d.mnist1d.samples", 10.0, "datasets.mnist1d.mnist1d.samples"),
    ("datasets.mnist1d.mnist1d.val_fraction", 1.0, "datasets.mnist1d.mnist1d.val_fraction"),
    ("datasets.mnist1d.mnist1d.seed", 2**40, "datasets.mnist1d.mnist1d.seed"),
    ("datasets.imagenet", {"threshold": 0.5, "upper": 1.0}, "datasets"),
    ("grid.depths", [0, 2], "grid.depths[0]"),
    ("grid.depths", [2.0], "grid.depths[0]"),
    ("grid.depths", [], "grid.depths"),
    ("grid.depths", [2, 2], "grid.depths"),
    ("grid.widths", [16.5], "grid.widths[0]"),
    ("grid.widths", [True], "grid.widths[0]"),
    ("seeds", [1.0], "seeds[0]"),
    ("seeds", [-1], "seeds[0]"),
    ("seeds", [2**63], "seeds[0]"),
    ("seeds", [], "seeds"),
    ("training.epochs", 10.0, "training.epochs"),
    ("training.epochs", 0, "training.epochs"),
    ("training.batch_size", 12.5, "training.batch_size"),
    ("training.momentum", NAN, "training.momentum"),
    ("training.momentum", 1.0, "training.momentum"),
    ("training.momentum", 5, "training.momentum"),
    ("search.iterations", 5.0, "search.iterations"),
    ("search.iterations", 0, "search.iterations"),
    ("search.method", "ternary", "search.method"),
    ("search.k", 1, "search.k"),
    ("search.scale", "log", "search.scale"),
    ("search.min_rate", NAN, "search.min_rate"),
    ("search.max_rate", INF, "search.max_rate"),
    ("search.scale", "geometric", "datasets.mnist.upper"),
    ("input_lr_variants", {"small": NAN}, "input_lr_variants.small"),
    ("input_lr_variants", {"small": 0.0}, "input_lr_variants.small"),
    ("input_lr_variants", {"bad name": 0.1}, "input_lr_variants"),
    ("primary_variant", "tiny", "primary_variant"),
    ("sweep.architectures", [[2]], "sweep.architectures[0]"),
    ("sweep.architectures", [[2, 0]], "sweep.architectures[0][1]"),
    ("sweep.architectures", [[2.0, 64]], "sweep.architectures[0][0]"),
    ("sharpness.samples", 0, "sharpness.samples"),
    ("sharpness.tol", NAN, "sharpness.tol"),
    ("sharpness.max_iter", 100.0, "sharpness.max_iter"),
    ("fit.min_width_over_depth", NAN, "fit.min_width_over_depth"),
    ("fit.min_width_over_depth", -1, "fit.min_width_over_depth"),
    ("fit.max_relative_bracket", INF, "fit.max_relative_bracket"),
    ("fit.max_relative_bracket", 1.0, "fit.max_relative_bracket"),
    ("fit.bootstrap", 2000, "fit"),  # removed: the intervals are t-intervals now
    ("results", "", "results"),
    ("results", "/", "results"),
    ("results", " results", "results"),
    ("results", 3, "results"),
    ("threads", 0, "threads"),
    ("threads", 2.0, "threads"),
    ("device", "tpu", "device"),
    ("active_datasets", ["svhn"], "active_datasets[0]"),
    ("active_datasets", [], "active_datasets"),
    ("learning_rate", 0.1, "(top level)"),
    # #30: a width no machine holds dry-ran without complaint and failed in the allocator
    ("grid.widths", [64, 10**9], "grid.widths"),
    ("job_memory_gb", 0, "job_memory_gb"),
]


IDS = [f"{path}={value!r}" for path, value, _ in BATTERY]


@pytest.mark.parametrize(("path", "value", "key"), BATTERY, ids=IDS)
def test_malformed_config_is_stopped_with_its_key_named(paper, path, value, key):
    config = copy.deepcopy(paper)
    put(config, path, value)
    with pytest.raises(MilrError) as err:
        validate_config(config)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"config key '{key}'"), message


@pytest.mark.parametrize("t", [1e-5, 0.123456789, 1.0, 0.5])
def test_any_valid_threshold_forms_a_path_the_workflow_accepts(paper, t):
    import re

    from milr.names import WILDCARDS

    config = copy.deepcopy(paper)
    config["datasets"]["mnist"]["threshold"] = t
    config["active_datasets"] = ["mnist"]
    validate_config(config)
    folders = {p.split("/")[4] for p in bisect_paths(config)}
    for folder in folders:
        assert re.fullmatch("t" + WILDCARDS["threshold"], folder), folder
        assert float(folder[1:]) in {t, *config["datasets"]["mnist"]["threshold_sweep"]}
    assert sharpness_paths(config)


@pytest.mark.parametrize("preset", ["mnist1d", "wide", "wide_fashion", "fashion", "quick", "tiny"])
def test_every_preset_is_a_valid_config_and_keeps_the_one_condition_i(root, preset):
    """Condition (i)'s factor is set once (the schema's default, which the settings share):
    no preset or config.yaml restates or changes it; the wide presets keep it everywhere."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("grid", root / "bench" / "grid_estimate.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    text = yaml.safe_load((root / "presets" / f"{preset}.yaml").read_text())
    paper = yaml.safe_load((root / "config.yaml").read_text())
    assert "min_width_over_depth" not in text.get("fit", {})
    assert "min_width_over_depth" not in paper.get("fit", {})
    config = validate_config(grid.merged(paper, text))
    from milr.settings import FitOptions

    ratio = config["fit"]["min_width_over_depth"]
    assert ratio == FitOptions().min_width_over_depth == 16
    if preset.startswith("wide"):
        assert all(
            w >= ratio * d for d in config["grid"]["depths"] for w in config["grid"]["widths"]
        )


def test_the_memory_check_uses_the_jobs_memory_when_set(paper):
    """The paper's grid (widths to 2,048 on MNIST) fits in 2 GiB a job, not in 10 MiB."""
    config = copy.deepcopy(paper)
    validate_config(copy.deepcopy(config) | {"job_memory_gb": 2})
    with pytest.raises(MilrError, match="config key 'grid.widths'.*more than the 0.01 GiB"):
        validate_config(config | {"job_memory_gb": 0.01})
