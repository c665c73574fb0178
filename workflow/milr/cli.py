"""The milr command line: the steps the workflow's rules call.

Every subcommand checks its inputs and that its outputs can be written before any work, writes
atomically and logs progress to stderr. A problem is one line "milr: error: ...": exit status 2
for bad input, 1 for a failure while working; --debug (or MILR_DEBUG=1) shows the traceback.
The options of every setting (type, bounds, default, help) come from milr.settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
from pathlib import Path

from milr import MilrError, MilrFailure, __version__
from milr.io import check_writable, read_table, study_tables, to_jsonable
from milr.memory import check_fits, networks_at_once
from milr.names import DATASETS, FIGURES, LAW_NAMES, THEN
from milr.records import RangeTestInputs, SearchInputs, SharpnessInputs, Study
from milr.settings import (
    SAFE_FRACTION,
    FindSettings,
    FitOptions,
    GaussianSpec,
    Mnist1dSpec,
    PredictOptions,
    SubsetSpec,
    add_options,
    bounded,
    from_args,
)

log = logging.getLogger("milr")
EXIT_USAGE = 2
EXIT_FAILURE = 1
# Options that name files a command writes: each is checked writable before any work.
OUTPUT_OPTIONS = ("out", "journal", "eta_out", "sharpness_out", "probes_out", "study_out", "png",
                  "pdf", "caption", "summary_out", "laws_out", "slopes_out")  # fmt: skip


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (unless the help already says it); descriptions keep
    their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default is argparse.SUPPRESS
        if nothing or (isinstance(default, str | list) and not default) or "default" in text:
            return text
        return text + " (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as one line, without the usage block."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"milr: error: {message}\n")
        sys.exit(EXIT_USAGE)


def add_global_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """-q and --debug, accepted before the command's name and after it (``default`` SUPPRESS on
    a command: the value given before the name is kept unless repeated after it)."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="log warnings only"
    )
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show tracebacks (or MILR_DEBUG=1)"
    )


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"input file {path} does not exist")
    return path


def name_value(kind: type):
    """``NAME=VALUE`` pairs (``--main-threshold mnist=0.925``)."""

    def parse(text: str) -> tuple[str, float]:
        name, sep, value = text.partition("=")
        try:
            return name, kind(value) if sep else kind("")
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME={kind.__name__}") from err

    return parse


def architecture(text: str) -> tuple[int, int]:
    """``DEPTHxWIDTH`` (``4x512``), each a whole number >= 1 like --depth and --width."""
    depth, _, width = text.partition("x")
    try:
        arch = int(depth), int(width)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not DEPTHxWIDTH, e.g. 4x512") from err
    if min(arch) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: depth and width must be >= 1 (DEPTHxWIDTH, e.g. 4x512)"
        )
    return arch


def resolve_device(
    choice: str, gpu_lock_dir: Path | None = None, wait_s: float = 3600, jobs_per_gpu: int = 1
) -> str:
    """``auto`` = CUDA when available. For CUDA, take a GPU slot before CUDA initialises."""
    from milr.gpu import acquire_gpu_slot, require_gpus

    if choice == "cuda" and (problem := require_gpus(listed=False)):
        raise MilrFailure(problem)
    if choice in ("auto", "cuda"):
        slot = acquire_gpu_slot(lock_dir=gpu_lock_dir, timeout_s=wait_s, jobs_per_gpu=jobs_per_gpu)
        import torch

        if torch.cuda.is_available():
            log.info("device cuda (%s), slot %s", torch.cuda.get_device_name(0), slot.gpu_id)
            return "cuda"
        if choice == "cuda":
            raise MilrFailure("--device cuda asked for, but torch sees no CUDA device; use cpu")
    return "cpu"


# --seed of the commands that run several seeds of one architecture in one job
SEEDS_OPTION = {
    "nargs": "+",
    "default": [0],
    "help": "one or more seeds; several run in one job, one result file each",
}


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: CUDA when torch sees a GPU",
    )
    parser.add_argument(
        "--threads", type=bounded(int, minimum=1), default=None, help="CPU threads (torch default)"
    )
    parser.add_argument(
        "--gpu-wait",
        type=bounded(float, minimum=0),
        default=os.environ.get("MILR_GPU_WAIT_S", "3600"),  # a string: argparse checks it
        help="seconds to wait for a free GPU slot before giving up ($MILR_GPU_WAIT_S)",
    )
    parser.add_argument(
        "--jobs-per-gpu",
        type=bounded(int, minimum=1),
        default=os.environ.get("MILR_JOBS_PER_GPU", "1"),
        help="jobs that may share one GPU: slots per device ($MILR_JOBS_PER_GPU; default 1)",
    )
    parser.add_argument(
        "--gpu-lock-dir",
        type=Path,
        default=None,
        help="folder of the GPU slot locks, private to you (default: $MILR_GPU_LOCK_DIR, else "
        "$XDG_RUNTIME_DIR/milr-gpu-locks, else <temp dir>/milr-gpu-locks-<uid>)",
    )


