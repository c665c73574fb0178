"""The study plan: validate a workflow config and list the jobs it asks for.

The Snakefile stays thin: it asks this module which result files the config implies and which
command-line arguments each job gets. Keeping that logic here means it is tested like the rest
of the package, and imports nothing heavier than jsonschema and PyYAML (both come with
Snakemake), so the Snakefile can use it from any environment.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from milr import MilrError

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

# The paper's figures, in order (milr.figures draws them; one workflow rule each).
FIGURES = (
    "eta_small_input_lr",
    "eta_full_input_lr",
    "condition_width_over_depth",
    "eta_vs_threshold",
    "lambda1",
    "eta_vs_lambda1",
    "eta_times_lambda1",
    "bisection_trace",
)

BISECT_PATTERN = "bisect/{dataset}/{variant}/t{threshold}/d{depth}-w{width}-s{seed}.json"
SHARPNESS_PATTERN = "sharpness/{dataset}/d{depth}-w{width}-s{seed}.json"


def _key_path(error) -> str:
    """``grid.depths[0]`` from a jsonschema error's absolute path."""
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _default_filling_validator():
    """A Draft 2020-12 validator that also writes each property's schema default."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = yaml.safe_load(yaml.safe_dump(sub["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA) -> dict[str, Any]:
    """Fill defaults and check ``config`` in place; raise a one-line error naming the key."""
    schema = yaml.safe_load(schema_path.read_text())
    validator = _default_filling_validator()(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise MilrError(f"config key '{_key_path(first)}': {first.message}{more}")
    _check_semantics(config)
    return config


def gaussian_bayes_accuracy(mahalanobis: float) -> float:
    """Accuracy of the optimal (linear) classifier between two normals with a shared covariance
    whose means are ``mahalanobis`` apart: Phi(Delta / 2). Lives here, not in milr.data, so that
    validating a config never imports PyTorch."""
    return 0.5 * (1.0 + math.erf(mahalanobis / 2.0 / math.sqrt(2.0)))


def _check_semantics(config: Mapping[str, Any]) -> None:
    """What a JSON schema cannot say: relations between values."""
    search = config["search"]
    for name, ds in config["datasets"].items():
        lower = ds.get("lower", 0.0)
        if not ds["upper"] > lower:
            raise MilrError(
                f"config key 'datasets.{name}.upper': u = {ds['upper']} must exceed "
                f"l = {lower}; raise upper or lower the lower bound"
            )
        if search["scale"] == "geometric" and lower <= 0:
            raise MilrError(
                f"config key 'datasets.{name}.lower': geometric search needs l > 0 "
                "(it bisects log lr); set lower, e.g. upper / 1024"
            )
        if name == "gaussian":
            bayes = gaussian_bayes_accuracy(ds["gaussian"]["mahalanobis"])
            for t in [ds["threshold"], *ds.get("threshold_sweep", [])]:
                if t >= bayes:
                    raise MilrError(
                        f"config key 'datasets.gaussian.threshold': t = {t} is not below the "
                        f"task's Bayes accuracy {bayes:.4f}; no network can reach it"
                    )
    for name in config.get("active_datasets") or []:
        if name not in config["datasets"]:
            raise MilrError(
                f"config key 'active_datasets': {name!r} has no entry under datasets; "
                f"add datasets.{name} or drop it from active_datasets"
            )
    if config["primary_variant"] not in config["input_lr_variants"]:
        raise MilrError(
            f"config key 'primary_variant': {config['primary_variant']!r} is not one of "
            f"input_lr_variants {sorted(config['input_lr_variants'])}"
        )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML config file."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise MilrError(f"cannot read config {path}: {err}") from err
    return validate_config(config or {})


def active_datasets(config: Mapping[str, Any]) -> list[str]:
    """The datasets this run studies: ``active_datasets`` if set, else all configured ones.

    Snakemake merges a ``--configfile`` preset into config.yaml key by key, so a preset cannot
    remove a dataset; it names the ones it runs instead.
    """
    return list(config.get("active_datasets") or config["datasets"])


def format_threshold(t: float) -> str:
    """The threshold as it appears in paths: shortest exact form (0.925, 0.34)."""
    return f"{t:g}" if float(f"{t:g}") == t else repr(t)


@dataclass(frozen=True)
class BisectJob:
    """One bisection job's wildcards."""

    dataset: str
    variant: str
    threshold: str
    depth: int
    width: int
    seed: int

    def path(self, results: str) -> str:
        return f"{results}/" + BISECT_PATTERN.format(**self.__dict__)


