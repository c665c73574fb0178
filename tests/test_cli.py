"""The command line: one-line rejections with exit 2, and a real run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from milr.cli import main

BISECT = ["bisect", "--dataset", "gaussian", "--depth", "2", "--width", "16", "--threshold", "0.8"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bisect", "--dataset", "gaussian", "--depth", "0", "--width", "8", "--threshold", "0.8",
          "--upper", "1"], "--depth: must be >= 1, got 0"),
        (["bisect", "--dataset", "gaussian", "--depth", "2", "--width", "-3", "--threshold",
          "0.8", "--upper", "1"], "--width: must be >= 1, got -3"),
        ([*BISECT[:-1], "1.5", "--upper", "1"], "--threshold: must be in (0, 1]"),
        ([*BISECT[:-1], "0", "--upper", "1"], "--threshold: must be in (0, 1]"),
        ([*BISECT, "--upper", "1", "--lower", "1"], "need upper > lower"),
        ([*BISECT, "--upper", "0"], "--upper: must be > 0, got 0"),
        (["bisect", "--dataset", "imagenet", "--depth", "2", "--width", "8", "--threshold",
          "0.8", "--upper", "1"], "invalid choice: 'imagenet'"),
        ([*BISECT, "--upper", "1", "--data", "/nonexistent/g.pt"], "does not exist"),
        (["fit", "--eta", "/nope.csv", "--sharpness", "/nope.csv", "--out", "f.csv"],
         "does not exist"),
        (["bisect", "--dataset", "mnist", "--depth", "2", "--width", "8", "--threshold", "0.9",
          "--upper", "1", "--device", "cpu"], "--data is required for mnist"),
        ([*BISECT, "--upper", "1", "--momentum", "5"], "--momentum: must be in [0, 1), got 5"),
        ([*BISECT, "--upper", "nan"], "--upper: must be a finite number, got nan"),
        ([*BISECT, "--upper", "1", "--seed", str(2**63)], "--seed: must be in [0, "),
        ([*BISECT, "--upper", "1", "--epochs", "2.5"], "--epochs: '2.5' is not a whole number"),
        (["figure", "lambda1", "--eta", __file__, "--sharpness", __file__, "--fits", __file__,
          "--spec", "{}", "--png", "p.png", "--pdf", "p.pdf", "--caption", "c.txt"],
         "--spec is no longer read"),
        ([*BISECT, "--upper", "1", "--threads", "0"], "--threads: must be >= 1, got 0"),
        ([*BISECT[:6], "1000000000", *BISECT[7:], "--upper", "1", "--device", "cpu"],
         "--width: a 2 x 1000000000 network on gaussian needs at least"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("milr: error:") and needle in err


def test_bisect_then_aggregate_then_fit(tmp_path, capsys):
    results = []
    for depth, width in ((1, 8), (2, 16), (3, 32)):
        out = tmp_path / "bisect" / f"d{depth}-w{width}-s0.json"
        code = main([
            "bisect", "--dataset", "gaussian", "--gaussian-dim", "8", "--depth", str(depth),
            "--width", str(width), "--threshold", "0.8", "--upper", "4", "--iterations", "3",
            "--epochs", "2", "--device", "cpu", "--out", str(out),
        ])  # fmt: skip
        assert code == 0
        assert "eta* = " in capsys.readouterr().out
        doc = json.loads(out.read_text())
        assert doc["inputs"]["network"]["depth"] == depth and len(doc["probes"]) == 3
        assert out.with_name(out.name + ".journal.jsonl").exists()
        results.append(str(out))
        sharp = tmp_path / "sharpness" / f"d{depth}-w{width}-s0.json"
        assert main([
            "sharpness", "--dataset", "gaussian", "--gaussian-dim", "8", "--depth", str(depth),
            "--width", str(width), "--samples", "200", "--device", "cpu", "--out", str(sharp),
        ]) == 0  # fmt: skip
        results.append(str(sharp))
    eta_csv, sharp_csv = tmp_path / "eta.csv", tmp_path / "sharp.csv"
    missing = str(tmp_path / "bisect" / "d4-w64-s0.json")
    argv = ["aggregate", "--eta-out", str(eta_csv), "--sharpness-out", str(sharp_csv)]
    assert main([*argv, "--allow-missing", *results, missing]) == 0
    eta = pd.read_csv(eta_csv)
    assert len(eta) == 4 and (eta.status == "missing").sum() == 1
    assert eta.loc[eta.status == "missing", "depth_width"].item() == 256
    assert main([*argv, *results, missing]) == 2  # without --allow-missing it is an error
    fits = tmp_path / "fits.csv"
    assert main(["fit", "--eta", str(eta_csv), "--sharpness", str(sharp_csv), "--out",
                 str(fits)]) == 0  # fmt: skip
    table = pd.read_csv(fits)
    assert set(table.quantity) == {"eta_star", "lambda1"}


def test_python_dash_m_runs_the_cli(root):
    env = {**os.environ, "PYTHONPATH": str(root / "workflow")}
    out = subprocess.run(
        [sys.executable, "-m", "milr", "--version"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0 and out.stdout.startswith("milr ")


GAUSS = [*BISECT, "--upper", "4", "--iterations", "2", "--epochs", "1", "--device", "cpu",
         "--gaussian-dim", "4"]  # fmt: skip


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        ("file/result.json", "cannot be written"),  # the parent is a file
        ("adir", "is a directory"),
        ("/proc/milr/result.json", "cannot be written"),
    ],
)
def test_unwritable_output_is_found_before_any_training(tmp_path, capsys, out, needle):
    (tmp_path / "file").write_text("x")
    (tmp_path / "adir").mkdir()
    path = out if out.startswith("/") else str(tmp_path / out)
    assert main([*GAUSS, "--out", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("milr: error: --out") and needle in err and len(err.splitlines()) == 1
    assert "device cpu" not in err  # nothing was trained: stopped before the device was set up


def test_fit_on_an_empty_or_foreign_csv_is_one_line(tmp_path, capsys):
    empty, other = tmp_path / "empty.csv", tmp_path / "other.csv"
    empty.write_text("")
    other.write_text("a,b\n1,2\n")
    for table in (empty, other):
        code = main(["fit", "--eta", str(table), "--sharpness", str(other), "--out",
                     str(tmp_path / "f.csv")])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and str(table) in err and "rerun" in err


def test_a_runtime_failure_exits_1_in_one_line_and_debug_shows_the_traceback(
    tmp_path, capsys, monkeypatch
):
    import milr.measure

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access\nmore lines")

    monkeypatch.setattr(milr.measure, "measure_eta_star_seeds", broken)
    assert main([*GAUSS, "--out", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("milr: error: bisect failed: RuntimeError: CUDA error: an illegal memory "
                       "access (rerun with --debug for the traceback)")  # fmt: skip
    with pytest.raises(RuntimeError):
        main(["--debug", *GAUSS, "--out", str(tmp_path / "r.json")])


def test_outputs_take_the_umask_like_any_file(tmp_path):
    code = subprocess.run(
        [sys.executable, "-c",
         "import os, sys; os.umask(0o022); sys.path.insert(0, sys.argv[1]);"
         "from milr.io import write_atomic; write_atomic(sys.argv[2], 'x')",
         str(Path(__file__).resolve().parents[1] / "workflow"), str(tmp_path / "o.txt")],
    )  # fmt: skip
    assert code.returncode == 0
    assert (tmp_path / "o.txt").stat().st_mode & 0o777 == 0o644


def subcommands() -> list[str]:
    """The subcommands as the parser itself lists them (not a hand-kept list)."""
    import argparse

    from milr.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


@pytest.mark.parametrize("command", [[], *[[name] for name in subcommands()]])
def test_every_help_page_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: milr") and "(default: )" not in out and "(default: [])" not in out


def test_help_texts_say_what_each_file_is(capsys):
    """#30: '95%%' printed verbatim, and every table flag read 'eta.csv (milr aggregate; fits.csv:
    milr fit)'."""
    for argv in (["--help"], ["fit", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "95% intervals" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["figure", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "fits.csv: milr fit" not in out and "%%" not in out
    assert "λ1 table (milr aggregate --sharpness-out)" in out


def test_global_flags_also_follow_the_command(tmp_path, capsys):
    """#30: 'milr predict ... -q' was rejected; -q and --debug work on either side."""
    for argv in (["-q", "summary", "--tables", str(tmp_path)],
                 ["summary", "--tables", str(tmp_path), "-q"]):  # fmt: skip
        assert main(argv) == 2
        assert "no finished study" in capsys.readouterr().err
    with pytest.raises(Exception, match="no finished study"):
        main(["summary", "--tables", str(tmp_path), "--debug"])


def test_milr_alone_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in subcommands()) and len(subcommands()) >= 11


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["aggregate", "--eta-out", "e.csv", "--sharpness-out", "s.csv"], "no result files given"),
        (["aggregate", "--eta-out", "e.csv", "--sharpness-out", "s.csv", "--sweep-architecture",
          "0x-5", "x.json"], "depth and width must be >= 1"),
        (["summary", "--tables", ".", "--check"], "--write and --check need --readme"),
        (["summary", "--tables", "results/mnist1d/tables"], "'make demo' writes"),
        (["predict", "--dataset", "mnist1d", "--arch", "2x64", "-q"], "run one first"),
    ],
)  # fmt: skip
def test_first_contact_mistakes_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = None
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("milr: error:") and needle in err
    assert not list(tmp_path.iterdir())  # nothing written


