"""The study plan: which jobs a validated config asks for, and each job's flags.

The Snakefile stays thin: it asks this module which result files the config implies and which
command-line flags each job gets. The flags are derived from the settings dataclasses
(:mod:`milr.settings`), so every knob reaches its job by one definition. Torch-free.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from milr.names import (
    BISECT_PATTERN,
    DATA_PATTERN,
    FIGURES,
    RANGE_TEST_PATTERN,
    SHARPNESS_PATTERN,
    THEN,
    format_threshold,
)
from milr.settings import (
    FitOptions,
    PredictOptions,
    RangeTestSettings,
    SearchSpec,
    SharpnessSettings,
    TrainSettings,
    data_spec,
    to_flags,
)

# Config keys under search: that choose how the workflow runs, not what a job computes.
WORKFLOW_ONLY_SEARCH_KEYS = ("batch_seeds",)


def active_datasets(config: Mapping[str, Any]) -> list[str]:
    """The datasets this run studies: ``active_datasets`` if set, else all configured ones.

    Snakemake merges a ``--configfile`` preset into config.yaml key by key, so a preset cannot
    remove a dataset; it names the ones it runs instead.
    """
    return list(config.get("active_datasets") or config["datasets"])


@dataclass(frozen=True)
class BisectJob:
    """One bisection job's wildcards."""

    dataset: str
    variant: str
    threshold: str
    depth: int
    width: int
    seed: int

    def path(self, results: str) -> str:
        return f"{results}/" + BISECT_PATTERN.format(**self.__dict__)


def bisect_jobs(config: Mapping[str, Any]) -> list[BisectJob]:
    """Every (dataset, variant, t, depth, width, seed) the study asks for.

    The full grid runs at each dataset's main t for every input-LR variant; the threshold sweep
    runs only on ``sweep.architectures`` and only for the primary variant, which keeps the
    paper-scale study affordable.
    """
    jobs: dict[BisectJob, None] = {}
    grid = [(d, w) for d in config["grid"]["depths"] for w in config["grid"]["widths"]]
    sweep = [tuple(a) for a in config["sweep"]["architectures"]]
    for name in active_datasets(config):
        ds = config["datasets"][name]
        runs = [(v, ds["threshold"], grid) for v in config["input_lr_variants"]]
        runs += [(config["primary_variant"], t, sweep) for t in ds["threshold_sweep"]]
        for variant, t, archs in runs:
            for depth, width in archs:
                for seed in config["seeds"]:
                    jobs[BisectJob(name, variant, format_threshold(t), depth, width, seed)] = None
    return list(jobs)


def bisect_paths(config: Mapping[str, Any]) -> list[str]:
    return [job.path(config["results"]) for job in bisect_jobs(config)]


def sharpness_path(results: str, dataset: str, depth: int, width: int, seed: int) -> str:
    return f"{results}/" + SHARPNESS_PATTERN.format(
        dataset=dataset, depth=depth, width=width, seed=seed
    )


def range_test_path(
    results: str, dataset: str, variant: str, depth: int, width: int, seed: int
) -> str:
    return f"{results}/" + RANGE_TEST_PATTERN.format(
        dataset=dataset, variant=variant, depth=depth, width=width, seed=seed
    )


def sharpness_paths(config: Mapping[str, Any]) -> list[str]:
    """One λ1 job per dataset x grid architecture x seed."""
    return [
        sharpness_path(config["results"], name, d, w, s)
        for name in active_datasets(config)
        for d in config["grid"]["depths"]
        for w in config["grid"]["widths"]
        for s in config["seeds"]
    ]


def range_test_paths(config: Mapping[str, Any]) -> list[str]:
    """One LR range test per dataset x input-LR variant x grid architecture x seed: the networks
    of the main threshold's η* searches."""
    return [
        range_test_path(config["results"], name, v, d, w, s)
        for name in active_datasets(config)
        for v in config["input_lr_variants"]
        for d in config["grid"]["depths"]
        for w in config["grid"]["widths"]
        for s in config["seeds"]
    ]


def _join(flags: Mapping[str, Any]) -> str:
    return " ".join(f"{k} {shlex.quote(str(v))}" for k, v in flags.items())


def data_args(config: Mapping[str, Any], dataset: str) -> str:
    """``milr prepare`` flags: a generator's settings, or a download's subset (where downloads
    are kept, config's data_dir, reaches the job as MILR_DATA_DIR and changes no result)."""
    section, spec = data_spec(dataset)
    values = config["datasets"][dataset].get(section, {})
    return _join(to_flags(spec(**values), prefix=f"{section}-"))


def search_spec(config: Mapping[str, Any], dataset: str) -> SearchSpec:
    ds = config["datasets"][dataset]
    search = {k: v for k, v in config["search"].items() if k not in WORKFLOW_ONLY_SEARCH_KEYS}
    return SearchSpec(upper=ds["upper"], lower=ds["lower"], start=ds["start"], **search)


def bisect_args(config: Mapping[str, Any], dataset: str, variant: str, threshold: str) -> str:
    """Every knob of one bisection job as flags: a change to any of them reruns the job."""
    train = TrainSettings(
        threshold=float(threshold),
        input_lr_scale=config["input_lr_variants"][variant],
        **config["training"],
    )
    search = search_spec(config, dataset)
    unused = ("k",) if search.method == "bisect" else ()
    return _join({**to_flags(train), **to_flags(search, skip=unused), "--variant": variant})


