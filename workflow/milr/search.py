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
import time
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
    """η*, the final bracket, the u it searched below and every probe in the order they ran."""

    eta_star: float
    bracket_low: float
    bracket_high: float
    probes: list[TrainRecord]
    no_success: bool
    hit_upper_bound: bool
    upper: float
    upper_found: str
    bracketing_probes: int = 0
    resumed_probes: int = 0

    @property
    def relative_bracket(self) -> float:
        """high / low: how far η* may be off as a factor (inf when no probe succeeded)."""
        return self.bracket_high / self.bracket_low if self.bracket_low > 0 else math.inf


class BracketSearch:
    """The state of one search: the bracketing phase (``upper: auto``), then Algorithm 1.

    Bracketing finds u per architecture: from ``start`` it multiplies the rate by 4 while probes
    succeed, or divides it by 4 while they fail, until a success and a failure straddle η*; a
    failure 4x above a success is split once more at 2x. It ends with u failing and u/2
    succeeding (both exact binary multiples of ``start``), so Algorithm 1's first probe, u/2, is
    already known, and after s rounds η* lies in [u/2, u] to u/2^s: a relative bracket <= 1.0625
    for s = 5. No success down to ``min_rate`` gives η* = 0 (below min_rate); success up to
    ``max_rate`` gives η* >= max_rate, flagged as hit_upper_bound.
    """

    def __init__(self, spec: SearchSpec, journal: Journal | None = None) -> None:
        self.spec = spec
        self.journal = journal
        self.bracketing = spec.upper == "auto"
        self.upper = math.nan if self.bracketing else float(spec.upper)
        self.rate = spec.start
        self.ok: float | None = None  # largest success of the bracketing phase
        self.fail: float | None = None  # smallest failure of the bracketing phase
        self.low, self.high = spec.lower, self.upper
        self.rounds = 0
        self.stopped = False  # the bracketing phase found no bracket to bisect
        self.probes: list[TrainRecord] = []
        self.bracketing_probes = 0
        self.resumed = 0

    @property
    def done(self) -> bool:
        return self.stopped or (not self.bracketing and self.rounds >= self.spec.iterations)

    def next_points(self) -> list[float]:
        if self.bracketing:
            return [self.rate]
        return probe_points(self.low, self.high, self.spec.points_per_round, self.spec.scale)

    def recall(self, lr: float) -> tuple[TrainRecord | None, bool]:
        """A record at ``lr`` already at hand: from this search, or (resumed) from the journal."""
        for probe in self.probes:
            if probe.lr == lr:
                return probe, False
        found = self.journal.find(lr) if self.journal else None
        return found, found is not None

    def update(self, records: list[TrainRecord]) -> None:
        self.probes.extend(r for r in records if all(r is not p for p in self.probes))
        if self.bracketing:
            self.bracketing_probes += 1
            self._bracket(records[0])
            return
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

    def _bracket(self, record: TrainRecord) -> None:
        """One step of the bracketing phase."""
        if record.success:
            self.ok = max(record.lr, self.ok or 0.0)
        else:
            self.fail = min(record.lr, self.fail or math.inf)
        if self.ok is None:  # only failures so far: go down
            self.rate /= 4
            if self.rate < self.spec.min_rate:
                self.low, self.high, self.stopped = 0.0, self.fail, True
        elif self.fail is None:  # only successes so far: go up
            self.rate *= 4
            if self.rate > self.spec.max_rate:
                self.low, self.high, self.stopped = self.ok, math.inf, True
        elif self.fail > 2 * self.ok:  # a factor 4 apart: split once more
            self.rate = 2 * self.ok
        else:  # u = fail fails and u/2 = ok succeeded: Algorithm 1 on [0, u]
            self.bracketing = False
            self.upper = self.fail
            self.low, self.high = self.spec.lower, self.upper
            log.info("bracketing: u = %.6g after %d probes", self.upper, self.bracketing_probes)

    def outcome(self) -> SearchOutcome:
        any_success = any(p.success for p in self.probes)
        auto = self.spec.upper == "auto"
        return SearchOutcome(
            eta_star=self.low if any_success else 0.0,
            bracket_low=self.low,
            bracket_high=self.high,
            probes=self.probes,
            no_success=not any_success,
            hit_upper_bound=any_success and self.high == (math.inf if auto else self.upper),
            upper=self.upper,
            upper_found="auto" if auto else "fixed",
            bracketing_probes=self.bracketing_probes,
            resumed_probes=self.resumed,
        )


def search_lockstep(
    searches: dict[int, BracketSearch], probe: Callable[[Sequence[tuple[int, float]]], list]
) -> dict[int, SearchOutcome]:
    """Advance several searches (one per seed) round by round; each round's new probes of every
    search go to ``probe`` in one call, so a batched trainer trains them together."""
    start = time.perf_counter()
    while not all(s.done for s in searches.values()):
        planned: dict[int, list[tuple[float, TrainRecord | None, bool]]] = {}
        todo: list[tuple[int, float]] = []
        for key, state in searches.items():
            if state.done:
                continue
            planned[key] = [(lr, *state.recall(lr)) for lr in state.next_points()]
            todo += [(key, lr) for lr, record, _ in planned[key] if record is None]
        fresh = iter(probe(todo) if todo else [])
        for key, points in planned.items():
            state = searches[key]
            records = []
            for _, record, resumed in points:
                if record is None:
                    record = next(fresh)
                    if state.journal:
                        state.journal.append(record)
                state.resumed += resumed
                records.append(record)
                log.info(
                    "seed %s: probe %d (%s) lr=%.6g %s%s, %.1f s elapsed",
                    key,
                    len(state.probes) + len(records),
                    "bracketing" if state.bracketing else f"round {state.rounds + 1}",
                    record.lr,
                    "ok" if record.success else "diverged" if record.diverged else "fail",
                    " (resumed)" if resumed else "",
                    time.perf_counter() - start,
                )
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