def add_list(parser: argparse.ArgumentParser, flag: str, kind, metavar: str, text: str) -> None:
    """A repeatable option (``--flag A --flag B``) whose values collect in a list."""
    parser.add_argument(flag, type=kind, action="append", default=[], metavar=metavar, help=text)


def add_data(parser: argparse.ArgumentParser) -> None:
    """The dataset cache, or (Gaussian only) the task's settings to draw it in memory."""
    parser.add_argument("--data", type=existing_file, help="cache file from 'milr prepare'")
    add_options(parser, GaussianSpec, prefix="gaussian-")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="milr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"milr {__version__}")
    add_global_flags(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=summary.replace("%", "%%"), description=summary)
        add_global_flags(cmd, default=argparse.SUPPRESS)  # also after the command's name
        return cmd

    prep = command(
        "prepare",
        "read or download (MNIST, Fashion-MNIST, CIFAR-10) or generate a dataset into a cache file",
    )
    prep.add_argument("--dataset", choices=DATASETS, required=True, help="dataset to prepare")
    prep.add_argument("--out", type=Path, required=True, help="cache file to write")
    prep.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("MILR_DATA_DIR", "data")),
        help="raw torchvision files (default: $MILR_DATA_DIR or data)",
    )
    prep.add_argument("--no-download", action="store_true", help="use files placed by hand")
    add_options(prep, GaussianSpec, prefix="gaussian-")
    add_options(prep, Mnist1dSpec, prefix="mnist1d-")
    add_options(prep, SubsetSpec, prefix="subset-")

    bis = command("bisect", "search η* for one architecture and one or more seeds")
    add_options(
        bis,
        SearchInputs,
        overrides={"seed": SEEDS_OPTION},
    )
    add_data(bis)
    bis.add_argument(
        "--journal",
        type=Path,
        nargs="+",
        help="resume file per seed (default: <out>.journal.jsonl)",
    )
    bis.add_argument("--out", type=Path, nargs="+", help="result JSON per seed (default: print)")
    add_device(bis)

    find = command("find", "η* of any PyTorch network: the model a factory in a Python file builds")
    find.add_argument("--model", required=True, metavar="FILE.py:FACTORY",
                      help="a function of the seed that returns a fresh nn.Module")  # fmt: skip
    find.add_argument("--dataset", choices=DATASETS, required=True, help="dataset it learns")
    add_data(find)
    add_options(find, FindSettings)
    find.add_argument("--seed", type=bounded(int, minimum=0), nargs="+", default=[0],
                      help="initialisation seeds: a fresh model each, at every rate")  # fmt: skip
    find.add_argument("--order-seed", type=bounded(int, minimum=0), nargs="+",
                      help="minibatch-order seed per --seed (default: the same seeds)")  # fmt: skip
    find.add_argument("--fraction", type=bounded(float, above=0, maximum=1),
                      default=SAFE_FRACTION, help="recommend this fraction of η*")  # fmt: skip
    find.add_argument("--out", type=Path, help="also write every training and the bracket as JSON")
    add_device(find)

    sharp = command("sharpness", "λ1 at initialisation for one architecture and its seeds")
    add_options(sharp, SharpnessInputs, overrides={"seed": SEEDS_OPTION})
    add_list(
        sharp,
        "--input-lr-variant",
        name_value(float),
        "NAME=FACTOR",
        "also measure λ1 of P^1/2 H P^1/2 with the input layer at this factor",
    )
    add_data(sharp)
    sharp.add_argument("--out", type=Path, nargs="+", help="result JSON per seed (default: print)")
    add_device(sharp)

    agg = command("aggregate", "tidy CSV tables (and the study file) from result JSON files")
    agg.add_argument("results", nargs="*", help="bisect/ and sharpness/ result files")
    agg.add_argument("--eta-out", type=Path, required=True, help="η* table, one row per job")
    agg.add_argument("--sharpness-out", type=Path, required=True, help="λ1 table")
    agg.add_argument("--probes-out", type=Path, help="probe table, one row per probe")
    agg.add_argument("--study-out", type=Path, help="study file the figures read")
    agg.add_argument("--allow-missing", action="store_true", help="list absent files as rows")
    add_list(
        agg,
        "--main-threshold",
        name_value(float),
        "DATASET=T",
        "each dataset's main t (others are its sweep)",
    )
    add_list(
        agg,
        "--input-lr-variant",
        name_value(float),
        "NAME=FACTOR",
        "input-layer learning-rate variants",
    )
    agg.add_argument("--primary-variant", default="small", help="variant of the headline figure")
    add_list(
        agg,
        "--sweep-architecture",
        architecture,
        "DEPTHxWIDTH",
        "architectures of the threshold sweep",
    )

    fit = command("fit", "power-law fits against depth × width, with 95% intervals")
    fit.add_argument("--eta", type=existing_file, required=True, help="η* table")
    fit.add_argument("--sharpness", type=existing_file, required=True, help="λ1 table")
    fit.add_argument("--out", type=Path, required=True, help="fits table to write")
    fit.add_argument(
        "--laws-out", type=Path, help="also compare the paper's law with its rivals (laws.csv)"
    )
    fit.add_argument(
        "--slopes-out",
        type=Path,
        help="also the width exponent within each depth and the depth one within each width",
    )
    fit.add_argument("--study", type=existing_file, help="study.json: checks the tables' rows")
    add_options(fit, FitOptions)

    rt = command("range-test", "the learning-rate range test (the LR finder) of one architecture")
    add_options(rt, RangeTestInputs, overrides={"seed": SEEDS_OPTION})
    add_data(rt)
    rt.add_argument("--out", type=Path, nargs="+", help="result JSON per seed (default: print)")
    add_device(rt)

    finder = command("lr-finder", "compare range-test suggestions with η* (table and summary)")
    finder.add_argument("results", nargs="+", type=existing_file, help="range-test result files")
    finder.add_argument("--eta", type=existing_file, required=True, help="η* table")
    finder.add_argument("--study", type=existing_file, required=True, help="study.json")
    finder.add_argument("--out", type=Path, required=True, help="table, one row per network")
    finder.add_argument("--summary-out", type=Path, required=True, help="fractions and ratios")

    val = command("validate", "leave-one-architecture-out check of the laws' prediction intervals")
    val.add_argument("--eta", type=existing_file, required=True, help="η* table")
    val.add_argument("--fits", type=existing_file, required=True, help="fits table (milr fit)")
    val.add_argument("--out", type=Path, required=True, help="one row per left-out architecture")
    val.add_argument("--summary-out", type=Path, required=True, help="coverage per law")
    val.add_argument("--study", type=existing_file, help="study.json: checks the tables' rows")
    add_options(val, PredictOptions, skip=("min_r2",))

    pred = command("predict", "η* of new architectures from a finished study's law")
    pred.add_argument(
        "--tables",
        type=Path,
        default=Path("results/tables"),
        help="the study's tables folder (eta_star.csv, fits.csv, study.json)",
    )
    pred.add_argument("--dataset", choices=DATASETS, required=True, help="dataset of the law")
    pred.add_argument("--variant", help="input-layer variant (default: the study's primary)")
    pred.add_argument(
        "--threshold", type=bounded(float, above=0, maximum=1), help="t (default: the main t)"
    )
    add_list(pred, "--arch", architecture, "DEPTHxWIDTH", "an architecture to predict")
    pred.add_argument("--depths", type=bounded(int, minimum=1), nargs="+", default=[],
                      help="with --widths: predict every depth x width of the grid")  # fmt: skip
    pred.add_argument("--widths", type=bounded(int, minimum=1), nargs="+", default=[],
                      help="with --depths: predict every depth x width of the grid")  # fmt: skip
    pred.add_argument(
        "--law",
        choices=(*LAW_NAMES, "best"),
        default="product",
        help="the paper's product law (default), a rival (milr.laws), or best: the law whose "
        "leave-one-out errors beat every other's (else the product law), named in the output",
    )
    add_options(pred, PredictOptions)
    pred.add_argument("--out", type=Path, help="also write the predictions as CSV")

    summ = command("summary", "a finished study's numbers as Markdown (the README's results)")
    summ.add_argument(
        "--tables", type=Path, required=True, help="the study's tables folder, e.g. results/tables"
    )
    summ.add_argument("--readme", type=Path, help="a Markdown file with the summary's markers")
    mode = summ.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="put the summary into --readme")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 with a diff if --readme differs from it"
    )

    figure = command("figure", "draw one paper figure from the tables and the study file")
    figure.add_argument(
        "name", choices=FIGURES, metavar="NAME", help=f"figure to draw: {', '.join(FIGURES)}"
    )
    for table, what in (
        ("eta", "η* table (milr aggregate --eta-out)"),
        ("sharpness", "λ1 table (milr aggregate --sharpness-out)"),
        ("fits", "fits table (milr fit --out)"),
        ("probes", "probe table (milr aggregate --probes-out)"),
    ):
        figure.add_argument(
            f"--{table}",
            type=existing_file,
            required=table != "probes",  # so that an old command line reaches the pointer below
            help=what,
        )
    figure.add_argument("--study", type=existing_file, help="study.json (milr aggregate)")
    figure.add_argument("--loao", type=existing_file, help="loao.csv (milr validate)")
    figure.add_argument("--lr-finder", type=existing_file, help="lr_finder.csv (milr lr-finder)")
    figure.add_argument("--laws", type=existing_file, help="laws.csv (milr fit --laws-out)")
    figure.add_argument("--config-name", default="config.yaml", help="config named in captions")
    figure.add_argument("--spec", help=argparse.SUPPRESS)  # an old name: replaced by --study
    for output in ("png", "pdf", "caption"):
        figure.add_argument(f"--{output}", type=Path, required=True, help=f"{output} to write")

    together = command(
        "together",
        f"run several job commands ({', '.join(JOB_CHECKS)}) in one process: one GPU "
        "slot, one CUDA start-up and one data load for them all",
    )
    together.usage = (
        f"milr together [DEVICE OPTIONS] {THEN} COMMAND [OPTIONS] [{THEN} COMMAND [OPTIONS] ...]"
    )
    add_device(together)  # the process's: every command gets them
    together.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        metavar="...",
        help=f"'{THEN} COMMAND OPTIONS' per command, run in order (device options are given "
        "once, before the first command); every command is checked before the first one runs",
    )
    return parser


