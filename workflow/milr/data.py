"""Datasets as device-ready tensors: the Gaussian task, MNIST-1D, MNIST, Fashion-MNIST, CIFAR-10.

Every dataset goes through one compact cache file (``torch.save`` of a dict): raw features in
their smallest dtype (uint8 pixels), labels, and per-feature training-set mean and std. Hundreds
of bisection jobs then read one small file instead of re-parsing the raw downloads, and
standardisation happens on load, on the device.

Validation split: for MNIST, Fashion-MNIST and CIFAR-10 we use the official test split (10k
images). The paper
does not say which split it validates on; the official split keeps the full training set, is the
same for every user, and is what torchvision ships.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from milr import MilrError, MilrFailure
from milr.idx import SOURCES, load_idx
from milr.io import write_atomic
from milr.names import DATASETS
from milr.numerics import thread_count_free
from milr.settings import GaussianSpec, Mnist1dSpec, SubsetSpec

CACHE_FORMAT = 2  # 2: the payload carries its content fingerprint

# Offset between the seed that draws the weights and the one that orders the minibatches, so
# the two streams never coincide.
SHUFFLE_SEED_OFFSET = 0x5EED

# The file a user can place by hand for CIFAR-10 when the machine has no network (the IDX
# datasets say what they need themselves, milr.idx).
CIFAR_ARCHIVE = "cifar-10-python.tar.gz (from the CIFAR-10 page; torchvision checks its md5)"


@dataclass
class Dataset:
    """Standardised float32 features and int64 labels for training and validation."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""  # of the cached content: a resumed search checks it is the same data

    @property
    def in_dim(self) -> int:
        return int(self.x_train.shape[1])


def shuffle_generator(seed: int) -> torch.Generator:
    """The CPU generator that orders minibatches: same seed, same order on every device."""
    return torch.Generator().manual_seed(seed + SHUFFLE_SEED_OFFSET)


def make_gaussian(spec: GaussianSpec) -> dict[str, Any]:
    """Draw the Gaussian task as a cache payload; the same spec gives the same bytes, on one
    CPU thread: MKL splits the sums of the float64 products below across threads, and at
    dim 100 two threads round the samples differently (dim 32, the study's, does not)."""
    with thread_count_free("cpu"):
        return _draw_gaussian(spec)


