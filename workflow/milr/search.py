"""Algorithm 1 of the paper (bisection for η*) and its k-ary and log-space variants.

Algorithm 1, as the paper states it: bracket [l, u] with l = 0; for s iterations train at
m = (l + u) / 2; if validation accuracy reaches t within e epochs then l = m, else u = m; report
η* = l. Here it is the k = 1, linear case of one rule: each round probes k learning rates inside
the bracket, and the new bracket is [largest success, smallest failure above it]. With k = 1 that
is exactly the paper's update.

Every probe starts from the same seeded initialisation and sees minibatches in the same seeded
order, so probes differ only in their learning rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from milr.journal import Journal
from milr.records import TrainRecord
from milr.settings import SearchSpec

log = logging.getLogger("milr")

ProbeMany = Callable[[Sequence[float]], list[TrainRecord]]


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
