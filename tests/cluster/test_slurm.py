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
    "fit": {"bootstrap": 20},
}
# The override a real user makes in profiles/slurm/config.yaml: partition and account.
CLUSTER_ARGS = [
    "--default-resources", "slurm_partition=debug", "slurm_account=milr", "mem_mb=500",
    "runtime=20",
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
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / config)]  # fmt: skip
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
    on_slurm = make_study(tmp_path / "slurm")
    local = make_study(tmp_path / "local")
    done = run(on_slurm)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert run(local, slurm=False).returncode == 0
    # Every training job went through sbatch: the plugin keeps one SLURM log per job.
    logs = list((on_slurm / "slurm_logs").rglob("*.log"))
    per_rule = {rule: [p for p in logs if f"rule_{rule}" in p.as_posix()]
                for rule in ("bisect", "sharpness")}  # fmt: skip
    assert len(per_rule["bisect"]) == 4 and len(per_rule["sharpness"]) == 4
    assert not [p for p in logs if "rule_prepare" in p.as_posix()]  # a local rule
    key = ["dataset", "variant", "threshold", "depth", "width", "seed"]
    a = pd.read_csv(on_slurm / "results/tables/eta_star.csv").set_index(key)
    b = pd.read_csv(local / "results/tables/eta_star.csv").set_index(key)
    assert a["eta_star"].sort_index().equals(b["eta_star"].sort_index())
    assert (on_slurm / "results/tables/fits.csv").exists()


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
    finished = [json.loads(line)["lr"] for line in journal.read_text().splitlines()[1:]]
    assert finished
    again = run(work, "--rerun-incomplete")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    result = json.loads((work / "results/bisect/gaussian/small/t0.85/d2-w256-s0.json").read_text())
    assert result["resumed_probes"] >= len(finished)
    lrs = [json.loads(line)["lr"] for line in journal.read_text().splitlines()[1:]]
    assert len(lrs) == len(set(lrs)) == 3  # every probe trained exactly once
