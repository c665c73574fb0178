"""Every setting of a job, defined once: name, type, default, bounds and one-line help.

Each setting is a field of one of the frozen dataclasses below, and its metadata is the only place
its help and bounds are written. Everything else derives from them:

- the command line: :func:`add_options` makes the flags (type, bounds, default, help) and
  :func:`from_args` builds the dataclasses back from the parsed arguments;
- the workflow's job parameters: :func:`to_flags` turns the settings a config implies into the
  flags of one job, so that a change to any knob reruns exactly the jobs it touches;
- the result records, which embed these dataclasses unchanged.

``workflow/schemas/config.schema.yaml`` stays the user-facing validation of config.yaml; a test
(tests/test_settings.py) proves that its defaults and bounds agree with the definitions here.
Torch-free, so the Snakefile can import it from any environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any

from milr import MilrError
from milr.names import DATASETS

SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed


def setting(
    default: Any = MISSING,
    *,
    help: str,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: tuple[str, ...] | None = None,
    words: tuple[str, ...] = (),
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A dataclass field that carries its own help and bounds (``above``/``below``: exclusive;
    ``words``: strings a numeric setting also accepts, such as ``auto``)."""
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "above": above}
    meta.update(below=below, choices=choices, words=words, flag=flag, aliases=aliases)
    return field(default=default, metadata=meta)


def same_as(cls: type, name: str) -> Any:
    """A field defined exactly as ``cls``'s field ``name`` (default, help, bounds): for records
    that carry one setting of a class whose other settings do not concern them."""
    source = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field(default=source.default, metadata=source.metadata)


def describe_bounds(meta: dict) -> str:
    """``>= 1``, ``> 0`` or ``in (0, 1]``: the bounds as a user reads them."""
    low = (meta["minimum"], "[") if meta["minimum"] is not None else (meta["above"], "(")
    high = (meta["maximum"], "]") if meta["maximum"] is not None else (meta["below"], ")")
    if low[0] is not None and high[0] is not None:
        return f"in {low[1]}{low[0]:g}, {high[0]:g}{high[1]}"
    if low[0] is not None:
        return f"{'>=' if low[1] == '[' else '>'} {low[0]:g}"
    if high[0] is not None:
        return f"{'<=' if high[1] == ']' else '<'} {high[0]:g}"
    return "any number"


def problem(value: Any, meta: dict) -> str | None:
    """Why ``value`` breaks the setting's bounds, or None when it is fine."""
    if meta["choices"] is not None:
        return None if value in meta["choices"] else f"must be one of {', '.join(meta['choices'])}"
    if isinstance(value, str) and meta["words"]:
        words = " or ".join(meta["words"])
        return None if value in meta["words"] else f"must be a number or {words}, got {value!r}"
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    ok = (
        (meta["minimum"] is None or value >= meta["minimum"])
        and (meta["above"] is None or value > meta["above"])
        and (meta["maximum"] is None or value <= meta["maximum"])
        and (meta["below"] is None or value < meta["below"])
    )
    return None if ok else f"must be {describe_bounds(meta)}, got {value:g}"


