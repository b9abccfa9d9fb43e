"""The README's quick start runs as written and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pyloudnorm as pyln
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs_and_hits_its_loudness() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python quick start"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    wet = ns["wet"]
    assert wet.shape == (4, 2, 5 * 44100) and torch.isfinite(wet).all()
    meter = pyln.Meter(44100)
    for item in wet.detach().double().numpy():
        assert abs(meter.integrated_loudness(item.T) + 14.0) < 0.1
    assert isinstance(ns["chain"], torch.nn.Sequential)
    assert ns["y"].shape == (4, 2, 5 * 44100)


def test_manipulator_example_runs_and_makes_positive_pairs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    block = next(b for b in blocks if "Manipulator" in b)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    params = ns["params"]
    assert len(params) == 32 and ns["pos_a"].shape == (32, 2, 5 * 44100)
    assert bool(ns["four_fx"].active[:, [0, 1, 3, 5]].all())
    assert not bool(ns["four_fx"].active[:, [2, 4]].any())
    assert "item 0" in params.describe(0)


def test_fx_normalization_example_runs() -> None:
    """The FxNormalizer snippet, given four stems of music (``audio`` is the reader's)."""
    import numpy as np
    from signals import music

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    block = next(b for b in blocks if "FxNormalizer" in b)
    audio = torch.tensor(
        np.stack([music(44100, 2.0, seed=s) for s in range(4)]), dtype=torch.float32
    )
    ns: dict = {"audio": audio}
    exec(compile(block, "README.md", "exec"), ns)
    out = ns["normalized"]
    assert out.shape == audio.shape and torch.isfinite(out).all()
    meter = pyln.Meter(44100)
    for i, stem in enumerate(["drums", "bass", "other", "vocals"]):
        target = ns["stats"].stems[stem].loudness_lufs
        assert abs(meter.integrated_loudness(out[i].double().numpy().T) - target) < 0.5


def test_cloner_example_runs_and_keeps_length_and_rate() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    block = next(b for b in blocks if "cloner.transfer" in b)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    out, audio = ns["out"], ns["audio"]
    assert out.shape == (1, 2, 3 * 44100) and torch.isfinite(out).all()
    # An untrained small cloner starts as the identity (its correction path is zero).
    assert torch.allclose(out, audio, atol=1e-6)