NET = ["--dataset", "gaussian", "--gaussian-dim", "4", "--depth", "2", "--width", "8",
       "--seed", "0", "1"]  # fmt: skip
SHARPNESS = ["sharpness", *NET, "--samples", "200", "--max-iter", "20",
             "--input-lr-variant", "small=0.1"]  # fmt: skip
RANGE = ["range-test", *NET, "--steps", "40", "--input-lr-scale", "0.1", "--variant", "small"]


def outs(folder: Path, kind: str) -> list[str]:
    return ["--out", *(str(folder / f"{kind}-s{seed}.json") for seed in (0, 1))]


def numbers(path: Path) -> dict:
    """A result file without what may differ between two runs of the same job."""
    doc = json.loads(path.read_text())
    return {k: v for k, v in doc.items() if k not in ("wall_time_s", "provenance")}


def test_together_writes_what_the_commands_write_alone(tmp_path, capsys):
    alone, together = tmp_path / "alone", tmp_path / "together"
    for kind, argv in (("sharpness", SHARPNESS), ("range", RANGE)):
        assert main([*argv, *outs(alone, kind), "--device", "cpu"]) == 0
    argv = ["together", "--device", "cpu", "::", *SHARPNESS, *outs(together, "sharpness")]
    assert main([*argv, "::", *RANGE, *outs(together, "range")]) == 0
    written = sorted(p.name for p in together.iterdir())
    assert written == sorted(p.name for p in alone.iterdir()) and len(written) == 4
    for name in written:
        assert numbers(together / name) == numbers(alone / name), name
    out = capsys.readouterr().out
    assert out.count("lambda1 = ") == 4 and out.count("steepest") == 4


