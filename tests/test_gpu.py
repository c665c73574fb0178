"""The GPU slot allocator, with fake GPU ids: no two live jobs share a slot; a killed job frees
its slot; a preset CUDA_VISIBLE_DEVICES is left alone."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from milr import MilrError
from milr.gpu import acquire_gpu_slot, parse_gpu_list, require_gpus

WORKER = """
import os, sys, time
sys.path.insert(0, {pkg!r})
from milr.gpu import acquire_gpu_slot
from pathlib import Path
slot = acquire_gpu_slot(gpu_ids={ids!r}, lock_dir=Path({locks!r}), poll_s=0.02,
                        jobs_per_gpu={shares})
start = time.time()
time.sleep({hold})
print(slot.gpu_id, os.environ["CUDA_VISIBLE_DEVICES"], start, time.time(), flush=True)
"""


def spawn(root, locks, hold, ids=("0", "1", "2"), shares=1):
    code = WORKER.format(pkg=str(root / "workflow"), locks=str(locks), hold=hold,
                         ids=list(ids), shares=shares)  # fmt: skip
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


def wait_until_held(folder: Path, count: int, timeout_s: float = 60) -> None:
    """Until ``count`` lock files in ``folder`` are held by other processes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = 0
        for path in folder.glob("gpu*.lock"):
            with open(path) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(handle, fcntl.LOCK_UN)
                except BlockingIOError:
                    held += 1
        if held >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} slots never held in {folder}")


def test_jobs_per_gpu_spreads_first_then_shares_never_beyond(root, tmp_path, monkeypatch):
    """Two GPUs, two jobs per GPU: four jobs at once take GPUs 0, 1, 0, 1 (every GPU's first
    slot before any second one), and a fifth finds no free slot while they hold theirs."""
    holders = []
    try:
        for count in range(1, 5):
            holders.append(spawn(root, tmp_path, 30, ids=("0", "1"), shares=2))
            wait_until_held(tmp_path, count)  # one at a time: the order is the allocator's
            if count == 2:  # both GPUs' first slots, no second slot even tried
                assert sorted(p.name for p in tmp_path.glob("gpu*.lock")) == [
                    "gpu0.lock", "gpu1.lock"]  # fmt: skip
        for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(MilrError, match=r"no free GPU slot among \['0', '1'\] x 2"):
            acquire_gpu_slot(gpu_ids=["0", "1"], lock_dir=tmp_path, timeout_s=0.5, poll_s=0.05,
                             jobs_per_gpu=2)  # fmt: skip
        locks = sorted(p.name for p in tmp_path.glob("gpu*.lock"))
        assert locks == ["gpu0-1.lock", "gpu0.lock", "gpu1-1.lock", "gpu1.lock"]
    finally:
        for proc in holders:
            proc.kill()
        gpus = [proc.communicate()[0] for proc in holders]
    assert all(out == "" for out in gpus)  # killed while holding: nothing printed yet


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


# --- a shared workstation: another user must not steer the locks (issue #22) --------------------

ATTACK_JOB = """
import sys
sys.path.insert(0, {pkg!r})
from milr.cli import main
sys.exit(main(["bisect", "--dataset", "gaussian", "--depth", "1", "--width", "4",
               "--threshold", "0.6", "--upper", "1", "--device", "cuda"]))
"""