def bisect_jobs(config: Mapping[str, Any]) -> list[BisectJob]:
    """Every (dataset, variant, t, depth, width, seed) the study asks for.

    The full grid runs at each dataset's main t for every input-LR variant; the threshold sweep
    runs only on ``sweep.architectures`` and only for the primary variant, which keeps the
    paper-scale study affordable.
    """
    jobs: dict[BisectJob, None] = {}
    grid = [(d, w) for d in config["grid"]["depths"] for w in config["grid"]["widths"]]
    sweep_archs = [tuple(a) for a in config["sweep"]["architectures"]]
    for name in active_datasets(config):
        ds = config["datasets"][name]
        main_t = format_threshold(ds["threshold"])
        for variant in config["input_lr_variants"]:
            for depth, width in grid:
                for seed in config["seeds"]:
                    jobs[BisectJob(name, variant, main_t, depth, width, seed)] = None
        for t in ds.get("threshold_sweep", []):
            for depth, width in sweep_archs:
                for seed in config["seeds"]:
                    job = BisectJob(
                        name, config["primary_variant"], format_threshold(t), depth, width, seed
                    )
                    jobs[job] = None
    return list(jobs)


def sharpness_paths(config: Mapping[str, Any]) -> list[str]:
    """One λ1 job per dataset x grid architecture x seed."""
    results = config["results"]
    return [
        f"{results}/" + SHARPNESS_PATTERN.format(dataset=name, depth=d, width=w, seed=s)
        for name in active_datasets(config)
        for d in config["grid"]["depths"]
        for w in config["grid"]["widths"]
        for s in config["seeds"]
    ]


def bisect_paths(config: Mapping[str, Any]) -> list[str]:
    return [job.path(config["results"]) for job in bisect_jobs(config)]


def _flags(pairs: Mapping[str, Any]) -> str:
    return " ".join(f"--{k} {shlex.quote(str(v))}" for k, v in pairs.items())


def data_args(config: Mapping[str, Any], dataset: str) -> str:
    """``milr prepare`` arguments for one dataset (Gaussian parameters included)."""
    flags: dict[str, Any] = {"data-dir": config["data_dir"]}
    gauss = config["datasets"][dataset].get("gaussian")
    if dataset == "gaussian" and gauss is not None:
        flags.update(
            {
                "gaussian-dim": gauss["dim"],
                "gaussian-mahalanobis": gauss["mahalanobis"],
                "gaussian-condition": gauss["condition"],
                "data-seed": gauss["seed"],
            }
        )
    return _flags(flags)


def bisect_args(config: Mapping[str, Any], dataset: str, variant: str, threshold: str) -> str:
    """Every knob of one bisection job as CLI flags: a change to any of them reruns the job."""
    ds = config["datasets"][dataset]
    training, search = config["training"], config["search"]
    flags = {
        "threshold": threshold,
        "upper": ds["upper"],
        "lower": ds.get("lower", 0.0),
        "iterations": search["iterations"],
        "epochs": training["epochs"],
        "batch-size": training["batch_size"],
        "momentum": training["momentum"],
        "input-lr-scale": config["input_lr_variants"][variant],
        "method": search["method"],
        "scale": search["scale"],
        "trainer": search["trainer"],
        "variant": variant,
    }
    if search["method"] == "kary":
        flags["k"] = search["k"]
    return _flags(flags)


def sharpness_args(config: Mapping[str, Any]) -> str:
    sharp = config["sharpness"]
    return _flags({"samples": sharp["samples"], "max-iter": sharp["max_iter"], "tol": sharp["tol"]})


def fit_args(config: Mapping[str, Any]) -> str:
    fit = config["fit"]
    flags = {
        "min-width-over-depth": fit["min_width_over_depth"],
        "bootstrap": fit["bootstrap"],
        "seed": fit["seed"],
    }
    limit = fit["max_relative_bracket"]
    if limit is not None and math.isfinite(limit):
        flags["max-relative-bracket"] = limit
    return _flags(flags)


def figure_spec(config: Mapping[str, Any], config_name: str = "config.yaml") -> str:
    """The JSON the figure rules pass to ``milr figure --spec``."""
    import json

    names = active_datasets(config)
    return json.dumps(
        {
            "thresholds": {n: config["datasets"][n]["threshold"] for n in names},
            "primary_variant": config["primary_variant"],
            "input_lr_variants": dict(config["input_lr_variants"]),
            "min_width_over_depth": config["fit"]["min_width_over_depth"],
            "sweep_architectures": [list(a) for a in config["sweep"]["architectures"]],
            "config_name": config_name,
        },
        sort_keys=True,
    )


def supported_figures(config: Mapping[str, Any]) -> list[str]:
    """The figures this config has data for: the full-rate variant's figure needs a second
    input-LR variant, the threshold figure needs a sweep. Every figure keeps its rule."""
    names = list(FIGURES)
    if len(config["input_lr_variants"]) < 2:
        names.remove("eta_full_input_lr")
    sweeps = any(config["datasets"][n].get("threshold_sweep") for n in active_datasets(config))
    if not (sweeps and config["sweep"]["architectures"]):
        names.remove("eta_vs_threshold")
    return names