@functools.lru_cache(maxsize=1)
def _load_cache(path: Path, device: str, stamp: tuple[int, int]):
    """One load per file, device and file version in a process: ``milr together``'s commands
    share it (nothing downstream writes into a dataset's tensors)."""
    from milr.data import load_cache

    return load_cache(path, device)


def load_dataset(args: argparse.Namespace, dataset: str, device: str):
    """The cached dataset, or (Gaussian only) the task drawn in memory from its settings."""
    from milr.data import make_gaussian, payload_to_dataset

    if args.data is not None:
        info = args.data.stat()
        data = _load_cache(args.data.resolve(), device, (info.st_mtime_ns, info.st_size))
        if data.name != dataset:
            raise MilrError(f"--data {args.data} holds {data.name}, not --dataset {dataset}")
        return data
    if dataset != "gaussian":
        raise MilrError(f"--data is required for {dataset}; make it with 'milr prepare'")
    spec = from_args(GaussianSpec, args, prefix="gaussian-")
    return payload_to_dataset(make_gaussian(spec), device)


def check_memory(args: argparse.Namespace, device: str, networks: int) -> None:
    """Stop before the data load when the network cannot fit on the device (milr.memory)."""
    limit = None
    if device == "cuda":
        import torch

        limit = torch.cuda.get_device_properties(0).total_memory
    dim = from_args(GaussianSpec, args, prefix="gaussian-").dim
    check_fits(args.dataset, dim, args.depth, args.width, networks, limit)


