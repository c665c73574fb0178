"""How far rounding alone moves η*: every search of a finished study rerun in float64.

Near the edge of stability one probe's outcome can flip under a rounding difference, and a
flipped probe sends the bisection into another half of its bracket. This reruns each search of
a study's main threshold (same seed, inputs and code) with data and weights in float64 and
compares its η* with the study's float32 η*, beside the seed-to-seed spread of the same
architecture: the resolution a user can trust. Usage (after make demo):

    .venv/bin/python bench/rounding.py --tables results/mnist1d/tables \\
        --data results/mnist1d/data/mnist1d.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from milr.data import load_cache  # noqa: E402
from milr.io import read_json, read_table  # noqa: E402
from milr.measure import measure_eta_star_seeds  # noqa: E402
from milr.records import SearchResult  # noqa: E402
from milr.settings import from_json  # noqa: E402


def as_float64(data):
    return dataclasses.replace(data, x_train=data.x_train.double(), x_val=data.x_val.double())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)  # weights drawn in float64 (same draws, more bits)
    eta = read_table(args.tables / "eta_star.csv", ("status", "role", "path"))
    jobs = eta[(eta["status"] == "ok") & (eta["role"] == "main")]
    data = as_float64(load_cache(args.data))
    moved, ratios, spreads, rows = 0, [], [], []
    start = time.perf_counter()
    for _, job in jobs.iterrows():
        study = from_json(SearchResult, read_json(job["path"]))
        again = measure_eta_star_seeds([study.inputs], data, [None])[0]
        same = again.eta_star == study.eta_star
        moved += not same
        if study.eta_star > 0 and again.eta_star > 0:
            ratios.append(max(again.eta_star, study.eta_star) / min(again.eta_star, study.eta_star))
        rows.append((job["variant"], job["depth"], job["width"], job["seed"], study.eta_star,
                     again.eta_star))  # fmt: skip
        print(f"{job['variant']:>6} d{job['depth']}-w{job['width']}-s{job['seed']}: float32 "
              f"{study.eta_star:.6g}  float64 {again.eta_star:.6g}{'' if same else '  moved'}",
              flush=True)  # fmt: skip
    for _, group in jobs.groupby(["variant", "depth", "width"]):
        values = [v for v in group["eta_star"] if v > 0]
        if len(values) >= 2:
            spreads.append(max(values) / min(values))
    n = len(rows)
    print(f"\n{n} searches rerun in float64 in {time.perf_counter() - start:.0f} s")
    print(f"eta* moved in {moved} of {n} ({moved / n:.0%})")
    if ratios:
        changed = [r for r in ratios if r > 1]
        print(f"factor moved, where it moved: median {statistics.median(changed or [1]):.3f}, "
              f"largest {max(ratios):.3f}")  # fmt: skip
    if spreads:
        print(f"seed-to-seed spread (max/min over seeds, per architecture): median "
              f"{statistics.median(spreads):.3f}, largest {max(spreads):.3f}")  # fmt: skip
    zero_flips = sum((a == 0) != (b == 0) for *_, a, b in rows)
    print(f"searches where float64 and float32 disagree on eta* = 0: {zero_flips}")


if __name__ == "__main__":
    main()
