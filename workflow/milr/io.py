"""Atomic writes, typed JSON records and provenance.

Every output of the package goes through :func:`write_atomic`: a job killed half-way leaves the
previous file (or none), never a truncated one that Snakemake or a resumed search would trust.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import milr

PACKAGE_DIR = Path(__file__).resolve().parent


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Outputs get the mode any new file of this process would (mkstemp alone gives 0600).
FILE_MODE = 0o666 & ~_umask()


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike, flag: str) -> None:
    """Fail now, in one line, if ``path`` cannot be written: before hours of training, not after.
    Creates the missing parent folders (as the write would) and a probe file beside the output."""
    path = Path(path)
    if path.is_dir():
        raise milr.MilrError(f"{flag} {path} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise milr.MilrError(
            f"{flag} {path} cannot be written ({err.strerror}); choose another path"
        ) from err


def to_jsonable(obj: Any) -> Any:
    """Dataclasses and tuples to plain JSON values (non-finite floats stay NaN/Infinity)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write a dataclass (or plain value) as indented JSON, atomically."""
    write_atomic(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, turning a missing or corrupt file into a one-line :class:`MilrError`."""
    path = Path(path)
    if not path.is_file():
        raise milr.MilrError(f"input file {path} does not exist; run the step that makes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise milr.MilrError(
            f"{path} is not valid JSON ({err.msg}): pass the file its step wrote (the workflow "
            "rewrites its own with --forcerun)"
        ) from err


def study_tables(tables: str | os.PathLike) -> Path:
    """A finished study's tables folder, or a one-line error that says how to make one."""
    tables = Path(tables)
    if not (tables / "study.json").is_file():
        raise milr.MilrError(
            f"no finished study in {tables} (no study.json): run one first ('make demo' writes "
            "results/mnist1d/tables, 'make tiny' results/tiny/tables; any preset: "
            "<its results folder>/tables)"
        )
    return tables


def _not_a_number(values: Any) -> Any:
    """Entries of a column that are present but do not read as numbers."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce")
    return values[numbers.isna() & values.notna()]


def read_table(
    path: str | os.PathLike,
    columns: Iterable[str] = (),
    rows: int | None = None,
    may_be_empty: bool = False,
):
    """A CSV table milr wrote, checked before anyone computes from it.

    One line names the file and what is wrong: missing, empty, cut off (a last row without its
    newline, or a row with fewer fields than the header), without the ``columns`` its reader
    needs, a value that is not a number in a numeric column (with its row and column), or a
    row count other than ``rows`` (what ``study.json`` says the study wrote: a table cut at a
    row boundary reads as a smaller study otherwise). ``may_be_empty``: a header without rows
    is a finished table (the leave-one-out check when no law had enough architectures).
    """
    import csv
    import io as stdio

    import pandas as pd

    from milr.names import NUMERIC_COLUMNS

    path = Path(path)
    rerun = "rerun the step that makes it"
    if not path.is_file():
        raise milr.MilrError(f"input file {path} does not exist; {rerun} first")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise milr.MilrError(f"{path} is not a text table ({err.reason}); {rerun}") from err
    if not text.strip():
        raise milr.MilrError(f"{path} is empty; {rerun}")
    if not text.endswith("\n"):
        raise milr.MilrError(f"{path} is cut off: its last row has no line end; {rerun}")
    records = list(csv.reader(stdio.StringIO(text)))
    for number, record in enumerate(records[1:], start=1):
        if len(record) != len(records[0]):
            raise milr.MilrError(
                f"{path} row {number} has {len(record)} fields where the header has "
                f"{len(records[0])}: cut off or edited; {rerun}"
            )
    table = pd.read_csv(stdio.StringIO(text))
    missing = sorted(set(columns) - set(table.columns))
    if missing:
        raise milr.MilrError(f"{path} lacks the columns {missing}: not a milr table; {rerun}")
    if table.empty and not may_be_empty:
        raise milr.MilrError(f"{path} has a header but no rows; {rerun}")
    for column in table.columns:
        if pd.api.types.is_numeric_dtype(table[column]) or pd.api.types.is_bool_dtype(
            table[column]
        ):
            continue
        bad = _not_a_number(table[column])
        mostly_numbers = len(bad) < table[column].notna().sum() / 2
        if len(bad) and (column in NUMERIC_COLUMNS or mostly_numbers):
            row = int(bad.index[0]) + 1
            raise milr.MilrError(
                f"{path} row {row}, column {column}: {bad.iloc[0]!r} is not a number; {rerun}"
            )
    if rows is not None and len(table) != rows:
        raise milr.MilrError(
            f"{path} has {len(table)} rows where study.json says the study wrote {rows}: cut "
            f"off or from another run; {rerun} (milr aggregate)"
        )
    return table


def _milr_imports(nodes: Iterable[ast.AST]) -> set[str]:
    """Package modules named by the import statements among ``nodes``."""
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("milr.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "milr":
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("milr."):
            names.add(node.module.split(".")[1])
    return {n for n in names if (PACKAGE_DIR / f"{n}.py").is_file()}


def _syntax(tree: ast.Module) -> str:
    """The module's syntax tree without docstrings: comments, docstrings and formatting do not
    change what the code computes, so they do not change its fingerprint."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list) and body and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
        ):  # fmt: skip
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_fingerprint(entries: Iterable[str]) -> str:
    """A short hash of the code a step runs: the ``entries`` modules and every package module
    they import (at any depth, lazy imports included), plus the command line that calls them.

    Snakemake's code trigger sees only rule text, not imported modules; the workflow passes this
    as a param, so that a real edit to any module a step imports reruns exactly that step (and
    what depends on it), and a comment edit reruns nothing.
    """
    # The CLI dispatches every step: hash it, but follow only its module-level imports (its
    # lazy imports are the other steps' code).
    todo = [(name, True) for name in entries] + [("cli", False), ("__init__", False)]
    seen: dict[str, str] = {}
    while todo:
        name, follow_all = todo.pop()
        if name in seen:
            continue
        tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text())
        nodes = ast.walk(tree) if follow_all else tree.body
        todo += [(module, True) for module in _milr_imports(nodes)]
        seen[name] = _syntax(tree)
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(f"{name}\0{seen[name]}\0".encode())
    return digest.hexdigest()[:12]


def git_commit() -> str | None:
    """The checkout's commit, when the package runs from a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where and with what a result was computed: ``numerics`` holds the device's name, the
    float32 precision in force and the torch/numpy/python/CUDA/cuDNN/cuBLAS versions."""

    milr_version: str
    device: str
    numerics: dict[str, str | None]
    cuda_visible_devices: str | None
    git_commit: str | None
    hostname: str

    @classmethod
    def collect(cls, device: str) -> Provenance:
        from milr.numerics import numerics

        return cls(
            milr_version=milr.__version__,
            device=device,
            numerics=numerics(device),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            git_commit=git_commit(),
            hostname=platform.node(),
        )