def run_job(root, env):
    """A CUDA job as the victim runs it (MILR_GPU_IDS fakes two GPUs; it stops at the locks)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS",
                          "SLURM_JOB_ID", "XDG_RUNTIME_DIR", "MILR_GPU_LOCK_DIR")}  # fmt: skip
    code = ATTACK_JOB.format(pkg=str(root / "workflow"))
    return subprocess.run([sys.executable, "-c", code], env={**clean, "MILR_GPU_IDS": "0,1", **env},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def victim_file(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("precious data\n")
    return target


def refused(done, *words):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and lines[-1].startswith("milr: error: GPU lock"), done.stderr
    assert all(word in lines[-1] for word in words), lines[-1]


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_another_users_folder_with_a_planted_symlink_is_refused(root, tmp_path):
    """The attack as a second user makes it: under a shared temp dir (mode 1777), user nobody
    creates the victim's default lock folder and plants gpu0.lock -> the victim's file."""
    shared = Path(tempfile.mkdtemp(prefix="milr-test-shared-"))  # pytest's tmp is 0700
    try:
        shared.chmod(0o1777)
        target = victim_file(shared)
        folder = shared / f"milr-gpu-locks-{os.getuid()}"
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
                     f"mkdir {folder} && ln -s {target} {folder}/gpu0.lock"]  # fmt: skip
        subprocess.run(as_nobody, check=True, timeout=30)
        assert folder.stat().st_uid == 65534
        refused(run_job(root, {"TMPDIR": str(shared)}), str(folder), "owned by uid 65534")
        assert target.read_text() == "precious data\n"
    finally:
        shutil.rmtree(shared)


def test_a_folder_owned_by_someone_else_is_refused(root, tmp_path):
    target = victim_file(tmp_path)
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    (folder / "gpu0.lock").symlink_to(target)
    if os.getuid() == 0:
        os.chown(folder, 65534, 65534)
        refused(run_job(root, {"MILR_GPU_LOCK_DIR": str(folder)}), "owned by uid 65534")
    assert target.read_text() == "precious data\n"


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(root, tmp_path):
    target = victim_file(tmp_path)
    folder = tmp_path / "locks"
    folder.mkdir(mode=0o700)
    (folder / "gpu0.lock").symlink_to(target)
    refused(run_job(root, {"MILR_GPU_LOCK_DIR": str(folder)}), "gpu0.lock", "symlink")
    assert target.read_text() == "precious data\n"


@pytest.mark.parametrize("mode", [0o770, 0o707])
def test_a_folder_others_can_write_is_refused(root, tmp_path, mode):
    folder = tmp_path / "locks"
    folder.mkdir()
    folder.chmod(mode)
    refused(run_job(root, {"MILR_GPU_LOCK_DIR": str(folder)}), "writable by others")
    assert not list(folder.iterdir())


def test_the_default_folder_is_made_private(root, tmp_path, monkeypatch):
    monkeypatch.delenv("MILR_GPU_LOCK_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(name, raising=False)
    slot = acquire_gpu_slot(gpu_ids=["0"], timeout_s=5)
    folder = tmp_path / "milr-gpu-locks"
    assert slot.gpu_id == "0" and stat.S_IMODE(folder.stat().st_mode) == 0o700
    lock = folder / "gpu0.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    fd = [int(f.name) for f in Path("/proc/self/fd").iterdir()
          if os.path.realpath(f"/proc/self/fd/{f.name}") == str(lock)]  # fmt: skip
    assert fd and fcntl.fcntl(fd[0], fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # children don't inherit


# --- several GPUs listed by the user: every one used (issue #23) --------------------------------

POOL_WORKER = """
import os, sys, time
sys.path.insert(0, {pkg!r})
from milr.gpu import acquire_gpu_slot
slot = acquire_gpu_slot(poll_s=0.02, timeout_s=30)
print(slot.gpu_id, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep({hold})
"""


def fake_nvidia_smi(folder: Path, gpus: int) -> Path:
    folder.mkdir()
    script = folder / "nvidia-smi"
    lines = "\\n".join(f"GPU {i}: NVIDIA H200 (UUID: GPU-{i:04d})" for i in range(gpus))
    script.write_text(f"#!/bin/sh\nprintf '{lines}\\n'\n")
    script.chmod(0o755)
    return folder


def test_a_users_cuda_visible_devices_list_is_the_pool(root, tmp_path):
    """export CUDA_VISIBLE_DEVICES=0,1 on a 4-GPU machine: two concurrent jobs get GPU 0 and
    GPU 1 (not both GPU 0, and never 2 or 3); inside a SLURM job the list is left alone."""
    bin_dir = fake_nvidia_smi(tmp_path / "bin", 4)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_JOB_ID", "MILR_GPU_IDS")
    }
    env.update(PATH=f"{bin_dir}:{env['PATH']}", CUDA_VISIBLE_DEVICES="0,1",
               MILR_GPU_LOCK_DIR=str(tmp_path / "locks"))  # fmt: skip
    code = POOL_WORKER.format(pkg=str(root / "workflow"), hold=3)
    jobs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]  # fmt: skip
    outs = [job.communicate(timeout=60)[0].split() for job in jobs]
    assert sorted(out[0] for out in outs) == ["0", "1"]
    assert all(out[0] == out[1] for out in outs)  # each job sees only its own GPU
    scheduled = {**env, "SLURM_JOB_ID": "42"}
    once = POOL_WORKER.format(pkg=str(root / "workflow"), hold=0)
    done = subprocess.run([sys.executable, "-c", once], env=scheduled, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.split() == ["None", "0,1"]
