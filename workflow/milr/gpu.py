"""One GPU per job on a shared workstation.

``snakemake --resources gpu=2`` only counts jobs: it never tells a job which GPU is its own, so
every job would land on GPU 0. Before CUDA initialises, a job takes an exclusive ``flock`` on one
lock file per GPU slot and exports ``CUDA_VISIBLE_DEVICES`` for the slot it won. The OS releases
the lock when the process exits, however it exits, so a killed job frees its slot at once.

Slots are real device names: a GPU's index from ``nvidia-smi -L`` or, on a GPU split by MIG, the
UUID of each MIG instance (what CUDA_VISIBLE_DEVICES takes). When SLURM or the user already chose
the visible devices, the allocator does nothing; an empty CUDA_VISIBLE_DEVICES means "no GPU".
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from milr import MilrFailure

log = logging.getLogger("milr")

# Variables that mean "the GPUs of this process are already chosen" (set, even if empty).
PRESET_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")
# How long a job waits for a free slot before it gives up, unless told otherwise.
DEFAULT_WAIT_S = 3600.0
REPORT_EVERY_S = 60.0

_held: list[int] = []  # open lock descriptors; kept for the life of the process


@dataclass(frozen=True)
class Slot:
    """The GPU this process owns (``gpu_id`` is None when the choice was made elsewhere)."""

    gpu_id: str | None


def default_lock_dir() -> Path:
    """Node-local lock folder shared by every job of the user on this machine."""
    env = os.environ.get("MILR_GPU_LOCK_DIR")
    if env:
        return Path(env)
    user = os.environ.get("USER") or str(os.getuid())
    return Path(tempfile.gettempdir()) / f"milr-gpu-locks-{user}"


def parse_gpu_list(text: str) -> list[str]:
    """Slots from ``nvidia-smi -L``: each GPU's index, or its MIG instances' UUIDs."""
    slots: list[str] = []
    gpu: str | None = None
    migs: list[str] = []
    for line in text.splitlines() + ["GPU end"]:
        if line.startswith("GPU "):
            if gpu is not None:
                slots += migs or [gpu]
            index = re.match(r"GPU (\d+):", line)
            gpu, migs = (index.group(1) if index else None), []
        elif (mig := re.search(r"\(UUID: (MIG-[^)]+)\)", line)) and gpu is not None:
            migs.append(mig.group(1))
    return slots


def detect_gpu_ids() -> list[str]:
    """GPU slots without initialising CUDA: ``MILR_GPU_IDS`` ("0,1") or ``nvidia-smi -L``."""
    env = os.environ.get("MILR_GPU_IDS")
    if env is not None:
        return [part.strip() for part in env.split(",") if part.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_gpu_list(out)


def visible_gpus() -> list[str] | None:
    """The GPUs this process may use when they were chosen for it (None: not chosen)."""
    for name in PRESET_VARIABLES:
        if name in os.environ:
            return [g for g in os.environ[name].split(",") if g.strip()]
    return None


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
    return fd


def _holders(folder: Path, ids: list[str]) -> str:
    """Who holds each slot, as the lock files say (pid and host)."""
    parts = []
    for gpu in ids:
        try:
            owner = (folder / f"gpu{gpu}.lock").read_text().strip() or "?"
        except OSError:
            owner = "?"
        parts.append(f"{gpu}: pid {owner}")
    return "; ".join(parts)


def acquire_gpu_slot(
    gpu_ids: list[str] | None = None,
    lock_dir: Path | None = None,
    timeout_s: float | None = DEFAULT_WAIT_S,
    poll_s: float = 0.5,
) -> Slot:
    """Lock a free GPU and make it this process's only visible device.

    Waits (polling, saying every minute which slots are held by whom) while every GPU is taken;
    gives up after ``timeout_s`` (None: never). Must run before anything initialises CUDA.
    """
    chosen = visible_gpus()
    if chosen is not None:
        log.info("GPUs already chosen for this job (%s); no slot taken", ",".join(chosen) or "none")
        return Slot(None)
    ids = [str(g) for g in (detect_gpu_ids() if gpu_ids is None else gpu_ids)]
    if not ids:
        return Slot(None)
    folder = lock_dir or default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    reported = start - REPORT_EVERY_S  # say at once that the job waits
    while True:
        for gpu in ids:
            fd = _try_lock(folder / f"gpu{gpu}.lock")
            if fd is not None:
                _held.append(fd)
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                log.info("took GPU slot %s (lock in %s)", gpu, folder)
                return Slot(gpu)
        now = time.monotonic()
        if timeout_s is not None and now - start >= timeout_s:
            raise MilrFailure(
                f"no free GPU among {ids} after {timeout_s:.0f} s (held by {_holders(folder, ids)};"
                f" locks in {folder}); lower --resources gpu=N to the number of GPUs"
            )
        if now - reported >= REPORT_EVERY_S:
            log.info("waiting for a GPU slot: all held (%s)", _holders(folder, ids))
            reported = now
        time.sleep(poll_s)


def require_gpus(listed: bool = True) -> str:
    """Why a run that asks for CUDA cannot have a GPU here, in one line ('' when it can):
    the visible devices were set to none, or (``listed``) nvidia-smi lists none."""
    chosen = visible_gpus()
    if chosen is not None and not chosen:
        return "device is cuda but CUDA_VISIBLE_DEVICES is empty (no GPU visible); set device: cpu"
    if listed and chosen is None and not detect_gpu_ids():
        return (
            "device is cuda but no GPU is visible here (nvidia-smi lists none; MILR_GPU_IDS "
            "names them where nvidia-smi is missing); set device: cpu"
        )
    return ""
