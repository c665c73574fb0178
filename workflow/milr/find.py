"""η* of any PyTorch network: the study's search around a caller's model factory.

The study measures η* of its own MLPs on a stacked trainer (:mod:`milr.batched`). This module
runs the same search — :class:`milr.search.BracketSearch`: a bracketing phase from a start rate,
then the paper's Algorithm 1 on [0, u] — around a plain training loop that any ``nn.Module``
trains in, which is what a practitioner choosing a learning rate needs in place of an LR range
test's guess.

What it promises, and why:

- The caller's objects are never changed: every training builds a fresh model from the factory
  (``factory(seed)``, under a seeded and restored global RNG, so layers that draw their initial
  weights from it are seeded too) and a fresh optimiser from the optimiser factory.
- The initialisation seed and the minibatch-order seed are separate; tensors are cut into
  minibatches in milr's own seeded order (:func:`milr.data.shuffle_generator`), so milr's MLP
  gives the same records here as in ``milr bisect``; a ``DataLoader`` is iterated with the global
  RNG seeded by the order seed, which seeds its shuffling sampler.
- A training stops at the first epoch whose validation reaches t, and at the first non-finite
  loss (divergence); a rate passes when ``must_pass`` of the seeds reach t, and is decided as soon
  as the rest of its seeds cannot change the verdict.
- Same inputs, same bits on the CPU; a budget in trainings (``max_probes``) keeps that, a budget
  in seconds does not (the result says which stopped it).
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from milr import MilrError, __version__
from milr.batched import divergence_check_interval, required_correct
from milr.data import shuffle_generator
from milr.memory import EVAL_CHUNK
from milr.numerics import float32_precision
from milr.search import BracketSearch
from milr.settings import SAFE_FRACTION, FindSettings

log = logging.getLogger("milr")
ModelFactory = Callable[[int], nn.Module]
OptimizerFactory = Callable[[nn.Module, float], torch.optim.Optimizer]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Hits in one batch (outputs, targets) -> count; accuracy is hits / samples.
HitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | int]
Batches = tuple[torch.Tensor, torch.Tensor] | Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Trial:
    """One training of one fresh model at one constant rate."""

    rate: float
    seed: int
    data_seed: int
    reached: bool
    diverged: bool
    epochs_run: int
    accuracy: float  # the last validation accuracy (NaN when it diverged before any)
    seconds: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class Verdict:
    """The seeds' trainings at one rate, and whether the rate passed (``must_pass`` reached t).
    ``lr``, ``success`` and ``diverged`` are what :class:`BracketSearch` reads of a probe."""

    lr: float
    success: bool
    trials: tuple[Trial, ...]

    @property
    def diverged(self) -> bool:
        return any(t.diverged for t in self.trials)


@dataclass(frozen=True)
class EtaStar:
    """η* of a network, the bracket it lies in, and everything that was trained to find it.

    ``low`` is the highest rate that passed (0: none did, down to ``min_rate``) and ``high`` the
    lowest that failed above it (inf: none did, up to ``max_rate``); η* = ``low``, as in the
    paper. ``complete`` is False where a budget stopped the search: the bracket is then what the
    trainings so far showed. ``monotone`` is False where a seed failed at a rate below one at which
    it reached t.
    """

    eta_star: float
    low: float
    high: float
    verdicts: tuple[Verdict, ...]
    undecided: tuple[Trial, ...]  # trainings at a rate the budget stopped before its verdict
    complete: bool
    stopped_by: str  # "" when the search finished; else "max_probes" or "max_seconds"
    no_success: bool
    above_max: bool  # every rate passed, up to max_rate (or a fixed u): η* is a lower bound
    monotone: bool
    settings: FindSettings
    provenance: dict[str, str]
    seconds: float = field(default=0.0, compare=False)

    @property
    def trials(self) -> list[Trial]:
        return [t for v in self.verdicts for t in v.trials] + list(self.undecided)

    @property
    def trainings(self) -> int:
        return len(self.trials)

    @property
    def epochs(self) -> int:
        return sum(t.epochs_run for t in self.trials)

    @property
    def relative_bracket(self) -> float:
        return self.high / self.low if self.low > 0 else math.inf

    def recommended(self, fraction: float = SAFE_FRACTION) -> float:
        """A rate to train at: ``fraction`` of η* (η* is the edge where training still reaches
        t, not the best rate)."""
        return check_fraction(fraction) * self.eta_star

    def describe(self, fraction: float = SAFE_FRACTION) -> str:
        """Two lines: η* with its bracket and cost, then what to do with it."""
        bracket = f"[{self.low:.6g}, {self.high:.6g}]"
        head = (f"eta* = {self.eta_star:.6g}  bracket {bracket}  {self.trainings} trainings, "
                f"{self.epochs} epochs, {self.seconds:.1f} s")  # fmt: skip
        if not self.complete:
            head += f"  (stopped by {self.stopped_by}: the bracket is partial)"
        if not self.monotone:
            head += "  (not monotone: a seed failed below a rate where it reached t)"
        t, epochs = self.settings.threshold, self.settings.epochs
        within = f"{epochs} epoch{'s' if epochs != 1 else ''}"
        if self.no_success and not self.complete:
            advice = "no rate reached t before the budget ran out: raise the budget"
        elif self.no_success:
            lowest = min(v.lr for v in self.verdicts)
            advice = (f"no rate down to {lowest:g} reached t = {t:g} in {within}: lower t, "
                      "train longer, or let the search go lower (min_rate, upper)")  # fmt: skip
        elif self.above_max:
            advice = (f"every rate up to {self.low:g} reached t = {t:g}: eta* is at least that; "
                      "raise max_rate (or upper)")  # fmt: skip
        else:
            rate = self.recommended(fraction)
            advice = (f"recommended: {rate:.6g} ({fraction:g} x eta*); the lowest failing rate "
                      f"above eta*, {self.high:.6g}, did not reach t = {t:g} "
                      f"in {within}")  # fmt: skip
        return f"{head}\n{advice}"


def check_fraction(fraction: float) -> float:
    """``fraction`` of η* to recommend, checked: in (0, 1]."""
    if not 0 < fraction <= 1:
        raise MilrError(f"fraction must be in (0, 1], got {fraction}")
    return fraction


def find_eta_star(
    model_factory: ModelFactory,
    train: Batches,
    val: Batches,
    settings: FindSettings | None = None,
    *,
    optimizer: OptimizerFactory | None = None,
    loss: LossFn | None = None,
    hits: HitsFn | None = None,
    device: str | torch.device | None = None,
    **flat: Any,
) -> EtaStar:
    """η* of the networks ``model_factory(seed)`` builds: the largest constant rate at which they
    reach validation accuracy ``threshold`` within ``epochs`` epochs.

    ``train`` and ``val``: a pair of tensors (inputs, integer labels) or an iterable of such
    batches (a ``DataLoader``). ``settings`` (or its fields as keywords: ``threshold=0.85,
    seeds=(0, 1, 2)``): :class:`milr.settings.FindSettings`. ``optimizer(model, rate)`` builds
    the optimiser (default: plain SGD); a parameter group's own factor belongs in it, as
    ``lr=0.1 * rate``. ``loss`` defaults to cross-entropy, ``hits`` to argmax accuracy.
    """
    run = _Runner(model_factory, train, val, settings, optimizer, loss, hits, device, flat)
    return run.search()


def train_at(
    model_factory: ModelFactory,
    train: Batches,
    val: Batches,
    rate: float,
    settings: FindSettings | None = None,
    *,
    seed: int = 0,
    data_seed: int | None = None,
    optimizer: OptimizerFactory | None = None,
    loss: LossFn | None = None,
    hits: HitsFn | None = None,
    device: str | torch.device | None = None,
    **flat: Any,
) -> Trial:
    """One training of a fresh model at a constant ``rate``, exactly as a probe of
    :func:`find_eta_star` trains: does it reach t within e epochs? (To check a rate from
    elsewhere, such as an LR finder's suggestion.)"""
    run = _Runner(model_factory, train, val, settings, optimizer, loss, hits, device, flat)
    return run.train_one(rate, seed, seed if data_seed is None else data_seed)


def plain_sgd(model: nn.Module, rate: float) -> torch.optim.Optimizer:
    """The paper's optimiser: SGD at one constant rate, no momentum, no weight decay."""
    return torch.optim.SGD(model.parameters(), lr=rate)


def argmax_hits(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(dim=1) == targets).sum()


def monotone(verdicts: Sequence[Verdict]) -> bool:
    """No seed fails at a rate below one at which it reached t (diverged counts as failed)."""
    by_seed: dict[tuple[int, int], list[Trial]] = {}
    for trial in (t for v in verdicts for t in v.trials):
        by_seed.setdefault((trial.seed, trial.data_seed), []).append(trial)
    for trials in by_seed.values():
        reached = [t.rate for t in trials if t.reached]
        failed = [t.rate for t in trials if not t.reached]
        if reached and failed and min(failed) < max(reached):
            return False
    return True


class _Runner:
    """One search: the model factory, the data and the settings, and the trainings so far."""

    def __init__(self, factory, train, val, settings: FindSettings | None,
                 optimizer: OptimizerFactory | None, loss: LossFn | None, hits: HitsFn | None,
                 device: str | torch.device | None, flat: dict[str, Any]) -> None:  # fmt: skip
        if settings is None:
            settings = FindSettings(**flat)
        elif flat:
            raise TypeError("give settings or their fields as keywords, not both")
        self.factory, self.settings, self.device = factory, settings, torch.device(device or "cpu")
        self.optimizer = optimizer or plain_sgd
        self.loss, self.hits = loss or F.cross_entropy, hits or argmax_hits
        self.train = _batches_of(train, "train", self.device)
        self.val = _batches_of(val, "val", self.device)
        self.started = time.perf_counter()
        self.trainings = 0
        self.stopped_by = ""
        self.undecided: list[Trial] = []
        self.checked = False  # the first batch's outputs against the labels

    def search(self) -> EtaStar:
        state = BracketSearch(self.settings.search_spec())
        while not state.done:
            verdicts = []
            for rate in state.next_points():
                # Algorithm 1's first rate, u/2, is the bracketing phase's last success.
                verdict = state.recall(rate)[0] or self.verdict(rate)
                if verdict is None:
                    break
                verdicts.append(verdict)
            if self.stopped_by:
                break  # a budget ran out before the round was decided
            state.update(verdicts)
        found = state.outcome()
        verdicts = tuple(state.probes)
        return EtaStar(
            eta_star=found.eta_star,
            low=found.bracket_low,
            high=found.bracket_high,
            verdicts=verdicts,
            undecided=tuple(self.undecided),
            complete=not self.stopped_by,
            stopped_by=self.stopped_by,
            no_success=found.no_success,
            above_max=found.hit_upper_bound,
            monotone=monotone(verdicts),
            settings=self.settings,
            provenance=self.provenance(),
            seconds=time.perf_counter() - self.started,
        )

    def verdict(self, rate: float) -> Verdict | None:
        """The seeds' trainings at ``rate``, stopped as soon as the verdict is known (None: a
        budget ran out first)."""
        needed, pairs = self.settings.passes_needed, self.settings.pairs
        trials: list[Trial] = []
        for seed, data_seed in pairs:
            passed = sum(t.reached for t in trials)
            if passed >= needed or passed + len(pairs) - len(trials) < needed:
                break
            if self.out_of_budget():
                self.undecided += trials
                return None
            trials.append(self.train_one(rate, seed, data_seed))
        return Verdict(rate, sum(t.reached for t in trials) >= needed, tuple(trials))

    def out_of_budget(self) -> bool:
        s = self.settings
        if s.max_probes is not None and self.trainings >= s.max_probes:
            self.stopped_by = "max_probes"
        elif s.max_seconds is not None and time.perf_counter() - self.started >= s.max_seconds:
            self.stopped_by = "max_seconds"
        return bool(self.stopped_by)

    def build(self, rate: float, seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A fresh model from the factory under ``seed`` (the caller's RNG state restored
        after), and its optimiser at ``rate``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.factory(seed)
        if not isinstance(model, nn.Module):
            raise MilrError(
                f"the model factory returned {type(model).__name__}, not an nn.Module: make it "
                "return the network it builds"
            )
        model = model.to(self.device)
        return model, self.optimizer(model, rate)

    def train_one(self, rate: float, seed: int, data_seed: int) -> Trial:
        """Train a fresh model at ``rate`` until it reaches t, diverges, or runs out of epochs."""
        start = time.perf_counter()
        self.trainings += 1
        model, opt = self.build(rate, seed)
        s = self.settings
        reached, diverged, epochs_run, accuracy, steps = False, False, 0, math.nan, 0
        # Non-finite losses gather on the device and are read every ``check_every`` steps (every
        # step on the CPU, where a read is free), at the first step and at each epoch's end.
        check_every = divergence_check_interval(self.device)
        nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(data_seed)  # a DataLoader's shuffling sampler draws from it
            order = shuffle_generator(data_seed)
            for epoch in range(1, s.epochs + 1):
                epochs_run = epoch
                model.train()
                for x, y in self.train.epoch(order, s.batch_size, self.device):
                    out = model(x)
                    if not self.checked:
                        _check_outputs(out, y)
                        self.checked = True
                    value = self.loss(out, y)
                    nonfinite |= ~torch.isfinite(value)
                    if (steps == 0 or steps % check_every == 0) and bool(nonfinite):
                        if steps == 0:
                            raise MilrError(
                                f"the loss is {value.item()} at initialisation, before any step "
                                f"(seed {seed}): check the model's outputs and the loss"
                            )
                        break
                    opt.zero_grad(set_to_none=True)
                    value.backward()
                    opt.step()
                    steps += 1
                diverged = bool(nonfinite)
                if diverged:
                    break
                correct, total = self.evaluate(model)
                accuracy = correct / total
                if correct >= required_correct(s.threshold, total):
                    reached = True
                    break
        trial = Trial(rate, seed, data_seed, reached, diverged, epochs_run, accuracy,
                      time.perf_counter() - start)  # fmt: skip
        outcome = "diverged" if diverged else "reached t" if reached else "did not reach t"
        log.info("rate %.6g, seed %d: %s in %d epochs (accuracy %.4f), %.1f s", rate, seed,
                 outcome, epochs_run, accuracy, trial.seconds)  # fmt: skip
        return trial

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> tuple[int, int]:
        """Hits and samples over the validation data, the model in eval mode."""
        model.eval()
        correct, total = 0, 0
        for x, y in self.val.epoch(None, EVAL_CHUNK, self.device):
            correct = correct + self.hits(model(x), y)  # on the device: one read, below
            total += len(y)
        return int(correct), total

    def provenance(self) -> dict[str, str]:
        return {
            "milr": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(self.device),
            "threads": str(torch.get_num_threads()),
            "float32": float32_precision(),
            "factory": _name(self.factory),
            "optimizer": _name(self.optimizer),
            "loss": _name(self.loss),
            "hits": _name(self.hits),
            "train": self.train.describe(),
            "val": self.val.describe(),
        }


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _check_outputs(out: torch.Tensor, y: torch.Tensor) -> None:
    """One line for a model whose outputs cannot be scored against the labels."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or len(out) != len(y):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise MilrError(
            f"the model's output is {shape} for a batch of {len(y)}: it must be "
            f"[batch, classes] logits"
        )
    classes = int(y.max()) + 1
    if out.shape[1] < classes:
        raise MilrError(
            f"the model gives {out.shape[1]} outputs per sample but the labels go up to "
            f"{classes - 1}: it needs at least {classes} outputs"
        )


class _TensorBatches:
    """Device-resident (x, y) cut into minibatches in milr's seeded order (or in order); moved
    to the device once, not once per epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> None:
        self.x, self.y = x.to(device), y.to(device)

    def epoch(self, order: torch.Generator | None, size: int, device: torch.device):
        x, y = self.x, self.y
        n = len(x)
        index = None if order is None else torch.randperm(n, generator=order).to(device)
        for begin in range(0, n, size):
            if index is None:
                yield x[begin : begin + size], y[begin : begin + size]
            else:
                idx = index[begin : begin + size]
                yield x[idx], y[idx]

    def describe(self) -> str:
        return f"tensors {list(self.x.shape)}"


class _LoaderBatches:
    """A caller's iterable of batches (a DataLoader): iterated as it is, once per epoch."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader

    def epoch(self, order: torch.Generator | None, size: int, device: torch.device):
        for batch in self.loader:
            x, y = batch[0], batch[1]
            yield x.to(device), y.to(device)

    def describe(self) -> str:
        size = getattr(self.loader, "batch_size", None)
        return f"{type(self.loader).__name__} (batch size {size})"


def _batches_of(data: Batches, what: str, device: torch.device) -> _TensorBatches | _LoaderBatches:
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        x, y = data
        if len(x) != len(y) or len(x) == 0:
            raise MilrError(f"{what}: {len(x)} inputs and {len(y)} labels; give as many of each")
        if y.dtype not in (torch.int64, torch.int32):
            raise MilrError(f"{what}: labels are {y.dtype}; give integer class labels")
        return _TensorBatches(x, y.long(), device)
    if isinstance(data, Iterable):
        return _LoaderBatches(data)
    raise MilrError(
        f"{what}: give a pair of tensors (inputs, labels) or a DataLoader, "
        f"not {type(data).__name__}"
    )


def factory_from(spec: str) -> ModelFactory:
    """``FILE.py:NAME`` -> the callable ``NAME`` defined in FILE (the command line's --model)."""
    import importlib.util
    from pathlib import Path

    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text or not name.isidentifier():
        raise MilrError(f"--model must be FILE.py:FACTORY (a function of the seed), got {spec!r}")
    if not path.is_file():
        raise MilrError(f"--model: no file {path}")
    loader = importlib.util.spec_from_file_location(f"milr_user_model_{path.stem}", path)
    if loader is None or loader.loader is None:
        raise MilrError(f"--model: {path} is not a Python file")
    module = importlib.util.module_from_spec(loader)
    try:
        loader.loader.exec_module(module)
    except Exception as err:  # the user's file: its own error, in one line
        first = str(err).splitlines()[0] if str(err) else ""
        raise MilrError(f"--model: importing {path} failed: {type(err).__name__}: {first}") from err
    factory = getattr(module, name, None)
    if factory is None:
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise MilrError(f"--model: {path} defines no {name} (it defines: {', '.join(found)})")
    if not callable(factory):
        raise MilrError(f"--model: {spec} is a {type(factory).__name__}, not a function")
    return factory