def prepare_device(args: argparse.Namespace) -> str:
    """The device (GPU slot taken first) and the CPU thread count."""
    device = resolve_device(args.device, args.gpu_lock_dir, args.gpu_wait, args.jobs_per_gpu)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    log.info("device %s, %s CPU threads", device, args.threads or "default")
    return device


def cmd_prepare(args: argparse.Namespace) -> None:
    from milr.data import prepare

    info = prepare(
        args.dataset,
        args.out,
        args.data_dir,
        gaussian=from_args(GaussianSpec, args, prefix="gaussian-"),
        mnist1d=from_args(Mnist1dSpec, args, prefix="mnist1d-"),
        download=not args.no_download,
        subset=from_args(SubsetSpec, args, prefix="subset-"),
    )
    print(f"{args.dataset}: cached in {args.out} ({info})")


def _per_seed(paths: list[Path] | None, seeds: list[int], flag: str) -> list[Path | None]:
    """One output per seed (None: print only); the seeds themselves must differ."""
    if len(set(seeds)) != len(seeds):
        raise MilrError(f"--seed lists a seed twice: {seeds}")
    if paths is None:
        return [None] * len(seeds)
    if len(paths) != len(seeds):
        raise MilrError(
            f"{flag} needs one path per --seed ({len(seeds)} seeds, {len(paths)} paths)"
        )
    return list(paths)


