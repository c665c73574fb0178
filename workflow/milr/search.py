"""Algorithm 1 of the paper (bisection for η*), its k-ary and log-space variants, and the journal
that lets a killed search resume.

Algorithm 1, as the paper states it: bracket [l, u] with l = 0; for s iterations train at
m = (l + u) / 2; if validation accuracy reaches t within e epochs then l = m, else u = m; report
η* = l. Here it is the k = 1, linear case of one rule: each round probes k learning rates inside
the bracket, and the new bracket is [largest success, smallest failure above it]. With k = 1 that
is exactly the paper's update.

Every probe starts from the same seeded initialisation and sees minibatches in the same seeded
order, so probes differ only in their learning rate.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from milr import MilrError
from milr.data import Dataset
from milr.io import Provenance, from_dict, to_jsonable
from milr.train import TrainRecord, TrainSettings

log = logging.getLogger("milr")

METHODS = ("bisect", "kary")
SCALES = ("linear", "geometric")

ProbeMany = Callable[[Sequence[float]], list[TrainRecord]]


@dataclass(frozen=True)
class SearchSpec:
    """How to search: the paper's default is bisect, linear, l = 0, s = 5."""

    upper: float
    iterations: int = 5
    lower: float = 0.0
    method: str = "bisect"
    k: int = 8
    scale: str = "linear"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise MilrError(f"search method {self.method!r} unknown; use one of {METHODS}")
        if self.scale not in SCALES:
            raise MilrError(f"search scale {self.scale!r} unknown; use one of {SCALES}")
        if not self.upper > self.lower >= 0:
            raise MilrError(f"need upper > lower >= 0, got [{self.lower}, {self.upper}]")
        if self.scale == "geometric" and self.lower <= 0:
            raise MilrError("geometric search needs lower > 0 (it bisects log(lr)); set lower")
        if self.iterations < 1 or self.k < 1:
            raise MilrError("iterations and k must be >= 1")

    @property
    def points_per_round(self) -> int:
        return 1 if self.method == "bisect" else self.k


def probe_points(low: float, high: float, count: int, scale: str) -> list[float]:
    """``count`` learning rates evenly spaced strictly inside (low, high), linearly or in log."""
    fractions = [i / (count + 1) for i in range(1, count + 1)]
    if scale == "geometric":
        return [low * (high / low) ** f for f in fractions]
    return [low + (high - low) * f for f in fractions]


def update_bracket(low: float, high: float, records: Sequence[TrainRecord]) -> tuple[float, float]:
    """[largest success, smallest failure above it]; with one probe, Algorithm 1's update."""
    successes = [r.lr for r in records if r.success]
    new_low = max([low, *successes])
    failures = [r.lr for r in records if not r.success and r.lr > new_low]
    new_high = min([high, *failures])
    return new_low, new_high


@dataclass
class SearchOutcome:
    """η*, the final bracket and every probe in the order they ran."""

    eta_star: float
    bracket_low: float
    bracket_high: float
    probes: list[TrainRecord]
    no_success: bool
    hit_upper_bound: bool
    resumed_probes: int = 0

    @property
    def relative_bracket(self) -> float:
        """high / low: how far η* may be off as a factor (inf when no probe succeeded)."""
        return self.bracket_high / self.bracket_low if self.bracket_low > 0 else math.inf


