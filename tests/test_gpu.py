"""The GPU slot allocator, with fake GPU ids: no two live jobs share a slot; a killed job frees
its slot; a preset CUDA_VISIBLE_DEVICES is left alone."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from milr import MilrError
from milr.gpu import acquire_gpu_slot, parse_gpu_list, require_gpus

WORKER = """
import os, sys, time
sys.path.insert(0, {pkg!r})
from milr.gpu import acquire_gpu_slot
from pathlib import Path
slot = acquire_gpu_slot(gpu_ids=["0", "1", "2"], lock_dir=Path({locks!r}), poll_s=0.02)
start = time.time()
time.sleep({hold})
print(slot.gpu_id, os.environ["CUDA_VISIBLE_DEVICES"], start, time.time(), flush=True)
"""


def spawn(root, locks, hold):
    code = WORKER.format(pkg=str(root / "workflow"), locks=str(locks), hold=hold)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES",)}
    env.pop("SLURM_JOB_GPUS", None)
    env.pop("SLURM_STEP_GPUS", None)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )


def test_concurrent_jobs_never_share_a_slot(root, tmp_path):
    procs = [spawn(root, tmp_path, 0.3) for _ in range(8)]
    spans = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        gpu, visible, start, end = out.split()
        assert gpu == visible
        spans.append((gpu, float(start), float(end)))
    assert {gpu for gpu, _, _ in spans} == {"0", "1", "2"}
    for i, (gpu_a, start_a, end_a) in enumerate(spans):
        for gpu_b, start_b, end_b in spans[i + 1 :]:
            if gpu_a == gpu_b:
                assert end_a <= start_b or end_b <= start_a, "two jobs held one GPU at once"


def test_killed_job_frees_its_slot(root, tmp_path, monkeypatch):
    holders = [spawn(root, tmp_path, 60) for _ in range(3)]
    time.sleep(3)  # all three slots taken
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MilrError, match="no free GPU"):
        acquire_gpu_slot(gpu_ids=[0, 1, 2], lock_dir=tmp_path, timeout_s=0.5, poll_s=0.05)
    holders[1].send_signal(signal.SIGKILL)
    holders[1].wait()
    try:
        slot = acquire_gpu_slot(gpu_ids=[0, 1, 2], lock_dir=tmp_path, timeout_s=10, poll_s=0.05)
        assert slot.gpu_id is not None and os.environ["CUDA_VISIBLE_DEVICES"] == str(slot.gpu_id)
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("variable", ["CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS"])
def test_preset_devices_are_left_alone(tmp_path, monkeypatch, variable):
    monkeypatch.setenv(variable, "3")
    slot = acquire_gpu_slot(gpu_ids=[0, 1], lock_dir=tmp_path)
    assert slot.gpu_id is None
    assert not list(tmp_path.iterdir())


def test_no_gpus_means_no_slot(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_GPUS", raising=False)
    monkeypatch.delenv("SLURM_STEP_GPUS", raising=False)
    assert acquire_gpu_slot(gpu_ids=[], lock_dir=tmp_path).gpu_id is None


MIG_LIST = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)
  MIG 3g.20gb     Device  0: (UUID: MIG-1111)
  MIG 3g.20gb     Device  1: (UUID: MIG-2222)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbb)
GPU 2: NVIDIA A100-SXM4-40GB (UUID: GPU-cccc)
  MIG 7g.40gb     Device  0: (UUID: MIG-3333)
"""


def test_slots_are_real_indices_and_mig_uuids():
    assert parse_gpu_list(MIG_LIST) == ["MIG-1111", "MIG-2222", "1", "MIG-3333"]
    assert parse_gpu_list("GPU 0: H200 (UUID: GPU-x)\nGPU 1: H200 (UUID: GPU-y)\n") == ["0", "1"]


def test_an_empty_cuda_visible_devices_means_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert acquire_gpu_slot(gpu_ids=["0", "1"], lock_dir=tmp_path).gpu_id is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # not overridden
    assert "CUDA_VISIBLE_DEVICES is empty" in require_gpus()
    from milr.cli import main

    assert main(["bisect", "--dataset", "gaussian", "--depth", "1", "--width", "4",
                 "--threshold", "0.6", "--upper", "1", "--device", "cuda"]) == 1  # fmt: skip


def test_a_waiting_job_says_who_holds_the_slots_and_gives_up(root, tmp_path, monkeypatch, caplog):
    holder = spawn(root, tmp_path, 30)
    try:
        for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
            monkeypatch.delenv(name, raising=False)
        deadline = time.time() + 20
        while not any(p.read_text() for p in tmp_path.glob("gpu*.lock")):
            assert time.time() < deadline, "the holder never took a slot"
            time.sleep(0.05)
        for _ in range(2):  # take the two other slots here
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
            assert acquire_gpu_slot(gpu_ids=["0", "1", "2"], lock_dir=tmp_path, timeout_s=5).gpu_id
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        with caplog.at_level(logging.INFO, logger="milr"), pytest.raises(MilrError) as err:
            acquire_gpu_slot(gpu_ids=["0", "1", "2"], lock_dir=tmp_path, timeout_s=0.5)
        assert "waiting for a GPU slot: all held" in caplog.text
        assert f"pid {holder.pid}" in str(err.value) and "after 0 s" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
