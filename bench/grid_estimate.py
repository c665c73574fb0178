"""Extrapolate the wall time of config.yaml's full MNIST η* grid from a measured sample.

Measures, on MNIST-shaped random data (60k x 784, 10 classes; no download needed), the time of
one epoch for a few architectures of the grid with the chosen trainer (all seeds of a job
stacked when batched), fits seconds-per-epoch ~ a + b * (parameters) over the sample, and sums
the prediction over every bisection job of the grid. Random labels never reach t, so every probe
runs all e epochs: the estimate is an upper bound (real searches stop early on success and on
divergence). Usage: python bench/grid_estimate.py [--device cuda] [--trainer batched]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "bench"))

from milr.batched import Member, train_batched  # noqa: E402
from milr.data import payload_to_dataset  # noqa: E402
from milr.model import build_model  # noqa: E402
from milr.settings import TrainSettings  # noqa: E402
from milr.train import train_probe  # noqa: E402
from trainer import make_data  # noqa: E402


def params(depth: int, width: int, in_dim: int = 784, classes: int = 10) -> int:
    return in_dim * width + (depth - 1) * width * width + width * classes


def epoch_seconds(data, depth, width, seeds, trainer, device) -> float:
    settings = TrainSettings(threshold=1.0, epochs=1)
    inits = [build_model(784, width, depth, 10, s, device) for s in seeds]
    pairs = list(zip(inits, seeds, strict=True))

    def run() -> None:
        if trainer == "batched":
            train_batched([Member(m, 0.01, s) for m, s in pairs], data, settings)
        else:
            for model, seed in pairs:
                train_probe(model, data, 0.01, settings, seed)

    run()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--trainer", choices=("plain", "batched"), default="batched")
    parser.add_argument("--sample", default="1x128,4x512,10x2048", help="depthxwidth,...")
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    seeds = config["seeds"]
    epochs, rounds = config["training"]["epochs"], config["search"]["iterations"]
    data = payload_to_dataset(make_data("mnist"), args.device)
    sample = [tuple(int(v) for v in item.split("x")) for item in args.sample.split(",")]
    xs, ys = [], []
    print(f"device={args.device} trainer={args.trainer} seeds/job={len(seeds)}")
    for depth, width in sample:
        seconds = epoch_seconds(data, depth, width, seeds, args.trainer, args.device)
        xs.append(params(depth, width))
        ys.append(seconds)
        print(f"  depth {depth:>2} width {width:>4}: {seconds:.3f} s per epoch for all seeds")
    slope, intercept = np.polyfit(xs, ys, 1)
    grid = [(d, w) for d in config["grid"]["depths"] for w in config["grid"]["widths"]]
    variants = len(config["input_lr_variants"])
    sweep = len(config["datasets"]["mnist"].get("threshold_sweep", []))
    per_arch = {a: max(intercept + slope * params(*a), min(ys)) * epochs * rounds for a in grid}
    total = variants * sum(per_arch.values())
    total += sweep * sum(per_arch[tuple(a)] for a in config["sweep"]["architectures"])
    print(
        f"MNIST grid: {len(grid)} architectures x {variants} variants x {len(seeds)} seeds "
        f"(+ sweep), {epochs} epochs x {rounds} probes each, all epochs run (upper bound)"
    )
    print(f"estimated total: {total / 3600:.2f} h on one {args.device} device")


if __name__ == "__main__":
    main()
