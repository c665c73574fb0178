"""Float32 pinned whatever the environment says, and recorded where a number's origin is read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from milr.journal import Journal
from milr.measure import journal_fingerprint


def test_a_job_runs_in_ieee_float32_despite_tf32_overrides(tmp_path, root):
    """NVIDIA's containers set TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1; the job removes it (and turns
    cuBLAS's own switch off) before torch first runs a matmul, and its result says so."""
    env = {**os.environ, "PYTHONPATH": str(root / "workflow"),
           "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1", "NVIDIA_TF32_OVERRIDE": "1"}  # fmt: skip
    out = tmp_path / "r.json"
    probe = (  # the job, then what its environment holds once it has run
        "import os, sys; from milr.cli import main; code = main(sys.argv[1:]);"
        "env = os.environ; print('TORCH_ALLOW_TF32_CUBLAS_OVERRIDE' in env,"
        " env['NVIDIA_TF32_OVERRIDE']);"
        "sys.exit(code)"
    )
    cmd = [sys.executable, "-c", probe,
           "bisect", "--dataset", "gaussian", "--depth", "1", "--width", "8",
           "--threshold", "0.8", "--upper", "2", "--iterations", "1", "--epochs", "1",
           "--gaussian-train-per-class", "200", "--gaussian-val-per-class", "50",
           "--device", "cpu", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False 0"
    numerics = json.loads(out.read_text())["provenance"]["numerics"]
    assert numerics["float32_precision"] == "ieee"
    assert numerics["torch"] and numerics["device_name"]


def test_journal_key_holds_precision_and_library_versions(small_gaussian, tmp_path):
    import torch
    from milr.numerics import pin_float32

    pin_float32()  # as every job does before it keys its journal
    key = journal_fingerprint(small_gaussian, torch.device("cpu"))
    assert key["precision"] == "ieee"
    assert "cuda" in key["versions"] and "torch" in key["versions"]
    path = tmp_path / "j.jsonl"
    from milr.records import TrainRecord

    Journal(path, {"depth": 1}, key).append(TrainRecord(lr=1.0, success=True, diverged=False,
                                                         epochs_run=1))  # fmt: skip
    assert len(Journal(path, {"depth": 1}, key).records) == 1
    Journal(path, {"depth": 1}, {**key, "precision": "tf32"})
    assert (tmp_path / "j.jsonl.stale-precision").exists()


def test_journal_key_holds_the_datas_content_and_the_device(small_gaussian):
    """The key's parts; a dataset of the same name and shapes but other content has another."""
    import dataclasses

    import torch
    from milr.data import cache_payload, payload_to_dataset

    key = journal_fingerprint(small_gaussian, torch.device("cpu"))
    x = small_gaussian.x_train.clone()
    x[0, 0] += 1.0
    data = small_gaussian
    other = payload_to_dataset(cache_payload("gaussian", x, data.y_train, data.x_val,
                                             data.y_val, 2))  # fmt: skip
    assert journal_fingerprint(other, torch.device("cpu"))["data"] != key["data"]
    assert set(key) == {"code", "data", "device", "precision", "versions"}
    assert key["data"] == small_gaussian.fingerprint and "(" in key["device"]  # CPU model (ISA)
    renamed = dataclasses.replace(small_gaussian, fingerprint="another")
    assert journal_fingerprint(renamed, torch.device("cpu"))["data"] == "another"