def bisect_job(args: argparse.Namespace) -> tuple[list[SearchInputs], list, list]:
    """Every input of ``milr bisect`` checked (by the settings' bounds) before any data is
    touched: the searches, and each seed's result file and journal."""
    inputs = [from_args(SearchInputs, args, seed=seed) for seed in args.seed]
    outs = _per_seed(args.out, args.seed, "--out")
    journals = [
        j or (o.with_name(o.name + ".journal.jsonl") if o else None)
        for j, o in zip(_per_seed(args.journal, args.seed, "--journal"), outs, strict=True)
    ]
    return inputs, outs, journals


def sharpness_job(args: argparse.Namespace) -> tuple[list[SharpnessInputs], list]:
    """Every input of ``milr sharpness``, checked: each seed's measurement and result file."""
    variants = dict(args.input_lr_variant)
    inputs = [from_args(SharpnessInputs, args, seed=seed, input_lr_variants=variants)
              for seed in args.seed]  # fmt: skip
    return inputs, _per_seed(args.out, args.seed, "--out")


def range_test_job(args: argparse.Namespace) -> tuple[list[RangeTestInputs], list]:
    """Every input of ``milr range-test``, checked (the ramp too): each seed's test and file."""
    from milr.range_test import ramp

    inputs = [from_args(RangeTestInputs, args, seed=seed) for seed in args.seed]
    ramp(inputs[0].range_test)
    return inputs, _per_seed(args.out, args.seed, "--out")


def cmd_bisect(args: argparse.Namespace) -> None:
    from milr.io import write_json
    from milr.measure import measure_eta_star_seeds

    inputs, outs, journals = bisect_job(args)
    log.info("milr bisect: %s", json.dumps(to_jsonable(inputs[0]) | {"seeds": args.seed}))
    device = prepare_device(args)
    search = inputs[0].search
    check_memory(
        args, device, networks_at_once(len(inputs), search.method, search.k, search.trainer)
    )
    data = load_dataset(args, args.dataset, device)
    for result, out in zip(measure_eta_star_seeds(inputs, data, journals), outs, strict=True):
        if out:
            write_json(out, result)
        flags = " (no probe succeeded)" if result.no_success else ""
        flags += " (upper bound u never failed: raise --upper)" if result.hit_upper_bound else ""
        print(
            f"seed {result.inputs.network.seed}: eta* = {result.eta_star:.6g}  bracket "
            f"[{result.bracket_low:.6g}, {result.bracket_high:.6g}]  {len(result.probes)} probes, "
            f"{result.wall_time_s:.1f} s on {device}{flags}"
        )


def cmd_find(args: argparse.Namespace) -> None:
    from milr.find import factory_from, find_eta_star
    from milr.io import write_json

    orders = tuple(args.order_seed) if args.order_seed else None
    settings = from_args(FindSettings, args, seeds=tuple(args.seed), data_seeds=orders)
    factory = factory_from(args.model)  # before the data: a bad --model costs nothing
    device = prepare_device(args)
    data = load_dataset(args, args.dataset, device)
    result = find_eta_star(factory, (data.x_train, data.y_train), (data.x_val, data.y_val),
                           settings, device=device)  # fmt: skip
    if args.out:
        recommended = result.recommended(args.fraction)
        write_json(args.out, to_jsonable(result) | {"recommended": recommended})
    print(result.describe(args.fraction))
    if not result.verdicts:
        where = f" (its trainings are in {args.out})" if args.out else ""
        raise MilrError(
            f"the budget ran out before one rate was decided{where}: raise --max-seconds or "
            "--max-probes"
        )


