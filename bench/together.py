"""λ1 and range tests as separate processes against one `milr together` process, side by side.

One architecture's three jobs (small_jobs_together: false) against one process (true).

What a joint job saves is per-process cost: Python and torch start-up, the data load and, on a
GPU, CUDA's initialisation; the measurements themselves are the same commands. Both ways run
alternately ``--repeats`` times in this one run, so machine noise hits both alike; the script
prints each way's median wall time and the ratio, and checks that both wrote the same numbers.
Usage: python bench/together.py [--device cpu|cuda] [--repeats 3] [--depth 2] [--width 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MILR = [sys.executable, "-m", "milr", "-q"]


def commands(data: Path, out: Path, args: argparse.Namespace) -> list[list[str]]:
    """λ1 of two seeds and the range tests of both input-layer variants, as the rules run them."""
    network = ["--dataset", "mnist1d", "--data", str(data), "--depth", str(args.depth),
               "--width", str(args.width), "--seed", "0", "1"]  # fmt: skip
    paths = lambda kind: ["--out", *(str(out / f"{kind}-s{s}.json") for s in (0, 1))]  # noqa: E731
    runs = [["sharpness", *network, "--samples", "512", "--input-lr-variant", "small=0.1",
             *paths("sharpness")]]  # fmt: skip
    for variant, scale in (("small", "0.1"), ("full", "1.0")):
        runs.append(["range-test", *network, "--steps", "100", "--input-lr-scale", scale,
                     "--variant", variant, *paths(f"range-{variant}")])  # fmt: skip
    return runs


def timed(argvs: list[list[str]], env: dict[str, str]) -> float:
    start = time.perf_counter()
    for argv in argvs:
        subprocess.run([*MILR, *argv], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def numbers(folder: Path) -> dict[str, dict]:
    drop = ("wall_time_s", "provenance")
    return {
        p.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in drop}
        for p in sorted(folder.glob("*.json"))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "workflow"))
    device = ["--device", args.device, "--threads", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "mnist1d.pt"
        prepare = ["prepare", "--dataset", "mnist1d", "--mnist1d-samples", "4000", "--out"]
        subprocess.run([*MILR, *prepare, str(data)], env=env, check=True, capture_output=True)
        times: dict[str, list[float]] = {"separate": [], "together": []}
        for _ in range(args.repeats):
            runs = commands(data, work / "separate", args)
            times["separate"].append(timed([[*r, *device] for r in runs], env))
            runs = commands(data, work / "together", args)
            joint = ["together", *device] + [w for r in runs for w in ("::", *r)]
            times["together"].append(timed([joint], env))
        same = numbers(work / "separate") == numbers(work / "together")
    separate, together = (statistics.median(times[k]) for k in ("separate", "together"))
    print(f"MNIST-1D, depth {args.depth} x width {args.width}, 2 seeds, λ1 + 2 range tests on "
          f"{args.device}; median of {args.repeats}, alternating")  # fmt: skip
    print(f"  three processes (separate jobs): {separate:.2f} s")
    print(f"  one milr together process:       {together:.2f} s")
    print(f"  separate / together: {separate / together:.2f}x; same numbers: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
