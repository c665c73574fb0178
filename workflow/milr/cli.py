"""The ``milr`` command line: the steps the workflow's rules call.

Every subcommand writes its outputs atomically, logs progress to stderr (one line per epoch and
per probe), and turns bad input into one line ``milr: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from milr import DATASETS, MilrError, __version__

log = logging.getLogger("milr")
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as one line, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"milr: error: {message}\n")
        sys.exit(EXIT_USAGE)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def threshold(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {value}")
    return value


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"input file {path} does not exist")
    return path


def resolve_device(choice: str, gpu_lock_dir: Path | None = None) -> str:
    """``auto`` = CUDA when available. For CUDA, take a GPU slot before CUDA initialises."""
    from milr.gpu import acquire_gpu_slot

    if choice in ("auto", "cuda"):
        slot = acquire_gpu_slot(lock_dir=gpu_lock_dir)
        import torch

        if torch.cuda.is_available():
            log.info("device cuda (%s), slot %s", torch.cuda.get_device_name(0), slot.gpu_id)
            return "cuda"
        if choice == "cuda":
            raise MilrError("--device cuda asked for, but torch sees no CUDA device; use cpu")
    return "cpu"


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads")
    parser.add_argument("--gpu-lock-dir", type=Path, default=None)


def add_architecture(parser: argparse.ArgumentParser, several_seeds: bool = False) -> None:
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--data", type=existing_file, help="cache file from 'milr prepare'")
    parser.add_argument("--depth", type=positive_int, required=True, help="hidden layers")
    parser.add_argument("--width", type=positive_int, required=True)
    if several_seeds:
        parser.add_argument(
            "--seed",
            type=nonnegative_int,
            nargs="+",
            default=[0],
            help="one or more seeds; several are searched together, one result file each",
        )
    else:
        parser.add_argument("--seed", type=nonnegative_int, default=0)


def add_gaussian(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gaussian-dim", type=positive_int, default=32)
    parser.add_argument("--gaussian-mahalanobis", type=positive_float, default=2.5)
    parser.add_argument("--gaussian-condition", type=float, default=10.0)
    parser.add_argument("--data-seed", type=nonnegative_int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="milr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"milr {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    prep = sub.add_parser("prepare", help="download (if needed) and cache a dataset")
    prep.add_argument("--dataset", choices=DATASETS, required=True)
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--data-dir", type=Path, default=Path("data"))
    prep.add_argument("--no-download", action="store_true")
    add_gaussian(prep)

    bis = sub.add_parser("bisect", help="search η* for one architecture and seed(s)")
    add_architecture(bis, several_seeds=True)
    add_gaussian(bis)
    bis.add_argument("--threshold", type=threshold, required=True, help="target val accuracy t")
    bis.add_argument("--upper", type=positive_float, required=True, help="bracket top u")
    bis.add_argument("--lower", type=nonnegative_float, default=0.0, help="bracket bottom l")
    bis.add_argument("--iterations", type=positive_int, default=5, help="search rounds s")
    bis.add_argument("--epochs", type=positive_int, default=10, help="epochs per probe e")
    bis.add_argument("--batch-size", type=positive_int, default=128)
    bis.add_argument("--input-lr-scale", type=positive_float, default=1.0)
    bis.add_argument("--momentum", type=nonnegative_float, default=0.0)
    bis.add_argument("--method", choices=("bisect", "kary"), default="bisect")
    bis.add_argument("--k", type=positive_int, default=8, help="probes per round (kary)")
    bis.add_argument("--scale", choices=("linear", "geometric"), default="linear")
    bis.add_argument("--trainer", choices=("plain", "batched", "auto"), default="plain")
    bis.add_argument("--variant", default="", help="label of the input-layer LR variant")
    bis.add_argument(
        "--journal",
        type=Path,
        nargs="+",
        help="resume file per seed (default: <out>.journal.jsonl)",
    )
    bis.add_argument("--out", type=Path, nargs="+", help="result JSON per seed (default: print)")
    add_device(bis)

    sharp = sub.add_parser("sharpness", help="λ1 at initialisation for one architecture")
    add_architecture(sharp)
    add_gaussian(sharp)
    sharp.add_argument("--samples", type=positive_int, default=2048)
    sharp.add_argument("--max-iter", type=positive_int, default=100)
    sharp.add_argument("--tol", type=positive_float, default=1e-4)
    sharp.add_argument("--out", type=Path)
    add_device(sharp)

    agg = sub.add_parser("aggregate", help="tidy CSV tables from result JSON files")
    agg.add_argument("results", nargs="*", help="bisect/ and sharpness/ result files")
    agg.add_argument("--eta-out", type=Path, required=True)
    agg.add_argument("--sharpness-out", type=Path, required=True)
    agg.add_argument("--allow-missing", action="store_true", help="list absent files as rows")

    fit = sub.add_parser("fit", help="power-law fits against depth x width")
    fit.add_argument("--eta", type=existing_file, required=True)
    fit.add_argument("--sharpness", type=existing_file, required=True)
    fit.add_argument("--out", type=Path, required=True)
    fit.add_argument("--min-width-over-depth", type=nonnegative_float, default=0.0)
    fit.add_argument("--max-relative-bracket", type=positive_float, default=math.inf)
    fit.add_argument("--bootstrap", type=positive_int, default=2000)
    fit.add_argument("--seed", type=nonnegative_int, default=0)

    figure = sub.add_parser("figure", help="draw one paper figure from the tables")
    figure.add_argument("name", help="figure name (see milr.figures.FIGURES)")
    figure.add_argument("--eta", type=existing_file, required=True)
    figure.add_argument("--sharpness", type=existing_file, required=True)
    figure.add_argument("--fits", type=existing_file, required=True)
    figure.add_argument("--spec", required=True, help="JSON: thresholds, variants, ratio, sweep")
    figure.add_argument("--png", type=Path, required=True)
    figure.add_argument("--pdf", type=Path, required=True)
    figure.add_argument("--caption", type=Path, required=True)
    return parser


def load_dataset(args: argparse.Namespace, device: str):
    """The cached dataset, or (Gaussian only) the task drawn in memory from its parameters."""
    from milr.data import load_cache, make_gaussian, payload_to_dataset

    if args.data is not None:
        data = load_cache(args.data, device)
        if data.name != args.dataset:
            raise MilrError(f"--data {args.data} holds {data.name}, not --dataset {args.dataset}")
        return data
    if args.dataset != "gaussian":
        raise MilrError(f"--data is required for {args.dataset}; make it with 'milr prepare'")
    return payload_to_dataset(make_gaussian(gaussian_spec(args), args.data_seed), device)


def gaussian_spec(args: argparse.Namespace):
    from milr.data import GaussianSpec

    return GaussianSpec(
        dim=args.gaussian_dim,
        mahalanobis=args.gaussian_mahalanobis,
        condition=args.gaussian_condition,
    )


def set_threads(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def cmd_prepare(args: argparse.Namespace) -> None:
    from milr.data import prepare

    info = prepare(
        args.dataset,
        args.out,
        args.data_dir,
        gaussian=gaussian_spec(args),
        seed=args.data_seed,
        download=not args.no_download,
    )
    print(f"{args.dataset}: cached in {args.out} ({info})")


def _per_seed(paths: list[Path] | None, seeds: list[int], flag: str) -> list[Path | None]:
    if paths is None:
        return [None] * len(seeds)
    if len(paths) != len(seeds):
        raise MilrError(
            f"{flag} needs one path per --seed ({len(seeds)} seeds, {len(paths)} paths)"
        )
    return list(paths)


def cmd_bisect(args: argparse.Namespace) -> None:
    from milr.io import write_json
    from milr.search import SearchInputs, SearchSpec, measure_eta_star_seeds

    # Validate everything cheap before any data is touched.
    SearchSpec(args.upper, args.iterations, args.lower, args.method, args.k, args.scale)
    if len(set(args.seed)) != len(args.seed):
        raise MilrError(f"--seed lists a seed twice: {args.seed}")
    outs = _per_seed(args.out, args.seed, "--out")
    journals = _per_seed(args.journal, args.seed, "--journal")
    journals = [
        j or (o.with_name(o.name + ".journal.jsonl") if o else None)
        for j, o in zip(journals, outs, strict=True)
    ]
    device = resolve_device(args.device, args.gpu_lock_dir)
    set_threads(args)
    data = load_dataset(args, device)
    inputs = [
        SearchInputs(
            dataset=args.dataset,
            depth=args.depth,
            width=args.width,
            seed=seed,
            threshold=args.threshold,
            epochs=args.epochs,
            batch_size=args.batch_size,
            upper=args.upper,
            lower=args.lower,
            iterations=args.iterations,
            input_lr_scale=args.input_lr_scale,
            momentum=args.momentum,
            method=args.method,
            k=args.k,
            scale=args.scale,
            trainer=args.trainer,
            variant=args.variant,
        )
        for seed in args.seed
    ]
    results = measure_eta_star_seeds(inputs, data, journals)
    for result, out in zip(results, outs, strict=True):
        if out:
            write_json(out, result)
        flags = " (no probe succeeded)" if result.no_success else ""
        flags += " (upper bound u never failed: raise --upper)" if result.hit_upper_bound else ""
        print(
            f"seed {result.inputs.seed}: eta* = {result.eta_star:.6g}  bracket "
            f"[{result.bracket_low:.6g}, {result.bracket_high:.6g}]  {len(result.probes)} probes, "
            f"{result.wall_time_s:.1f} s on {device}{flags}"
        )


def cmd_sharpness(args: argparse.Namespace) -> None:
    from milr.io import write_json
    from milr.sharpness import SharpnessInputs, measure_sharpness

    device = resolve_device(args.device, args.gpu_lock_dir)
    set_threads(args)
    data = load_dataset(args, device)
    inputs = SharpnessInputs(
        dataset=args.dataset,
        depth=args.depth,
        width=args.width,
        seed=args.seed,
        samples=args.samples,
        max_iter=args.max_iter,
        tol=args.tol,
    )
    result = measure_sharpness(inputs, data)
    if args.out:
        write_json(args.out, result)
    print(f"lambda1 = {result.lambda1:.6g}  ({result.samples_used} samples, {device})")


def cmd_aggregate(args: argparse.Namespace) -> None:
    from milr.io import write_atomic
    from milr.tables import collect, split_by_kind

    eta_paths, sharp_paths = split_by_kind(args.results)
    eta = collect(eta_paths, "eta", args.allow_missing)
    sharp = collect(sharp_paths, "sharpness", args.allow_missing)
    write_atomic(args.eta_out, eta.to_csv(index=False))
    write_atomic(args.sharpness_out, sharp.to_csv(index=False))
    missing = int((eta["status"] == "missing").sum() + (sharp["status"] == "missing").sum())
    print(f"{len(eta)} eta* rows, {len(sharp)} sharpness rows, {missing} missing")


def cmd_fit(args: argparse.Namespace) -> None:
    import pandas as pd

    from milr.fit import FitOptions, fit_tables
    from milr.io import write_atomic

    eta = pd.read_csv(args.eta)
    sharp = pd.read_csv(args.sharpness)
    eta = eta[eta["status"] == "ok"]
    sharp = sharp[sharp["status"] == "ok"]
    options = FitOptions(
        min_width_over_depth=args.min_width_over_depth,
        max_relative_bracket=args.max_relative_bracket,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    fits = fit_tables(eta, sharp, options)
    write_atomic(args.out, fits.to_csv(index=False))
    print(f"{len(fits)} fits written to {args.out}")


def cmd_figure(args: argparse.Namespace) -> None:
    import json

    import pandas as pd

    from milr.figures import FIGURES, FigureSpec, draw, save

    if args.name not in FIGURES:
        raise MilrError(f"unknown figure {args.name!r}; choose one of {', '.join(FIGURES)}")
    try:
        spec = FigureSpec.from_json(args.spec)
    except (json.JSONDecodeError, TypeError) as err:
        raise MilrError(f"--spec is not a valid figure spec ({err})") from err
    drawn = draw(
        args.name,
        pd.read_csv(args.eta),
        pd.read_csv(args.sharpness),
        pd.read_csv(args.fits),
        spec,
    )
    save(drawn, args.png, args.pdf, args.caption)
    print(f"{args.name}: {args.png} ({drawn.caption[:80]}...)")


COMMANDS = {
    "prepare": cmd_prepare,
    "bisect": cmd_bisect,
    "sharpness": cmd_sharpness,
    "aggregate": cmd_aggregate,
    "fit": cmd_fit,
    "figure": cmd_figure,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        COMMANDS[args.command](args)
    except MilrError as err:
        sys.stderr.write(f"milr: error: {err}\n")
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
