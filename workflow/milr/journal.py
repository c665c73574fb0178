"""The resume journal of a search: finished probes, one JSON line each, appended as they finish.

A killed bisection job resumes without repeating the probes it finished, and only when nothing
that decides a probe has changed. The first line holds the key: the search inputs and a
fingerprint of everything else that decides a probe's outcome (the code the job runs, the data
file's content, the device, the library versions). A journal written under another key is set
aside under a name that says why (``*.stale-code``, ``*.stale-data``, ...) and the search
retrains. Every record carries a checksum: a torn, undecodable or altered line is reported with
its line number, the journal keeps the records before it, and the search retrains from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from milr.io import to_jsonable, write_atomic
from milr.records import TrainRecord
from milr.settings import from_json

log = logging.getLogger("milr")


def checksum(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _line(record: TrainRecord) -> str:
    data = to_jsonable(record)
    return json.dumps({"record": data, "sha256": checksum(data)}) + "\n"


def _parse(line: str) -> TrainRecord:
    """One journal line back into a record; ValueError says why it cannot be trusted."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from err
    if not isinstance(entry, dict) or entry.get("sha256") != checksum(entry.get("record")):
        raise ValueError("checksum mismatch (torn or altered)")
    data = entry["record"]
    if not isinstance(data.get("lr"), int | float) or not isinstance(data.get("success"), bool):
        raise ValueError("lr or success has the wrong type")
    try:
        return from_json(TrainRecord, data)
    except TypeError as err:
        raise ValueError(f"not a probe record ({err})") from err


def _why_stale(old: Any, new: dict[str, Any]) -> str:
    """Which part of the key changed: inputs, code, data, device or versions."""
    if not isinstance(old, dict) or old.get("inputs") != new["inputs"]:
        return "inputs"
    for part, value in new["fingerprint"].items():
        if (old.get("fingerprint") or {}).get(part) != value:
            return part
    return "key"


class Journal:
    """Finished probes of one search, keyed by everything that decides them."""

    def __init__(
        self, path: str | os.PathLike, inputs: Any, fingerprint: dict[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.key = json.loads(json.dumps({"inputs": to_jsonable(inputs),
                                          "fingerprint": fingerprint or {}}))  # fmt: skip
        self.records: list[TrainRecord] = self._load()

    def _set_aside(self, why: str) -> None:
        target = self.path.with_name(f"{self.path.name}.stale-{why}")
        os.replace(self.path, target)
        log.warning("journal %s: written for other %s; set aside as %s", self.path, why, target)

    def _load(self) -> list[TrainRecord]:
        if not self.path.exists():
            return []
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            header = json.loads(lines[0]) if lines else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._set_aside("unreadable")
            return []
        if header != self.key:
            self._set_aside(_why_stale(header, self.key))
            return []
        records = []
        for number, line in enumerate(lines[1:], start=2):
            try:
                records.append(_parse(line))
            except ValueError as err:
                log.warning("journal %s line %d: %s; retraining from there", self.path, number, err)
                self._rewrite(records)
                break
        return records

    def _rewrite(self, records: list[TrainRecord]) -> None:
        """The journal with only its trusted records, so that appends start on a clean line."""
        write_atomic(self.path, json.dumps(self.key) + "\n" + "".join(map(_line, records)))

    def find(self, lr: float) -> TrainRecord | None:
        for record in self.records:
            if math.isclose(record.lr, lr, rel_tol=1e-12, abs_tol=0.0):
                return record
        return None

    def append(self, record: TrainRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as handle:
            if new_file:
                handle.write(json.dumps(self.key) + "\n")
            handle.write(_line(record))
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)
