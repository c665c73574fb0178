"""Tidy tables from the per-job JSON results: one row per job, every input and every result.

A job that has not produced its result (failed, cancelled, still to run) appears as a row whose
``status`` is ``missing`` when the caller allows it, so a partial run shows what is absent instead
of silently shrinking the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from milr import MilrError
from milr.io import read_json

ETA_COLUMNS = [
    "dataset", "variant", "threshold", "depth", "width", "depth_width", "seed",
    "input_lr_scale", "method", "scale", "upper", "iterations", "eta_star", "bracket_low",
    "bracket_high", "relative_bracket", "probes", "no_success", "hit_upper_bound", "device",
    "device_name", "wall_time_s", "status", "path",
]  # fmt: skip
SHARPNESS_COLUMNS = [
    "dataset", "depth", "width", "depth_width", "seed", "samples", "lambda1", "device",
    "device_name", "wall_time_s", "status", "path",
]  # fmt: skip

# Wildcards recoverable from a result path, for rows whose file is missing.
_PATH_FIELDS = re.compile(
    r"(?:(?P<dataset>[a-z0-9]+)/(?:(?P<variant>[A-Za-z0-9_]+)/t(?P<threshold>[0-9.]+)/)?)?"
    r"d(?P<depth>\d+)-w(?P<width>\d+)-s(?P<seed>\d+)\.json$"
)


def _provenance(doc: dict) -> dict:
    prov = doc.get("provenance") or {}
    return {"device": prov.get("device", ""), "device_name": prov.get("device_name", "")}


def eta_row(path: Path, doc: dict) -> dict:
    inputs = doc["inputs"]
    return {
        "dataset": inputs["dataset"],
        "variant": inputs.get("variant", ""),
        "threshold": inputs["threshold"],
        "depth": inputs["depth"],
        "width": inputs["width"],
        "depth_width": inputs["depth"] * inputs["width"],
        "seed": inputs["seed"],
        "input_lr_scale": inputs["input_lr_scale"],
        "method": inputs.get("method", "bisect"),
        "scale": inputs.get("scale", "linear"),
        "upper": inputs["upper"],
        "iterations": inputs["iterations"],
        "eta_star": doc["eta_star"],
        "bracket_low": doc["bracket_low"],
        "bracket_high": doc["bracket_high"],
        "relative_bracket": doc["relative_bracket"],
        "probes": len(doc["probes"]),
        "no_success": doc["no_success"],
        "hit_upper_bound": doc["hit_upper_bound"],
        **_provenance(doc),
        "wall_time_s": doc["wall_time_s"],
        "status": "ok",
        "path": str(path),
    }


def sharpness_row(path: Path, doc: dict) -> dict:
    inputs = doc["inputs"]
    return {
        "dataset": inputs["dataset"],
        "depth": inputs["depth"],
        "width": inputs["width"],
        "depth_width": inputs["depth"] * inputs["width"],
        "seed": inputs["seed"],
        "samples": doc["samples_used"],
        "lambda1": doc["lambda1"],
        **_provenance(doc),
        "wall_time_s": doc["wall_time_s"],
        "status": "ok",
        "path": str(path),
    }


def _missing_row(path: Path) -> dict:
    match = _PATH_FIELDS.search(path.as_posix())
    fields = {k: v for k, v in (match.groupdict() if match else {}).items() if v is not None}
    for key in ("depth", "width", "seed"):
        if key in fields:
            fields[key] = int(fields[key])
    if "threshold" in fields:
        fields["threshold"] = float(fields["threshold"])
    if "depth" in fields and "width" in fields:
        fields["depth_width"] = fields["depth"] * fields["width"]
    return {**fields, "status": "missing", "path": str(path)}


def collect(paths: Iterable[str | Path], kind: str, allow_missing: bool = False) -> pd.DataFrame:
    """Rows for the result files of one kind ("eta" or "sharpness")."""
    row_of, columns = {
        "eta": (eta_row, ETA_COLUMNS),
        "sharpness": (sharpness_row, SHARPNESS_COLUMNS),
    }[kind]
    rows = []
    for raw in paths:
        path = Path(raw)
        if not path.exists() and allow_missing:
            rows.append(_missing_row(path))
            continue
        doc = read_json(path)
        try:
            rows.append(row_of(path, doc))
        except (KeyError, TypeError) as err:
            raise MilrError(
                f"{path} is not a {kind} result (missing {err}); rerun its job"
            ) from err
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values([c for c in columns[:7] if c in table]).reset_index(drop=True)


def split_by_kind(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """Result paths under ``.../bisect/...`` versus ``.../sharpness/...``."""
    eta, sharp = [], []
    for path in paths:
        parts = Path(path).parts
        if "sharpness" in parts:
            sharp.append(path)
        elif "bisect" in parts:
            eta.append(path)
        else:
            raise MilrError(f"{path} is neither under a bisect/ nor a sharpness/ folder")
    return eta, sharp
