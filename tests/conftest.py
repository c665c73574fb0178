"""Shared fixtures: small, seeded problems that train in a fraction of a second."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from milr.data import make_gaussian, payload_to_dataset  # noqa: E402
from milr.settings import GaussianSpec  # noqa: E402

torch.set_num_threads(2)

SMALL_GAUSSIAN = GaussianSpec(dim=8, train_per_class=600, val_per_class=200)


@pytest.fixture(scope="session")
def small_gaussian():
    """1,200 training and 400 validation points: a search runs in about a second."""
    return payload_to_dataset(make_gaussian(SMALL_GAUSSIAN))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _close_figures():
    """Close what a test drew: pyplot keeps every open figure alive (and warns past 20)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
