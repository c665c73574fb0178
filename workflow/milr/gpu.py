"""One GPU per job on a shared workstation.

``snakemake --resources gpu=2`` only counts jobs: it never tells a job which GPU is its own, so
every job would land on GPU 0. Before CUDA initialises, a job takes an exclusive ``flock`` on one
lock file per GPU slot and exports ``CUDA_VISIBLE_DEVICES`` for the slot it won. The OS releases
the lock when the process exits, however it exits, so a killed job frees its slot at once.

Slots are real device names: a GPU's index from ``nvidia-smi -L`` or, on a GPU split by MIG, the
UUID of each MIG instance (what CUDA_VISIBLE_DEVICES takes). A ``CUDA_VISIBLE_DEVICES`` that lists
several devices outside a scheduler's job is the pool the allocator chooses from (a workstation
user's ``export CUDA_VISIBLE_DEVICES=0,1``); one device, a scheduler's allocation (SLURM, PBS,
LSF) or an empty value ("no GPU") is left alone.

Several jobs may share one GPU (``jobs_per_gpu``, ``--jobs-per-gpu``): each GPU then has that
many lock files, and a job takes the first free one, filling every GPU's first slot before any
GPU's second, so jobs spread over the GPUs first.

The locks coordinate one user's jobs on one machine. Their folder is private: the user's runtime
folder (``$XDG_RUNTIME_DIR``) or a folder under the temp dir made with mode 0700, used only if
the user owns it and no one else can write to it; lock files are opened without following
symlinks and must be the user's own regular files. Otherwise another user of the machine could
hold every slot, or plant a symlink that makes a job overwrite a file of the victim's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from milr import MilrFailure

log = logging.getLogger("milr")

# Variables that mean "the GPUs of this process are already chosen" (set, even if empty).
PRESET_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")
# Variables that mean "a scheduler placed this job": its CUDA_VISIBLE_DEVICES is an allocation.
SCHEDULER_VARIABLES = ("SLURM_JOB_ID", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "PBS_JOBID",
                       "LSB_JOBID")  # fmt: skip
LOCK_FLAGS = os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# How long a job waits for a free slot before it gives up, unless told otherwise.
DEFAULT_WAIT_S = 3600.0
REPORT_EVERY_S = 60.0

_held: list[int] = []  # open lock descriptors; kept for the life of the process


@dataclass(frozen=True)
class Slot:
    """The GPU this process owns (``gpu_id`` is None when the choice was made elsewhere)."""

    gpu_id: str | None


def default_lock_dir() -> Path:
    """Node-local lock folder shared by every job of the user on this machine: $MILR_GPU_LOCK_DIR,
    else the user's runtime folder, else one under the temp dir named by the user's uid."""
    env = os.environ.get("MILR_GPU_LOCK_DIR")
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "milr-gpu-locks"
    return Path(tempfile.gettempdir()) / f"milr-gpu-locks-{os.getuid()}"


def _why_not_private(path: Path, info: os.stat_result) -> str:
    """Why another user could tamper with ``path`` ('' when only this user can)."""
    if stat.S_ISLNK(info.st_mode):
        return "a symlink"
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder"
    if info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}, not by you (uid {os.getuid()})"
    if info.st_mode & 0o022:
        return f"writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    return ""


def private_lock_dir(folder: Path) -> Path:
    """``folder``, created with mode 0700 if missing, once it is checked to be this user's alone.

    A folder someone else owns or can write to, a symlink, or a parent folder others can write
    to without the sticky bit (they could swap the folder) stops the job in one line.
    """
    fix = "remove it, or set MILR_GPU_LOCK_DIR to a folder that only you can write"
    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        parent_info = os.stat(parent)
        if parent_info.st_mode & 0o002 and not parent_info.st_mode & stat.S_ISVTX:
            raise MilrFailure(
                f"GPU lock folder {folder}: its parent {parent} is writable by everyone without "
                "the sticky bit, so another user could replace it; set MILR_GPU_LOCK_DIR to a "
                "folder that only you can write"
            )
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        why = _why_not_private(folder, os.lstat(folder))
    except OSError as err:
        raise MilrFailure(
            f"GPU lock folder {folder} cannot be used ({err.strerror}); {fix}"
        ) from err
    if why:
        raise MilrFailure(
            f"GPU lock folder {folder} is {why}: another user could take or redirect milr's GPU "
            f"locks; {fix}"
        )
    return folder


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
            return [g.strip() for g in os.environ[name].split(",") if g.strip()]
    return None


def user_pool() -> list[str] | None:
    """Several devices in CUDA_VISIBLE_DEVICES set by the user, not by a scheduler: the slots to
    choose among (None otherwise)."""
    chosen = visible_gpus()
    scheduled = any(name in os.environ for name in SCHEDULER_VARIABLES)
    if "CUDA_VISIBLE_DEVICES" in os.environ and not scheduled and chosen and len(chosen) > 1:
        return chosen
    return None


def _lock_path(folder: Path, gpu: str, share: int = 0) -> Path:
    """The lock file of one slot: ``share`` k > 0 is a GPU's (k+1)-th job."""
    suffix = f"-{share}" if share else ""
    return folder / f"gpu{gpu.replace('/', '_')}{suffix}.lock"


