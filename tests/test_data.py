"""Datasets: the Gaussian task, MNIST-1D, MNIST on hand-made IDX files and Fashion-MNIST on the
real ones (one loader), the cache layer (which the CIFAR-10 path uses), and the one-line errors
for missing, offline and corrupt data."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import random
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from milr import MilrError, MilrFailure, idx
from milr.data import (
    cache_payload,
    load_cache,
    make_gaussian,
    make_mnist1d,
    payload_to_dataset,
    prepare,
    save_cache,
)
from milr.settings import GaussianSpec, Mnist1dSpec, SubsetSpec


def write_idx(path, array: np.ndarray) -> None:
    """IDX as LeCun's MNIST files are: magic (ubyte, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(root, n_train=50, n_val=20, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_val)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    return raw


def test_gaussian_is_determined_by_its_seed_and_sized_as_the_paper():
    a, b = make_gaussian(GaussianSpec(seed=7)), make_gaussian(GaussianSpec(seed=7))
    assert torch.equal(a["x_train"], b["x_train"])
    assert a["x_train"].shape == (18_000, 32) and a["x_val"].shape == (2_000, 32)
    assert torch.bincount(a["y_train"]).tolist() == [9000, 9000]
    assert not torch.equal(make_gaussian(GaussianSpec(seed=8))["x_train"], a["x_train"])


@pytest.mark.parametrize("dim", [32, 100])  # the study's, and the benchmarks'
def test_gaussian_bytes_do_not_depend_on_the_thread_count(dim):
    """At dim 100, two threads once rounded the float64 products apart from one (the same seed,
    other data, another final loss in bench/plain_loop.py's runs)."""
    before = torch.get_num_threads()
    try:
        prints = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            prints.append(make_gaussian(GaussianSpec(dim=dim))["fingerprint"])
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(before)
    assert prints[0] == prints[1]


def test_gaussian_bayes_accuracy_matches_a_linear_probe():
    spec = GaussianSpec(dim=8, mahalanobis=2.0, train_per_class=20_000, val_per_class=5_000)
    data = payload_to_dataset(make_gaussian(spec))
    x = torch.cat([data.x_train, torch.ones(len(data.x_train), 1)], 1).double()
    target = data.y_train.double() * 2 - 1
    w = torch.linalg.lstsq(x, target.unsqueeze(1)).solution  # LDA direction, up to scale
    xv = torch.cat([data.x_val, torch.ones(len(data.x_val), 1)], 1).double()
    acc = float(((xv @ w).squeeze(1) > 0).long().eq(data.y_val).double().mean())
    assert acc == pytest.approx(spec.bayes_accuracy(), abs=0.015)


def test_mnist_through_torchvision_on_hand_made_idx_files(tmp_path):
    fake_mnist(tmp_path / "raw")
    out = tmp_path / "mnist.pt"
    info = prepare("mnist", out, tmp_path / "raw")
    assert info["validation"] == "official test split"
    data = load_cache(out)
    assert data.x_train.shape == (50, 784) and data.x_val.shape == (20, 784)
    assert data.x_train.dtype == torch.float32 and data.num_classes == 10
    assert abs(float(data.x_train.mean())) < 1e-4
    assert float(data.x_train.std()) == pytest.approx(1.0, rel=1e-3)
    stored = torch.load(out, weights_only=True)
    assert stored["x_train"].dtype == torch.uint8  # compact on disk


def test_offline_download_is_one_clear_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(MilrError) as err:
        prepare("mnist", tmp_path / "m.pt", tmp_path / "raw")
    message = str(err.value)
    assert "\n" not in message
    assert "could not download mnist" in message and str(tmp_path / "raw") in message
    assert "train-images-idx3" in message or "images-idx3" in message


