"""The SLURM profile against a real scheduler: a single-node SLURM on localhost.

Run by `make test-cluster` (tests/cluster/slurm-localhost.sh brings the cluster up and down);
skipped unless SLURM_CONF points at a running cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

STUDY = {
    "results": "results",
    "device": "cpu",
    "threads": 1,
    "datasets": {
        "gaussian": {
            "threshold": 0.85,
            "upper": 16.0,
            "gaussian": {"dim": 32, "mahalanobis": 2.5, "condition": 10.0, "seed": 0},
        }
    },
    "grid": {"depths": [1, 2], "widths": [16]},
    "seeds": [0, 1],
    "input_lr_variants": {"small": 0.1},
    "training": {"epochs": 4},
    "search": {"iterations": 3},
    "sharpness": {"samples": 128, "max_iter": 20},
}
# What a user adapts to their cluster: partition, account, and memory that fits the node.
CLUSTER_ARGS = [
    "--default-resources", "slurm_partition=debug", "slurm_account=milr", "mem_mb=500",
    "runtime=20",
    "--set-resources", "bisect:mem_mb=1000", "bisect_seeds:mem_mb=1000",
    "sharpness:mem_mb=1000", "sharpness_range_test:mem_mb=1000",
    "--slurm-init-seconds-before-status-checks", "1",
    "--jobs", "4",
]  # fmt: skip


def cluster_up() -> bool:
    """The localhost cluster of slurm-localhost.sh answers (never a real cluster by accident)."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    if not conf.exists() or "ClusterName=milr-localhost" not in conf.read_text():
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated")


if not cluster_up():
    pytest.skip("no localhost SLURM (run make test-cluster)", allow_module_level=True)


def run(workdir: Path, *args: str, config="study.yaml", slurm=True, background=False):
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    if config:
        cmd += ["--configfile", str(workdir / config)]
    if slurm:
        cmd += ["--profile", str(ROOT / "profiles" / "slurm"), *CLUSTER_ARGS]
        cmd += ["--slurm-logdir", str(workdir / "slurm_logs")]
    else:
        cmd += ["--profile", str(ROOT / "profiles" / "default"), "--cores", "2"]
    cmd += list(args)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def make_study(path: Path, study=STUDY) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "study.yaml").write_text(yaml.safe_dump(study))
    return path


def test_preset_through_slurm_matches_a_local_run(tmp_path):
    """presets/quick.yaml through profiles/slurm, and the same preset run locally.

    Both pin the batched trainer (the preset's ``auto`` picks by timing, which may differ
    between runs), so the two runs compute the same numbers on this CPU. On SLURM each
    architecture's λ1 and range tests share one job (small_jobs_together); locally λ1 runs in
    jobs of its own: the two λ1 tables must agree.
    """
    runs = {}
    for name, slurm in (("slurm", True), ("local", False)):
        work = tmp_path / name
        work.mkdir()
        pin = {"search": {"trainer": "batched"}, "small_jobs_together": slurm}
        (work / "pin.yaml").write_text(yaml.safe_dump(pin))
        preset = [str(ROOT / "presets" / "quick.yaml"), str(work / "pin.yaml")]
        # the local run is the reference for η* only: its range tests would add nothing
        local_only = [] if slurm else ["--omit-from", "range_test"]
        done = run(work, *local_only, "--configfile", *preset, config=None, slurm=slurm)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        runs[name] = work
    preset = yaml.safe_load((ROOT / "presets" / "quick.yaml").read_text())
    architectures = len(preset["grid"]["depths"]) * len(preset["grid"]["widths"])
    # Every training job went through sbatch: the plugin keeps one SLURM log per job.
    logs = list((runs["slurm"] / "slurm_logs").rglob("*.log"))
    count = lambda rule: len([p for p in logs if f"/rule_{rule}/" in p.as_posix()])  # noqa: E731
    eta = pd.read_csv(runs["slurm"] / "results/tables/eta_star.csv")
    seeds = len(preset["seeds"])
    assert count("bisect_seeds") == len(eta) // seeds  # one job per architecture and setting
    # one job per architecture: its seeds' λ1 and every variant's range tests
    assert count("sharpness_range_test") == architectures
    assert count("sharpness") == count("range_test") == 0
    sharpness = [pd.read_csv(runs[n] / "results/tables/sharpness.csv") for n in ("slurm", "local")]
    assert len(sharpness[0]) == architectures * seeds
    assert sharpness[0].lambda1.tolist() == sharpness[1].lambda1.tolist()
    assert count("prepare") == 0 and count("aggregate") == 0  # local rules
    key = ["dataset", "variant", "threshold", "depth", "width", "seed"]
    on_slurm = eta.set_index(key)["eta_star"].sort_index()
    local = pd.read_csv(runs["local"] / "results/tables/eta_star.csv")
    assert on_slurm.equals(local.set_index(key)["eta_star"].sort_index())
    for table in ("fits.csv", "sharpness.csv", "loao.csv", "lr_finder.csv"):
        assert (runs["slurm"] / "results/tables" / table).exists()


def running_job(rule: str) -> str | None:
    """The SLURM id of the running job of ``rule`` (the plugin puts the rule in the comment)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        job, _, comment = line.partition("|")
        if comment.startswith(f"rule_{rule}"):
            return job
    return None


def test_cancelled_job_fails_the_run_and_resumes_without_repeating_probes(tmp_path):
    study = dict(STUDY, grid={"depths": [2], "widths": [256]}, seeds=[0])
    study["training"] = {"epochs": 10}
    # Probes that miss t run all 10 epochs (seconds each): time to cancel mid-search.
    work = make_study(tmp_path / "cancel", study)
    journal = work / "results/journal/bisect/gaussian/small/t0.85/d2-w256-s0.jsonl"
    proc = run(work, background=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= 2:  # header + 1 probe
            break
        time.sleep(0.5)
    job = running_job("bisect")
    assert job, "the bisection job is not running under SLURM"
    subprocess.run(["scancel", job], check=True)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, output[-2000:]
    finished = [json.loads(line)["record"]["lr"] for line in journal.read_text().splitlines()[1:]]
    assert finished
    again = run(work, "--rerun-incomplete")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    result = json.loads((work / "results/bisect/gaussian/small/t0.85/d2-w256-s0.json").read_text())
    assert result["resumed_probes"] >= len(finished)
    lrs = [json.loads(line)["record"]["lr"] for line in journal.read_text().splitlines()[1:]]
    assert len(lrs) == len(set(lrs)) == 3  # every probe trained exactly once
