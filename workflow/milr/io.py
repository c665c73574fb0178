"""Atomic writes, typed JSON records and provenance.

Every output of the package goes through :func:`write_atomic`: a job killed half-way leaves the
previous file (or none), never a truncated one that Snakemake or a resumed search would trust.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import milr

T = TypeVar("T")
PACKAGE_DIR = Path(__file__).resolve().parent


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        raise milr.MilrError(f"{path} is not valid JSON ({err.msg}); delete it and rerun") from err


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``, recursing into dataclass-typed fields."""
    import typing

    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name not in data:
            continue
        value = data[field.name]
        hint = hints[field.name]
        kwargs[field.name] = _coerce(hint, value)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any) -> Any:
    import typing

    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (list, tuple) and args and isinstance(value, list):
        inner = args[0]
        converted = [_coerce(inner, v) for v in value]
        return tuple(converted) if origin is tuple else converted
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        for arg in args:
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return from_dict(arg, value)
    return value


def source_hash(modules: Iterable[str] | None = None) -> str:
    """A short hash of the package's source files (all, or the named modules).

    Snakemake's code trigger sees only rule text, not imported modules; the workflow passes this
    hash as a param so that a change to the code a rule runs reruns that rule's jobs.
    """
    names = sorted(modules) if modules is not None else None
    files = sorted(PACKAGE_DIR.glob("*.py"))
    digest = hashlib.sha256()
    for file in files:
        if names is not None and file.stem not in names:
            continue
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
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
    """Where and with what a result was computed."""

    milr_version: str
    torch_version: str
    python_version: str
    device: str
    device_name: str
    cuda_visible_devices: str | None
    git_commit: str | None
    hostname: str

    @classmethod
    def collect(cls, device: str) -> Provenance:
        import torch

        if device.startswith("cuda"):
            device_name = torch.cuda.get_device_name(torch.device(device))
        else:
            device_name = platform.processor() or platform.machine()
        return cls(
            milr_version=milr.__version__,
            torch_version=torch.__version__,
            python_version=platform.python_version(),
            device=device,
            device_name=device_name,
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            git_commit=git_commit(),
            hostname=platform.node(),
        )
