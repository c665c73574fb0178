"""The code stays clean under ruff, snakefmt and snakemake --lint (as `make lint` runs them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "workflow", "tests", "bench"],
        ["ruff", "format", "--check", "workflow", "tests", "bench"],
        ["snakefmt", "--check", "Snakefile", "workflow/rules"],
        ["snakemake", "--lint", "--configfile", "presets/quick.yaml"],
        # the rules the preset leaves out: λ1 and range tests in jobs of their own
        [
            "snakemake",
            "--lint",
            "--configfile",
            "presets/quick.yaml",
            "--config",
            "small_jobs_together=False",
        ],
    ],
    ids=["ruff", "ruff-format", "snakefmt", "snakemake-lint", "snakemake-lint-separate"],
)
def test_clean(root, command):
    run = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=root, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    if command[0] == "snakemake":
        assert "Lints for" not in run.stdout + run.stderr
