"""The code stays clean under ruff, snakefmt and snakemake --lint: each line of `make lint`'s
recipe, read from the Makefile, so the test and the target cannot drift apart."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def lint_recipe() -> list[list[str]]:
    """The commands of the Makefile's lint target, $(BIN) made this interpreter's folder."""
    recipe = re.search(r"(?m)^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text())[1]
    return [shlex.split(line.strip().replace("$(BIN)/", f"{BIN}/")) for line in recipe.splitlines()]


@pytest.mark.parametrize("command", lint_recipe(), ids=lambda c: Path(c[0]).name + str(len(c)))
def test_clean(root, command):
    run = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    if Path(command[0]).name == "snakemake":
        assert "Lints for" not in run.stdout + run.stderr


def test_the_recipe_runs_every_linter():
    names = [Path(c[0]).name for c in lint_recipe()]
    assert names.count("ruff") == 2 and "snakefmt" in names and names.count("snakemake") == 2
