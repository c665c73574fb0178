"""What a whole config costs: every η* search, λ1 job and range test of every dataset it studies.

The estimate multiplies three things, and says which of them were measured:

1. Seconds per SGD step of each architecture, measured here (this machine, ``--device``, one
   job's stack of all its seeds with the batched trainer) for a sample of architectures at
   the dataset's input size, and fitted as a + b · parameters (a: the launch and Python cost
   of a step, b: the arithmetic). Each job uses the config's ``threads``.
2. Probes per search and epochs per probe, measured from a finished study's tables
   (``--study``, default: the Fashion-MNIST preset's if it has run, else the MNIST-1D demo's):
   real searches stop a probe early on success and on divergence. Without a study the
   assumption is 7.5 probes of all e epochs (an upper bound).
3. The job counts, from the config itself (milr.plan), and λ1 and range tests as their own
   steps: λ1 as ``sharpness.max_iter`` Hessian-vector products on ``sharpness.samples``
   (each ~3 steps' worth of arithmetic per sample batch, assumed), a range test as
   ``range_test.steps`` SGD steps.

On a CPU the report also gives a GPU estimate from stated assumptions (a step costs at least
its kernel launches, ~10 µs each, or its arithmetic at half of an H200's FP32 peak), never a
measurement; run it with ``--device cuda`` on a GPU (``make gpu-check`` does) for measured
numbers. Usage: python bench/grid_estimate.py [--config config.yaml] [--preset presets/X.yaml]
[--device cpu|cuda] [--study results/X/tables]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from milr.batched import Member, train_batched  # noqa: E402
from milr.config import validate_config  # noqa: E402
from milr.data import Dataset  # noqa: E402
from milr.model import build_model  # noqa: E402
from milr.plan import active_datasets, bisect_jobs, range_test_paths  # noqa: E402
from milr.settings import TrainSettings  # noqa: E402

# Training samples and input size of each dataset at its config defaults (MNIST-1D: 80% of
# mnist1d.samples; the Gaussian task: 2 x train_per_class).
SHAPES = {"mnist": (60_000, 784), "fashion_mnist": (60_000, 784), "cifar10": (50_000, 3072)}
ASSUMED_PROBES, LAUNCH_S, H200_FP32_FLOPS = 7.5, 10e-6, 67e12


def dataset_shape(config: dict, name: str) -> tuple[int, int]:
    section = config["datasets"][name]
    if name == "gaussian":
        spec = section.get("gaussian", {})
        return 2 * spec.get("train_per_class", 9000), spec.get("dim", 32)
    if name == "mnist1d":
        spec = section.get("mnist1d", {})
        return int(spec.get("samples", 20000) * (1 - spec.get("val_fraction", 0.2))), 40
    samples, dim = SHAPES[name]
    return min(samples, section.get("subset", {}).get("train") or samples), dim


def parameters(depth: int, width: int, in_dim: int, classes: int = 10) -> int:
    return in_dim * width + (depth - 1) * width * width + width * classes


def step_seconds(in_dim: int, depth: int, width: int, seeds: int, device: str) -> float:
    """Measured seconds per step of one stack of ``seeds`` networks (random data, 40 steps)."""
    n = 128 * 40
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, in_dim, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    data = Dataset("random", x, y, x[:128], y[:128], 10)
    members = [Member(build_model(in_dim, width, depth, 10, s, device), 1e-3, s)
               for s in range(seeds)]  # fmt: skip
    settings = TrainSettings(threshold=1.0, epochs=1)
    train_batched(members, data, settings)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_batched(members, data, settings)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / 40


def study_rates(tables: Path | None) -> tuple[float, float, str]:
    """Probes per search and epochs per probe from a finished study, or the upper bound."""
    if tables and (tables / "eta_star.csv").is_file() and (tables / "probes.csv").is_file():
        eta = pd.read_csv(tables / "eta_star.csv")
        probes = pd.read_csv(tables / "probes.csv")
        per_search = eta.drop_duplicates(["dataset", "variant", "threshold", "depth", "width"])
        print(f"study {tables}: {per_search.wall_time_s.sum() / 60:.1f} min of search jobs, "
              f"median {probes.wall_time_s.median():.2f} s per probe "
              f"({probes.epochs_run.mean():.2f} epochs; all seeds of a job stacked)")  # fmt: skip
        return (float(eta.probes.mean()), float(probes.epochs_run.mean()),
                f"measured in {tables} ({len(eta)} searches, {len(probes)} probes)")  # fmt: skip
    return ASSUMED_PROBES, math.nan, "assumed (no finished study): 7.5 probes of all e epochs"


def gpu_step_assumed(depth: int, width: int, in_dim: int, seeds: int) -> float:
    """A GPU step's time from assumptions: launches (about 12 kernels per layer for forward,
    backward and update) or arithmetic (6 flops per parameter per sample), whichever is more."""
    launches = 12 * (depth + 1) * LAUNCH_S
    flops = 6 * 128 * parameters(depth, width, in_dim) * seeds
    return max(launches, flops / (H200_FP32_FLOPS / 2))


def merged(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` key by key, as Snakemake merges a --configfile: nested
    mappings merge, everything else (lists included) replaces."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yaml")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--study", type=Path, help="a finished study's tables folder")
    parser.add_argument("--sample", default="1x128,4x512,10x1024", help="depthxwidth,... timed")
    parser.add_argument("--cores", type=int, default=None, help="cores for the CPU wall time")
    parser.add_argument("--preset", type=Path, action="append", default=[],
                        help="merged over --config as Snakemake's --configfile does")  # fmt: skip
    args = parser.parse_args()
    raw = yaml.safe_load(args.config.read_text())
    for preset in args.preset:
        raw = merged(raw, yaml.safe_load(preset.read_text()))
    config = validate_config(raw)
    torch.set_num_threads(config["threads"])
    studies = (ROOT / "results/fashion/tables", ROOT / "results/mnist1d/tables")
    default_study = next((p for p in studies if p.is_dir()), None)
    probes, epochs_per_probe, source = study_rates(args.study or default_study)
    epochs = config["training"]["epochs"]
    if math.isnan(epochs_per_probe):
        epochs_per_probe = epochs
    seeds = len(config["seeds"]) if config["search"]["batch_seeds"] else 1
    sample = [tuple(int(v) for v in item.split("x")) for item in args.sample.split(",")]
    print(f"config {args.config.name}: device {args.device}, {config['threads']} threads per job, "
          f"{seeds} seed(s) stacked per search job")  # fmt: skip
    print(f"probes per search {probes:.2f}, epochs per probe {epochs_per_probe:.2f}: {source}")
    total_s, total_gpu_s = 0.0, 0.0
    jobs = bisect_jobs(config)
    for name in active_datasets(config):
        n_train, in_dim = dataset_shape(config, name)
        xs, ys = [], []
        for depth, width in sample:
            ys.append(step_seconds(in_dim, depth, width, seeds, args.device))
            xs.append(parameters(depth, width, in_dim))
        slope, intercept = np.polyfit(xs, ys, 1)
        timed = ", ".join(f"{d}x{w} {y * 1e3:.2f} ms" for (d, w), y in zip(sample, ys, strict=True))
        print(f"{name}: {n_train} x {in_dim}; measured per step (all seeds): {timed}")

        def step(depth: int, width: int) -> float:
            return max(intercept + slope * parameters(depth, width, in_dim), min(ys))  # noqa: B023

        steps_per_epoch = math.ceil(n_train / config["training"]["batch_size"])
        mine = [j for j in jobs if j.dataset == name]
        archs = {(j.depth, j.width) for j in mine}
        if config["search"]["batch_seeds"]:
            mine = list({(j.variant, j.threshold, j.depth, j.width): j for j in mine}.values())
        searches = sum(step(j.depth, j.width) for j in mine)
        search_s = searches * probes * epochs_per_probe * steps_per_epoch
        gpu_s = sum(gpu_step_assumed(j.depth, j.width, in_dim, seeds) for j in mine)
        gpu_s *= probes * epochs_per_probe * steps_per_epoch
        # λ1: max_iter Hessian-vector products over samples / 128 batches, ~3 steps each
        hvp_steps = config["sharpness"]["max_iter"] * math.ceil(
            config["sharpness"]["samples"] / 128
        )
        sharp_s = sum(3 * hvp_steps * step(d, w) / seeds for d, w in archs) * len(config["seeds"])
        tests = len([p for p in range_test_paths(config) if f"/{name}/" in p])
        range_s = tests * config["range_test"]["steps"] * np.mean([step(d, w) / seeds
                                                                  for d, w in archs])  # fmt: skip
        total = search_s + sharp_s + range_s
        total_s += total
        total_gpu_s += gpu_s
        print(f"  {len(mine)} search jobs {search_s / 3600:.2f} h, λ1 {sharp_s / 3600:.2f} h, "
              f"{tests} range tests {range_s / 3600:.2f} h: {total / 3600:.2f} h on one "
              f"{args.device} job")  # fmt: skip
    cores = args.cores or torch.multiprocessing.cpu_count()
    parallel = max(cores // config["threads"], 1)
    print(
        "assumed: λ1 costs 3 steps per Hessian-vector product per 128 samples; step times of "
        "architectures not sampled follow a + b · parameters through the sample"
    )
    print(f"total: {total_s / 3600:.2f} job-hours on {args.device}", end="")
    if args.device == "cpu":
        print(
            f"; {total_s / 3600 / parallel:.2f} h wall on {cores} cores, jobs ({parallel} at once)"
        )
        print(
            f"GPU (assumed, not measured: ≥ {LAUNCH_S * 1e6:.0f} µs per kernel launch, ~12 "
            f"launches per layer per step, or 6 flops per parameter per sample at half an "
            f"H200's {H200_FP32_FLOPS / 1e12:.0f} TFLOPS FP32, whichever is slower; λ1 and "
            f"range tests left out): {total_gpu_s / 3600:.2f} job-hours for the searches"
        )
    else:
        print(" (measured step times)")


if __name__ == "__main__":
    main()
