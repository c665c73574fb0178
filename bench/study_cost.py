"""Where a finished study's time went, measured from the study itself.

Searches, λ1 with the range tests, the rest, and the start-up every job pays.

Reads Snakemake's per-job benchmark files (``RESULTS/benchmarks``: wall seconds of each
bisection and λ1/range-test job), the study's tables (probes and epochs of every search) and
its cached data (training samples), and measures here, side by side in this run, what one job
pays before it trains: a fresh interpreter importing milr and torch and loading the data file.
Prints seconds per kind of job, the start-up share, and the search cost per network-step by
architecture (seconds, and nanoseconds per parameter), the number the trainer decides.

Usage: python bench/study_cost.py [--results results/wide] [--batch-size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from milr.data import load_cache  # noqa: E402


def job_seconds(results: Path) -> pd.DataFrame:
    """One row per benchmarked job: its rule (the benchmarks folder's first part), its name
    and its wall seconds."""
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rule = path.relative_to(results / "benchmarks").parts[0]
        rows.append({"rule": rule, "job": str(path.relative_to(results / "benchmarks")),
                     "seconds": float(table["s"].iloc[-1])})  # fmt: skip
    if not rows:
        sys.exit(f"study_cost: no benchmark files under {results}/benchmarks: run the study first")
    return pd.DataFrame(rows)


def start_up_seconds(data: Path, repeats: int) -> float:
    """Median wall time of a fresh interpreter that imports milr's job code and loads ``data``."""
    workflow = str(ROOT / "workflow")
    code = (
        f"import sys; sys.path.insert(0, {workflow!r}); import milr.cli, milr.measure; "
        f"from milr.data import load_cache; load_cache({str(data)!r})"
    )
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parameters(depth: int, width: int, inputs: int, classes: int) -> int:
    """Weights and biases of a depth x width MLP."""
    return (inputs + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "wide")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    jobs = job_seconds(args.results)
    data_files = sorted((args.results / "data").glob("*.pt"))
    if not data_files:
        sys.exit(f"study_cost: no cached data under {args.results}/data")
    data = load_cache(data_files[0])
    start_up = start_up_seconds(data_files[0], args.repeats)

    total = jobs["seconds"].sum()
    print(f"study {args.results}: {len(jobs)} benchmarked jobs, {total / 3600:.2f} job-hours")
    print(f"{'kind of job':<24}{'jobs':>6}{'hours':>8}{'share':>8}")
    for rule, group in jobs.groupby("rule"):
        print(f"{rule:<24}{len(group):>6}{group.seconds.sum() / 3600:>8.2f}"
              f"{group.seconds.sum() / total:>8.1%}")  # fmt: skip
    print(
        f"start-up (fresh interpreter, imports, data load; median of {args.repeats}, measured "
        f"now): {start_up:.2f} s a job, {start_up * len(jobs) / total:.1%} of the study"
    )

    probes = pd.read_csv(args.results / "tables" / "probes.csv")
    steps_per_epoch = math.ceil(len(data.y_train) / args.batch_size)
    bisect = jobs[jobs["rule"] == "bisect"].copy()
    parts = bisect["job"].str.extract(r"/(?P<variant>[^/]+)/t(?P<threshold>[\d.]+)/"
                                      r"d(?P<depth>\d+)-w(?P<width>\d+)")  # fmt: skip
    bisect = pd.concat([bisect, parts], axis=1).astype({"depth": int, "width": int,
                                                        "threshold": float})  # fmt: skip
    keys = ["variant", "threshold", "depth", "width"]
    epochs = probes.groupby(keys, as_index=False)["epochs_run"].sum()
    joined = bisect.merge(epochs, on=keys)
    joined["network_steps"] = joined["epochs_run"] * steps_per_epoch
    by_arch = joined.groupby(["depth", "width"], as_index=False)[["seconds", "network_steps"]].sum()
    print(f"\nsearches: a job's wall time (start-up and validation included) over its networks' "
          f"SGD steps ({steps_per_epoch} an epoch; a job's seeds train as one stack)")  # fmt: skip
    print(f"{'depth':>5}{'width':>6}{'params':>10}{'ms/step':>9}{'ns/param/step':>15}")
    for row in by_arch.itertuples():
        n = parameters(row.depth, row.width, data.in_dim, data.num_classes)
        per_step = row.seconds / row.network_steps
        ms, ns = per_step * 1e3, per_step / n * 1e9
        print(f"{row.depth:>5}{row.width:>6}{n:>10}{ms:>9.3f}{ns:>15.2f}")


if __name__ == "__main__":
    main()
