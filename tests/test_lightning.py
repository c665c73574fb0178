"""milr.lightning.EtaStarFinder with a real Lightning Trainer on the CPU."""

from __future__ import annotations

import copy

import lightning.pytorch as pl  # a test dependency (pyproject's test extra): never skipped
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from milr import MilrError, find_eta_star
from milr.lightning import EtaStarFinder
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SETTINGS = dict(threshold=0.85, epochs=2, start=2.0)


class TwoGroups(pl.LightningModule):
    """An MLP whose input layer trains at a tenth of the rate, with a StepLR schedule."""

    def __init__(self, lr: float = 0.05, inputs: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.first = nn.Linear(inputs, 32)
        self.rest = nn.Sequential(nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        return self.rest(self.first(x))

    def training_step(self, batch, index):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(
            [{"params": self.first.parameters(), "lr": 0.1 * self.hparams.lr},
             {"params": self.rest.parameters()}], lr=self.hparams.lr)  # fmt: skip
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class NoHparams(TwoGroups):
    """The same network, its rate a plain attribute: probes copy its weights."""

    def __init__(self) -> None:
        pl.LightningModule.__init__(self)
        self.lr = 0.05
        self.first = nn.Linear(8, 32)
        self.rest = nn.Sequential(nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class Snapshot(pl.Callback):
    """The weights the fit itself starts from (it runs after EtaStarFinder)."""

    def on_fit_start(self, trainer, pl_module):
        self.weights = copy.deepcopy(pl_module.state_dict())


def loaders(data):
    train = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=128, shuffle=True)
    return train, DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=1000)


def fit(module, data, tmp_path, finder):
    snapshot = Snapshot()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, callbacks=[finder, snapshot],
                         logger=CSVLogger(tmp_path), enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, *loaders(data))
    return trainer, snapshot


def test_two_groups_and_a_schedule_keep_their_shape_at_the_new_rate(small_gaussian, tmp_path):
    torch.manual_seed(7)
    module = TwoGroups()
    before = copy.deepcopy(module.state_dict())
    finder = EtaStarFinder(seeds=(0, 1), **SETTINGS)
    trainer, snapshot = fit(module, small_gaussian, tmp_path, finder)
    found = finder.result
    assert found.complete and not found.no_success and found.trainings >= 2 * 5
    rate = 0.5 * found.eta_star
    assert module.hparams.lr == rate
    # the fit started from the module's own weights, untouched by the probes
    assert all(torch.equal(before[k], v) for k, v in snapshot.weights.items())
    optimizer = trainer.optimizers[0]
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.base_lrs == pytest.approx([0.1 * rate, rate], rel=1e-12)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05 * rate, 0.5 * rate])
    logged = (tmp_path / "lightning_logs/version_0/metrics.csv").read_text()
    assert "eta_star" in logged and "eta_star_high" in logged


def test_the_callback_finds_what_find_eta_star_finds(small_gaussian, tmp_path):
    """The same module, data and settings through the library call: the same probes, bit for
    bit (the probes rebuild the module from its hyperparameters, seeded)."""
    finder = EtaStarFinder(**SETTINGS)
    fit(TwoGroups(), small_gaussian, tmp_path, finder)

    def groups(model, rate):
        return torch.optim.SGD([{"params": model.first.parameters(), "lr": 0.1 * rate},
                                {"params": model.rest.parameters()}], lr=rate)  # fmt: skip

    direct = find_eta_star(lambda seed: TwoGroups(), *loaders(small_gaussian), optimizer=groups,
                           **SETTINGS)  # fmt: skip
    assert [(t.rate, t.reached, t.accuracy) for t in finder.result.trials] == [
        (t.rate, t.reached, t.accuracy) for t in direct.trials
    ]


def test_a_module_without_saved_hyperparameters_is_copied(small_gaussian, tmp_path):
    module = NoHparams()
    before = copy.deepcopy(module.state_dict())
    finder = EtaStarFinder(**SETTINGS)
    _, snapshot = fit(module, small_gaussian, tmp_path, finder)
    assert finder.result.complete and module.lr == 0.5 * finder.result.eta_star
    assert "copied" in finder.result.provenance["factory"]
    assert all(torch.equal(before[k], v) for k, v in snapshot.weights.items())


class NoRate(NoHparams):
    """Its rate is written in configure_optimizers: nothing for a finder to set."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_a_module_without_a_rate_attribute_gets_one_line(small_gaussian, tmp_path):
    module = NoRate()
    del module.lr
    with pytest.raises(MilrError, match="no lr or learning_rate attribute"):
        fit(module, small_gaussian, tmp_path, EtaStarFinder(**SETTINGS))
