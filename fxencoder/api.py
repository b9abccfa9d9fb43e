"""Loading and saving encoders: ``fxencoder.load(name_or_path)``, checkpoints, the reference's.

A checkpoint is a plain dict ``{"format": "mixfx.fxencoder/1", "config": {...}, "state_dict":
{...}, ...}`` that loads with ``torch.load(..., weights_only=True)`` (training checkpoints,
``format`` ``"mixfx.fxencoder.train/1"``, load too: their model part is used). Named models
ship inside the package (``fxencoder/weights/<name>.pt``, float16 storage) with their SHA-256 in
``fxencoder/weights/manifest.json``, checked on every load: a corrupt or truncated file gives a
clear error, never a half-loaded model.

The reference implementation (Koo et al.) released its FXencoder as ``{"model": state_dict}``
with keys ``module.encoder.{i}.conv{1,2}.conv1d.{conv1d,batch_norm}.*`` (DataParallel prefix,
each block a ``Res_ConvBlock`` of two ``Conv1d_layer``s). :func:`convert_reference_state_dict`
maps them onto the ``"paper"`` preset's names (``blocks.{i}.conv{1,2}``, ``blocks.{i}.bn{1,2}``);
:func:`load` does it automatically for such a file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fxdsp.io import atomic_write
from fxencoder.config import FXEncoderConfig
from fxencoder.model import FXEncoder

__all__ = [
    "FORMAT",
    "WEIGHTS_DIR",
    "convert_reference_state_dict",
    "load",
    "save",
    "sha256_of",
]

FORMAT = "mixfx.fxencoder/1"
TRAIN_FORMAT = "mixfx.fxencoder.train/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_REF_KEY = re.compile(
    r"^(?:module\.)?encoder\.(\d+)\.conv([12])\.conv1d\.(conv1d|batch_norm)\.(.+)$"
)


def sha256_of(path: str | Path) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save(model: FXEncoder, path: str | Path, *, half: bool = False, **extra: Any) -> str:
    """Write an inference checkpoint atomically; returns its SHA-256.

    Args:
        model: the encoder.
        path: the file.
        half: store floating tensors as float16 (loaded back as float32).
        **extra: more JSON-able entries (e.g. ``steps``, ``metrics``).
    """
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    obj = {"format": FORMAT, "config": asdict(model.config), "state_dict": state, **extra}
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    return sha256_of(path)


def convert_reference_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The reference FXencoder's keys → the ``"paper"`` preset's.

    ``[module.]encoder.{i}.conv{j}.conv1d.conv1d.{weight,bias}`` → ``blocks.{i}.conv{j}.*`` and
    ``[module.]encoder.{i}.conv{j}.conv1d.batch_norm.*`` → ``blocks.{i}.bn{j}.*``.

    Raises:
        ValueError: a key that is not of that layout.
    """
    out = {}
    for key, value in state.items():
        m = _REF_KEY.match(key)
        if m is None:
            raise ValueError(f"not a reference FXencoder key: {key!r}")
        block, j, kind, rest = m.groups()
        name = f"conv{j}" if kind == "conv1d" else f"bn{j}"
        out[f"blocks.{block}.{name}.{rest}"] = value
    return out


def _manifest() -> dict[str, dict[str, str]]:
    path = WEIGHTS_DIR / "manifest.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _resolve(name_or_path: str | Path) -> tuple[Path, str | None]:
    text = str(name_or_path)
    manifest = _manifest()
    if text in manifest and not Path(text).exists():
        entry = manifest[text]
        return WEIGHTS_DIR / entry["file"], entry["sha256"]
    path = Path(name_or_path)
    if not path.exists():
        names = ", ".join(sorted(manifest)) or "none shipped"
        raise ValueError(f"no encoder file {path} (named models: {names})")
    return path, None


def load(name_or_path: str | Path, device: str | torch.device | None = None) -> FXEncoder:
    """An encoder in eval mode from a shipped name (``"default"``) or a checkpoint file.

    Accepts this package's inference and training checkpoints and the reference's
    ``{"model": ...}`` layout (as the ``"paper"`` preset).

    Args:
        name_or_path: a name of ``fxencoder/weights/manifest.json`` or a file path.
        device: where the model goes (default CPU).

    Raises:
        ValueError: an unknown name or missing file, a SHA-256 mismatch (corrupt or
            truncated file), a file that is not a checkpoint, or weights that do not fit.
    """
    path, expected = _resolve(name_or_path)
    if expected is not None:
        actual = sha256_of(path)
        if actual != expected:
            raise ValueError(
                f"{path} is corrupt or truncated: SHA-256 {actual[:16]}… != expected "
                f"{expected[:16]}… (restore the file from the repository)"
            )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read encoder checkpoint {path}: {err}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} is not an encoder checkpoint (a {type(obj).__name__})")
    if obj.get("format") in (FORMAT, TRAIN_FORMAT):
        config = FXEncoderConfig.from_dict(obj["config"])  # lists become tuples there
        state = obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], Mapping):
        config = FXEncoderConfig.preset("paper")
        state = convert_reference_state_dict(obj["model"])
    else:
        raise ValueError(
            f"{path} is not an encoder checkpoint (format {obj.get('format')!r}, keys "
            f"{sorted(obj)[:5]})"
        )
    model = FXEncoder(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the config: {err}") from None
    return model.to(device or "cpu").eval()
