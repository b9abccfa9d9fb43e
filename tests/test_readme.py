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
