"""The Snakemake workflow end to end on a tiny two-dataset study (Gaussian + hand-made MNIST),
and the rerun rules: only what a change invalidates runs again."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from milr.names import FIGURES
from test_data import fake_mnist, fashion_files_or_skip

pytestmark = pytest.mark.slow

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Figures downstream of the tables; the tiny study has two variants and no threshold sweep.
FIGURE_RULES = {f"figure_{name}" for name in FIGURES if name != "eta_vs_threshold"}
# What reruns after any change to the η* results: the tables, fits, checks and every figure.
AFTER_THE_TABLES = {"aggregate", "fit", "validate", "lr_finder", "all", *FIGURE_RULES}

TINY = {
    "results": "results",
    "data_dir": "data",
    "device": "cpu",
    "threads": 1,
    "datasets": {
        "gaussian": {
            "threshold": 0.8,
            "upper": 8.0,
            "gaussian": {"dim": 8, "mahalanobis": 2.5, "condition": 10.0, "seed": 0},
        },
        "mnist": {"threshold": 0.5, "upper": 1.0},
        "mnist1d": {
            "threshold": 0.2,
            "upper": "auto",
            "start": 1.0,
            "mnist1d": {"samples": 400, "seed": 0},
        },
    },
    "grid": {"depths": [1, 2], "widths": [8]},
    "seeds": [0],
    "training": {"epochs": 2},
    "search": {"iterations": 2, "batch_seeds": False},  # one job per seed (tiny preset: stacked)
    "sharpness": {"samples": 64, "max_iter": 20},
}


def snakemake_command(
    workdir: Path, *args: str, config: str = "tiny.yaml", root: Path | None = None, cores: int = 2
) -> list[str]:
    root = root or Path(__file__).resolve().parents[1]
    cmd = [SNAKEMAKE, "-s", str(root / "Snakefile"), "--directory", str(workdir)]
    return cmd + ["--configfile", str(workdir / config), "--cores", str(cores), *args]


def snakemake(
    workdir: Path, *args: str, config: str = "tiny.yaml", root: Path | None = None
) -> subprocess.CompletedProcess:
    cmd = snakemake_command(workdir, *args, config=config, root=root)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def planned_outputs(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """rule -> outputs, from a dry run's job listing."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if not rule:
            continue
        output = re.search(r"^\s+output: (.+)$", block, flags=re.M)
        jobs.setdefault(rule.group(1), []).extend(output.group(1).split(", ") if output else [])
    return jobs


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    fake_mnist(workdir / "data", n_train=300, n_val=100)
    run = snakemake(workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


def test_tiny_study_produces_the_tables(study):
    eta = pd.read_csv(study / "results/tables/eta_star.csv")
    assert len(eta) == 3 * 2 * 2  # datasets x variants x architectures
    assert set(eta.dataset) == {"gaussian", "mnist", "mnist1d"}
    assert set(eta.columns) >= {"dataset", "variant", "threshold", "depth", "width", "seed",
                                "eta_star", "bracket_low", "bracket_high", "probes",
                                "hit_upper_bound", "device", "wall_time_s"}  # fmt: skip
    assert (eta.status == "ok").all()
    fixed, auto = eta[eta.upper_found == "fixed"], eta[eta.upper_found == "auto"]
    assert (fixed.probes == 2).all() and set(auto.dataset) == {"mnist1d"}
    bisected = auto[~auto.no_success & ~auto.hit_upper_bound]
    assert len(bisected) and (bisected.probes == bisected.bracketing_probes + 1).all()  # s = 2
    assert (auto[~auto.no_success].relative_bracket <= 1.5).all()
    sharp = pd.read_csv(study / "results/tables/sharpness.csv")
    assert len(sharp) == 6 and (sharp.lambda1 > 0).all()
    fits = pd.read_csv(study / "results/tables/fits.csv")
    assert {"alpha", "C", "r2", "alpha_low", "alpha_high", "n_architectures"} <= set(fits.columns)
    assert (study / "results/benchmarks/bisect/gaussian/small/t0.8/d1-w8-s0.tsv").exists()
    figures = {p.stem for p in (study / "results/figures").glob("*.png")}
    assert figures == {name.removeprefix("figure_") for name in FIGURE_RULES}


def test_report_bundles_figures_and_tables(study):
    run = snakemake(study, "--report", "results/report.html")
    assert run.returncode == 0, run.stderr[-2000:]
    html = (study / "results/report.html").read_text()
    assert "eta_small_input_lr.png" in html and "fits.csv" in html
    assert "geometric mean over seeds" in html  # a figure's own caption file was included


def test_complete_run_leaves_nothing_to_do(study):
    dry = snakemake(study, "-n")
    assert dry.returncode == 0
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_changing_one_threshold_reruns_only_that_datasets_bisections(study):
    config = yaml.safe_load((study / "tiny.yaml").read_text())
    config["datasets"]["gaussian"]["threshold"] = 0.75
    (study / "changed_t.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_outputs(snakemake(study, "-n", config="changed_t.yaml"))
    assert set(jobs) == {"bisect", *AFTER_THE_TABLES}  # not the range tests: no t in them
    assert len(jobs["bisect"]) == 4
    assert all("/gaussian/" in out and "/t0.75/" in out for out in jobs["bisect"])


def test_changing_a_fit_option_reruns_only_the_fit(study):
    config = yaml.safe_load((study / "tiny.yaml").read_text())
    config.setdefault("fit", {})["min_width_over_depth"] = 2
    (study / "changed_fit.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_outputs(snakemake(study, "-n", config="changed_fit.yaml"))
    assert set(jobs) == {"fit", "validate", "all", *FIGURE_RULES}


def test_changing_a_training_knob_reruns_every_bisection(study):
    config = yaml.safe_load((study / "tiny.yaml").read_text())
    config["training"]["epochs"] = 3
    (study / "changed_e.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_outputs(snakemake(study, "-n", config="changed_e.yaml"))
    assert len(jobs["bisect"]) == 12 and "sharpness" not in jobs and "prepare" not in jobs
    assert "range_test" not in jobs  # a range test has no epochs


def test_changing_the_ramp_reruns_the_range_tests_not_the_searches(study):
    config = yaml.safe_load((study / "tiny.yaml").read_text())
    config["range_test"] = {"steps": 150}
    (study / "changed_ramp.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_outputs(snakemake(study, "-n", config="changed_ramp.yaml"))
    # every figure names the config file in its caption; of the tables, only the LR finder's
    assert set(jobs) == {"range_test", "lr_finder", "all", *FIGURE_RULES}
    assert len(jobs["range_test"]) == 3 * 2 * 2  # datasets x variants x architectures


def test_small_jobs_together_compute_the_separate_jobs_numbers(study, tmp_path):
    """config small_jobs_together: one job per architecture runs its λ1 and range tests (milr
    together); the tables equal those of the separate jobs (the study's), and a change to the
    ramp reruns those joint jobs, not the searches."""
    work = tmp_path / "together"
    shutil.copytree(study, work, ignore=shutil.ignore_patterns("locks"))
    config = yaml.safe_load((study / "tiny.yaml").read_text())
    config["small_jobs_together"] = True
    (work / "together.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_outputs(snakemake(work, "-n", config="together.yaml"))
    assert len(jobs["sharpness_range_test"]) == 3 * 2 * (1 + 2)  # jobs x (λ1 + 2 range tests)
    assert not {"sharpness", "range_test", "bisect"} & set(jobs)
    run = snakemake(work, config="together.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(list((work / "results/logs/sharpness_range_test").rglob("*.log"))) == 3 * 2
    for table in ("sharpness.csv", "lr_finder.csv", "lr_finder_summary.csv"):
        joint, separate = (pd.read_csv(w / "results/tables" / table) for w in (work, study))
        timing = [c for c in joint.columns if re.search("time|wall|cost", c)]  # wall clock
        assert joint.drop(columns=timing).equals(separate.drop(columns=timing)), table
    config["range_test"] = {"steps": 150}
    (work / "ramp.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_outputs(snakemake(work, "-n", config="ramp.yaml"))
    assert len(jobs["sharpness_range_test"]) == 3 * 2 * 3 and "bisect" not in jobs


@pytest.fixture()
def checkout(tmp_path, root):
    """A copy of the workflow's code, to edit: the study's results stay where they are."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    for part in ("Snakefile", "config.yaml", "workflow", "envs"):
        (shutil.copytree if (root / part).is_dir() else shutil.copy)(root / part, copy / part)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_code_edits_rerun_exactly_the_steps_that_import_the_module(study, checkout):
    milr = checkout / "workflow" / "milr"
    # A moved checkout and comment, docstring and formatting edits change no result: nothing runs.
    edit(milr / "train.py", "    loss = F.cross", "    # a comment\n\n    loss = F.cross")
    edit(milr / "figures.py", '"""Register the function', '"""Register (reworded) the function')
    assert "Nothing to be done" in snakemake(study, "-n", root=checkout).stdout
    # A real edit to the trainer reruns every bisection (not the data, not λ1) and what follows.
    step = "        param.addcmul_(grad, torch.where(keep, rate, 0.0))\n"
    edit(milr / "batched.py", step, step + "        assert True\n")
    jobs = planned_outputs(snakemake(study, "-n", root=checkout))
    assert set(jobs) == {"bisect", "range_test", *AFTER_THE_TABLES}  # both import it
    assert len(jobs["bisect"]) == 12
    # A real edit to the figures reruns the figures alone.
    edit(milr / "batched.py", step + "        assert True\n", step)
    edit(milr / "figures.py", "PANEL = (4.6, 2.9)", "PANEL = (4.7, 2.9)")
    jobs = planned_outputs(snakemake(study, "-n", root=checkout))
    assert set(jobs) == {"all", *FIGURE_RULES}


def gaussian_only(study: Path, work: Path, **edits) -> Path:
    """A copy of the study (results, journals, Snakemake's metadata) with a Gaussian-only config
    and ``edits``."""
    shutil.copytree(study, work, ignore=shutil.ignore_patterns("locks"))
    config = yaml.safe_load((study / "tiny.yaml").read_text())
    config["active_datasets"] = ["gaussian"]
    config["datasets"]["gaussian"]["gaussian"].update(edits)
    (work / "changed.yaml").write_text(yaml.safe_dump(config))
    return work


def eta_of(work: Path) -> pd.DataFrame:
    table = pd.read_csv(work / "results/tables/eta_star.csv")
    key = ["dataset", "variant", "threshold", "depth", "width", "seed"]
    return table.set_index(key)[["eta_star", "bracket_low", "bracket_high", "probes"]].sort_index()


def fresh_run(tmp_path: Path, config: Path, root: Path | None = None) -> pd.DataFrame:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(config, fresh / "changed.yaml")
    run = snakemake(fresh, config="changed.yaml", root=root)
    assert run.returncode == 0, run.stderr[-2000:]
    return eta_of(fresh)


def test_changed_data_retrains_and_equals_a_fresh_run(study, tmp_path):
    """New Gaussian data reruns prepare and the bisections, whose journals (written on the old
    data) are set aside: the rerun's η* is exactly a fresh computation's."""
    work = gaussian_only(study, tmp_path / "rerun", mahalanobis=3.0)
    run = snakemake(work, config="changed.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    assert list((work / "results/journal").rglob("*.stale-data"))
    for result in (work / "results/bisect/gaussian").rglob("*.json"):
        assert json.loads(result.read_text())["resumed_probes"] == 0
    assert eta_of(work).equals(fresh_run(tmp_path, work / "changed.yaml"))


def test_changed_code_retrains_and_equals_a_fresh_run(study, checkout, tmp_path):
    """A real change to a module the search imports (the minibatch order) reruns the bisections;
    their journals are set aside as written by other code; η* equals a fresh run's."""
    edit(
        checkout / "workflow/milr/data.py",
        "SHUFFLE_SEED_OFFSET = 0x5EED",
        "SHUFFLE_SEED_OFFSET = 7",
    )
    work = gaussian_only(study, tmp_path / "rerun")
    before = eta_of(study).loc["gaussian"]
    run = snakemake(work, config="changed.yaml", root=checkout)
    assert run.returncode == 0, run.stderr[-2000:]
    assert list((work / "results/journal").rglob("*.stale-code"))
    after = eta_of(work)
    assert after.equals(fresh_run(tmp_path, work / "changed.yaml", root=checkout))
    assert not after.loc["gaussian"].equals(before)  # the change did change the searches


def test_cuda_without_a_gpu_stops_before_the_first_job(tmp_path, monkeypatch):
    monkeypatch.delenv("MILR_GPU_IDS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    (tmp_path / "cuda.yaml").write_text(yaml.safe_dump({**TINY, "device": "cuda"}))
    run = snakemake(tmp_path, config="cuda.yaml")
    assert run.returncode != 0
    assert "milr: error: device is cuda but CUDA_VISIBLE_DEVICES is empty" in run.stderr
    assert not (tmp_path / "results").exists()  # not one job ran
    assert snakemake(tmp_path, "-n", config="cuda.yaml").returncode == 0  # planning still works


def test_bad_config_stops_before_any_job_naming_the_key(study):
    config = yaml.safe_load((study / "tiny.yaml").read_text())
    config["grid"]["depths"] = [0]
    (study / "bad.yaml").write_text(yaml.safe_dump(config))
    before = sorted(p.name for p in (study / "results/tables").iterdir())
    run = snakemake(study, config="bad.yaml")
    assert run.returncode != 0
    assert "milr: error: config key 'grid.depths[0]'" in run.stderr
    assert sorted(p.name for p in (study / "results/tables").iterdir()) == before


def test_failed_job_keeps_tables_honest(study, tmp_path):
    """With --keep-going a failing job leaves partial tables that mark it missing."""
    work = tmp_path / "kg"
    shutil.copytree(study, work, ignore=shutil.ignore_patterns(".snakemake"))
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config["grid"]["widths"] = [8, 12]
    (work / "more.yaml").write_text(yaml.safe_dump(config))
    # A corrupt result journal cannot break a job; a corrupt dataset file does: make the
    # MNIST cache unreadable so that its new jobs fail while the Gaussian ones finish.
    data = work / "results/data/mnist.pt"
    data.write_bytes(data.read_bytes()[:100])
    run = snakemake(work, "--keep-going", "--rerun-triggers", "params", config="more.yaml")
    assert run.returncode != 0
    partial = pd.read_csv(work / "results/partial/eta_star.csv")
    missing = partial[partial.status == "missing"]
    assert len(missing) and set(missing.dataset) == {"mnist"}
    assert (partial[partial.dataset == "gaussian"].status == "ok").all()
    tables = pd.read_csv(work / "results/tables/eta_star.csv")
    assert len(tables) == 12  # the last complete tables are untouched


def test_full_paper_config_plans_every_job_and_figure(tmp_path, root):
    """config.yaml as a user runs it: `snakemake -n --cores 8 --resources gpu=2`."""
    cmd = [SNAKEMAKE, "-s", str(root / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(root / "config.yaml"), "-n", "--cores", "8", "--resources",
           "gpu=2"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    jobs = planned_outputs(run)
    assert {f"figure_{name}" for name in FIGURES} <= set(jobs)
    # 792 searches' result files (config.yaml stacks the seeds: 264 jobs) and 360 λ1 jobs
    assert len(jobs["bisect_seeds"]) == 792
    # λ1 and range tests of an architecture share a job (small_jobs_together): 120 jobs writing
    # datasets x architectures x seeds x (λ1 + 2 variants' range tests) files
    assert len(jobs["sharpness_range_test"]) == 4 * 30 * 3 * (1 + 2)
    assert "sharpness" not in jobs and "range_test" not in jobs
    assert "gpu=1" in run.stdout  # training jobs ask for a GPU when device is cuda


def test_slurm_profile_dry_run(tmp_path, root):
    cmd = [SNAKEMAKE, "-s", str(root / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(root / "presets" / "quick.yaml"), "-n",
           "--profile", str(root / "profiles" / "slurm")]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "bisect_seeds" in run.stdout  # the preset batches seeds per job
    assert "gpu=1" not in run.stdout  # a CPU config never asks SLURM for a GPU


def journal_probes(path: Path) -> int:
    """Probe lines of a journal that a resumed search can trust (whole JSON lines)."""
    count = 0
    for line in path.read_text().splitlines()[1:]:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            break
        count += 1
    return count


def test_a_local_run_killed_mid_bisection_recovers_without_retraining(tmp_path, root):
    """SIGKILL to Snakemake and its jobs mid-search (a lost SSH session, Ctrl-\\), then the
    README's recovery: --unlock, --rerun-incomplete. Finished jobs are kept and the interrupted
    searches resume from their journals: no finished probe is trained again."""
    config = {**TINY, "active_datasets": ["gaussian"], "training": {"epochs": 6}}
    config["datasets"] = {
        "gaussian": {
            **TINY["datasets"]["gaussian"],
            "gaussian": {
                "dim": 8,
                "mahalanobis": 2.5,
                "condition": 10.0,
                "seed": 0,
                "train_per_class": 4000,
            },
        }
    }
    config["search"] = {"iterations": 4, "batch_seeds": True}
    config["seeds"] = [0, 1]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    cmd = snakemake_command(tmp_path, root=root, cores=1)
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)  # fmt: skip
    journals = tmp_path / "results/journal"
    deadline = time.time() + 300
    try:
        while (
            not any(
                journal_probes(j) >= 2 and not result_of(tmp_path, j).exists()
                for j in journals.rglob("*.jsonl")
            )
            if journals.exists()
            else True
        ):
            assert time.time() < deadline and run.poll() is None, "no search was caught running"
            time.sleep(0.05)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    unfinished = {j: journal_probes(j) for j in journals.rglob("*.jsonl")
                  if not result_of(tmp_path, j).exists()}  # fmt: skip
    finished = {r: r.stat().st_mtime_ns for r in (tmp_path / "results/bisect").rglob("*.json")}
    assert unfinished and max(unfinished.values()) >= 2
    assert "locked" in subprocess.run(cmd, capture_output=True, text=True).stderr.lower()
    assert subprocess.run([*cmd, "--unlock"], capture_output=True).returncode == 0
    again = subprocess.run([*cmd, "--rerun-incomplete"], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    for journal, probes in unfinished.items():
        result = json.loads(result_of(tmp_path, journal).read_text())
        assert result["resumed_probes"] == probes, journal.name  # every finished probe reused
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime  # finished jobs are kept, not rerun


def result_of(workdir: Path, journal: Path) -> Path:
    """The result file a journal belongs to (results/journal/bisect/... -> results/bisect/...)."""
    relative = journal.relative_to(workdir / "results/journal")
    return (workdir / "results" / relative).with_suffix(".json")


def test_fashion_mnist_runs_the_whole_dag_on_a_subset_of_the_real_files(tmp_path):
    """The paper's MNIST path on real files of that format: Fashion-MNIST from the Debian
    package's folder, its first 1,000 training and 500 test images (the documented subset
    option; presets/fashion.yaml uses all of them), every table and figure."""
    fashion_files_or_skip()
    config = {
        "results": "results",
        "device": "cpu",
        "threads": 1,
        "active_datasets": ["fashion_mnist"],
        "datasets": {
            "fashion_mnist": {
                "threshold": 0.6,
                "upper": "auto",
                "start": 1.0,
                "subset": {"train": 1000, "val": 500},
            }
        },
        "grid": {"depths": [1, 2], "widths": [16, 32]},
        "seeds": [0],
        "training": {"epochs": 2},
        "search": {"iterations": 2},
        "sharpness": {"samples": 128, "max_iter": 20},
        "range_test": {"steps": 20},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    data = torch.load(tmp_path / "results/data/fashion_mnist.pt", weights_only=True)
    assert data["x_train"].shape == (1000, 784) and data["x_val"].shape == (500, 784)
    assert data["info"]["subset"] == {"train": 1000, "val": 500}
    eta = pd.read_csv(tmp_path / "results/tables/eta_star.csv")
    assert (
        set(eta.dataset) == {"fashion_mnist"} and len(eta) == 2 * 4 and (eta.status == "ok").all()
    )
    laws = pd.read_csv(tmp_path / "results/tables/laws.csv")
    assert set(laws.law) == {"product", "separate", "depth", "depth_3/2"}
    figures = {p.stem for p in (tmp_path / "results/figures").glob("*.png")}
    assert figures == {name.removeprefix("figure_") for name in FIGURE_RULES}


def test_ctrl_c_stops_quietly_says_how_to_resume_and_the_rerun_finishes(study, tmp_path):
    """#30: Ctrl-C during a run printed two 45-line KeyboardInterrupt tracebacks and no word on
    resuming. Ctrl-C reaches the terminal's whole process group, jobs included: sent the same
    way here, once the first training job runs."""
    work = gaussian_only(study, tmp_path / "stopped", mahalanobis=3.0)
    cmd = snakemake_command(work, config="changed.yaml", cores=1)

    # A terminal delivers Ctrl-C to a process that has SIGINT at its default; a test run
    # started in the background (bash's `cmd &`) inherits it ignored, so restore the default.
    def default_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True, preexec_fn=default_sigint)  # fmt: skip
    seen = []
    for line in run.stdout:
        seen.append(line)
        if re.match(r"(local)?rule bisect", line):
            time.sleep(2.5)  # inside the job: importing torch or training
            os.killpg(run.pid, signal.SIGINT)
            break
    out = "".join(seen) + run.stdout.read()
    assert run.wait(timeout=120) != 0
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    assert "Error in rule" not in out  # no per-job error blocks
    assert "Resume with the same command: snakemake " in out
    assert (work / "results/partial/eta_star.csv").exists()
    rerun = snakemake(work, config="changed.yaml")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "milr: done. Results in results/" in rerun.stdout + rerun.stderr
    assert not (work / "results/partial").exists()  # the finished run removes what it wrote
