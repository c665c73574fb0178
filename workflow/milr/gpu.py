"""One GPU per job on a shared workstation.

``snakemake --resources gpu=2`` only counts jobs: it never tells a job which GPU is its own, so
every job would land on GPU 0. Before CUDA initialises, a job takes an exclusive ``flock`` on one
lock file per GPU id and exports ``CUDA_VISIBLE_DEVICES`` for the id it won. The OS releases the
lock when the process exits, however it exits, so a killed job frees its slot at once.

When SLURM or the user already chose the visible devices, the allocator does nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from milr import MilrError

log = logging.getLogger("milr")

# Variables that mean "the GPUs of this process are already chosen".
PRESET_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")

_held: list[int] = []  # open lock descriptors; kept for the life of the process


@dataclass(frozen=True)
class Slot:
    """The GPU this process owns (``gpu_id`` is None when the choice was made elsewhere)."""

    gpu_id: int | None


def default_lock_dir() -> Path:
    """Node-local lock folder shared by every job of the user on this machine."""
    env = os.environ.get("MILR_GPU_LOCK_DIR")
    if env:
        return Path(env)
    user = os.environ.get("USER") or str(os.getuid())
    return Path(tempfile.gettempdir()) / f"milr-gpu-locks-{user}"


def detect_gpu_ids() -> list[int]:
    """GPU ids without initialising CUDA: ``MILR_GPU_IDS`` ("0,1") or ``nvidia-smi -L``."""
    env = os.environ.get("MILR_GPU_IDS")
    if env is not None:
        try:
            return [int(part) for part in env.split(",") if part.strip()]
        except ValueError as err:
            raise MilrError(f"MILR_GPU_IDS={env!r} is not a comma-separated list of ints") from err
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [i for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def acquire_gpu_slot(
    gpu_ids: list[int] | None = None,
    lock_dir: Path | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.5,
) -> Slot:
    """Lock a free GPU and make it this process's only visible device.

    Waits (polling) while every GPU is taken; ``timeout_s`` bounds the wait. Must run before
    anything initialises CUDA in this process.
    """
    for name in PRESET_VARIABLES:
        if os.environ.get(name):
            log.info("GPU already chosen by %s=%s; no slot taken", name, os.environ[name])
            return Slot(None)
    ids = detect_gpu_ids() if gpu_ids is None else gpu_ids
    if not ids:
        return Slot(None)
    folder = lock_dir or default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for gpu in ids:
            fd = _try_lock(folder / f"gpu{gpu}.lock")
            if fd is not None:
                _held.append(fd)
                os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
                log.info("took GPU slot %d (lock in %s)", gpu, folder)
                return Slot(gpu)
        if deadline is not None and time.monotonic() >= deadline:
            raise MilrError(
                f"no free GPU among {ids} after {timeout_s:.0f} s (locks in {folder}); "
                "lower --resources gpu=N to the number of GPUs"
            )
        time.sleep(poll_s)