class Journal:
    """Finished probes, one JSON line each, appended as they finish.

    The first line records the search inputs; a journal written for other inputs is set aside
    (renamed ``*.stale``) rather than trusted. Lines are flushed and fsynced one by one, so a
    killed job loses at most the probe it was running; a torn last line is ignored.
    """

    def __init__(self, path: str | os.PathLike, key: dict) -> None:
        self.path = Path(path)
        self.key = json.loads(json.dumps(to_jsonable(key)))
        self.records: list[TrainRecord] = self._load()

    def _load(self) -> list[TrainRecord]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if header != {"inputs": self.key}:
            stale = self.path.with_suffix(self.path.suffix + ".stale")
            os.replace(self.path, stale)
            log.warning("journal %s was for other inputs; moved to %s", self.path, stale)
            return []
        records = []
        for line in lines[1:]:
            try:
                records.append(from_dict(TrainRecord, json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                break  # a torn line from a killed write: everything before it is good
        return records

    def find(self, lr: float) -> TrainRecord | None:
        for record in self.records:
            if math.isclose(record.lr, lr, rel_tol=1e-12, abs_tol=0.0):
                return record
        return None

    def append(self, record: TrainRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = not self.path.exists()
        with open(self.path, "a") as handle:
            if new_file:
                handle.write(json.dumps({"inputs": self.key}) + "\n")
            handle.write(json.dumps(to_jsonable(record)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)


class BracketSearch:
    """The state of one search: bracket, rounds done, probes so far."""

    def __init__(self, spec: SearchSpec, journal: Journal | None = None) -> None:
        self.spec = spec
        self.journal = journal
        self.low, self.high = spec.lower, spec.upper
        self.rounds = 0
        self.probes: list[TrainRecord] = []
        self.resumed = 0

    @property
    def done(self) -> bool:
        return self.rounds >= self.spec.iterations

    def next_points(self) -> list[float]:
        return probe_points(self.low, self.high, self.spec.points_per_round, self.spec.scale)

    def known(self, lr: float) -> TrainRecord | None:
        return self.journal.find(lr) if self.journal else None

    def update(self, records: list[TrainRecord]) -> None:
        self.probes.extend(records)
        self.low, self.high = update_bracket(self.low, self.high, records)
        self.rounds += 1
        log.info(
            "round %d/%d: %s -> bracket [%.6g, %.6g]",
            self.rounds,
            self.spec.iterations,
            ", ".join(f"{r.lr:.6g}:{'ok' if r.success else 'fail'}" for r in records),
            self.low,
            self.high,
        )

    def outcome(self) -> SearchOutcome:
        any_success = any(p.success for p in self.probes)
        return SearchOutcome(
            eta_star=self.low if any_success else 0.0,
            bracket_low=self.low,
            bracket_high=self.high,
            probes=self.probes,
            no_success=not any_success,
            hit_upper_bound=any_success and self.high == self.spec.upper,
            resumed_probes=self.resumed,
        )


def search_lockstep(
    searches: dict[int, BracketSearch], probe: Callable[[Sequence[tuple[int, float]]], list]
) -> dict[int, SearchOutcome]:
    """Advance several searches (one per seed) round by round; each round's new probes of every
    search go to ``probe`` in one call, so a batched trainer trains them together."""
    while not all(s.done for s in searches.values()):
        planned: dict[int, list[tuple[float, TrainRecord | None]]] = {}
        todo: list[tuple[int, float]] = []
        for key, state in searches.items():
            if state.done:
                continue
            planned[key] = [(lr, state.known(lr)) for lr in state.next_points()]
            todo += [(key, lr) for lr, rec in planned[key] if rec is None]
        fresh = iter(probe(todo) if todo else [])
        for key, points in planned.items():
            state = searches[key]
            records = []
            for _, record in points:
                if record is None:
                    record = next(fresh)
                    if state.journal:
                        state.journal.append(record)
                else:
                    state.resumed += 1
                records.append(record)
            state.update(records)
    return {key: state.outcome() for key, state in searches.items()}


def search(
    probe_many: ProbeMany, spec: SearchSpec, journal: Journal | None = None
) -> SearchOutcome:
    """Run one bracketing search; ``probe_many`` trains at each given rate and returns records."""
    outcomes = search_lockstep(
        {0: BracketSearch(spec, journal)}, lambda pairs: probe_many([lr for _, lr in pairs])
    )
    return outcomes[0]


@dataclass(frozen=True)
class SearchInputs:
    """Everything that determines a search result; also the journal's key."""

    dataset: str
    depth: int
    width: int
    seed: int
    threshold: float
    epochs: int
    batch_size: int
    upper: float
    lower: float
    iterations: int
    input_lr_scale: float
    momentum: float = 0.0
    method: str = "bisect"
    k: int = 8
    scale: str = "linear"
    trainer: str = "plain"
    variant: str = ""

    @property
    def spec(self) -> SearchSpec:
        return SearchSpec(
            upper=self.upper,
            iterations=self.iterations,
            lower=self.lower,
            method=self.method,
            k=self.k,
            scale=self.scale,
        )

    @property
    def train_settings(self) -> TrainSettings:
        return TrainSettings(
            threshold=self.threshold,
            epochs=self.epochs,
            batch_size=self.batch_size,
            input_lr_scale=self.input_lr_scale,
            momentum=self.momentum,
        )


@dataclass
class SearchResult:
    """The JSON document one bisection job writes."""

    inputs: SearchInputs
    eta_star: float
    bracket_low: float
    bracket_high: float
    relative_bracket: float
    no_success: bool
    hit_upper_bound: bool
    probes: list[TrainRecord] = field(default_factory=list)
    resumed_probes: int = 0
    wall_time_s: float = 0.0
    provenance: Provenance | None = None

    @classmethod
    def build(
        cls,
        inputs: SearchInputs,
        outcome: SearchOutcome,
        wall_time_s: float,
        provenance: Provenance,
    ) -> SearchResult:
        return cls(
            inputs=inputs,
            eta_star=outcome.eta_star,
            bracket_low=outcome.bracket_low,
            bracket_high=outcome.bracket_high,
            relative_bracket=outcome.relative_bracket,
            no_success=outcome.no_success,
            hit_upper_bound=outcome.hit_upper_bound,
            probes=outcome.probes,
            resumed_probes=outcome.resumed_probes,
            wall_time_s=wall_time_s,
            provenance=provenance,
        )


def measure_eta_star(
    inputs: SearchInputs, data: Dataset, journal_path: str | os.PathLike | None = None
) -> SearchResult:
    """η* for one architecture and seed: build the seeded network once, search, record."""
    return measure_eta_star_seeds([inputs], data, [journal_path])[0]


def measure_eta_star_seeds(
    inputs: Sequence[SearchInputs],
    data: Dataset,
    journal_paths: Sequence[str | os.PathLike | None],
) -> list[SearchResult]:
    """η* for several seeds of one architecture, searched in lockstep: every round's probes of
    all seeds are trained in one call (one stacked model with the batched trainer). Each seed's
    result is what a separate job with that seed would produce."""
    from milr.model import build_model
    from milr.train import make_prober

    first = inputs[0]
    shared = {f: v for f, v in first.__dict__.items() if f != "seed"}
    for item in inputs[1:]:
        if {f: v for f, v in item.__dict__.items() if f != "seed"} != shared:
            raise ValueError("seeds searched together must share every other input")
    start = time.perf_counter()
    device = data.x_train.device
    settings = first.train_settings
    inits = {
        item.seed: build_model(
            data.in_dim, first.width, first.depth, data.num_classes, item.seed, str(device)
        )
        for item in inputs
    }
    prober = make_prober(inits, data, settings, first.trainer)
    searches = {
        item.seed: BracketSearch(item.spec, Journal(path, key=to_jsonable(item)) if path else None)
        for item, path in zip(inputs, journal_paths, strict=True)
    }
    outcomes = search_lockstep(searches, prober)
    elapsed = (time.perf_counter() - start) / len(inputs)
    provenance = Provenance.collect(str(device))
    return [SearchResult.build(item, outcomes[item.seed], elapsed, provenance) for item in inputs]
