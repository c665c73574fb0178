"""Per-architecture brackets (upper: auto) against one fixed u, side by side.

On the Gaussian task with config.yaml's settings (t = 0.85, input layer at 0.1x, Algorithm 1
with s = 5, seed 0), over depths 1, 2, 4, 8 x widths 32, 128, 512 (depth x width 32 to 4096):
for each architecture, the final bracket, its relative width (high / low), the probes trained and
the wall time of (a) the paper-literal search on [0, u] with the old fixed u = 16 and (b) the
bracketing phase from start = 2 followed by Algorithm 1 on [0, u]. Target for (b): every
architecture with η* > 0 ends within a factor 1.07, at <= 9 probes per search on average.

    python bench/bracket.py            # ~15 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from milr.data import make_gaussian, payload_to_dataset  # noqa: E402
from milr.measure import measure_eta_star  # noqa: E402
from milr.records import SearchInputs  # noqa: E402
from milr.settings import GaussianSpec  # noqa: E402

COMMON = dict(dataset="gaussian", seed=0, threshold=0.85, input_lr_scale=0.1, iterations=5)


def run(data, depth: int, width: int, **search) -> tuple[str, float, int, float]:
    start = time.perf_counter()
    result = measure_eta_star(SearchInputs.of(depth=depth, width=width, **COMMON, **search), data)
    bracket = f"[{result.bracket_low:.4g}, {result.bracket_high:.4g}]"
    return bracket, result.relative_bracket, len(result.probes), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    data = payload_to_dataset(make_gaussian(GaussianSpec()), args.device)
    print(f"device={args.device} threads={torch.get_num_threads()} gaussian t=0.85 s=5")
    print(f"{'depth':>5} {'width':>5} | {'fixed u=16 bracket':>20} {'rel':>6} {'probes':>6} "
          f"{'s':>6} | {'auto bracket':>20} {'rel':>6} {'probes':>6} {'s':>6}")  # fmt: skip
    auto_rel, auto_probes, fixed_probes, times = [], [], [], [0.0, 0.0]
    for depth in args.depths:
        for width in args.widths:
            fixed = run(data, depth, width, upper=16.0)
            auto = run(data, depth, width, upper="auto", start=2.0)
            times[0] += fixed[3]
            times[1] += auto[3]
            fixed_probes.append(fixed[2])
            auto_probes.append(auto[2])
            if math.isfinite(auto[1]):
                auto_rel.append(auto[1])
            print(f"{depth:>5} {width:>5} | {fixed[0]:>20} {fixed[1]:>6.3f} {fixed[2]:>6} "
                  f"{fixed[3]:>6.1f} | {auto[0]:>20} {auto[1]:>6.3f} {auto[2]:>6} "
                  f"{auto[3]:>6.1f}")  # fmt: skip
    n = len(auto_probes)
    within = sum(r <= 1.07 for r in auto_rel)
    print(f"auto: {within}/{len(auto_rel)} architectures with eta* > 0 within a factor 1.07; "
          f"{sum(auto_probes) / n:.2f} probes per search (fixed u: {sum(fixed_probes) / n:.2f}); "
          f"wall time auto / fixed = {times[1] / times[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
