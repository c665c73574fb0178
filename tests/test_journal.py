"""The resume journal: keyed by everything that decides a probe, checksummed line by line, and
never crashing or trusting a bad line."""

from __future__ import annotations

import json
import logging

import pytest
from milr.journal import Journal, checksum
from milr.search import search
from milr.settings import SearchSpec
from test_search import StepTrainer

KEY = {"code": "abc", "data": "d1", "device": "cpu", "versions": "torch x"}
SPEC = SearchSpec(upper=4.0, iterations=4)


def run(path, fingerprint=KEY, true_eta=1.1):
    trainer = StepTrainer(true_eta)
    out = search(trainer, SPEC, Journal(path, {"depth": 2}, fingerprint))
    return trainer, out


def test_a_complete_journal_is_replayed(tmp_path):
    path = tmp_path / "j.jsonl"
    _, first = run(path)
    trainer, again = run(path)
    assert trainer.calls == [] and again.resumed_probes == 4
    assert (again.eta_star, again.bracket_high) == (first.eta_star, first.bracket_high)


@pytest.mark.parametrize("part", ["code", "data", "device", "versions"])
def test_a_changed_fingerprint_sets_the_journal_aside_and_retrains(tmp_path, part, caplog):
    path = tmp_path / "j.jsonl"
    run(path)
    with caplog.at_level(logging.WARNING, logger="milr"):
        trainer, out = run(path, {**KEY, part: "changed"})
    assert len(trainer.calls) == 4 and out.resumed_probes == 0
    assert (tmp_path / f"j.jsonl.stale-{part}").exists()
    assert f"written for other {part}" in caplog.text


def test_other_inputs_set_the_journal_aside(tmp_path):
    path = tmp_path / "j.jsonl"
    run(path)
    trainer = StepTrainer(1.1)
    search(trainer, SPEC, Journal(path, {"depth": 3}, KEY))
    assert len(trainer.calls) == 4 and (tmp_path / "j.jsonl.stale-inputs").exists()


def lines(path):
    return path.read_text().splitlines()


def test_append_after_a_torn_line_loses_nothing(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    run(path)
    kept = lines(path)[:3]  # header + 2 probes
    path.write_text("\n".join(kept) + "\n" + lines(path)[3][:25])  # a write killed mid-line
    with caplog.at_level(logging.WARNING, logger="milr"):
        trainer, out = run(path)
    assert "line 4" in caplog.text and len(trainer.calls) == 2  # retrained from the torn line
    entries = [json.loads(line) for line in lines(path)]  # every line is whole again
    assert len(entries) == 5 and out.resumed_probes == 2


@pytest.mark.parametrize(
    "bad",
    [
        "garbage that is not json",
        '{"record": {"lr": "2.0", "success": true}, "sha256": "x"}',
        "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
    ],
    ids=["garbage", "string-lr", "non-utf8-ish"],
)
def test_a_bad_middle_line_is_reported_and_retrained_from(tmp_path, caplog, bad):
    path = tmp_path / "j.jsonl"
    run(path)
    content = lines(path)
    path.write_text("\n".join([*content[:2], bad, *content[3:]]) + "\n")
    with caplog.at_level(logging.WARNING, logger="milr"):
        trainer, out = run(path)
    assert "line 3" in caplog.text
    assert len(trainer.calls) == 3 and out.resumed_probes == 1


def test_undecodable_bytes_never_crash(tmp_path):
    path = tmp_path / "j.jsonl"
    run(path)
    path.write_bytes(path.read_bytes()[:40] + b"\xff\xfe\x00" + path.read_bytes()[40:])
    trainer, _ = run(path)
    assert len(trainer.calls) == 4 and (tmp_path / "j.jsonl.stale-unreadable").exists()


def test_a_tampered_record_is_not_trusted(tmp_path, caplog):
    """Flip one probe's success: its checksum no longer matches; the search retrains it."""
    path = tmp_path / "j.jsonl"
    _, honest = run(path)
    content = lines(path)
    entry = json.loads(content[2])
    entry["record"]["success"] = not entry["record"]["success"]
    path.write_text("\n".join([content[0], content[1], json.dumps(entry), *content[3:]]) + "\n")
    with caplog.at_level(logging.WARNING, logger="milr"):
        trainer, again = run(path)
    assert "checksum mismatch" in caplog.text and len(trainer.calls) == 3
    assert again.eta_star == honest.eta_star
    assert checksum(entry["record"]) != entry["sha256"]