def cmd_sharpness(args: argparse.Namespace) -> None:
    from milr.io import write_json
    from milr.sharpness import measure_sharpness

    inputs, outs = sharpness_job(args)
    log.info("milr sharpness: %s", json.dumps(to_jsonable(inputs[0]) | {"seeds": args.seed}))
    device = prepare_device(args)
    check_memory(args, device, 1)
    data = load_dataset(args, args.dataset, device)  # one load (and CUDA start) for every seed
    for one, out in zip(inputs, outs, strict=True):
        result = measure_sharpness(one, data)
        if out:
            write_json(out, result)
        print(f"seed {one.network.seed}: lambda1 = {result.lambda1:.6g}  "
              f"({result.samples_used} samples, {device})")  # fmt: skip


def cmd_range_test(args: argparse.Namespace) -> None:
    from milr.io import write_json
    from milr.range_test import lr_range_test

    inputs, outs = range_test_job(args)
    log.info("milr range-test: %s", json.dumps(to_jsonable(inputs[0]) | {"seeds": args.seed}))
    device = prepare_device(args)
    check_memory(args, device, 1)
    data = load_dataset(args, args.dataset, device)
    for one, out in zip(inputs, outs, strict=True):
        result = lr_range_test(one, data)
        if out:
            write_json(out, result)
        stop = ", stopped on divergence" if result.diverged else ""
        print(
            f"seed {one.network.seed}: steepest {result.steepest:.4g}, minimum/10 "
            f"{result.minimum_over_10:.4g} ({len(result.lrs)} steps{stop}, {device})"
        )


# The commands ``milr together`` may run (the jobs that take a GPU slot; the others are quick
# host steps), each with the check of its inputs that together runs for all before any work.
JOB_CHECKS = {"bisect": bisect_job, "sharpness": sharpness_job, "range-test": range_test_job}


def split_together(words: list[str]) -> list[list[str]]:
    """``milr together``'s words, one list per command (its name first)."""
    groups: list[list[str]] = [[]]
    for word in words:
        if word == THEN:
            groups.append([])
        else:
            groups[-1].append(word)
    example = f"e.g. milr together {THEN} sharpness OPTIONS {THEN} range-test OPTIONS"
    if groups[0] or len(groups) == 1 or not all(groups[1:]):
        raise MilrError(f"milr together needs '{THEN} COMMAND [OPTIONS]' per command ({example})")
    for command in groups[1:]:
        if command[0] not in JOB_CHECKS:
            raise MilrError(
                f"milr together runs {', '.join(JOB_CHECKS)}, not {command[0]!r} ({example})"
            )
    return groups[1:]


def cmd_together(args: argparse.Namespace) -> None:
    """Every command is parsed and its outputs checked before the first one runs; they then run
    in order in this process, so the GPU slot, CUDA context and data load are paid once (the
    first command takes the slot; the rest find the device already chosen)."""
    device = ["--device", args.device, "--gpu-wait", str(args.gpu_wait)]
    device += ["--jobs-per-gpu", str(args.jobs_per_gpu)]
    device += ["--threads", str(args.threads)] if args.threads else []
    device += ["--gpu-lock-dir", str(args.gpu_lock_dir)] if args.gpu_lock_dir else []
    parser = build_parser()
    jobs = [parser.parse_args([*words, *device]) for words in split_together(args.words)]
    for job in jobs:
        check_outputs(job)
        JOB_CHECKS[job.command](job)
    for number, job in enumerate(jobs, 1):
        log.info("milr together: command %d of %d: %s", number, len(jobs), job.command)
        COMMANDS[job.command](job)


def read_study(path: Path) -> Study:
    from milr.io import read_json
    from milr.settings import from_json

    try:
        return from_json(Study, read_json(path))
    except TypeError as err:
        raise MilrError(f"{path} is not a study file ({err}); rerun milr aggregate") from err


def study_rows(path: Path | None) -> dict[str, int]:
    """Rows per table that study.json records, when a study is given."""
    return read_study(path).rows if path is not None else {}


def cmd_lr_finder(args: argparse.Namespace) -> None:
    from milr.baseline import compare, range_test_rows, summary
    from milr.io import write_atomic

    study = read_study(args.study)
    eta = read_table(args.eta, ("status", "dataset", "variant", "threshold", "bracket_low"),
                     study.rows.get("eta"))  # fmt: skip
    table = compare(range_test_rows(args.results), eta, study.thresholds)
    write_atomic(args.out, table.to_csv(index=False))
    write_atomic(args.summary_out, summary(table).to_csv(index=False))
    print(f"{len(table)} range tests compared with η*: {args.out}")


