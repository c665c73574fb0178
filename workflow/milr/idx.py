"""MNIST-format datasets (LeCun's IDX files): MNIST and Fashion-MNIST through one reader.

Both ship as the same four files (``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, gzipped or
not); torchvision keeps them under ``<data_dir>/<folder>/raw``. Debian's ``dataset-fashion-mnist``
installs the Fashion-MNIST ones system-wide, so Fashion-MNIST is the image benchmark at the
paper's MNIST size that every machine can have without a download.

Pins are SHA-256 digests of each file's *content* (the IDX bytes after gunzip), not of the
archive: Debian recompressed the official ``.gz`` files (their md5 is not torchvision's), yet
the images inside are the same bytes. A file that fails its pin is an error, never a fallback.
MNIST's content digests are not pinned here (no copy to take them from offline); its files are
checked for structure, and torchvision checks the md5 of what it downloads.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from milr import MilrError, MilrFailure

# Cache key -> the file's name without ``.gz``.
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_val": "t10k-images-idx3-ubyte",
    "y_val": "t10k-labels-idx1-ubyte",
}
UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one these datasets use


# milr never advises deleting a file it did not write: these are the user's or a download's.
REPLACE = "replace it with the official file (docs/data.md) and rerun"


@dataclass(frozen=True)
class IdxSource:
    """Where one IDX dataset's files are found and what their content must hash to."""

    name: str
    folder: str  # torchvision's folder under data_dir (and its dataset class)
    content_sha256: Mapping[str, str]  # file name -> digest of its IDX bytes; {}: not pinned
    system_dirs: tuple[Path, ...] = ()  # read when data_dir lacks the files (OS packages)
    install: str = ""  # how to get the files without a download

    def place_hint(self, data_dir: Path) -> str:
        where = "place the four {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] files in "
        where += str(data_dir / self.folder / "raw")
        return f"{self.install} or {where}" if self.install else where


SOURCES = {
    "mnist": IdxSource("mnist", "MNIST", {}),
    "fashion_mnist": IdxSource(
        "fashion_mnist",
        "FashionMNIST",
        {  # Xiao, Rasul & Vollgraf (2017), the official files' content
            "train-images-idx3-ubyte": (
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
            ),
            "train-labels-idx1-ubyte": (
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
            ),
            "t10k-images-idx3-ubyte": (
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
            ),
            "t10k-labels-idx1-ubyte": (
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
            ),
        },
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        install="install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
    ),
}


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` (each plain or ``.gz``), or None unless all four are there."""
    found = {}
    for key, stem in FILES.items():
        path = next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def locate(source: IdxSource, data_dir: Path) -> dict[str, Path] | None:
    """The files from data_dir in torchvision's layout, else from the system's folders."""
    for folder in (data_dir / source.folder / "raw", *source.system_dirs):
        if (found := find_files(folder)) is not None:
            return found
    return None


def read_content(path: Path) -> bytes:
    """A file's IDX bytes, gunzipped where it is a ``.gz``."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise MilrError(f"{path} is corrupt or truncated ({err}): {REPLACE}") from err


def parse_idx(content: bytes, path: Path) -> torch.Tensor:
    """An IDX file's array: two zero bytes, the type code, the number of dimensions, each
    dimension as a big-endian uint32, then the values. Any other length is a broken file."""

    def broken(why: str) -> MilrError:
        return MilrError(f"{path} is corrupt or truncated ({why}): {REPLACE}")

    if len(content) < 4 or content[:2] != b"\0\0":
        raise broken("no IDX header")
    if content[2] != UBYTE:
        raise broken(f"type code {content[2]:#04x}, expected unsigned bytes {UBYTE:#04x}")
    ndim = content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise broken("header cut short")
    shape = tuple(int(d) for d in np.frombuffer(content, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(content) != expected:
        raise broken(f"{len(content)} bytes where its header {shape} implies {expected}")
    values = np.frombuffer(content, np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(values.copy())


def check_content(source: IdxSource, path: Path, content: bytes, data_dir: Path) -> None:
    """A pinned file's content digest must match its pin."""
    stem = path.name.removesuffix(".gz")
    pinned = source.content_sha256.get(stem)
    if pinned is None:
        return
    digest = hashlib.sha256(content).hexdigest()
    if digest != pinned:
        raise MilrError(
            f"{path} fails its SHA-256 check (content {digest[:12]}…, pinned {pinned[:12]}…): "
            f"not the official {source.name} file; put the official one in its place: "
            f"{source.place_hint(data_dir)}"
        )


def read_arrays(
    source: IdxSource, files: Mapping[str, Path], data_dir: Path
) -> dict[str, torch.Tensor]:
    """Images (N x rows x cols) and labels (N), checked against their pins and each other."""
    arrays = {}
    for key, path in files.items():
        content = read_content(path)
        check_content(source, path, content, data_dir)
        arrays[key] = parse_idx(content, path)
    for split in ("train", "val"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise MilrError(
                f"{files[f'x_{split}']} and {files[f'y_{split}']} do not pair up (shapes "
                f"{tuple(images.shape)} and {tuple(labels.shape)}): replace them with the "
                "official files (docs/data.md) and rerun"
            )
        if int(labels.max()) > 9:
            raise MilrError(f"{files[f'y_{split}']} has labels above 9: {REPLACE}")
    return arrays


def download(source: IdxSource, data_dir: Path) -> dict[str, Path]:
    """Fetch the files into data_dir with torchvision (it checks each archive's md5)."""
    from torchvision import datasets

    try:
        getattr(datasets, source.folder)(str(data_dir), train=True, download=True)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MilrFailure(
            f"could not download {source.name} into {data_dir} ({reason}); without network, "
            f"{source.place_hint(data_dir)} and rerun"
        ) from err
    found = find_files(data_dir / source.folder / "raw")
    if found is None:
        raise MilrFailure(f"torchvision left no {source.name} files in {data_dir}; rerun")
    return found


def load_idx(
    name: str, data_dir: Path, allow_download: bool
) -> tuple[dict[str, torch.Tensor], Path]:
    """The four arrays of MNIST or Fashion-MNIST (found, else downloaded, then checked) and the
    folder they were read from."""
    source = SOURCES[name]
    files = locate(source, data_dir)
    if files is None:
        if not allow_download:
            raise MilrError(
                f"no {name} files in {data_dir / source.folder / 'raw'}; "
                f"{source.place_hint(data_dir)}, or drop --no-download"
            )
        files = download(source, data_dir)
    return read_arrays(source, files, data_dir), files["x_train"].parent
