"""η* (milr.find_eta_star) beside torch-lr-finder's and Lightning's LR range tests.

On real Fashion-MNIST, for a small CNN and a torchvision ResNet-18 (docs/examples/models.py).

For each model: η* and its bracket, with its trainings and wall time; each range test twice
from the same initial weights (its loader's shuffle unseeded, as users run it), with its
suggestion and wall time; then every suggestion, and milr's recommendation (0.5 x η*), trained
once from the same initial weights at that constant rate: does it reach t within e epochs? All
in this one process, on the same threads. Prints a table, and writes the records (--json) and a
figure (--png). Usage: python bench/lr_finders.py [--models cnn resnet] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

os.environ.setdefault("TQDM_DISABLE", "1")  # both range tests draw progress bars
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "docs" / "examples"))

import models  # noqa: E402
from milr.data import load_cache, prepare  # noqa: E402
from milr.find import find_eta_star, train_at  # noqa: E402
from milr.io import to_jsonable  # noqa: E402
from milr.settings import SubsetSpec  # noqa: E402

# What each model is asked: t reachable at a good rate within e epochs, and a search that fits
# in minutes on 2 CPU cores (the ResNet on the first 3,000 training and 1,000 test images).
MODELS = {
    "cnn": dict(factory=models.fashion_cnn, train=None, val=None, threshold=0.85, epochs=3),
    "resnet": dict(factory=models.fashion_resnet, train=3000, val=1000, threshold=0.7, epochs=2),
}
BATCH = 128
RANGE_STEPS = 100  # both tools' default number of iterations
TITLES = {
    "cnn": "small CNN, 60,000 Fashion-MNIST images",
    "resnet": "ResNet-18, the first 3,000 Fashion-MNIST images",
}
WORDS = {
    "eta": "η* (milr)",
    "recommended": "0.5 × η* (milr's recommendation)",
    "torch_lr_finder": "torch-lr-finder, steepest",
    "lightning": "Lightning lr_find",
}


def seeded(factory, seed: int = 0) -> nn.Module:
    """The model every method starts from: the factory under ``seed``, as milr builds it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(seed)


def loader(x, y) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)


def torch_lr_finder(factory, x, y) -> tuple[float, float]:
    """torch-lr-finder as its README runs it: SGD from 1e-7, end_lr 100, 100 iterations."""
    from torch_lr_finder import LRFinder

    start = time.perf_counter()
    model = seeded(factory)
    finder = LRFinder(model, torch.optim.SGD(model.parameters(), lr=1e-7), nn.CrossEntropyLoss())
    finder.range_test(loader(x, y), end_lr=100, num_iter=RANGE_STEPS)
    fig, ax = plt.subplots()
    _, suggestion = finder.plot(suggest_lr=True, ax=ax)
    plt.close(fig)
    return float(suggestion), time.perf_counter() - start


def lightning_lr_find(factory, x, y) -> tuple[float, float]:
    """Lightning's Tuner.lr_find with its defaults (1e-8 to 1, 100 steps) on plain SGD."""
    import lightning.pytorch as pl
    import torch.nn.functional as F
    from lightning.pytorch.tuner import Tuner

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.lr = seeded(factory), 1e-3

        def forward(self, inputs):
            return self.net(inputs)

        def training_step(self, batch, index):
            return F.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=root)  # fmt: skip
        found = Tuner(trainer).lr_find(Module(), train_dataloaders=loader(x, y),
                                       num_training=RANGE_STEPS)  # fmt: skip
    return float(found.suggestion()), time.perf_counter() - start


def fashion(train: int | None, val: int | None, data_dir: Path):
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "fashion.pt"
        prepare("fashion_mnist", cache, data_dir, download=False,
                subset=SubsetSpec(train=train, val=val))  # fmt: skip
        return load_cache(cache)


