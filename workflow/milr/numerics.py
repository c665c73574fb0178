"""Floating-point behaviour, pinned and recorded in every job that trains or measures.

PyTorch's float32 matmul is IEEE by default, but the environment can switch it to TF32 behind
the job's back: ``TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1`` (set in NVIDIA's PyTorch containers)
makes every cuBLAS matmul TF32 whatever the code asks, and ``NVIDIA_TF32_OVERRIDE`` is read by
cuBLAS/cuDNN themselves. TF32 keeps 10 mantissa bits: near the edge of stability that flips
probes and moves η*. :func:`pin_float32` removes the one override and sets the other to "off"
before CUDA is first used, then asks for IEEE float32 everywhere through PyTorch's own switches.
:func:`numerics` is what a result's provenance and a journal's key record of it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from collections.abc import Iterator

PRECISION = "ieee"  # full float32: no TF32, no bf16 shortcuts, on CUDA and in oneDNN


def pin_float32() -> str:
    """IEEE float32 for matmuls and convolutions on every backend, whatever the environment
    says; returns the precision now in force. Idempotent, and cheap enough to call per job."""
    os.environ.pop("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", None)  # read once, at the first matmul
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"  # cuBLAS/cuDNN: 0 disables TF32 in the libraries
    import torch

    torch.backends.fp32_precision = PRECISION
    torch.backends.cuda.matmul.fp32_precision = PRECISION
    torch.backends.cudnn.fp32_precision = PRECISION
    torch.backends.mkldnn.fp32_precision = PRECISION
    return float32_precision()


@contextlib.contextmanager
def thread_count_free(device: str) -> Iterator[None]:
    """Run the block on one CPU thread, so that its numbers do not depend on the thread count.

    MKL splits the sum of some matrix products (a weight gradient sums over the minibatch)
    across threads, so λ1's power iteration and the range test's ``torch.optim`` loop round
    differently on 1 and 2 threads. The trainer needs no such care: its batched products split
    work across networks, never inside one sum (tests/test_batched.py checks both thread
    counts). On a GPU the CPU's thread count decides nothing, and the block runs as it is."""
    import torch

    if not device.startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def float32_precision() -> str:
    """The float32 matmul precision in force (``ieee`` after :func:`pin_float32`)."""
    import torch

    return str(torch.backends.cuda.matmul.fp32_precision)


def _package_version(prefix: str) -> str | None:
    """Version of the first installed distribution named ``prefix*`` (pip's CUDA libraries,
    e.g. nvidia-cublas-cu12); None where the library came another way (conda, the system)."""
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith(prefix):
            return f"{name} {dist.version}"
    return None


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model and the vector instructions PyTorch's kernels use
    (AVX2 and AVX-512 kernels may round differently)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            ]
        model = names[0] if names else model
    except OSError:
        pass
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"


def numerics(device: str) -> dict[str, str | None]:
    """What decides the rounding of a job besides its inputs: the device, the float32 precision
    and the library versions. Recorded in provenance and in the journal key."""
    import numpy as np
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device_name": device_name(device),
        "float32_precision": float32_precision(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "cudnn": str(cudnn) if cudnn is not None else None,
        "cublas": _package_version("nvidia-cublas"),
    }
