"""Trainings per η* search with and without a finished study's law as its starting point.

On the demo's architectures (MNIST-1D, the small input-layer variant), through
milr.find_eta_star.

For every architecture the demo's product law was fitted on, the law refitted without that
architecture (the demo's own leave-one-out table, loao.csv) predicts its η*; the search then
starts its bracketing phase there instead of at the demo's start rate. Both searches run here,
one seed at a time, through milr.find_eta_star with milr's MLP; the one from the demo's start is
also compared with the demo's own η* for that seed (the same bits are expected: the same search,
trainer and data). Needs a finished `make demo`. Usage: python bench/find_prior.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from milr.cli import read_study  # noqa: E402
from milr.data import load_cache  # noqa: E402
from milr.find import find_eta_star  # noqa: E402
from milr.io import read_table, study_tables  # noqa: E402
from milr.model import build_model, param_groups  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results/mnist1d")
    parser.add_argument("--law", default="product", help="the law whose prediction is the start")
    parser.add_argument("--start", type=float, default=2.0, help="the demo's (its preset's)")
    parser.add_argument("--epochs", type=int, default=10, help="the demo's (config.yaml's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tables = study_tables(args.results / "tables")
    study = read_study(tables / "study.json")
    variant = study.primary_variant
    scale = study.input_lr_variants[variant]
    (dataset, threshold), = study.thresholds.items()  # fmt: skip
    eta = read_table(tables / "eta_star.csv")
    loao = read_table(tables / "loao.csv")
    loao = loao[(loao.law == args.law) & (loao.variant == variant) & (loao.threshold == threshold)]
    data = load_cache(args.results / f"data/{dataset}.pt")
    main_rows = eta[(eta.variant == variant) & (eta.threshold == threshold) & (eta.role == "main")]
    print(f"{dataset}, variant {variant} (input layer x{scale}), t = {threshold}; {args.law} "
          f"law left out per architecture; threads={torch.get_num_threads()}")  # fmt: skip
    print(f"{'arch':>7} {'seed':>4} {'predicted':>9} {f'eta* (start {args.start:g})':>14} "
          f"{'trainings':>9} "
          f"{'eta* (law start)':>16} {'trainings':>9} {'= demo':>6}")  # fmt: skip
    totals = {"plain": 0, "prior": 0, "searches": 0, "same": 0}
    ratios, demo_ratios = [], []

    def optimizer(model, rate):
        return torch.optim.SGD(param_groups(model, rate, scale), lr=rate)

    for row in loao.sort_values(["depth", "width"]).itertuples():
        for seed in sorted(main_rows.seed.unique()):

            def factory(s, d=int(row.depth), w=int(row.width)):
                return build_model(data.in_dim, w, d, data.num_classes, s)

            kwargs = dict(threshold=threshold, epochs=args.epochs, seeds=(int(seed),),
                          optimizer=optimizer)  # fmt: skip
            train, val = (data.x_train, data.y_train), (data.x_val, data.y_val)
            plain = find_eta_star(factory, train, val, start=args.start, **kwargs)
            prior = find_eta_star(factory, train, val, start=float(row.predicted), **kwargs)
            demo = main_rows[(main_rows.depth == row.depth) & (main_rows.width == row.width)
                             & (main_rows.seed == seed)].eta_star.iloc[0]  # fmt: skip
            same = plain.eta_star == demo
            ratios.append(max(prior.eta_star, plain.eta_star) / min(prior.eta_star, plain.eta_star))
            demo_ratios.append(max(demo, plain.eta_star) / min(demo, plain.eta_star))
            totals["plain"] += plain.trainings
            totals["prior"] += prior.trainings
            totals["searches"] += 1
            totals["same"] += same
            print(f"{row.depth:>3}x{row.width:<3} {seed:>4} {row.predicted:>9.3g} "
                  f"{plain.eta_star:>14.4g} {plain.trainings:>9} {prior.eta_star:>16.4g} "
                  f"{prior.trainings:>9} {same!s:>6}")  # fmt: skip
    n = totals["searches"]
    print(f"trainings per search: {totals['plain'] / n:.2f} from start {args.start:g}, "
          f"{totals['prior'] / n:.2f} from the law's prediction ({n} searches); "
          f"η* from start {args.start:g} equals the demo's own in {totals['same']} "
          f"of {n}")  # fmt: skip
    print(f"η* from the two starts differs by a factor: median {statistics.median(ratios):.3f}, "
          f"largest {max(ratios):.3f}; from the demo's own: median "
          f"{statistics.median(demo_ratios):.3f}, largest {max(demo_ratios):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