def run_model(name: str, spec: dict, data_dir: Path) -> dict:
    data = fashion(spec["train"], spec["val"], data_dir)
    settings = dict(threshold=spec["threshold"], epochs=spec["epochs"])
    train, val = (data.x_train, data.y_train), (data.x_val, data.y_val)
    factory = spec["factory"]
    found = find_eta_star(factory, train, val, **settings)
    rows = {"eta": [(found.eta_star, found.seconds)], "recommended": [(found.recommended(), 0.0)]}
    rows["torch_lr_finder"] = [torch_lr_finder(factory, *train) for _ in range(2)]
    rows["lightning"] = [lightning_lr_find(factory, *train) for _ in range(2)]
    checks = []
    for method, runs in rows.items():
        for rate, seconds in runs:
            if method == "eta":  # the search's own training at η*
                trial = next(t for t in found.trials if t.rate == found.eta_star)
            else:
                trial = train_at(factory, train, val, rate, **settings)
            checks.append(dict(method=method, rate=rate, seconds=seconds, reached=trial.reached,
                               accuracy=trial.accuracy, epochs=trial.epochs_run))  # fmt: skip
    return dict(model=name, samples=[len(data.y_train), len(data.y_val)], **settings,
                eta=to_jsonable(found), checks=checks)  # fmt: skip


def table(result: dict) -> list[str]:
    eta = result["eta"]
    lines = [
        f"{result['model']}: {result['samples'][0]:,} training / {result['samples'][1]:,} test "
        f"images, t = {result['threshold']}, e = {result['epochs']}; η* = {eta['eta_star']:.4g} "
        f"in [{eta['low']:.4g}, {eta['high']:.4g}], {len(eta['verdicts'])} rates, "
        f"{sum(len(v['trials']) for v in eta['verdicts'])} trainings",
        f"  {'method':<34} {'rate':>9} {'× η*':>7} {'reaches t':>10} {'accuracy':>9} {'cost s':>7}",
    ]
    for c in result["checks"]:
        ratio = c["rate"] / eta["eta_star"] if eta["eta_star"] > 0 else float("nan")
        accuracy = "diverged" if c["accuracy"] != c["accuracy"] else f"{c['accuracy']:.3f}"
        reached = "yes" if c["reached"] else "no"
        cost = f"{c['seconds']:.1f}" if c["method"] != "recommended" else "(η*'s)"
        lines.append(f"  {WORDS[c['method']]:<34} {c['rate']:>9.3g} {ratio:>7.2g} "
                     f"{reached:>10} {accuracy:>9} {cost:>7}")  # fmt: skip
    return lines


def figure(results: list[dict], png: Path) -> None:
    """Per model, the rate axis: η*'s bracket shaded, each suggestion a marker, filled where
    training at it reached t within e epochs."""
    fig, axes = plt.subplots(len(results), 1, figsize=(7, 1.6 * len(results) + 0.8), squeeze=False)
    markers = {"eta": "*", "recommended": "D", "torch_lr_finder": "o", "lightning": "s"}
    for ax, result in zip(axes[:, 0], results, strict=True):
        eta = result["eta"]
        ax.axvspan(eta["low"], eta["high"], color="0.8", zorder=0)
        for row, method in enumerate(markers):
            for c in (c for c in result["checks"] if c["method"] == method):
                ax.scatter(c["rate"], row, marker=markers[method], s=60, color="black",
                           facecolors="black" if c["reached"] else "white")  # fmt: skip
        ax.set_yticks(range(len(markers)), [WORDS[m] for m in markers], fontsize=8)
        ax.set_xscale("log")
        ax.set_ylim(-0.7, len(markers) - 0.3)
        ax.set_title(f"{TITLES[result['model']]}, t = {result['threshold']}, "
                     f"e = {result['epochs']}: filled = reaches t, open = does not",
                     fontsize=9)  # fmt: skip
    axes[-1, 0].set_xlabel("constant SGD learning rate (grey: η*'s final bracket)")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data",
                        help="raw files, else Debian's dataset-fashion-mnist")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write every record here")
    parser.add_argument("--png", type=Path, help="draw the figure here")
    parser.add_argument("--replot", type=Path, help="no runs: table and figure from this --json")
    args = parser.parse_args()
    if args.replot:
        results = json.loads(args.replot.read_text())
        print("\n".join(line for r in results for line in table(r)))
        if args.png:
            figure(results, args.png)
        return
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print(f"threads={torch.get_num_threads()} torch={torch.__version__}")
    results = []
    for name in args.models:
        start = time.perf_counter()
        results.append(run_model(name, MODELS[name], args.data_dir))
        print("\n".join(table(results[-1])))
        print(f"  (this model's whole comparison: {time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.png:
        figure(results, args.png)


if __name__ == "__main__":
    main()
