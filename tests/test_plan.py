"""Config validation (defaults, one-line errors naming the key) and the job plan."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from milr import MilrError, plan
from milr.config import validate_config
from milr.names import FIGURES, format_threshold


@pytest.fixture()
def paper_config(root):
    return yaml.safe_load((root / "config.yaml").read_text())


def test_paper_config_is_valid(paper_config):
    config = validate_config(paper_config)
    assert {j.threshold for j in plan.bisect_jobs(config) if j.dataset == "mnist"} == {
        "0.925", "0.9", "0.95"}  # fmt: skip
    assert config["search"]["method"] == "bisect" and config["search"]["scale"] == "linear"


def test_a_small_config_plans_exactly_the_jobs_written_out_by_hand():
    """Two datasets, 2 x 2 grid, 2 seeds, 2 variants, a sweep of one threshold on one
    architecture: every job listed by hand, not by the planner's own formula."""
    config = validate_config({
        "active_datasets": ["gaussian", "mnist1d"],
        "datasets": {"gaussian": {"threshold": 0.8, "upper": 4.0},
                     "mnist1d": {"threshold": 0.5, "upper": "auto", "threshold_sweep": [0.45]}},
        "grid": {"depths": [1, 3], "widths": [8, 64]},
        "seeds": [0, 5],
        "input_lr_variants": {"small": 0.1, "full": 1.0},
        "sweep": {"architectures": [[3, 64]]},
    })  # fmt: skip
    expected = set()
    for dataset, t in (("gaussian", "0.8"), ("mnist1d", "0.5")):
        for variant in ("small", "full"):
            for depth, width in ((1, 8), (1, 64), (3, 8), (3, 64)):
                for seed in (0, 5):
                    expected.add((dataset, variant, t, depth, width, seed))
    expected |= {("mnist1d", "small", "0.45", 3, 64, 0), ("mnist1d", "small", "0.45", 3, 64, 5)}
    jobs = plan.bisect_jobs(config)
    assert len(jobs) == len(expected) == 34
    assert {(j.dataset, j.variant, j.threshold, j.depth, j.width, j.seed) for j in jobs} == expected
    sharp = {Path(p).name for p in plan.sharpness_paths(config)}
    assert len(plan.sharpness_paths(config)) == 16
    assert sharp == {f"d{d}-w{w}-s{s}.json" for d in (1, 3) for w in (8, 64) for s in (0, 5)}


def test_defaults_are_filled_from_the_schema():
    config = validate_config(
        {"datasets": {"gaussian": {"threshold": 0.8, "upper": 1.0}}, "grid": {"depths": [1],
         "widths": [8]}}
    )  # fmt: skip
    assert config["training"] == {"epochs": 10, "batch_size": 128, "momentum": 0.0}
    assert config["search"]["iterations"] == 5
    assert config["datasets"]["gaussian"]["gaussian"]["dim"] == 32
    assert config["input_lr_variants"] == {"small": 0.1, "full": 1.0}


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["datasets"].update(imagenet={"threshold": 0.5, "upper": 1}), "datasets"),
        (lambda c: c["grid"].update(depths=[0, 2]), "grid.depths[0]"),
        (lambda c: c["grid"].update(widths=[]), "grid.widths"),
        (lambda c: c["datasets"]["mnist"].update(threshold=1.2), "datasets.mnist.threshold"),
        (lambda c: c["datasets"]["mnist"].update(threshold=0), "datasets.mnist.threshold"),
        (lambda c: c["datasets"]["cifar10"].update(lower=2.0), "datasets.cifar10.upper"),
        (lambda c: c.update(learning_rate=0.1), "(top level)"),
        (lambda c: c["training"].update(epoch=3), "training"),
        (lambda c: c["datasets"]["gaussian"].update(threshold=0.95), "datasets.gaussian.threshold"),
        (lambda c: c.update(primary_variant="tiny"), "primary_variant"),
        (lambda c: c["search"].update(scale="geometric"), "datasets.mnist.upper"),
        (lambda c: c.update(seeds=[]), "seeds"),
    ],
)
def test_nonsense_is_rejected_with_the_key_named(paper_config, edit, key):
    config = copy.deepcopy(paper_config)
    edit(config)
    with pytest.raises(MilrError) as err:
        validate_config(config)
    message = str(err.value)
    assert f"config key '{key}'" in message
    assert "\n" not in message


