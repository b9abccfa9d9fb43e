"""Shared pytest fixtures: devices, seeds, and the import path of the source checkout.

Fixtures:
    device: ``"cpu"``, and ``"cuda"`` marked ``gpu`` (skipped, with the reason shown under
        ``-ra``, where no CUDA device is present).
    seed: the integer 0, after seeding torch's and NumPy's global generators with it.
    generator: a ``torch.Generator`` on the CPU seeded with ``seed``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# `experiments/` is a folder of scripts, not an installed package: make it importable whichever
# way pytest is started (``python -m pytest`` adds the working folder, a bare ``pytest`` does not).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The machines this runs on have two cores shared by several jobs; more threads only thrash.
torch.set_num_threads(2)
os.environ.setdefault("MPLBACKEND", "Agg")

_CUDA = torch.cuda.is_available()


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not _CUDA, reason="CUDA is not available on this machine"),
            ],
        ),
    ]
)
def device(request: pytest.FixtureRequest) -> torch.device:
    """The device a test runs on: CPU always, CUDA where present."""
    return torch.device(request.param)


@pytest.fixture
def seed() -> int:
    """Seed torch's and NumPy's global generators with 0 and return 0."""
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - legacy global state, seeded for code that still uses it
    return 0


@pytest.fixture
def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (0)."""
    return torch.Generator().manual_seed(seed)