def test_together_loads_a_data_file_once(tmp_path):
    import milr.cli

    data = tmp_path / "g.pt"
    prepare = ["prepare", "--dataset", "gaussian", "--gaussian-dim", "4", "--out", str(data)]
    assert main(prepare) == 0
    milr.cli._load_cache.cache_clear()
    with_data = ["--data", str(data), "--device", "cpu"]
    argv = ["together", "::", *SHARPNESS, *outs(tmp_path, "s"), *with_data]
    assert main([*argv, "::", *RANGE, *outs(tmp_path, "r"), *with_data]) == 0
    info = milr.cli._load_cache.cache_info()
    assert (info.misses, info.hits) == (1, 1)


@pytest.mark.parametrize(
    ("words", "needle"),
    [
        ([], "needs ':: COMMAND [OPTIONS]' per command"),
        (SHARPNESS, "needs ':: COMMAND [OPTIONS]' per command"),  # no '::' before the command
        (["::", *SHARPNESS, "::"], "needs ':: COMMAND [OPTIONS]' per command"),
        (["::", "fit", "--eta", "e.csv"], "runs bisect, sharpness, range-test, not 'fit'"),
        (["::", *SHARPNESS, "::", *RANGE, "--end-lr", "1e-6"], "end_lr"),  # checked first
        (["::", *SHARPNESS, "::", *RANGE, "--steps", "1"], "--steps: must be >= 20, got 1"),
    ],
)
def test_together_checks_every_command_before_the_first_runs(tmp_path, capsys, words, needle):
    first = tmp_path / "first.json"
    if SHARPNESS[0] in words:  # the first command would write a file if it ran
        at = words.index("--input-lr-variant") + 2
        words = [*words[:at], "--out", str(first), "--seed", "0", *words[at:]]
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["together", "--device", "cpu", *words]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("milr: error:") and needle in err, err
    assert not first.exists()