def cmd_validate(args: argparse.Namespace) -> None:
    from milr.io import write_atomic
    from milr.predict import coverage, leave_one_out

    rows = study_rows(args.study)
    eta = read_table(args.eta, ("status", "dataset", "variant", "threshold", "bracket_low"),
                     rows.get("eta"))  # fmt: skip
    fits = read_table(args.fits, ("quantity", "dataset", "variant", "min_width_over_depth"))
    loao = leave_one_out(eta, fits, from_args(PredictOptions, args, min_r2=0.0))
    write_atomic(args.out, loao.to_csv(index=False))
    cover = coverage(loao)
    write_atomic(args.summary_out, cover.to_csv(index=False))
    for row in cover.itertuples():
        print(f"{row.dataset}/{row.variant} t={row.threshold:g}, {row.law} law: {row.covered}/"
              f"{row.architectures} inside the {row.level:.0%} intervals")  # fmt: skip


def cmd_predict(args: argparse.Namespace) -> None:
    from milr.io import write_atomic
    from milr.predict import predict_table

    if bool(args.depths) != bool(args.widths):
        raise MilrError("--depths and --widths go together (a grid); or give --arch DEPTHxWIDTH")
    archs = list(args.arch) + [(d, w) for d in args.depths for w in args.widths]
    if not archs:
        raise MilrError("nothing to predict: give --arch DEPTHxWIDTH or --depths ... --widths ...")
    tables = study_tables(args.tables)
    study = read_study(tables / "study.json")
    eta = read_table(tables / "eta_star.csv", ("status", "dataset", "variant", "threshold"),
                     study.rows.get("eta"))  # fmt: skip
    fits = read_table(tables / "fits.csv", ("quantity", "dataset", "variant", "r2"))
    report, table = predict_table(eta, fits, study, args.dataset, args.variant, args.threshold,
                                  archs, from_args(PredictOptions, args), args.law)  # fmt: skip
    print(report)
    if args.out:
        write_atomic(args.out, table.to_csv(index=False))


def study_from_args(args: argparse.Namespace) -> Study | None:
    if not args.main_threshold:
        return None
    return Study(
        thresholds=dict(args.main_threshold),
        input_lr_variants=dict(args.input_lr_variant),
        primary_variant=args.primary_variant,
        sweep_architectures=list(args.sweep_architecture),
    )


def cmd_aggregate(args: argparse.Namespace) -> None:
    from milr.io import write_atomic, write_json
    from milr.tables import collect, split_by_kind

    study = study_from_args(args)
    if args.study_out and study is None:
        raise MilrError("--study-out needs the study: give --main-threshold DATASET=T per dataset")
    if not args.results:
        raise MilrError(
            "no result files given: pass the bisect and sharpness JSON files, e.g. "
            "$(find results/mnist1d/bisect results/mnist1d/sharpness -name '*.json')"
        )
    eta_paths, sharp_paths = split_by_kind(args.results)
    eta, probes = collect(eta_paths, "eta", args.allow_missing, study)
    sharp, _ = collect(sharp_paths, "sharpness", args.allow_missing)
    if study is not None:
        study = dataclasses.replace(
            study, rows={"eta": len(eta), "sharpness": len(sharp), "probes": len(probes)}
        )
    write_atomic(args.eta_out, eta.to_csv(index=False))
    write_atomic(args.sharpness_out, sharp.to_csv(index=False))
    if args.probes_out:
        write_atomic(args.probes_out, probes.to_csv(index=False))
    if args.study_out:
        write_json(args.study_out, study)
    missing = int((eta["status"] == "missing").sum() + (sharp["status"] == "missing").sum())
    print(f"{len(eta)} eta* rows, {len(sharp)} sharpness rows, {missing} missing")