def _open_lock(path: Path) -> int:
    """The lock file, opened without following a symlink; it must be this user's regular file."""
    try:
        fd = os.open(path, LOCK_FLAGS, 0o600)
    except OSError as err:
        raise MilrFailure(
            f"GPU lock file {path} cannot be opened ({err.strerror}; a symlink is refused); "
            "remove it"
        ) from err
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise MilrFailure(f"GPU lock file {path} is not a regular file of yours; remove it")
    return fd


def _try_lock(path: Path) -> int | None:
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
    return fd


def _slots(ids: list[str], jobs_per_gpu: int) -> list[tuple[str, int]]:
    """Every (GPU, share) slot, each GPU's first share before any GPU's second."""
    return [(gpu, share) for share in range(jobs_per_gpu) for gpu in ids]


def _holders(folder: Path, slots: list[tuple[str, int]]) -> str:
    """Who holds each slot, as the lock files say (pid and host)."""
    parts = []
    for gpu, share in slots:
        path = _lock_path(folder, gpu, share)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd) as handle:
                owner = handle.read(200).strip() or "?"
        except OSError:
            owner = "?"
        parts.append(f"{gpu}{f'/{share}' if share else ''}: pid {owner}")
    return "; ".join(parts)


def acquire_gpu_slot(
    gpu_ids: list[str] | None = None,
    lock_dir: Path | None = None,
    timeout_s: float | None = DEFAULT_WAIT_S,
    poll_s: float = 0.5,
    jobs_per_gpu: int = 1,
) -> Slot:
    """Lock a free GPU slot (one of ``jobs_per_gpu`` per GPU) and make its GPU this process's
    only visible device.

    Waits (polling, saying every minute which slots are held by whom) while every GPU is taken;
    gives up after ``timeout_s`` (None: never). Must run before anything initialises CUDA.
    """
    pool = user_pool()
    chosen = visible_gpus()
    if chosen is not None and pool is None:
        log.info("GPUs already chosen for this job (%s); no slot taken", ",".join(chosen) or "none")
        return Slot(None)
    ids = pool or [str(g) for g in (detect_gpu_ids() if gpu_ids is None else gpu_ids)]
    if not ids:
        return Slot(None)
    folder = private_lock_dir(lock_dir or default_lock_dir())
    slots = _slots(ids, jobs_per_gpu)
    start = time.monotonic()
    reported = start - REPORT_EVERY_S  # say at once that the job waits
    while True:
        for gpu, share in slots:
            fd = _try_lock(_lock_path(folder, gpu, share))
            if fd is not None:
                _held.append(fd)
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                log.info("took GPU slot %s/%d of %d (lock in %s)", gpu, share, jobs_per_gpu, folder)
                return Slot(gpu)
        now = time.monotonic()
        if timeout_s is not None and now - start >= timeout_s:
            raise MilrFailure(
                f"no free GPU slot among {ids} x {jobs_per_gpu} after {timeout_s:.0f} s (held by "
                f"{_holders(folder, slots)}; locks in {folder}); lower --resources gpu=N to the "
                "number of GPUs x jobs_per_gpu"
            )
        if now - reported >= REPORT_EVERY_S:
            log.info("waiting for a GPU slot: all held (%s)", _holders(folder, slots))
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
