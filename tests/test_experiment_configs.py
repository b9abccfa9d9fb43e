"""Every training config the experiments ship parses into its run's config class (a typo in a
field or a chain entry fails here, not an hour into a training run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloner.parametric_training import ParamTrainConfig
from cloner.training import ClonerTrainConfig
from fxencoder.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments" / "configs").rglob("*.json"))


def _kind(path: Path) -> type:
    rel = path.relative_to(ROOT / "experiments" / "configs")
    if rel.name.startswith("cloner_"):
        return ClonerTrainConfig
    if rel.name.startswith("params_") or rel.parts[0] == "param_losses":
        return ParamTrainConfig
    if rel.parts[0] in ("ladder", "mild", "premix") or rel.name.startswith("encoder_"):
        return TrainConfig
    raise AssertionError(f"{rel}: no config class known for it (add it to this test)")


def test_there_are_configs() -> None:
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path: Path) -> None:
    cls = _kind(path)
    config = cls.from_file(path)
    assert cls.from_json(config.to_json()) == config
    if hasattr(config, "chain_config"):
        config.chain_config()  # the chain's probabilities and ranges are valid