def sharpness_args(config: Mapping[str, Any]) -> str:
    variants = [f"--input-lr-variant {n}={f!r}" for n, f in config["input_lr_variants"].items()]
    return " ".join([_join(to_flags(SharpnessSettings(**config["sharpness"]))), *variants])


def fit_args(config: Mapping[str, Any]) -> str:
    return _join(to_flags(FitOptions(**config["fit"])))


def range_test_args(config: Mapping[str, Any], variant: str) -> str:
    """Every knob of one range-test job: the ramp, and the search's batch size, momentum and
    input-layer factor."""
    training = config["training"]
    inputs = {
        **to_flags(RangeTestSettings(**config["range_test"])),
        "--input-lr-scale": config["input_lr_variants"][variant],
        "--batch-size": training["batch_size"],
        "--momentum": training["momentum"],
        "--variant": variant,
    }
    return _join(inputs)


def small_jobs_commands(config: Mapping[str, Any], dataset: str, depth: int, width: int) -> str:
    """``milr together``'s commands for one architecture (config ``small_jobs_together``): its
    λ1 job and one range test per input-LR variant, with the flags and result files the separate
    rules give them, so that both ways compute and write the same."""
    seeds = config["seeds"]
    results = config["results"]
    data = f"{results}/" + DATA_PATTERN.format(dataset=dataset)
    network = f"--dataset {dataset} --data {shlex.quote(data)} --depth {depth} --width {width}"
    network += " --seed " + " ".join(str(s) for s in seeds)
    outs = [sharpness_path(results, dataset, depth, width, s) for s in seeds]
    commands = [f"{THEN} sharpness {network} {sharpness_args(config)} --out {_paths(outs)}"]
    for variant in config["input_lr_variants"]:
        outs = [range_test_path(results, dataset, variant, depth, width, s) for s in seeds]
        args = range_test_args(config, variant)
        commands.append(f"{THEN} range-test {network} {args} --out {_paths(outs)}")
    return " ".join(commands)


def _paths(paths: list[str]) -> str:
    return " ".join(shlex.quote(p) for p in paths)


def predict_args(config: Mapping[str, Any]) -> str:
    return _join(to_flags(PredictOptions(**config["predict"]), skip=("min_r2",)))


def study_args(config: Mapping[str, Any]) -> str:
    """``milr aggregate`` flags that describe the study to the figures (written to study.json)."""
    parts = [f"--main-threshold {n}={config['datasets'][n]['threshold']!r}"
             for n in active_datasets(config)]  # fmt: skip
    parts += [f"--input-lr-variant {n}={f!r}" for n, f in config["input_lr_variants"].items()]
    parts += [f"--sweep-architecture {d}x{w}" for d, w in config["sweep"]["architectures"]]
    parts += [f"--primary-variant {shlex.quote(config['primary_variant'])}"]
    return " ".join(parts)


def supported_figures(config: Mapping[str, Any]) -> list[str]:
    """The figures this config has data for: the full-rate variant's figure needs a second
    input-LR variant, the threshold figure needs a sweep. Every figure keeps its rule."""
    names = list(FIGURES)
    if len(config["input_lr_variants"]) < 2:
        names.remove("eta_full_input_lr")
    sweeps = any(config["datasets"][n]["threshold_sweep"] for n in active_datasets(config))
    if not (sweeps and config["sweep"]["architectures"]):
        names.remove("eta_vs_threshold")
    return names


def resume_command(argv: list[str]) -> str:
    """The command that resumes a stopped run: the same Snakemake command line."""
    return shlex.join(["snakemake", *argv[1:]])


def stopped_note(results: str, argv: list[str]) -> str:
    """What a stopped or failed run says last: what is kept and how to go on."""
    return (
        f"milr: the run stopped; finished jobs and the searches' journals are kept "
        f"({results}/partial/ lists what finished). Resume with the same command: "
        f"{resume_command(argv)}"
    )


def milr_command(python: str) -> str:
    """How to call milr from here: the venv's command beside ``python``, where there is one."""
    beside = Path(python).parent / "milr"
    return os.path.relpath(beside) if beside.exists() else "milr"


def closing_note(results: str, argv: list[str], python: str) -> str:
    """What a finished run says last: where its results are and what to open first."""
    root = Path(results)
    lines = [f"milr: done. Results in {results}/"]
    first = [("the headline figure", root / "figures" / "laws.png"),
             ("its caption", root / "figures" / "laws.txt"),
             ("the tables", root / "tables")]  # fmt: skip
    opened = [f"{what}: {path}" for what, path in first if path.exists()]
    if opened:
        lines.append("  open first: " + "; ".join(opened))
    if (root / "tables" / "study.json").exists():
        milr = milr_command(python)
        lines.append(f"  the numbers in words: {milr} summary --tables {results}/tables")
        report = f"{resume_command(argv)} --report {shlex.quote(f'{results}/report.html')}"
        lines.append(f"  every figure and table in one HTML page: {report}")
    return "\n".join(lines)
