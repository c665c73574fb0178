"""The typed records a job writes: a probe, a search result, a λ1 measurement, a study.

Each is a dataclass written as JSON (:func:`milr.io.write_json`) and read back with
:func:`milr.settings.from_json`; their inputs are the settings dataclasses themselves, so a result
says exactly what produced it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from milr.io import Provenance
from milr.settings import (
    Network,
    RangeTestSettings,
    SearchSpec,
    SharpnessSettings,
    TrainSettings,
    pick,
    same_as,
    setting,
)


@dataclass
class TrainRecord:
    """The outcome of one probe: one training run at a constant learning rate."""

    lr: float
    success: bool
    diverged: bool
    epochs_run: int
    val_accuracy: list[float] = field(default_factory=list)
    final_train_loss: float = math.nan
    wall_time_s: float = 0.0


@dataclass(frozen=True)
class SearchInputs:
    """Everything that determines a search result; also the resume journal's key."""

    network: Network
    train: TrainSettings
    search: SearchSpec
    variant: str = setting("", help="label of the input-layer learning-rate variant")

    @classmethod
    def of(cls, variant: str = "", **flat: Any) -> SearchInputs:
        """From flat keyword settings (``depth=2, threshold=0.8, upper=4.0``), each given to the
        settings class that defines it: the short form for scripts and tests."""
        parts = {"network": Network, "train": TrainSettings, "search": SearchSpec}
        names = {f.name for kind in parts.values() for f in dataclasses.fields(kind)}
        if set(flat) - names:
            raise TypeError(f"unknown settings {sorted(set(flat) - names)}")
        return cls(**{key: pick(kind, flat) for key, kind in parts.items()}, variant=variant)


@dataclass
class SearchResult:
    """The JSON document one bisection job writes (one per seed)."""

    inputs: SearchInputs
    eta_star: float
    bracket_low: float
    bracket_high: float
    relative_bracket: float
    no_success: bool
    hit_upper_bound: bool
    upper: float  # the u Algorithm 1 searched below (NaN: the bracketing phase found none)
    upper_found: str  # "fixed" (config) or "auto" (bracketing phase)
    bracketing_probes: int = 0
    probes: list[TrainRecord] = field(default_factory=list)
    resumed_probes: int = 0
    wall_time_s: float = 0.0
    provenance: Provenance | None = None


@dataclass(frozen=True)
class SharpnessInputs:
    """Everything that determines a λ1 measurement."""

    network: Network
    sharpness: SharpnessSettings
    # variant name -> input-layer factor: λ1 of P^1/2 H P^1/2 is measured for each
    input_lr_variants: dict[str, float] = field(default_factory=dict)


@dataclass
class SharpnessResult:
    """The JSON document one sharpness job writes."""

    inputs: SharpnessInputs
    lambda1: float
    samples_used: int
    wall_time_s: float
    preconditioned: dict[str, float] = field(default_factory=dict)  # per input-LR variant
    provenance: Provenance | None = None


@dataclass(frozen=True)
class RangeTestInputs:
    """Everything that determines a learning-rate range test: the network, the minibatch size
    and input-layer factor of the η* search it is compared with, and the ramp."""

    network: Network
    range_test: RangeTestSettings
    variant: str = setting("", help="label of the input-layer learning-rate variant")
    input_lr_scale: float = same_as(TrainSettings, "input_lr_scale")
    batch_size: int = same_as(TrainSettings, "batch_size")
    momentum: float = same_as(TrainSettings, "momentum")


@dataclass
class RangeTestResult:
    """The JSON document one range-test job writes: the curve and its usual suggestions."""

    inputs: RangeTestInputs
    lrs: list[float]
    losses: list[float]  # smoothed training loss at each step, before that step's update
    diverged: bool  # the run stopped on the divergence rule before the last step
    steepest: float  # lr of the steepest descent of the smoothed curve (torch-lr-finder)
    minimum_over_10: float  # lr of the smoothed curve's minimum / 10 (fastai's lr_min)
    wall_time_s: float
    provenance: Provenance | None = None


@dataclass(frozen=True)
class Study:
    """What the figures need to know of the study's config; the aggregate step writes it."""

    thresholds: dict[str, float]  # the main t per dataset
    input_lr_variants: dict[str, float]
    primary_variant: str
    sweep_architectures: list[tuple[int, int]]
    # rows aggregate wrote per table (eta, sharpness, probes): a table cut at a row boundary
    # would otherwise read as a smaller study
    rows: dict[str, int] = field(default_factory=dict)