def _draw_gaussian(spec: GaussianSpec) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(spec.seed)
    d = spec.dim
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    log_half = math.log(spec.condition) / 2.0
    eigs = torch.exp(torch.linspace(-log_half, log_half, d, dtype=torch.float64))
    sqrt_cov = basis * eigs.sqrt()  # Sigma^{1/2} = Q diag(sqrt(eigs)); Sigma = Q diag(eigs) Q^T
    direction = torch.randn(d, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm() * spec.mahalanobis
    half_gap = sqrt_cov @ direction / 2.0  # Mahalanobis distance between means == mahalanobis

    def draw(n_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(2 * n_per_class, d, generator=gen, dtype=torch.float64) @ sqrt_cov.T
        labels = torch.arange(2).repeat_interleave(n_per_class)
        signs = labels.to(torch.float64).mul(2).sub(1).unsqueeze(1)
        return (noise + signs * half_gap).float(), labels

    x_train, y_train = draw(spec.train_per_class)
    x_val, y_val = draw(spec.val_per_class)
    info = {"spec": dict(spec.__dict__), "bayes_accuracy": spec.bayes_accuracy()}
    return cache_payload("gaussian", x_train, y_train, x_val, y_val, 2, channels=1, info=info)


def make_mnist1d(spec: Mnist1dSpec) -> dict[str, Any]:
    """Generate MNIST-1D with the ``mnist1d`` package (no download) as a cache payload.

    The package seeds and draws from the global ``random`` and ``numpy.random`` states; they are
    saved and restored so that preparing the data changes nothing else in the process. It
    standardises over all samples; the cache's own statistics, taken on the training split only,
    undo that (standardising is invariant to an earlier affine map), so validation stays unseen.
    """
    import random

    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = spec.samples, spec.seed
    args.train_split = 1.0 - spec.val_fraction
    states = random.getstate(), np.random.get_state()
    try:
        arrays = make_dataset(args)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    x_train, x_val = (torch.from_numpy(arrays[k].astype(np.float32)) for k in ("x", "x_test"))
    y_train, y_val = (torch.from_numpy(arrays[k]) for k in ("y", "y_test"))
    info = {"spec": dict(spec.__dict__), "source": "mnist1d package (generated)"}
    return cache_payload("mnist1d", x_train, y_train, x_val, y_val, 10, channels=1, info=info)


def cache_payload(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    num_classes: int,
    channels: int = 1,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The cache dict: flattened raw features plus per-feature training mean/std.

    Statistics are per channel (pixels of one colour share a mean and std), computed on the
    training split only so that validation stays unseen.
    """
    x_train = x_train.reshape(len(x_train), -1)
    x_val = x_val.reshape(len(x_val), -1)
    features = x_train.shape[1]
    if features % channels:
        raise ValueError(f"{features} features do not split into {channels} channels")
    per_channel = x_train.double().reshape(len(x_train), channels, -1)
    mean = per_channel.mean(dim=(0, 2))
    std = per_channel.std(dim=(0, 2)).clamp_min(1e-8)
    repeat = features // channels
    payload = {
        "format": CACHE_FORMAT,
        "name": name,
        "x_train": x_train.contiguous(),
        "y_train": y_train.long(),
        "x_val": x_val.contiguous(),
        "y_val": y_val.long(),
        "mean": mean.repeat_interleave(repeat).float(),
        "std": std.repeat_interleave(repeat).float(),
        "num_classes": num_classes,
        "info": info or {},
    }
    payload["fingerprint"] = payload_fingerprint(payload)
    return payload


def save_cache(payload: dict[str, Any], path: str | Path) -> None:
    """Write a cache payload atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getvalue())


def payload_fingerprint(payload: dict[str, Any]) -> str:
    """A hash of everything a payload feeds to training: features, labels, statistics. Taken
    once, when the payload is made, and cached with it: loading a dataset hashes nothing."""
    digest = hashlib.sha256()
    for key in ("x_train", "y_train", "x_val", "y_val", "mean", "std"):
        tensor = payload[key].contiguous()
        digest.update(f"{key}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def payload_to_dataset(payload: dict[str, Any], device: str | torch.device = "cpu") -> Dataset:
    """Standardise a cache payload on ``device`` with its stored training statistics."""
    mean = payload["mean"].to(device)
    std = payload["std"].to(device)

    def standardise(x: torch.Tensor) -> torch.Tensor:
        return ((x.to(device).float() - mean) / std).contiguous()

    return Dataset(
        name=payload["name"],
        x_train=standardise(payload["x_train"]),
        y_train=payload["y_train"].to(device),
        x_val=standardise(payload["x_val"]),
        y_val=payload["y_val"].to(device),
        num_classes=int(payload["num_classes"]),
        info=dict(payload["info"]),
        fingerprint=payload["fingerprint"],
    )


def load_cache(path: str | Path, device: str | torch.device = "cpu") -> Dataset:
    """Read a cache file and standardise it on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise MilrError(f"dataset file {path} does not exist; run 'milr prepare' first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CACHE_FORMAT:
            raise ValueError(f"cache format {payload.get('format')!r}, expected {CACHE_FORMAT}")
        return payload_to_dataset(payload, device)
    except Exception as err:  # torch.load raises many types on truncated files
        raise MilrError(
            f"dataset file {path} is not a milr dataset cache, or is corrupt or truncated "
            f"({type(err).__name__}): pass a file 'milr prepare' wrote, or write one with "
            "'milr prepare --out NEW_FILE'"
        ) from err


def idx_payload(name: str, root: Path, download: bool, subset: SubsetSpec) -> dict[str, Any]:
    """MNIST or Fashion-MNIST as a cache payload, from files checked by milr.idx."""
    arrays, folder = load_idx(name, root, download)
    arrays = take_subset(arrays, subset)
    info = {"source": str(folder), "validation": "official test split"}
    info.update(subset_info(subset))
    return cache_payload(name, **arrays, num_classes=10, channels=1, info=info)


def cifar_payload(root: Path, download: bool, subset: SubsetSpec) -> dict[str, Any]:
    """CIFAR-10 through torchvision (which checks its archive's md5) as a cache payload."""
    from torchvision import datasets

    archive = root / "cifar-10-python.tar.gz"
    has_files = (root / "cifar-10-batches-py").is_dir() or archive.exists()
    try:
        train = datasets.CIFAR10(str(root), train=True, download=download)
        val = datasets.CIFAR10(str(root), train=False, download=download)
        # CIFAR stores HWC uint8 numpy arrays; channels first keeps channels contiguous
        arrays = {
            "x_train": torch.from_numpy(train.data).permute(0, 3, 1, 2),
            "y_train": torch.tensor(train.targets),
            "x_val": torch.from_numpy(val.data).permute(0, 3, 1, 2),
            "y_val": torch.tensor(val.targets),
        }
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if has_files:
            raise MilrError(
                f"cifar10 files in {root} are corrupt or truncated ({reason}): replace them "
                f"with the official {CIFAR_ARCHIVE} and rerun"
            ) from err
        raise MilrFailure(
            f"could not download cifar10 into {root} ({reason}); without network, place "
            f"{CIFAR_ARCHIVE} under {root} and rerun"
        ) from err
    arrays = take_subset(arrays, subset)
    info = {"source": "torchvision", "validation": "official test split", **subset_info(subset)}
    return cache_payload("cifar10", **arrays, num_classes=10, channels=3, info=info)


def take_subset(arrays: dict[str, torch.Tensor], subset: SubsetSpec) -> dict[str, torch.Tensor]:
    """The first ``subset.train`` / ``subset.val`` samples of each split (all where None)."""
    limits = {"train": subset.train, "val": subset.val}
    for split, limit in limits.items():
        available = len(arrays[f"y_{split}"])
        if limit is not None and limit > available:
            raise MilrError(
                f"subset {split}: {limit} samples asked, the split has {available}; "
                f"lower datasets.<name>.subset.{split} or drop it"
            )
    return {key: value[: limits[key.split("_")[1]]].clone() for key, value in arrays.items()}


def subset_info(subset: SubsetSpec) -> dict[str, Any]:
    """What a cache records of its subset: nothing when it holds every sample."""
    return {} if subset == SubsetSpec() else {"subset": dict(subset.__dict__)}


def prepare(
    name: str,
    out: str | Path,
    data_dir: str | Path,
    gaussian: GaussianSpec | None = None,
    mnist1d: Mnist1dSpec | None = None,
    download: bool = True,
    subset: SubsetSpec | None = None,
) -> dict[str, Any]:
    """Build the cache file ``out`` for dataset ``name``; returns its ``info``."""
    if name not in DATASETS:
        raise MilrError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    subset = subset or SubsetSpec()
    if name in ("gaussian", "mnist1d") and subset != SubsetSpec():
        raise MilrError(
            f"{name} is generated, not downloaded: size it with its own settings, not a subset"
        )
    if name == "gaussian":
        payload = make_gaussian(gaussian or GaussianSpec())
    elif name == "mnist1d":
        payload = make_mnist1d(mnist1d or Mnist1dSpec())
    elif name in SOURCES:
        payload = idx_payload(name, Path(data_dir), download, subset)
    else:
        payload = cifar_payload(Path(data_dir), download, subset)
    save_cache(payload, out)
    return dict(payload["info"])