MODELS = """
import torch
from torch import nn
value = 3
def good(seed):
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
def not_a_module(seed):
    return "a model"
def one_output(seed):
    return nn.Linear(8, 1)
class Nan(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 2)
    def forward(self, x):
        return self.layer(x) * float("nan")
def nan_loss(seed):
    return Nan()
"""
FIND = [
    "find",
    "--dataset",
    "gaussian",
    "--gaussian-dim",
    "8",
    "--threshold",
    "0.8",
    "--gaussian-train-per-class",
    "300",
    "--gaussian-val-per-class",
    "100",
    "--epochs",
    "2",
]


@pytest.mark.parametrize(
    ("model", "extra", "needle"),
    [
        ("{dir}/models.py", [], "--model must be FILE.py:FACTORY"),
        ("{dir}/absent.py:good", [], "--model: no file"),
        ("{dir}/broken.py:good", [], "importing {dir}/broken.py failed: NameError: name 'oops'"),
        ("{dir}/models.py:absent", [], "defines no absent (it defines: Nan, good, "),
        ("{dir}/models.py:value", [], "--model: {dir}/models.py:value is a int, not a function"),
        ("{dir}/models.py:not_a_module", [], "returned str, not an nn.Module"),
        ("{dir}/models.py:one_output", [], "it needs at least 2 outputs"),
        ("{dir}/models.py:nan_loss", [], "the loss is nan at initialisation"),
        ("{dir}/models.py:good", ["--seed", "0", "1", "--max-probes", "1"],
         "max_probes (--max-probes) 1 cannot decide one rate"),
        ("{dir}/models.py:good", ["--seed", "0", "--must-pass", "2"], "more than the 1 seeds"),
        ("{dir}/models.py:good", ["--max-seconds", "1e-9"], "the budget ran out before one rate"),
    ],
)  # fmt: skip
def test_find_gets_one_line_for_a_bad_model_or_budget(tmp_path, capsys, model, extra, needle):
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "broken.py").write_text("oops\n")
    code = main([*FIND, "--model", model.format(dir=tmp_path), *extra, "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("milr: error:"), err
    assert needle.format(dir=tmp_path) in err[-1]


def test_find_prints_the_bracket_and_writes_every_training(tmp_path, capsys):
    (tmp_path / "models.py").write_text(MODELS)
    out = tmp_path / "eta.json"
    argv = [*FIND, "--model", f"{tmp_path}/models.py:good", "--seed", "0", "1", "--out", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    record = json.loads(out.read_text())
    assert lines[0].startswith(f"eta* = {record['eta_star']:.6g}  bracket [")
    assert lines[1].startswith(f"recommended: {record['recommended']:.6g} (0.5 x eta*)")
    assert record["complete"] and record["settings"]["seeds"] == [0, 1]
    assert {t["seed"] for v in record["verdicts"] for t in v["trials"]} == {0, 1}


@pytest.mark.parametrize("script", sorted(Path(__file__).parents[1].glob("bench/*.py")),
                         ids=lambda p: p.name)  # fmt: skip
def test_each_benchmarks_help_opens_with_a_whole_sentence(script):
    """--help prints the docstring's first line: a sentence, not one cut off mid-phrase."""
    import ast

    first = ast.get_docstring(ast.parse(script.read_text())).splitlines()[0]
    assert first.endswith((".", ")")) and len(first) <= 100, first
