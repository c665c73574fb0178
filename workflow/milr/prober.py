"""Which probes train together: one network after another, or a round's probes as one stack.

Both go through the one trainer (:mod:`milr.batched`) and give the same numbers on the CPU; the
choice is the config's ``search.trainer``, never a timing, so it is part of the job's inputs
(in the result and in the journal's key). On CUDA, cuBLAS may pick another kernel for another
stack size, so there the two may round differently; the result says which one ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from milr.batched import Member, train_batched
from milr.data import Dataset
from milr.model import ReLUMLP
from milr.records import TrainRecord
from milr.settings import TrainSettings

# A probe request: (seed, learning rate); the seed picks the initial network and data order.
Probe = tuple[int, float]
Prober = Callable[[Sequence[Probe]], list[TrainRecord]]


def make_prober(
    inits: dict[int, ReLUMLP], data: Dataset, settings: TrainSettings, trainer: str = "plain"
) -> Prober:
    """A function that trains fresh copies of the seeded networks at the requested rates.

    ``plain`` trains one stack of one after another; ``batched`` stacks all requested probes.
    """
    if trainer not in ("plain", "batched"):
        raise ValueError(f"unknown trainer {trainer!r}; choose plain or batched")

    def probe(probes: Sequence[Probe]) -> list[TrainRecord]:
        members = [Member(inits[seed], lr, seed) for seed, lr in probes]
        if trainer == "batched":
            return train_batched(members, data, settings)
        return [record for m in members for record in train_batched([m], data, settings)]

    return probe
