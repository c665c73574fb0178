"""Each setting is defined once (milr.settings); the config schema, the CLI and the job flags
agree with that definition."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest
from milr import MilrError, names
from milr.config import load_schema
from milr.settings import (
    FitOptions,
    GaussianSpec,
    Mnist1dSpec,
    Network,
    PredictOptions,
    RangeTestSettings,
    SearchSpec,
    SharpnessSettings,
    TrainSettings,
    add_options,
    from_args,
    to_flags,
)

SCHEMA = load_schema()


def resolve(node: dict) -> dict:
    """A schema node with its $ref merged in."""
    if "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


PROPS = SCHEMA["properties"]
DATASET = SCHEMA["definitions"]["dataset"]["properties"]
# (settings class, field) -> the schema node that validates it in config.yaml.
MAPPING = {
    **{(TrainSettings, k): PROPS["training"]["properties"][k] for k in ("epochs", "batch_size",
                                                                      "momentum")},
    (TrainSettings, "threshold"): DATASET["threshold"],
    (TrainSettings, "input_lr_scale"): PROPS["input_lr_variants"]["additionalProperties"],
    **{(SearchSpec, k): PROPS["search"]["properties"][k] for k in ("iterations", "method", "k",
                                                                   "scale", "trainer")},
    (SearchSpec, "upper"): DATASET["upper"]["anyOf"][0] | {"enum": ["auto"]},
    (SearchSpec, "start"): DATASET["start"],
    (SearchSpec, "min_rate"): PROPS["search"]["properties"]["min_rate"],
    (SearchSpec, "max_rate"): PROPS["search"]["properties"]["max_rate"],
    (SearchSpec, "lower"): DATASET["lower"],
    (Network, "depth"): PROPS["grid"]["properties"]["depths"]["items"],
    (Network, "width"): PROPS["grid"]["properties"]["widths"]["items"],
    (Network, "seed"): PROPS["seeds"]["items"],
    **{(SharpnessSettings, f.name): PROPS["sharpness"]["properties"][f.name]
       for f in dataclasses.fields(SharpnessSettings)},
    **{(FitOptions, f.name): PROPS["fit"]["properties"][f.name]
       for f in dataclasses.fields(FitOptions)},
    (PredictOptions, "level"): PROPS["predict"]["properties"]["level"],
    **{(RangeTestSettings, f.name): PROPS["range_test"]["properties"][f.name]
       for f in dataclasses.fields(RangeTestSettings)},
    **{(GaussianSpec, f.name): DATASET["gaussian"]["properties"][f.name]
       for f in dataclasses.fields(GaussianSpec)},
    **{(Mnist1dSpec, f.name): DATASET["mnist1d"]["properties"][f.name]
       for f in dataclasses.fields(Mnist1dSpec)},
}  # fmt: skip
SCHEMA_TYPES = {int: "integer", float: "number", str: "string"}
PER_VARIANT = {(TrainSettings, "input_lr_scale")}


@pytest.mark.parametrize(("cls", "name"), list(MAPPING), ids=lambda v: getattr(v, "__name__", v))
def test_schema_and_settings_agree(cls, name):
    node = resolve(MAPPING[(cls, name)])
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = f.metadata
    if meta["words"]:
        assert tuple(node["enum"]) == meta["words"]
    if meta["choices"]:
        assert tuple(node["enum"]) == meta["choices"]
    else:
        hint = typing.get_type_hints(cls)[name]
        kind = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        assert SCHEMA_TYPES[kind[0]] in types
    for ours, theirs in (("minimum", "minimum"), ("maximum", "maximum"),
                         ("above", "exclusiveMinimum"), ("below", "exclusiveMaximum")):  # fmt: skip
        assert meta[ours] == node.get(theirs), (ours, theirs)
    if (cls, name) in PER_VARIANT:
        assert "default" not in node  # each variant names its own factor
    elif (cls, name) == (Network, "seed"):
        assert PROPS["seeds"]["default"] == [f.default]  # a list of seeds in config.yaml
    elif f.default is not dataclasses.MISSING:
        assert node.get("default") == f.default
    else:
        assert "default" not in node


def test_every_config_section_field_is_mapped():
    """A setting added to a config section without a definition (or vice versa) fails here."""
    sections = {
        "training": TrainSettings, "search": SearchSpec, "sharpness": SharpnessSettings,
        "fit": FitOptions, "predict": PredictOptions, "range_test": RangeTestSettings,
    }  # fmt: skip
    workflow_only = {"batch_seeds"}
    for section, cls in sections.items():
        keys = set(PROPS[section]["properties"]) - workflow_only
        assert keys <= {n for (c, n) in MAPPING if c is cls}
    for gen, cls in (("gaussian", GaussianSpec), ("mnist1d", Mnist1dSpec)):
        assert set(DATASET[gen]["properties"]) == {f.name for f in dataclasses.fields(cls)}


def test_dataset_names_come_from_one_place():
    assert tuple(PROPS["datasets"]["propertyNames"]["enum"]) == names.DATASETS
    assert tuple(PROPS["active_datasets"]["items"]["enum"]) == names.DATASETS
    assert names.WILDCARDS["dataset"].split("|") == list(names.DATASETS)


def test_cli_options_round_trip_the_settings():
    parser = argparse.ArgumentParser()
    add_options(parser, TrainSettings)
    add_options(parser, SearchSpec)
    train = TrainSettings(threshold=0.9, epochs=3, input_lr_scale=0.1)
    search = SearchSpec(upper=2.0, method="kary", k=4, scale="geometric", lower=0.01)
    argv = [str(x) for pair in {**to_flags(train), **to_flags(search)}.items() for x in pair]
    args = parser.parse_args(argv)
    assert from_args(TrainSettings, args) == train
    assert from_args(SearchSpec, args) == search


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: TrainSettings(threshold=float("nan")), "finite"),
        (lambda: TrainSettings(threshold=0.5, momentum=1.0), "in [0, 1)"),
        (lambda: SearchSpec(upper=float("inf")), "finite"),
        (lambda: SearchSpec(upper=1.0, method="ternary"), "one of bisect, kary"),
        (lambda: GaussianSpec(condition=0.5), "in [1, 1e+12], got 0.5"),
        (lambda: Network("gaussian", 2, 8, seed=2**63), "in [0, 9.22337e+18]"),
    ],
)
def test_bounds_are_enforced_on_creation(make, needle):
    with pytest.raises(MilrError, match=None) as err:
        make()
    assert needle in str(err.value)
