"""η* of one architecture: build the seeded networks, run the searches, write the records.

Several seeds of one architecture are searched in lockstep: every round's probes of all seeds are
trained in one call (one stacked model with the batched trainer). Each seed's result is what a
separate job with that seed would produce.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence

import torch

from milr import MilrError
from milr.data import Dataset
from milr.io import Provenance, code_fingerprint
from milr.journal import Journal
from milr.model import build_model
from milr.numerics import numerics, pin_float32
from milr.prober import make_prober
from milr.records import SearchInputs, SearchResult
from milr.search import BracketSearch, SearchOutcome, search_lockstep

LIBRARIES = ("torch", "numpy", "python", "cuda", "cudnn", "cublas")


def result_of(
    inputs: SearchInputs, outcome: SearchOutcome, wall_time_s: float, provenance: Provenance
) -> SearchResult:
    """The record one job writes: the search's outcome, field for field, and where it ran."""
    found = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)}
    return SearchResult(
        inputs=inputs,
        relative_bracket=outcome.relative_bracket,
        wall_time_s=wall_time_s,
        provenance=provenance,
        **found,
    )


def journal_fingerprint(data: Dataset, device: torch.device) -> dict[str, str]:
    """What decides a probe besides its inputs: a journal written under another is not reused."""
    libs = numerics(str(device))
    versions = ", ".join(f"{name} {libs[name]}" for name in LIBRARIES)
    return {
        "code": code_fingerprint(["measure"]),
        "data": data.fingerprint,
        "device": str(libs["device_name"]),
        "precision": str(libs["float32_precision"]),
        "versions": versions,
    }


def measure_eta_star(
    inputs: SearchInputs, data: Dataset, journal_path: str | os.PathLike | None = None
) -> SearchResult:
    """η* for one architecture and seed."""
    return measure_eta_star_seeds([inputs], data, [journal_path])[0]


def measure_eta_star_seeds(
    inputs: Sequence[SearchInputs],
    data: Dataset,
    journal_paths: Sequence[str | os.PathLike | None],
) -> list[SearchResult]:
    """η* for several seeds of one architecture, searched in lockstep."""
    first = inputs[0]

    def unseeded(i: SearchInputs) -> SearchInputs:
        return dataclasses.replace(i, network=dataclasses.replace(i.network, seed=0))

    if any(unseeded(i) != unseeded(first) for i in inputs):
        raise MilrError("seeds searched together must share every other input")
    pin_float32()
    start = time.perf_counter()
    device = data.x_train.device
    net = first.network
    inits = {
        i.network.seed: build_model(
            data.in_dim, net.width, net.depth, data.num_classes, i.network.seed, str(device)
        )
        for i in inputs
    }
    prober = make_prober(inits, data, first.train, first.search.trainer)
    key = journal_fingerprint(data, device)
    searches = {
        i.network.seed: BracketSearch(i.search, Journal(path, i, key) if path else None)
        for i, path in zip(inputs, journal_paths, strict=True)
    }
    outcomes = search_lockstep(searches, prober)
    elapsed = (time.perf_counter() - start) / len(inputs)
    provenance = Provenance.collect(str(device))
    return [result_of(i, outcomes[i.network.seed], elapsed, provenance) for i in inputs]