def test_cifar_offline_names_the_archive(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(MilrError, match="cifar-10-python.tar.gz"):
        prepare("cifar10", tmp_path / "c.pt", tmp_path / "raw")


def test_truncated_idx_file_is_reported_as_corrupt(tmp_path):
    raw = fake_mnist(tmp_path / "raw")
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(MilrError, match="corrupt or truncated.*official file") as err:
        prepare("mnist", tmp_path / "m.pt", tmp_path / "raw")
    assert "delete" not in str(err.value)  # never for a file milr did not write


def test_cache_layer_with_three_channels(tmp_path):
    """The CIFAR-10 path: uint8 NCHW arrays -> per-channel statistics -> compact cache."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 4, 4), generator=gen, dtype=torch.uint8)
    x[:, 0] //= 4  # channels with different scales
    y = torch.randint(0, 10, (40,), generator=gen)
    payload = cache_payload("cifar10", x[:30], y[:30], x[30:], y[30:], 10, channels=3)
    save_cache(payload, tmp_path / "c.pt")
    data = load_cache(tmp_path / "c.pt")
    per_channel = data.x_train.view(30, 3, 16)
    assert torch.allclose(per_channel.mean(dim=(0, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(dim=(0, 2)), torch.ones(3), atol=1e-2)
    assert data.x_val.shape == (10, 48)


def test_truncated_cache_file_is_one_clear_line(tmp_path):
    path = tmp_path / "g.pt"
    save_cache(make_gaussian(GaussianSpec(dim=4, train_per_class=10, val_per_class=5)), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MilrError, match="corrupt or truncated.*milr prepare") as err:
        load_cache(path)
    assert "delete" not in str(err.value)


def test_a_file_milr_did_not_write_is_not_to_be_deleted(tmp_path):
    """#30: 'milr bisect --data README.md' advised deleting the user's README."""
    path = tmp_path / "README.md"
    path.write_text("# not a dataset\n")
    with pytest.raises(MilrError, match="not a milr dataset cache") as err:
        load_cache(path)
    assert "delete" not in str(err.value) and "milr prepare --out" in str(err.value)


def test_unknown_dataset_is_rejected(tmp_path):
    with pytest.raises(MilrError, match="unknown dataset"):
        prepare("imagenet", tmp_path / "x.pt", tmp_path)


# MNIST-1D: generated by the pinned mnist1d package; these arrays are its exact output for the
# spec below (mnist1d 0.0.2.post1, numpy and scipy as pinned). A change upstream fails here.
SMALL_MNIST1D = Mnist1dSpec(samples=500, val_fraction=0.2, seed=3)
MNIST1D_SHA256 = "b90a0f4d064cf00875cd430d77d2be9b60cc49956215748386b8d8077cdd2a42"


def arrays_digest(payload) -> str:
    digest = hashlib.sha256()
    for key in ("x_train", "y_train", "x_val", "y_val"):
        digest.update(payload[key].numpy().tobytes())
    return digest.hexdigest()


def test_mnist1d_is_the_pinned_packages_exact_output():
    payload = make_mnist1d(SMALL_MNIST1D)
    assert payload["x_train"].shape == (400, 40) and payload["x_val"].shape == (100, 40)
    assert set(payload["y_train"].tolist()) == set(range(10)) and payload["num_classes"] == 10
    assert arrays_digest(payload) == MNIST1D_SHA256


def test_mnist1d_is_deterministic_and_leaves_global_rngs_alone():
    random.seed(5)
    np.random.seed(5)
    expected = random.random(), np.random.rand()
    random.seed(5)
    np.random.seed(5)
    a = make_mnist1d(SMALL_MNIST1D)
    assert (random.random(), np.random.rand()) == expected
    b = make_mnist1d(SMALL_MNIST1D)
    assert arrays_digest(a) == arrays_digest(b)
    other = make_mnist1d(Mnist1dSpec(samples=500, val_fraction=0.2, seed=4))
    assert arrays_digest(other) != arrays_digest(a)


def test_mnist1d_is_standardised_on_training_statistics_only(tmp_path):
    """Train features get mean 0 / std 1; validation uses the training statistics, so its own
    mean and std are not forced to 0 and 1 (the package itself standardises over everything)."""
    prepare("mnist1d", tmp_path / "m1d.pt", tmp_path, mnist1d=SMALL_MNIST1D)
    data = load_cache(tmp_path / "m1d.pt")
    payload = torch.load(tmp_path / "m1d.pt", weights_only=True)
    raw_train = payload["x_train"].double()
    assert data.x_train.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert data.x_train.std().item() == pytest.approx(1.0, abs=1e-3)
    expected_val = (payload["x_val"].double() - raw_train.mean()) / raw_train.std()
    assert torch.allclose(data.x_val.double(), expected_val, atol=1e-5)
    assert data.in_dim == 40 and data.num_classes == 10 and data.name == "mnist1d"
    assert arrays_digest(payload) == arrays_digest(make_mnist1d(SMALL_MNIST1D))


# --- Fashion-MNIST: the real files, through the loader MNIST uses ------------------------------

FASHION_SYSTEM = idx.SOURCES["fashion_mnist"].system_dirs[0]
# The cached arrays of the real files (milr.data.payload_fingerprint): a change to the loader,
# the standardisation statistics or the files fails here.
FASHION_FINGERPRINT = "a1bfb6cd3db58f08"


def fashion_files_or_skip() -> Path:
    """The Debian package's folder; .ci/run installs it and sets MILR_REQUIRE_FASHION=1, so there
    a missing package fails instead of skipping."""
    if not (FASHION_SYSTEM / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("MILR_REQUIRE_FASHION") == "1":
            pytest.fail(f"{FASHION_SYSTEM} is missing: apt-get install dataset-fashion-mnist")
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return FASHION_SYSTEM


def numpy_idx(path: Path, header: int) -> np.ndarray:
    """An independent reader: gunzip, skip the header, bytes as they are."""
    return np.frombuffer(gzip.decompress(path.read_bytes()), np.uint8, offset=header)


def test_fashion_mnist_real_files_end_to_end(tmp_path):
    """The official 60,000 + 10,000 images of 28 x 28, read from the Debian package's folder
    (data_dir has none), equal to what a plain numpy reader finds in the same files."""
    system = fashion_files_or_skip()
    out = tmp_path / "fashion.pt"
    info = prepare("fashion_mnist", out, tmp_path / "data", download=False)
    assert info["source"] == str(system) and info["validation"] == "official test split"
    payload = torch.load(out, weights_only=True)
    assert payload["x_train"].shape == (60000, 784) and payload["x_val"].shape == (10000, 784)
    assert payload["x_train"].dtype == torch.uint8
    assert torch.bincount(payload["y_train"]).tolist() == [6000] * 10
    assert torch.bincount(payload["y_val"]).tolist() == [1000] * 10
    assert int(payload["x_train"].min()) == 0 and int(payload["x_train"].max()) == 255
    images = numpy_idx(system / "train-images-idx3-ubyte.gz", 16).reshape(60000, 784)
    labels = numpy_idx(system / "t10k-labels-idx1-ubyte.gz", 8)
    assert np.array_equal(payload["x_train"].numpy(), images)
    assert np.array_equal(payload["y_val"].numpy(), labels)
    assert payload["fingerprint"] == FASHION_FINGERPRINT
    data = load_cache(out)
    assert data.in_dim == 784 and data.num_classes == 10
    assert abs(float(data.x_train.mean())) < 1e-3  # standardised on training statistics


def place_fashion(root: Path) -> Path:
    """Copies of the real files in data_dir's torchvision layout (FashionMNIST/raw)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for path in fashion_files_or_skip().glob("*-ubyte.gz"):
        shutil.copy(path, raw / path.name)
    return raw


def test_fashion_files_in_data_dir_come_first_and_unzipped_ones_read_the_same(tmp_path):
    raw = place_fashion(tmp_path / "data")
    labels = raw / "t10k-labels-idx1-ubyte.gz"
    (raw / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(labels.read_bytes()))
    labels.unlink()  # one file unzipped, as torchvision leaves them
    info = prepare("fashion_mnist", tmp_path / "f.pt", tmp_path / "data", download=False,
                   subset=SubsetSpec(train=500, val=200))  # fmt: skip
    assert info["source"] == str(raw) and info["subset"] == {"train": 500, "val": 200}
    payload = torch.load(tmp_path / "f.pt", weights_only=True)
    assert payload["x_train"].shape == (500, 784) and payload["y_val"].shape == (200,)
    assert (tmp_path / "f.pt").stat().st_size < 1_000_000  # the subset, not the whole storage


def test_a_corrupted_fashion_file_fails_its_pin_in_one_line(tmp_path):
    raw = place_fashion(tmp_path / "data")
    labels = raw / "train-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[100] = (content[100] + 1) % 10  # one label changed: still a valid IDX file
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(MilrError) as err:
        prepare("fashion_mnist", tmp_path / "f.pt", tmp_path / "data", download=False)
    message = str(err.value)
    assert "\n" not in message and "fails its SHA-256 check" in message and str(labels) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert not (tmp_path / "f.pt").exists()


def test_fashion_missing_everywhere_says_what_to_install_or_place(tmp_path, monkeypatch):
    source = dataclasses.replace(idx.SOURCES["fashion_mnist"], system_dirs=(tmp_path / "none",))
    monkeypatch.setitem(idx.SOURCES, "fashion_mnist", source)
    with pytest.raises(MilrError) as err:
        prepare("fashion_mnist", tmp_path / "f.pt", tmp_path / "data", download=False)
    message = str(err.value)
    assert "\n" not in message and "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "data" / "FashionMNIST" / "raw") in message

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(MilrFailure, match="could not download fashion_mnist .*apt-get install"):
        prepare("fashion_mnist", tmp_path / "f.pt", tmp_path / "data")


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda b: b[:-3], "bytes where its header"),
        (lambda b: b"\x00\x00\x0d" + b[3:], "type code"),
        (lambda b: b"PK" + b[2:], "no IDX header"),
    ],
)
def test_broken_idx_files_are_named_with_what_is_wrong(tmp_path, damage, why):
    raw = fake_mnist(tmp_path / "raw")
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(damage(images.read_bytes()))
    with pytest.raises(MilrError, match=why):
        prepare("mnist", tmp_path / "m.pt", tmp_path / "raw", download=False)


def test_a_subset_larger_than_the_split_or_of_a_generated_dataset_is_refused(tmp_path):
    fake_mnist(tmp_path / "raw")
    with pytest.raises(MilrError, match="subset train: 51 samples asked, the split has 50"):
        prepare("mnist", tmp_path / "m.pt", tmp_path / "raw", subset=SubsetSpec(train=51))
    with pytest.raises(MilrError, match="generated, not downloaded"):
        prepare("gaussian", tmp_path / "g.pt", tmp_path, subset=SubsetSpec(train=10))
