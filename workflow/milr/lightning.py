"""A Lightning callback that measures η* at the start of ``fit`` and trains below it.

``EtaStarFinder`` is to :func:`milr.find_eta_star` what Lightning's ``LearningRateFinder`` is to
its range test: at ``on_fit_start`` it searches η* of the LightningModule, logs the bracket, and
sets the module's rate (its ``lr`` or ``learning_rate``, as Lightning's finder finds it) to
``fraction`` × η*. Unlike the range test it trains each probe on fresh copies and leaves the
module's weights as they were, and it keeps the ratios between parameter groups and the shape of
a scheduler: everything configured at the old rate is rescaled by new / old.

What a probe trains: the module's ``forward`` output under ``loss`` (cross-entropy by default),
with the first optimiser ``configure_optimizers`` returns, every group's rate scaled to the
probe's rate and no scheduler (η* is a constant rate), on the fit's own training and validation
dataloaders. A module that called ``save_hyperparameters()`` is rebuilt from them for every
probe, so each seed is a fresh initialisation; otherwise every probe starts from a copy of the
module's own initial weights, and the seeds differ only in the data order.

Needs the optional extra: ``pip install -e '.[lightning]'`` (``make install`` includes it).
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import torch
from torch import nn

from milr import MilrError
from milr.find import EtaStar, LossFn, check_fraction, find_eta_star
from milr.settings import SAFE_FRACTION, FindSettings

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.parsing import (
        lightning_getattr,
        lightning_hasattr,
        lightning_setattr,
    )
except ImportError as err:  # the optional extra is missing: say how to get it
    raise MilrError(
        "milr.lightning needs Lightning: pip install -e '.[lightning]' in milr's checkout "
        "(or pip install lightning)"
    ) from err

log = logging.getLogger("milr")
RATE_NAMES = ("lr", "learning_rate")  # what Lightning's own finder looks for
GROUP_RATES = ("lr", "initial_lr", "max_lr")  # a group's rates that schedulers read


class EtaStarFinder(pl.Callback):
    """Measure η* at the start of ``fit`` and set the module's rate to ``fraction`` × η*.

    ``settings`` (or its fields as keywords: ``threshold=0.85, epochs=2``):
    :class:`milr.settings.FindSettings`. After ``fit`` starts, ``result`` holds the
    :class:`milr.find.EtaStar` record with every probe.
    """

    def __init__(
        self,
        settings: FindSettings | None = None,
        *,
        fraction: float = SAFE_FRACTION,
        attr_name: str = "",
        loss: LossFn | None = None,
        **flat: Any,
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else FindSettings(**flat)
        self.fraction, self.attr_name, self.loss = check_fraction(fraction), attr_name, loss
        self.result: EtaStar | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        attr = rate_attribute(pl_module, self.attr_name)
        base = float(lightning_getattr(pl_module, attr))
        train = trainer.fit_loop._data_source.dataloader()
        val = trainer.validate_loop._data_source.dataloader()
        if val is None or (isinstance(val, list | tuple) and not val):
            raise MilrError("EtaStarFinder needs validation data: give fit() a val_dataloaders")
        self.result = find_eta_star(
            module_factory(pl_module),
            train,
            val,
            self.settings,
            optimizer=lambda model, rate: probe_optimizer(model, rate, attr, trainer),
            loss=self.loss,
            device=trainer.strategy.root_device,
        )
        found = self.result
        log.info("EtaStarFinder: %s", found.describe(self.fraction).replace("\n", "; "))
        for logger in trainer.loggers:
            logger.log_metrics({"eta_star": found.eta_star, "eta_star_low": found.low,
                                "eta_star_high": found.high}, step=trainer.global_step)  # fmt: skip
        if found.no_success or not found.complete:
            log.warning("EtaStarFinder: no η* to train below; the rate stays %g", base)
            return
        rate = found.recommended(self.fraction)
        lightning_setattr(pl_module, attr, rate)
        rescale(trainer, rate / base)
        log.info("EtaStarFinder: %s set to %.6g (%g x eta*)", attr, rate, self.fraction)


def rate_attribute(module: pl.LightningModule, name: str) -> str:
    """The module's rate attribute: ``name``, else ``lr`` or ``learning_rate``."""
    for candidate in (name,) if name else RATE_NAMES:
        if lightning_hasattr(module, candidate):
            return candidate
    raise MilrError(
        f"the LightningModule has no {name or ' or '.join(RATE_NAMES)} attribute (or hparams "
        "entry) holding its learning rate: add one, or name it with attr_name="
    )


def module_factory(module: pl.LightningModule):
    """Fresh copies of ``module`` per seed: rebuilt from its saved hyperparameters where it has
    them (a new initialisation per seed), else deep copies of its present weights."""
    hparams = dict(getattr(module, "hparams", {}) or {})

    def build(seed: int) -> nn.Module:
        if hparams:
            return type(module)(**hparams)
        trainer, module._trainer = module._trainer, None  # copy the module, not its trainer
        try:
            return copy.deepcopy(module)
        finally:
            module._trainer = trainer

    build.__qualname__ = f"{type(module).__qualname__} ({'rebuilt' if hparams else 'copied'})"
    return build


def first_optimizer(config: Any) -> torch.optim.Optimizer:
    """The optimiser of whatever ``configure_optimizers`` returned (its schedulers dropped)."""
    if isinstance(config, torch.optim.Optimizer):
        return config
    if isinstance(config, dict):
        return first_optimizer(config["optimizer"])
    if isinstance(config, list | tuple) and config:
        optimizers = config[0] if isinstance(config[0], list | tuple) else config
        found = [first_optimizer(o) for o in optimizers]
        if len(found) > 1:
            raise MilrError(
                f"configure_optimizers returns {len(found)} optimisers; η* is the rate of one"
            )
        return found[0]
    raise MilrError(f"configure_optimizers returned {type(config).__name__}: no optimiser in it")


def probe_optimizer(
    model: pl.LightningModule, rate: float, attr: str, trainer: pl.Trainer
) -> torch.optim.Optimizer:
    """The module's own optimiser with every group at rate × (its rate / the module's rate).
    The probe's module sees the fit's trainer while it configures (a schedule may read the
    trainer's step count), and none after."""
    base = float(lightning_getattr(model, attr))
    if not base > 0 or not math.isfinite(base):
        raise MilrError(f"the module's {attr} is {base}; it must be a positive rate")
    model._trainer = trainer
    try:
        optimizer = first_optimizer(model.configure_optimizers())
    finally:
        model._trainer = None
    for group in optimizer.param_groups:
        group["lr"] = rate * (group["lr"] / base)
    return optimizer


def rescale(trainer: pl.Trainer, ratio: float) -> None:
    """Scale every rate the fit's optimisers and schedulers were configured with by ``ratio``:
    the groups' ratios and the schedule's shape stay as the module made them."""
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            for key in GROUP_RATES:
                if key in group:
                    group[key] = group[key] * ratio
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [lr * ratio for lr in scheduler.base_lrs]