def cmd_fit(args: argparse.Namespace) -> None:

    from milr.fit import fit_tables
    from milr.io import write_atomic

    rows = study_rows(args.study)
    eta = read_table(args.eta, ("status", "depth", "width", "bracket_low", "bracket_high"),
                     rows.get("eta"))  # fmt: skip
    sharp = read_table(args.sharpness, ("status", "depth", "width", "lambda1"),
                       rows.get("sharpness"))  # fmt: skip
    options = from_args(FitOptions, args)
    fits = fit_tables(eta[eta["status"] == "ok"], sharp[sharp["status"] == "ok"], options)
    extra = {}
    if args.laws_out:
        from milr.laws import laws_table

        extra[args.laws_out] = ("laws", laws_table(eta[eta["status"] == "ok"], options))
    if args.slopes_out:
        from milr.evidence import slopes_table

        extra[args.slopes_out] = ("slopes", slopes_table(eta[eta["status"] == "ok"], options))
    write_atomic(args.out, fits.to_csv(index=False))
    print(f"{len(fits)} fits written to {args.out}")
    for path, (what, table) in extra.items():
        write_atomic(path, table.to_csv(index=False))
        print(f"{len(table)} {what} written to {path}")


def cmd_figure(args: argparse.Namespace) -> None:

    from milr.figures import Tables, draw, save

    if args.spec is not None or args.study is None or args.probes is None:
        raise MilrError(
            "milr figure needs --study and --probes, both written by milr aggregate "
            "(--study-out, --probes-out); --spec is no longer read"
        )
    study = read_study(args.study)
    extra = {
        "loao": (args.loao, ("measured", "predicted", "low", "high")),
        "lr_finder": (args.lr_finder, ("eta_star", "steepest", "minimum_over_10")),
        "laws": (args.laws, ("law", "a", "b", "C")),
    }
    tables = Tables(
        read_table(
            args.eta, ("status", "dataset", "variant", "role", "eta_star"), study.rows.get("eta")
        ),
        read_table(args.sharpness, ("status", "dataset", "lambda1"), study.rows.get("sharpness")),
        read_table(args.fits, ("quantity", "dataset")),
        read_table(args.probes, ("dataset", "lr", "success"), study.rows.get("probes")),
        study=study,
        config_name=args.config_name,
        **{
            name: read_table(path, cols, may_be_empty=True)
            for name, (path, cols) in extra.items()
            if path
        },
    )
    drawn = draw(args.name, tables)
    save(drawn, args.png, args.pdf, args.caption)
    print(f"{args.name}: {args.png} ({drawn.caption[:80]}...)")


def cmd_summary(args: argparse.Namespace) -> None:
    from milr.summary import summary, update_readme

    if (args.write or args.check) and args.readme is None:
        raise MilrError("--write and --check need --readme FILE (the Markdown to update)")
    if args.readme is None:
        print(summary(args.tables), end="")
        return
    if not args.readme.is_file():
        raise MilrError(f"--readme {args.readme} does not exist")
    diff = update_readme(args.readme, args.tables, check=args.check)
    if diff:
        print("\n".join(diff))
        raise MilrFailure(
            f"{args.readme} differs from the summary of {args.tables} (diff above); "
            f"rewrite it with: milr summary --tables {args.tables} --readme {args.readme} --write"
        )
    print(f"{args.readme}: summary of {args.tables} {'checked' if args.check else 'written'}")


COMMANDS = {
    "prepare": cmd_prepare,
    "bisect": cmd_bisect,
    "sharpness": cmd_sharpness,
    "aggregate": cmd_aggregate,
    "fit": cmd_fit,
    "range-test": cmd_range_test,
    "lr-finder": cmd_lr_finder,
    "validate": cmd_validate,
    "predict": cmd_predict,
    "find": cmd_find,
    "figure": cmd_figure,
    "summary": cmd_summary,
    "together": cmd_together,
}


def check_outputs(args: argparse.Namespace) -> None:
    """Every output the command will write can be written: found now, not after the work."""
    for name in OUTPUT_OPTIONS:
        value = getattr(args, name, None)
        for path in value if isinstance(value, list) else [value]:
            if path is not None:
                check_writable(path, "--" + name.replace("_", "-"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # milr alone: what it can do
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    debug = args.debug or os.environ.get("MILR_DEBUG", "") not in ("", "0")
    log.info("milr %s", " ".join(sys.argv[1:] if argv is None else argv))  # the job's inputs
    try:
        check_outputs(args)
        COMMANDS[args.command](args)
    except MilrError as err:
        if debug:
            raise
        sys.stderr.write(f"milr: error: {err}\n")
        return EXIT_FAILURE if isinstance(err, MilrFailure) else EXIT_USAGE
    except Exception as err:  # a bug or an environment problem: one line unless --debug
        if debug:
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        sys.stderr.write(
            f"milr: error: {args.command} failed: {type(err).__name__}: {first} "
            "(rerun with --debug for the traceback)\n"
        )
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