class Settings:
    """Base of every settings dataclass: values are checked against their bounds on creation."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if "help" in f.metadata and value is not None:
                issue = problem(value, dict(f.metadata))
                if issue:
                    raise MilrError(f"{type(self).__name__}.{f.name} {issue}")


@dataclass(frozen=True)
class Network(Settings):
    """Which network: the dataset it learns, its architecture and the seed of its weights."""

    dataset: str = setting(help="dataset the network learns", choices=DATASETS)
    depth: int = setting(help="number of hidden layers", minimum=1)
    width: int = setting(help="units per hidden layer", minimum=1)
    seed: int = setting(
        0, help="seed of the initial weights and the minibatch order", minimum=0, maximum=SEED_MAX
    )


@dataclass(frozen=True)
class TrainSettings(Settings):
    """Everything a probe needs besides its learning rate and seed (paper defaults)."""

    threshold: float = setting(help="target validation accuracy t", above=0, maximum=1)
    epochs: int = setting(10, help="epochs per probe e (paper: 10)", minimum=1)
    batch_size: int = setting(128, help="minibatch size (paper: 128)", minimum=1)
    input_lr_scale: float = setting(1.0, help="factor on the input layer's learning rate", above=0)
    momentum: float = setting(0.0, help="SGD momentum (paper: plain SGD)", minimum=0, below=1)


@dataclass(frozen=True)
class SearchSpec(Settings):
    """How η* is searched: the paper's Algorithm 1 is bisect, linear, l = 0, s = 5."""

    upper: float | str = setting(
        help="top of the bracket u, or auto: found per architecture by a bracketing phase",
        above=0,
        words=("auto",),
    )
    lower: float = setting(0.0, help="bottom of the bracket l (paper: 0)", minimum=0)
    start: float = setting(1.0, help="first rate of the bracketing phase (upper: auto)", above=0)
    min_rate: float = setting(
        1e-4, help="the bracketing phase gives up below this rate (η* < it)", above=0
    )
    max_rate: float = setting(
        1e4, help="the bracketing phase gives up above this rate (η* > it)", above=0
    )
    iterations: int = setting(5, help="search rounds s (paper: 5)", minimum=1)
    method: str = setting(
        "bisect", help="bisect: Algorithm 1; kary: k probes per round", choices=("bisect", "kary")
    )
    k: int = setting(8, help="probes per round when method is kary", minimum=2)
    scale: str = setting(
        "linear",
        help="linear (paper) or geometric (bisects log lr)",
        choices=("linear", "geometric"),
    )
    trainer: str = setting(
        "batched",
        help="batched: a round's probes as one stack; plain: one at a time (same numbers on CPU)",
        choices=("plain", "batched"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.upper == "auto":
            if self.scale != "linear" or self.lower != 0:
                raise MilrError(
                    "upper: auto runs Algorithm 1 on [0, u]; set scale: linear and lower: 0"
                )
            if not self.min_rate <= self.start <= self.max_rate:
                raise MilrError(f"start {self.start} must lie in [min_rate, max_rate]")
            return
        if not self.upper > self.lower:
            raise MilrError(f"need upper > lower, got [{self.lower}, {self.upper}]")
        if self.scale == "geometric" and self.lower <= 0:
            raise MilrError("geometric search needs lower > 0 (it bisects log(lr)); set lower")

    @property
    def points_per_round(self) -> int:
        return 1 if self.method == "bisect" else self.k


# The rate milr recommends is this fraction of η*, below the edge, not at it: the bracket
# resolves η* to ~6%, and on milr's studies another seed's η* is up to 1.44x off
# (docs/reproducibility.md); half of η* keeps clear of both.
SAFE_FRACTION = 0.5


@dataclass(frozen=True)
class FindSettings(Settings):
    """How :func:`milr.find_eta_star` searches η* of any network: the study's search (bracketing
    from ``start``, then Algorithm 1 on [0, u]) with the paper's t, e and batch, over seeds.

    A rate passes when at least ``must_pass`` of the seeds reach t (default: all of them, the
    cautious reading of "the largest rate that trains"). ``tolerance`` sets the bisection
    rounds: with ``upper: auto`` the final bracket's high / low is at most 1 + tolerance.
    """

    threshold: float = same_as(TrainSettings, "threshold")
    epochs: int = same_as(TrainSettings, "epochs")
    batch_size: int = same_as(TrainSettings, "batch_size")
    seeds: tuple[int, ...] = (0,)  # initialisation seeds: one fresh model per seed per rate
    data_seeds: tuple[int, ...] | None = None  # minibatch-order seed per seed (default: the same)
    must_pass: int | None = setting(
        None, help="seeds that must reach t for a rate to pass (default: all of them)", minimum=1
    )
    upper: float | str = setting(
        "auto",
        help="top of the bracket u, or auto: found by a bracketing phase from --start",
        above=0,
        words=("auto",),
    )
    start: float = same_as(SearchSpec, "start")
    min_rate: float = same_as(SearchSpec, "min_rate")
    max_rate: float = same_as(SearchSpec, "max_rate")
    tolerance: float = setting(
        0.0625,
        help="resolve η* to a factor 1 + this (0.0625: the paper's s = 5 rounds)",
        above=0,
        maximum=1,
    )
    max_probes: int | None = setting(
        None, help="trainings the search may run (default: no limit)", minimum=1
    )
    max_seconds: float | None = setting(
        None,
        help="wall-clock budget; a search it stops depends on the machine's speed (default: none)",
        above=0,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise MilrError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if any(not 0 <= s <= SEED_MAX for s in (*self.seeds, *(self.data_seeds or ()))):
            raise MilrError(f"seeds must lie in [0, {SEED_MAX}]")
        if self.data_seeds is not None and len(self.data_seeds) != len(self.seeds):
            raise MilrError(
                f"data_seeds needs one seed per seed ({len(self.seeds)}), "
                f"got {len(self.data_seeds)}"
            )
        if self.must_pass is not None and self.must_pass > len(self.seeds):
            raise MilrError(
                f"must_pass (--must-pass) {self.must_pass} is more than the {len(self.seeds)} "
                "seeds: lower it or add seeds"
            )
        if self.max_probes is not None and self.max_probes < len(self.seeds):
            raise MilrError(
                f"max_probes (--max-probes) {self.max_probes} cannot decide one rate, which may "
                f"take {len(self.seeds)} trainings (one per seed): raise it to at least "
                f"{len(self.seeds)}"
            )
        self.search_spec()  # start within [min_rate, max_rate], and the like

    @property
    def passes_needed(self) -> int:
        return len(self.seeds) if self.must_pass is None else self.must_pass

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """(initialisation seed, minibatch-order seed) of each training at a rate."""
        return list(zip(self.seeds, self.data_seeds or self.seeds, strict=True))

    def search_spec(self) -> SearchSpec:
        """The study's search with the rounds that reach ``tolerance``: after bracketing, u
        fails and u/2 passes, and s rounds of Algorithm 1 leave high / low <= 1 + 2^(1-s)."""
        rounds = 1 + max(0, math.ceil(math.log2(1 / self.tolerance) - 1e-12))
        return SearchSpec(upper=self.upper, start=self.start, min_rate=self.min_rate,
                          max_rate=self.max_rate, iterations=rounds)  # fmt: skip


@dataclass(frozen=True)
class SharpnessSettings(Settings):
    """How λ1 is measured: PyHessian's power iteration on a seeded training subset."""

    samples: int = setting(2048, help="training samples the Hessian is taken over", minimum=1)
    max_iter: int = setting(100, help="power-iteration cap (PyHessian's default)", minimum=1)
    tol: float = setting(1e-4, help="relative change that stops the power iteration", above=0)


@dataclass(frozen=True)
class GaussianSpec(Settings):
    """Two multivariate normals with a shared covariance; class = which normal drew the point.

    ``mahalanobis`` is the distance between the means in the covariance's own metric, so the
    Bayes-optimal accuracy is Phi(mahalanobis / 2) whatever the covariance.
    """

    dim: int = setting(32, help="input dimension", minimum=1)
    mahalanobis: float = setting(
        2.5, help="distance between the means (Bayes accuracy Phi(d/2))", above=0
    )
    condition: float = setting(
        10.0, help="spread of the covariance's eigenvalues (log-spaced)", minimum=1, maximum=1e12
    )
    seed: int = setting(
        0,
        help="seed of the task's one fixed draw",
        minimum=0,
        maximum=SEED_MAX,
        aliases=("--data-seed",),
    )
    train_per_class: int = setting(9000, help="training samples per class (paper)", minimum=1)
    val_per_class: int = setting(1000, help="validation samples per class (paper)", minimum=1)

    def bayes_accuracy(self) -> float:
        return gaussian_bayes_accuracy(self.mahalanobis)


@dataclass(frozen=True)
class Mnist1dSpec(Settings):
    """MNIST-1D (Greydanus 2020), generated procedurally by the ``mnist1d`` package."""

    samples: int = setting(
        20000, help="samples generated, split into train and validation", minimum=100
    )
    val_fraction: float = setting(0.2, help="share of the samples held out", above=0, below=1)
    seed: int = setting(0, help="seed of the generator", minimum=0, maximum=2**32 - 1)


@dataclass(frozen=True)
class SubsetSpec(Settings):
    """The first samples of a downloaded dataset's splits (tests and quick looks; a study uses
    all of them). Standardisation then uses the subset's own training statistics."""

    train: int | None = setting(None, help="first N training samples (default: all)", minimum=1)
    val: int | None = setting(None, help="first N validation samples (default: all)", minimum=1)


@dataclass(frozen=True)
class FitOptions(Settings):
    """Which points enter a power-law fit, and how its interval is estimated."""

    min_width_over_depth: float = setting(
        16.0,
        help="condition (i), width large compared with depth: fit only width >= this x depth",
        minimum=0,
    )
    max_relative_bracket: float | None = setting(
        None, help="drop points whose bracket high/low exceeds this (default: keep all)", above=1
    )


@dataclass(frozen=True)
class PredictOptions(Settings):
    """How η* is predicted for an unseen architecture from a study's law."""

    level: float = setting(
        0.95, help="nominal coverage of the prediction intervals", above=0, below=1
    )
    min_r2: float = setting(
        0.5, help="refuse to predict from a law whose R² is below this", minimum=0, maximum=1
    )


@dataclass(frozen=True)
class RangeTestSettings(Settings):
    """The learning-rate range test (Smith 2017; torch-lr-finder's lr_find defaults where it has
    them): SGD steps at exponentially growing rates until the loss diverges."""

    start_lr: float = setting(1e-5, help="learning rate of the first step", above=0)
    end_lr: float = setting(
        100.0, help="learning rate the ramp would reach at its last step", above=0
    )
    steps: int = setting(200, help="steps of the exponential ramp", minimum=20)
    smooth: float = setting(
        0.05,
        help="weight of each new loss in the smoothed curve (torch-lr-finder's smooth_f)",
        above=0,
        maximum=1,
    )
    diverge: float = setting(
        5.0, help="stop once the smoothed loss exceeds this x its best", above=1
    )


# Datasets drawn or generated from settings (the others are downloaded): their config section.
GENERATORS: dict[str, type] = {"gaussian": GaussianSpec, "mnist1d": Mnist1dSpec}
# The config section of a downloaded dataset: which of its samples a study uses.
SUBSET_SECTION = "subset"


def data_spec(dataset: str) -> tuple[str, type]:
    """A dataset's settings section in the config and the class that defines it."""
    if dataset in GENERATORS:
        return dataset, GENERATORS[dataset]
    return SUBSET_SECTION, SubsetSpec


def gaussian_bayes_accuracy(mahalanobis: float) -> float:
    """Accuracy of the optimal (linear) classifier between two normals with a shared covariance
    whose means are ``mahalanobis`` apart: Phi(Delta / 2)."""
    return 0.5 * (1.0 + math.erf(mahalanobis / 2.0 / math.sqrt(2.0)))


# --- deriving the command line and the job flags -------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _scalar(hint: Any) -> type:
    """int, float or str from a field's annotation (``float | None`` -> float)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def flag_name(f: dataclasses.Field, prefix: str = "") -> str:
    return "--" + (f.metadata["flag"] or prefix + f.name.replace("_", "-"))


def _converter(kind: type, meta: dict):
    def convert(text: str) -> Any:
        if text in meta["words"]:
            return text
        try:
            value = kind(text)
        except ValueError as err:
            what = {int: "a whole number", float: "a number"}.get(kind, f"a {kind.__name__}")
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from err
        issue = problem(value, meta)
        if issue:
            raise argparse.ArgumentTypeError(issue)
        return value

    convert.__name__ = kind.__name__
    return convert


def bounded(kind: type, **bounds: Any):
    """An argparse type with bounds, for options that are not settings (``--threads``)."""
    return _converter(kind, dict(setting(help="", **bounds).metadata))


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    overrides: dict[str, dict] | None = None,
) -> None:
    """One option per setting of ``cls`` (recursing into nested settings)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            add_options(parser, hint, prefix, skip, overrides)
            continue
        if "help" not in f.metadata:
            continue  # not a setting (e.g. a mapping the caller parses itself)
        meta = dict(f.metadata)
        kwargs: dict[str, Any] = {"help": meta["help"], "dest": f"{prefix}{f.name}"}
        kwargs["metavar"] = f.name.upper()
        if meta["choices"]:
            kwargs.update(choices=meta["choices"], metavar=None)
        else:
            kwargs["type"] = _converter(_scalar(hint), meta)
        if f.default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        kwargs.update((overrides or {}).get(f.name, {}))
        parser.add_argument(flag_name(f, prefix), *meta["aliases"], **kwargs)


def from_args(cls: type, args: argparse.Namespace, prefix: str = "", **fixed: Any) -> Any:
    """Build ``cls`` from parsed arguments; ``fixed`` overrides fields by name at any depth."""
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if f.name in fixed:
            values[f.name] = fixed[f.name]
        elif dataclasses.is_dataclass(hint):
            values[f.name] = from_args(hint, args, prefix, **fixed)
        elif hasattr(args, f"{prefix}{f.name}"):
            values[f.name] = getattr(args, f"{prefix}{f.name}")
    return cls(**values)


def to_flags(obj: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The command-line flags that rebuild ``obj`` (None values are left to their default)."""
    flags: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or value is None:
            continue
        if dataclasses.is_dataclass(value):
            flags.update(to_flags(value, prefix, skip))
        else:
            flags[flag_name(f, prefix)] = value
    return flags


def pick(cls: type, values: dict[str, Any]) -> Any:
    """``cls`` built from the entries of ``values`` that are its fields."""
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


def from_json(cls: type, data: dict[str, Any]) -> Any:
    """A settings or record dataclass from its JSON form (nested dataclasses included)."""
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        hint, value = hints[f.name], data[f.name]
        nested = _scalar(hint)
        if typing.get_origin(hint) is list and dataclasses.is_dataclass(nested):
            value = [from_json(nested, item) for item in value]
        elif dataclasses.is_dataclass(nested) and isinstance(value, dict):
            value = from_json(nested, value)
        values[f.name] = value
    return cls(**values)
