"""Tidy tables from the per-job JSON results: one row per job (and one per probe).

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
from milr.names import BISECT_PATTERN, SHARPNESS_PATTERN, WILDCARDS
from milr.records import Study

KEYS = ["dataset", "variant", "threshold", "role", "depth", "width", "depth_width", "seed"]
ETA_COLUMNS = [
    *KEYS, "input_lr_scale", "method", "scale", "upper", "upper_found", "iterations", "eta_star",
    "bracket_low", "bracket_high", "relative_bracket", "probes", "bracketing_probes",
    "no_success", "hit_upper_bound",
    "device", "device_name", "wall_time_s", "status", "path",
]  # fmt: skip
SHARPNESS_COLUMNS = [
    "dataset", "depth", "width", "depth_width", "seed", "samples", "lambda1", "device",
    "device_name", "wall_time_s", "status", "path",
]  # fmt: skip
PROBE_COLUMNS = [
    *KEYS, "probe", "lr", "success", "diverged", "epochs_run", "best_val_accuracy",
    "final_train_loss", "wall_time_s",
]  # fmt: skip


def _path_regex(pattern: str) -> re.Pattern:
    """A regex that recovers the wildcards from the end of a result path of ``pattern`` (the
    folders above the file name are optional, innermost first)."""

    def segment(text: str) -> str:
        regex = re.escape(text)
        for name, allowed in WILDCARDS.items():
            regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>{allowed})")
        return regex

    *folders, file = pattern.split("/")[1:]  # the first folder names the kind
    prefix = ""
    for folder in folders:
        prefix = f"(?:{prefix}{segment(folder)}/)?"
    return re.compile(f"(?:^|/){prefix}{segment(file)}$")


PATHS = {"eta": _path_regex(BISECT_PATTERN), "sharpness": _path_regex(SHARPNESS_PATTERN)}


def _role(study: Study | None, dataset: str, threshold: float) -> str:
    """``main`` at the dataset's main t (exactly: both come from the same config value)."""
    if study is None:
        return ""
    return "main" if study.thresholds.get(dataset) == threshold else "sweep"


def _provenance(doc: dict) -> dict:
    prov = doc.get("provenance") or {}
    name = (prov.get("numerics") or {}).get("device_name", prov.get("device_name", ""))
    return {"device": prov.get("device", ""), "device_name": name}


def _network(inputs: dict) -> dict:
    net = inputs["network"]
    return {
        "dataset": net["dataset"],
        "depth": net["depth"],
        "width": net["width"],
        "depth_width": net["depth"] * net["width"],
        "seed": net["seed"],
    }


def eta_keys(doc: dict, study: Study | None) -> dict:
    inputs = doc["inputs"]
    keys = _network(inputs)
    t = inputs["train"]["threshold"]
    return {**keys, "variant": inputs["variant"], "threshold": t,
            "role": _role(study, keys["dataset"], t)}  # fmt: skip


def eta_row(path: Path, doc: dict, study: Study | None = None) -> dict:
    inputs, search = doc["inputs"], doc["inputs"]["search"]
    return {
        **eta_keys(doc, study),
        "input_lr_scale": inputs["train"]["input_lr_scale"],
        "method": search["method"],
        "scale": search["scale"],
        "upper": doc["upper"],
        "upper_found": doc["upper_found"],
        "iterations": search["iterations"],
        **{k: doc[k] for k in ("eta_star", "bracket_low", "bracket_high", "relative_bracket")},
        "probes": len(doc["probes"]),
        "bracketing_probes": doc["bracketing_probes"],
        "no_success": doc["no_success"],
        "hit_upper_bound": doc["hit_upper_bound"],
        **_provenance(doc),
        "wall_time_s": doc["wall_time_s"],
        "status": "ok",
        "path": str(path),
    }


def sharpness_row(path: Path, doc: dict, study: Study | None = None) -> dict:
    return {
        **_network(doc["inputs"]),
        "samples": doc["samples_used"],
        "lambda1": doc["lambda1"],
        **{f"lambda1_{name}": v for name, v in doc.get("preconditioned", {}).items()},
        **_provenance(doc),
        "wall_time_s": doc["wall_time_s"],
        "status": "ok",
        "path": str(path),
    }


def probe_rows(doc: dict, study: Study | None = None) -> list[dict]:
    """One row per probe of a search, in the order the probes ran."""
    keys = eta_keys(doc, study)
    return [
        {
            **keys,
            "probe": i,
            **{k: p[k] for k in ("lr", "success", "diverged", "epochs_run")},
            "best_val_accuracy": max(p["val_accuracy"], default=0.0),
            "final_train_loss": p["final_train_loss"],
            "wall_time_s": p["wall_time_s"],
        }
        for i, p in enumerate(doc["probes"], start=1)
    ]


def _missing_row(path: Path, kind: str, study: Study | None) -> dict:
    match = PATHS[kind].search(path.as_posix())
    fields = {k: v for k, v in (match.groupdict() if match else {}).items() if v is not None}
    for key in ("depth", "width", "seed"):
        if key in fields:
            fields[key] = int(fields[key])
    if "threshold" in fields:
        fields["threshold"] = float(fields["threshold"])
        fields["role"] = _role(study, fields["dataset"], fields["threshold"])
    if "depth" in fields and "width" in fields:
        fields["depth_width"] = fields["depth"] * fields["width"]
    return {**fields, "status": "missing", "path": str(path)}


def _sorted(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    extra = sorted({k for row in rows for k in row} - set(columns))  # e.g. lambda1_<variant>
    table = pd.DataFrame(rows, columns=columns + extra)
    order = [c for c in ("dataset", "variant", "threshold", "depth", "width", "seed", "probe")
             if c in columns]  # fmt: skip
    return table.sort_values(order).reset_index(drop=True)


def collect(
    paths: Iterable[str | Path],
    kind: str,
    allow_missing: bool = False,
    study: Study | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The job table of the result files of one kind ("eta" or "sharpness") and, for η*, the
    probe table (one row per probe), reading each file once."""
    row_of, columns = {
        "eta": (eta_row, ETA_COLUMNS),
        "sharpness": (sharpness_row, SHARPNESS_COLUMNS),
    }[kind]
    rows, probes = [], []
    for raw in paths:
        path = Path(raw)
        if not path.exists() and allow_missing:
            rows.append(_missing_row(path, kind, study))
            continue
        doc = read_json(path)
        try:
            rows.append(row_of(path, doc, study))
            if kind == "eta":
                probes += probe_rows(doc, study)
        except (KeyError, TypeError) as err:
            raise MilrError(
                f"{path} is not a {kind} result (missing {err}); rerun its job"
            ) from err
    return _sorted(rows, columns), _sorted(probes, PROBE_COLUMNS)


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