def test_a_boolean_given_as_text_says_how_to_write_it(paper_config):
    """`--config small_jobs_together=false` reaches the config as the text 'false'."""
    config = copy.deepcopy(paper_config)
    config["small_jobs_together"] = "false"
    with pytest.raises(MilrError, match=r"'small_jobs_together'.*True or False"):
        validate_config(config)


def test_threshold_path_format_round_trips():
    for t in (0.925, 0.34, 0.8, 0.87, 1.0):
        assert float(format_threshold(t)) == t
    assert format_threshold(0.925) == "0.925"


def test_bisect_args_carry_every_knob(paper_config):
    config = validate_config(paper_config)
    args = plan.bisect_args(config, "mnist", "small", "0.925")
    for flag in ("--threshold 0.925", "--upper auto", "--start 0.5", "--iterations 5",
                 "--epochs 10", "--batch-size 128", "--input-lr-scale 0.1", "--method bisect",
                 "--scale linear", "--momentum 0.0", "--trainer batched",
                 "--variant small"):  # fmt: skip
        assert flag in args
    assert "--k " not in args  # k means nothing to bisection: changing it reruns nothing


def test_job_flags_parse_back_into_the_same_settings(paper_config):
    """The flags a rule passes are read by the CLI into exactly the settings the config gives."""
    from milr.cli import build_parser
    from milr.records import SearchInputs
    from milr.settings import from_args

    config = validate_config(paper_config)
    argv = ["bisect", "--dataset", "mnist", "--depth", "2", "--width", "128"]
    args = build_parser().parse_args(
        argv + plan.bisect_args(config, "mnist", "full", "0.9").split()
    )
    inputs = from_args(SearchInputs, args, seed=0)
    assert inputs.train.threshold == 0.9 and inputs.train.input_lr_scale == 1.0
    assert inputs.search == plan.search_spec(config, "mnist") and inputs.variant == "full"


def test_figures_follow_the_data_the_config_has(paper_config):
    config = validate_config(paper_config)
    assert plan.supported_figures(config) == list(FIGURES)
    lean = copy.deepcopy(paper_config)
    lean["input_lr_variants"] = {"small": 0.1}
    lean["sweep"]["architectures"] = []
    names = plan.supported_figures(validate_config(lean))
    assert "eta_full_input_lr" not in names and "eta_vs_threshold" not in names
    assert len(names) == len(FIGURES) - 2


def test_small_jobs_together_run_the_separate_rules_commands(paper_config):
    """`milr together`'s commands for one architecture carry the same settings and write the
    same files as the separate λ1 and range-test rules (whose flags come from plan too)."""
    import shlex

    from milr.cli import JOB_CHECKS, build_parser, split_together

    config = validate_config(paper_config)
    words = shlex.split(plan.small_jobs_commands(config, "mnist", 4, 512))
    parser = build_parser()
    data = f"{config['results']}/data/mnist.pt"
    assert words.count(data) == 3  # the rule's input
    words = [__file__ if word == data else word for word in words]  # --data must exist
    jobs = [parser.parse_args(command) for command in split_together(words)]
    assert [j.command for j in jobs] == ["sharpness", *["range-test"] * 2]
    network = ["--dataset", "mnist", "--data", __file__, "--depth", "4", "--width", "512"]
    network += ["--seed", "0", "1", "2"]
    alone = [parser.parse_args(["sharpness", *network, *shlex.split(plan.sharpness_args(config))])]
    alone += [
        parser.parse_args(["range-test", *network, *shlex.split(plan.range_test_args(config, v))])
        for v in ("small", "full")
    ]
    for job, reference in zip(jobs, alone, strict=True):
        assert JOB_CHECKS[job.command](job)[0] == JOB_CHECKS[reference.command](reference)[0]
    written = [out for job in jobs for out in job.out]
    expected = [p for p in plan.sharpness_paths(config) + plan.range_test_paths(config)
                if "/mnist/" in p and "/d4-w512-" in p]  # fmt: skip
    assert sorted(map(str, written)) == sorted(expected) and len(expected) == 3 * 3
    assert {j.variant for j in jobs[1:]} == {"small", "full"}
