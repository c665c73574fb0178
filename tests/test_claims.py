"""Every cost, estimate and grid the prose states, held to its one source.

- Wall times: docs/performance.md's cost table is the one place. The README quotes some of its
  rows, rounded, and each quotation is checked against its row; no other page, preset, Makefile
  or Snakefile comment states a wall time at all (it would drift from the table).
- Estimates ("some 11.6 job-hours"): the `bench/grid_estimate.py` output pasted in
  docs/performance.md, of which each is a rounding.
- Grids and architecture counts the README states: the presets themselves.
- Job counts: docs/study.md shows a dry run's count, checked by tests/test_docs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PERFORMANCE = ROOT / "docs/performance.md"
# A wall time: a number and a unit of time (not "s = 5", Algorithm 1's step count).
DURATION = re.compile(r"\b\d[\d,.]*\s?(?:s|sec|seconds?|min|minutes?|h|hours?)\b(?!\s*=)")
GENERATED = re.compile(r"<!-- begin: .*?<!-- end: [^>]*-->", re.DOTALL)
# Times that are settings, not costs: SLURM's MinJobAge and the GPU wait's default.
SETTINGS = {"docs/slurm.md": {"300 s"}, "docs/gpus.md": {"3600 s"}}
# Where no cost may be stated: every page but performance.md (the table) and the pages that
# paste a benchmark's own output, the Makefile, the presets, the config, the Snakefile, CI.
NO_COSTS = ["Makefile", "Snakefile", "config.yaml", ".ci/run", "presets/*.yaml",
            "docs/study.md", "docs/testing.md", "docs/gpus.md", "docs/slurm.md", "docs/cli.md",
            "docs/data.md", "docs/conda.md", "docs/predict.md"]  # fmt: skip
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def costs() -> dict[str, int]:
    """The cost table: command -> wall time in seconds."""
    rows = re.findall(r"^\| `([^`]+)` \| ([\d,]+) s \|", PERFORMANCE.read_text(), re.MULTILINE)
    return {command: int(seconds.replace(",", "")) for command, seconds in rows}


def readme_prose() -> str:
    """The README without its generated blocks (milr summary prints those), each run of
    whitespace one space (a quotation may break across lines)."""
    return " ".join(GENERATED.sub("", README.read_text()).split())


def one(pattern: str, text: str) -> re.Match:
    found = list(re.finditer(pattern, text))
    assert len(found) == 1, f"{pattern!r}: {len(found)} matches, expected one"
    return found[0]


def preset(name: str) -> dict:
    return yaml.safe_load((ROOT / f"presets/{name}.yaml").read_text())


def test_the_cost_table_times_every_run_the_readme_offers():
    table = costs()
    for command in ("make install", "make tiny", "make demo", "make fashion", "make wide",
                    "make test", ".ci/run"):  # fmt: skip
        assert command in table, f"docs/performance.md's cost table has no row for {command}"
    assert all(seconds > 0 for seconds in table.values())


def test_the_quick_start_rounds_the_cost_table():
    table, text = costs(), readme_prose()
    demo = one(r"make demo .*about (\d+) min to install \+ (\d+) min to run", text)
    assert int(demo[1]) == round(table["make install"] / 60)
    assert int(demo[2]) == round(table["make demo"] / 60)
    assert int(one(r"make test .*about (\d+) min on", text)[1]) == round(table["make test"] / 60)
    assert int(one(r"about (\d+) minutes and [\d.]+ GB the first time", text)[1]) == round(
        table["make install"] / 60
    )
    tiny = one(r"first look in under (\w+) minutes after the install", text)[1]
    assert table["make tiny"] < 60 * WORDS.get(tiny, int(tiny) if tiny.isdigit() else 0)


def test_the_readme_quotes_the_wide_studys_wall_time():
    wide = one(r"in ([\d,]+) s \((?:(\d+) h )?(\d+) min", readme_prose())
    seconds = int(wide[1].replace(",", ""))
    assert seconds == costs()["make wide"]
    assert (int(wide[2] or 0), int(wide[3])) == divmod(round(seconds / 60), 60)


@pytest.mark.parametrize("pattern", NO_COSTS)
def test_no_other_place_states_a_wall_time(pattern):
    for path in sorted(ROOT.glob(pattern)):
        where = str(path.relative_to(ROOT))
        stated = set(DURATION.findall(path.read_text())) - SETTINGS.get(where, set())
        assert not stated, (
            f"{where} states {sorted(stated)}: put a cost in docs/performance.md's table and "
            "link there"
        )


def test_the_readme_states_no_wall_time_it_does_not_check():
    text = readme_prose()
    for checked in (r"about \d+ min to install \+ \d+ min to run", r"make test .*about \d+ min",
                    r"about \d+ minutes and", r"in [\d,]+ s \((?:\d+ h )?\d+ min",
                    r"some [\d.]+ job-hours, [\d.]+ hours on 2 cores"):  # fmt: skip
        text = re.sub(checked, "", text)
    assert not DURATION.findall(text)


def test_every_estimate_in_prose_rounds_a_pasted_grid_estimate():
    totals = [float(t) for t in re.findall(r"^total: ([\d.]+) job-hours", PERFORMANCE.read_text(),
                                           re.MULTILINE)]  # fmt: skip
    text = PERFORMANCE.read_text()
    walls = [float(w) for w in re.findall(r"; ([\d.]+) h wall on \d+ cores", text)]
    quoted = 0
    for page in (README, PERFORMANCE):
        prose = " ".join(page.read_text().split())
        for hours, wall in re.findall(r"some ([\d.]+) job-hours(?:, ([\d.]+) hours on 2 cores)?",
                                      prose):  # fmt: skip
            decimals = len(hours.partition(".")[2])
            i = [round(t, decimals) for t in totals].index(float(hours))  # ValueError: no such
            if wall:
                assert float(wall) == round(walls[i], len(wall.partition(".")[2]))
            quoted += 1
    assert quoted >= 3


def grid_words(values: list[int], last: str = "and") -> str:
    """[128, 256, 1024] -> '128, 256 and 1,024'."""
    words = [f"{v:,}" for v in values]
    return f"{', '.join(words[:-1])} {last} {words[-1]}" if last else ", ".join(words)


def test_the_readme_describes_the_presets_grids():
    text, demo, wide, fashion = readme_prose(), preset("mnist1d"), preset("wide"), preset("fashion")
    grid = demo["grid"]
    one(rf"depths {grid_words(grid['depths'], '')} × widths {grid_words(grid['widths'], '')}, "
        rf"{len(demo['seeds'])} seeds", text)  # fmt: skip
    ratio = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    ratio = ratio["properties"]["fit"]["properties"]["min_width_over_depth"]["default"]
    kept = sum(w >= ratio * d for d in grid["depths"] for w in grid["widths"])
    total = len(grid["depths"]) * len(grid["widths"])
    one(rf"only {kept} of its {total} architectures keep width ≥ {ratio} × depth", text)
    grid = wide["grid"]
    one(rf"widths {grid_words(grid['widths'])} × depths {grid_words(grid['depths'])} "
        rf"\(every architecture has width ≥ {ratio} × depth\), "
        rf"{len(wide['seeds'])} seeds", text)  # fmt: skip
    assert all(w >= ratio * d for d in grid["depths"] for w in grid["widths"])
    assert (fashion["grid"], fashion["seeds"]) == (demo["grid"], demo["seeds"])  # "the demo's grid"
    one(rf"the demo's grid \(depths {min(demo['grid']['depths'])}–{max(demo['grid']['depths'])} × "
        rf"widths {min(demo['grid']['widths'])}–{max(demo['grid']['widths'])}, "
        rf"{len(demo['seeds'])} seeds", text)  # fmt: skip


def test_each_presets_make_target_runs_that_preset():
    """A preset's "Run with: make T" names the target whose recipe runs it."""
    makefile = (ROOT / "Makefile").read_text()
    named = 0
    for path in sorted((ROOT / "presets").glob("*.yaml")):
        target = re.search(r"Run with: make (\w+)", path.read_text())
        if target:
            recipe = one(rf"(?m)^{target[1]}:.*\n((?:\t.*\n)+)", makefile)[1]
            assert f"--configfile presets/{path.name}" in recipe, f"make {target[1]}: {path.name}"
            named += 1
    assert named >= 5
