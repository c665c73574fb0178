"""The resume journal of a search: finished probes, one JSON line each, appended as they finish.

A killed bisection job resumes without repeating the probes it finished.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from milr.io import to_jsonable
from milr.records import TrainRecord
from milr.settings import from_json

log = logging.getLogger("milr")


class Journal:
    """Finished probes, one JSON line each, appended as they finish.

    The first line records the search inputs; a journal written for other inputs is set aside
    (renamed ``*.stale``) rather than trusted. Lines are flushed and fsynced one by one, so a
    killed job loses at most the probe it was running; a torn last line is ignored.
    """

    def __init__(self, path: str | os.PathLike, key: dict) -> None:
        self.path = Path(path)
        self.key = json.loads(json.dumps(to_jsonable(key)))
        self.records: list[TrainRecord] = self._load()

    def _load(self) -> list[TrainRecord]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if header != {"inputs": self.key}:
            stale = self.path.with_suffix(self.path.suffix + ".stale")
            os.replace(self.path, stale)
            log.warning("journal %s was for other inputs; moved to %s", self.path, stale)
            return []
        records = []
        for line in lines[1:]:
            try:
                records.append(from_json(TrainRecord, json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                break  # a torn line from a killed write: everything before it is good
        return records

    def find(self, lr: float) -> TrainRecord | None:
        for record in self.records:
            if math.isclose(record.lr, lr, rel_tol=1e-12, abs_tol=0.0):
                return record
        return None

    def append(self, record: TrainRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = not self.path.exists()
        with open(self.path, "a") as handle:
            if new_file:
                handle.write(json.dumps({"inputs": self.key}) + "\n")
            handle.write(json.dumps(to_jsonable(record)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.records.append(record)
