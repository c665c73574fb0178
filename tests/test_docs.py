"""Every command the README and docs/ show, run as a reader would run it.

A copy of the checkout gets a tiny finished study (presets/tiny.yaml, through Snakemake: the
demo's own path with stacked seeds), also placed where the demo writes (results/mnist1d), and
every line of every ```bash block is run there:

- ``milr ...`` and ``cp ...``: for real, against that study; they must exit 0;
- ``snakemake ...``: as a dry run (``-n``), which plans every job of the command; where conda is
  missing, ``--sdm conda`` (and ``--conda-create-envs-only``) are dropped from the dry run;
- ``make TARGET``: the target must exist (``make -n TARGET``);
- ``python bench/X.py``: ``--help`` must work (the benchmarks themselves take minutes);

and every ```python block is run whole, as a script, by the venv's python in that copy.

A command of any other kind fails the test: a new kind of command needs a rule here. A
```console block right after a ```bash block lists lines that the commands' output must hold
(runs of spaces count as one, so a block may show Snakemake's aligned columns compactly).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^[ \t]*```(\w+)\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)


def blocks(page: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block of ``page``, in order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def commands(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line]


def program(command: str) -> tuple[dict[str, str], list[str]]:
    """Leading VAR=value assignments, and the words of the command after them."""
    words = shlex.split(command)
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


PYTHON_BLOCK = "python - <<'MILR_PYTHON_BLOCK'\n{}MILR_PYTHON_BLOCK"


def how_to_run(command: str) -> str:
    """The shell line the test runs for one documented command."""
    if command.startswith(PYTHON_BLOCK[:20]):
        return command
    env, words = program(command)
    name = Path(words[0]).name
    if name == "make":
        return f"make -n {shlex.quote(words[1])}"
    if name == "snakemake":
        if "--sdm" in words and shutil.which("conda") is None:
            i = words.index("--sdm")
            del words[i : i + 2]
            words = [w for w in words if w != "--conda-create-envs-only"]
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        return f"{prefix} {shlex.join(words)} -n --quiet rules".strip()
    if name in ("milr", "cp"):
        return command
    if name.startswith("python") and len(words) > 1 and words[1].startswith("bench/"):
        return f"{shlex.quote(words[0])} {shlex.quote(words[1])} --help"
    raise AssertionError(f"no rule to run this documented command: {command}")


def documented() -> list[tuple[str, list[str], list[str]]]:
    """(where, commands, expected output lines) for every bash block of every page."""
    found = []
    for page in PAGES:
        items = blocks(page)
        for i, (language, body) in enumerate(items):
            if language not in ("bash", "python"):
                continue
            follow = items[i + 1] if i + 1 < len(items) else ("", "")
            expected = follow[1].splitlines() if follow[0] == "console" else []
            where = f"{page.relative_to(ROOT)} block {i + 1}"
            run = commands(body) if language == "bash" else [PYTHON_BLOCK.format(body)]
            found.append((where, run, [line for line in expected if line.strip()]))
    return found + commented()


def commented() -> list[tuple[str, list[str], list[str]]]:
    """The snakemake commands the Snakefile's header and the presets' "Run with:" lines show
    (the presets' `make` targets are held to their configfiles by tests/test_claims.py)."""
    found = []
    for path in [ROOT / "Snakefile", *sorted((ROOT / "presets").glob("*.yaml"))]:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if shown := re.match(r"#\s+(?:Run with: )?(snakemake [^#()]*?)\s*(#.*)?$", line):
                found.append((f"{path.relative_to(ROOT)} line {n}", [shown[1]], []))
    return found


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the checkout (its tracked and untracked, not ignored files) with the venv
    linked in, a tiny finished study in results/tiny and a copy of it in results/mnist1d."""
    copy = tmp_path_factory.mktemp("checkout")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    for name in listed.splitlines():
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(Path(sys.executable).parents[1])
    # -o: the venv is the one running this test; never reinstall it from the copy (an editable
    # install would then point at the copy, which this test deletes)
    run = subprocess.run(
        ["make", "-o", ".venv/.installed", "tiny", "CORES=2"],
        cwd=copy, capture_output=True, text=True, timeout=900, env=shell_env(copy),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    shutil.copytree(copy / "results/tiny", copy / "results/mnist1d")
    return copy


def shell_env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "SLURM_"))}
    env["PATH"] = f"{copy / '.venv' / 'bin'}:{env['PATH']}"
    return env


def test_the_docs_have_commands_and_every_kind_has_a_rule():
    found = documented()
    assert sum(len(cmds) for _, cmds, _ in found) >= 25
    for where, cmds, _ in found:
        for command in cmds:
            assert how_to_run(command), where


@pytest.mark.parametrize(("where", "cmds", "expected"), documented(), ids=lambda v: str(v)[:60])
def test_every_documented_command_runs(checkout, where, cmds, expected):
    output = ""
    for command in cmds:
        run = subprocess.run(["bash", "-c", how_to_run(command)], cwd=checkout,
                             capture_output=True, text=True, timeout=600,
                             env=shell_env(checkout))  # fmt: skip
        assert run.returncode == 0, f"{where}: {command}\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
        output += run.stdout + run.stderr
    printed = " ".join(output.split())
    for line in expected:
        # whole words: 'total 40' is not in 'total 404' (a comma may follow)
        shown = r"(?<!\S)" + re.escape(" ".join(line.split())) + r"(?!\w)"
        assert re.search(shown, printed), f"{where}: the docs show {line!r}; not printed"


# Columns that say how long a job took or where its file lies: everything else must repeat.
NOT_RESULTS = {"wall_time_s", "range_test_wall_s", "search_wall_s", "cost_ratio",
               "median_cost_ratio", "path"}  # fmt: skip


def test_a_second_run_another_way_gives_the_same_tables(checkout):
    """The tiny study again, with one job per seed instead of stacked seeds, the one-by-one
    trainer, two threads per job, and λ1 and range tests in jobs of their own instead of one
    `milr together` job per architecture (config.yaml's way): every table is the same, bit for
    bit, but for its wall times and file paths."""
    config = yaml.safe_load((checkout / "presets/tiny.yaml").read_text())
    config.update(results="results/tiny-again", threads=2, small_jobs_together=False)
    config["search"].update(trainer="plain", batch_seeds=False)
    (checkout / "tiny-again.yaml").write_text(yaml.safe_dump(config))
    again = subprocess.run(
        ["snakemake", "--cores", "2", "--configfile", "tiny-again.yaml"],
        cwd=checkout, capture_output=True, text=True, timeout=900, env=shell_env(checkout),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert "rule bisect:" in log  # one job per seed this time
    assert "rule sharpness:" in log and "rule range_test:" in log  # and λ1 alone
    assert (checkout / "results/tiny/logs/sharpness_range_test").is_dir()  # the first run's way
    first, second = checkout / "results/tiny/tables", checkout / "results/tiny-again/tables"
    tables = sorted(p.name for p in first.glob("*.csv"))
    assert len(tables) == 10 and tables == sorted(p.name for p in second.glob("*.csv"))
    for name in tables:
        a, b = (pd.read_csv(folder / name, dtype=str) for folder in (first, second))
        keep = [c for c in a.columns if c not in NOT_RESULTS]
        assert a[keep].equals(b[keep]), name
    study = json.loads((first / "study.json").read_text())
    assert study == json.loads((second / "study.json").read_text())
