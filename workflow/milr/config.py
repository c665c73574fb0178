"""Validate a workflow config: JSON-schema defaults and checks, then what a schema cannot say.

Imports nothing heavier than jsonschema and PyYAML (both come with Snakemake), so the Snakefile
can validate from any environment, --sdm conda included.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from milr import MilrError
from milr.memory import check_fits, networks_at_once
from milr.settings import GENERATORS, GaussianSpec

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def _key_path(error) -> str:
    """``grid.depths[0]`` from a jsonschema error's absolute path."""
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _strict_types():
    """JSON Schema's types, stricter: an integer is a Python int (10.0 and True are not), a
    number is finite (YAML's .nan and .inf are not)."""
    from jsonschema import Draft202012Validator

    def integer(_, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def number(_, value) -> bool:
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (math.isfinite(value))
        )

    return Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": integer, "number": number})


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

    return validators.extend(
        Draft202012Validator, {"properties": set_defaults}, type_checker=_strict_types()
    )


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA) -> dict[str, Any]:
    """Fill defaults and check ``config`` in place; raise a one-line error naming the key."""
    validator = _default_filling_validator()(load_schema(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        hint = ""
        if first.validator == "type" and first.validator_value == "boolean":
            hint = " (write true or false in YAML; Snakemake's --config reads only True or False)"
        raise MilrError(f"config key '{_key_path(first)}': {first.message}{hint}{more}")
    _check_semantics(config)
    return config


def _check_semantics(config: Mapping[str, Any]) -> None:
    """What a JSON schema cannot say: relations between values."""
    search = config["search"]
    active = config.get("active_datasets") or list(config["datasets"])
    for name, ds in config["datasets"].items():
        lower = ds["lower"]
        if ds["upper"] == "auto":
            if name in active and (search["scale"] != "linear" or lower != 0):
                raise MilrError(
                    f"config key 'datasets.{name}.upper': auto runs Algorithm 1 on [0, u]; "
                    "set search.scale: linear and drop lower"
                )
        elif not ds["upper"] > lower:
            raise MilrError(
                f"config key 'datasets.{name}.upper': u = {ds['upper']} must exceed "
                f"l = {lower}; raise upper or lower the lower bound"
            )
        if search["scale"] == "geometric" and lower <= 0 and name in active:
            raise MilrError(
                f"config key 'datasets.{name}.lower': geometric search needs l > 0 "
                "(it bisects log lr); set lower, e.g. upper / 1024"
            )
        if name in GENERATORS and ds["subset"] != {"train": None, "val": None}:
            raise MilrError(
                f"config key 'datasets.{name}.subset': {name} is generated, not downloaded; "
                f"size it under datasets.{name}.{name} instead"
            )
        if name == "gaussian":
            bayes = GaussianSpec(**ds["gaussian"]).bayes_accuracy()
            for key, ts in (
                ("threshold", [ds["threshold"]]),
                ("threshold_sweep", ds["threshold_sweep"]),
            ):
                for t in ts:
                    if t >= bayes:
                        raise MilrError(
                            f"config key 'datasets.gaussian.{key}': t = {t} is not below the "
                            f"task's Bayes accuracy {bayes:.4f}; no network can reach it"
                        )
    for name in config.get("active_datasets") or []:
        if name not in config["datasets"]:
            raise MilrError(
                f"config key 'active_datasets': {name!r} has no entry under datasets; "
                f"add datasets.{name} or drop it from active_datasets"
            )
    _check_memory(config, active)
    if Path(config["results"]).resolve() == Path("/"):
        raise MilrError("config key 'results': the filesystem root is no results folder")
    if config["primary_variant"] not in config["input_lr_variants"]:
        raise MilrError(
            f"config key 'primary_variant': {config['primary_variant']!r} is not one of "
            f"input_lr_variants {sorted(config['input_lr_variants'])}"
        )


def _check_memory(config: Mapping[str, Any], active: list[str]) -> None:
    """Every training job of the grid and the sweep must fit in a job's memory (milr.memory's
    floor), checked before the first job starts."""
    search = config["search"]
    seeds = len(config["seeds"]) if search["batch_seeds"] else 1
    networks = networks_at_once(seeds, search["method"], search["k"], search["trainer"])
    limit = config["job_memory_gb"]
    limit = None if limit is None else int(limit * 2**30)
    grid = config["grid"]
    archs = {
        "grid.widths": [(d, w) for d in grid["depths"] for w in grid["widths"]],
        "sweep.architectures": [tuple(a) for a in config["sweep"]["architectures"]],
    }
    for name in active:
        dim = GaussianSpec(**config["datasets"][name].get("gaussian", {})).dim
        for key, pairs in archs.items():
            for depth, width in pairs:
                check_fits(name, dim, depth, width, networks, limit, f"config key '{key}'")
